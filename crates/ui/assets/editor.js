// The LogQL editor: a textarea over a highlighted copy of its text (same
// font and wrapping, so the two line up), a completion list fed by the
// Loki label API, and the server parser's error marked where it is.
//
// Keys: Enter runs, Shift+Enter is a new line, Ctrl+Space completes,
// arrows/Enter/Tab/Escape drive an open completion list.

import { h, debounce } from './dom.js';
import { tokenize, completionContext, valueInsertion, functionItems, stageItems } from './logql.js';
import { checkQuery, errorOffset } from './api.js';

export class Editor {
  /**
   * provider(ctx) resolves to label names (ctx.kind 'labelName') or values
   * of ctx.label ('labelValue'); onRun() runs the query.
   */
  constructor({ provider, onRun, onChange }) {
    this.provider = provider;
    this.onRun = onRun;
    this.onChange = onChange || (() => {});
    this.errorAt = null;
    this.items = [];
    this.selected = 0;
    this.ctx = null;
    this.highlight = h('pre', { class: 'editor-highlight', 'aria-hidden': 'true' });
    this.input = h('textarea', {
      class: 'editor-input', id: 'query-input', rows: 1, spellcheck: 'false', autocomplete: 'off',
      autocapitalize: 'off', 'aria-label': 'LogQL query',
      placeholder: '{app="api"} |= "error"   — Enter runs, Shift+Enter new line, Ctrl+Space completes',
    });
    this.list = h('ul', { class: 'completions', id: 'completions', role: 'listbox', hidden: true });
    this.message = h('div', { class: 'editor-error', id: 'query-error', role: 'alert' });
    this.root = h('div', { class: 'editor-wrap' }, h('div', { class: 'editor' }, this.highlight, this.input, this.list), this.message);
    this.input.addEventListener('input', () => {
      this.clearError();
      this.render();
      this.onChange(this.value);
      this.completeSoon(false);
      this.validateSoon();
    });
    this.input.addEventListener('keydown', (e) => this.keydown(e));
    this.input.addEventListener('scroll', () => { this.highlight.scrollTop = this.input.scrollTop; });
    this.input.addEventListener('blur', () => setTimeout(() => this.close(), 150));
    this.input.addEventListener('click', () => this.close());
    this.completeSoon = debounce((explicit) => this.complete(explicit), 120);
    this.validateSoon = debounce(() => this.validate(), 500);
    this.validation = 0;
  }

  get value() {
    return this.input.value;
  }

  set value(text) {
    this.input.value = text;
    this.clearError();
    this.render();
  }

  focus() {
    this.input.focus();
  }

  /** Marks the server's error message at its position (or just shows it). */
  showError(message) {
    const text = this.value;
    this.errorAt = errorOffset(text, message);
    this.message.textContent = message;
    this.message.classList.toggle('shown', true);
    this.render();
  }

  clearError() {
    this.errorAt = null;
    this.message.textContent = '';
    this.message.classList.remove('shown');
  }

  async validate() {
    const text = this.value;
    const id = ++this.validation;
    if (!text.trim()) return;
    try {
      const err = await checkQuery(text);
      if (id !== this.validation || text !== this.value) return;
      if (err) this.showError(err);
    } catch {
      // Validation is a convenience: a server that cannot answer it says
      // so when the query runs.
    }
  }

  /** Rebuilds the highlighted copy; caret, when given, gets a marker. */
  render(caret = null) {
    const text = this.value;
    const frag = document.createDocumentFragment();
    let errorMarked = false;
    for (const t of tokenize(text)) {
      const cls = `tok-${t.type}${t.type === 'string' && !t.closed ? ' tok-open' : ''}`;
      const hasError = this.errorAt !== null && !errorMarked && this.errorAt >= t.start && this.errorAt < t.end && t.type !== 'space';
      const pieces = caret !== null && caret > t.start && caret < t.end
        ? [[t.start, caret], [caret, t.end]]
        : [[t.start, t.end]];
      pieces.forEach(([a, b], k) => {
        if (k === 1) frag.append(h('span', { class: 'caret-mark' }));
        frag.append(h('span', { class: hasError ? `${cls} tok-error` : cls }, text.slice(a, b)));
      });
      if (hasError) errorMarked = true;
      if (caret === t.end) frag.append(h('span', { class: 'caret-mark' }));
    }
    if (caret === 0) frag.prepend(h('span', { class: 'caret-mark' }));
    if (this.errorAt !== null && !errorMarked) frag.append(h('span', { class: 'tok-error tok-eof' }, ' '));
    // A trailing newline needs a character after it to take up a line.
    frag.append('\n');
    this.highlight.replaceChildren(frag);
    this.input.style.height = 'auto';
    this.input.style.height = `${this.input.scrollHeight}px`;
  }

  keydown(e) {
    const open = !this.list.hidden;
    if (open && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
      e.preventDefault();
      const n = this.items.length;
      this.selected = (this.selected + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.renderList();
      return;
    }
    if (open && (e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey) {
      e.preventDefault();
      this.accept(this.items[this.selected]);
      return;
    }
    if (open && e.key === 'Escape') {
      e.preventDefault();
      this.close();
      return;
    }
    if (e.key === ' ' && e.ctrlKey) {
      e.preventDefault();
      this.complete(true);
      return;
    }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      this.close();
      this.onRun();
    }
  }

  async complete(explicit) {
    const cursor = this.input.selectionStart;
    if (cursor !== this.input.selectionEnd) return this.close();
    const ctx = completionContext(this.value, cursor, explicit);
    if (!ctx) return this.close();
    let items;
    if (ctx.kind === 'function') items = functionItems();
    else if (ctx.kind === 'stage') items = stageItems();
    else {
      try {
        const names = await this.provider(ctx);
        items = names.map((v) => ({
          text: v,
          detail: ctx.kind === 'labelName' ? 'label' : ctx.label,
          insert: ctx.kind === 'labelName' ? v : valueInsertion(v, ctx),
        }));
      } catch {
        return this.close();
      }
    }
    // The text may have changed while the provider answered.
    if (this.input.selectionStart !== cursor) return;
    const p = ctx.prefix.toLowerCase();
    const starts = items.filter((i) => i.text.toLowerCase().startsWith(p));
    const contains = items.filter((i) => !i.text.toLowerCase().startsWith(p) && i.text.toLowerCase().includes(p));
    this.items = [...starts, ...contains].slice(0, 100);
    // Nothing to offer, or only what is already typed.
    if (!this.items.length || (this.items.length === 1 && this.items[0].text === ctx.prefix && !explicit)) return this.close();
    this.ctx = ctx;
    this.selected = 0;
    this.renderList();
    this.place(cursor);
  }

  renderList() {
    this.list.replaceChildren(...this.items.map((item, i) => h('li', {
      class: i === this.selected ? 'selected' : '',
      role: 'option',
      onmousedown: (e) => { e.preventDefault(); this.accept(item); },
    }, h('span', { class: 'completion-text' }, item.text), h('span', { class: 'completion-detail' }, item.detail))));
    this.list.hidden = false;
    const sel = this.list.children[this.selected];
    if (sel) sel.scrollIntoView({ block: 'nearest' });
  }

  place(cursor) {
    this.render(cursor);
    const mark = this.highlight.querySelector('.caret-mark');
    if (mark) {
      this.list.style.left = `${Math.min(mark.offsetLeft, this.highlight.clientWidth - 260)}px`;
      this.list.style.top = `${mark.offsetTop + mark.offsetHeight + 4 - this.input.scrollTop}px`;
    }
  }

  accept(item) {
    const ctx = this.ctx;
    if (!item || !ctx) return;
    const text = this.value;
    const { from, to } = ctx;
    let end = to;
    let insert = item.insert;
    // Inside a string, a closing quote already there is not doubled.
    if (ctx.inString && text[end] === '"' && insert.endsWith('"')) insert = insert.slice(0, -1);
    // Replace the whole word under the cursor, not only its typed part.
    if (ctx.kind !== 'labelValue') {
      while (end < text.length && /[a-zA-Z0-9_]/.test(text[end])) end++;
    }
    this.input.value = text.slice(0, from) + insert + text.slice(end);
    const caret = from + insert.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.clearError();
    this.render();
    this.onChange(this.value);
    this.validateSoon();
  }

  close() {
    this.list.hidden = true;
    this.items = [];
    this.ctx = null;
  }
}
