"""Splits a Markdown file into its fenced code blocks, for tests/readme/run.sh.

Usage: blocks.py README.md OUT_DIR HTTP_PORT GRPC_PORT

Writes each block to run into OUT_DIR as NNN.sh or NNN.py (in document
order), with 127.0.0.1:3100 and 127.0.0.1:9095 rewritten to the test
server's ports, and prints one line per block: `run FILE LINE FIRST-LINE`
or `skip INFO LINE FIRST-LINE` (spaces in INFO
made colons). Runs: ```sh and ```python blocks. Skips:
```sh no-run (shown, never run) and every other language (configuration
snippets). An unclosed fence is an error.
"""

import os
import re
import sys

RUN = {"sh": "sh", "python": "py"}


def blocks(text):
    """Yields (info string, first line number, body) of each fenced block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,})(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).strip()
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*" + fence + r"\s*$", lines[i]):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        if i >= len(lines):
            raise SystemExit(f"line {start}: the block opened here is never closed")
        i += 1
        yield info, start, "\n".join(body) + "\n"


def main():
    readme, out_dir, http_port, grpc_port = sys.argv[1:5]
    with open(readme) as f:
        text = f.read()
    os.makedirs(out_dir, exist_ok=True)
    n = 0
    for info, line, body in blocks(text):
        first = next((l.strip() for l in body.split("\n") if l.strip()), "")
        ext = RUN.get(info)
        if ext is None:
            print(f"skip {info.replace(' ', ':') or '-'} {line} {first}")
            continue
        n += 1
        body = body.replace("127.0.0.1:3100", f"127.0.0.1:{http_port}")
        body = body.replace("127.0.0.1:9095", f"127.0.0.1:{grpc_port}")
        name = f"{n:03d}.{ext}"
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(body)
        print(f"run {name} {line} {first}")


if __name__ == "__main__":
    main()
