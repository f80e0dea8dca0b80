"""Build hooks: the gRPC stubs are generated from the proto when building."""
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate  # noqa: E402


class BuildPy(build_py):
    def run(self) -> None:
        generate.generate()
        super().run()


class Sdist(sdist):
    def run(self) -> None:
        generate.generate()
        super().run()


generate.generate()
_min = generate.runtime_requirements()
setup(
    cmdclass={"build_py": BuildPy, "sdist": Sdist},
    install_requires=[
        "grpcio>=" + _min.get("grpcio", "1.50.0"),
        "protobuf>=" + _min.get("protobuf", "4.21.0"),
    ],
)
