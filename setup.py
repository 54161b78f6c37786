"""Build glue: cffi compiles native/sha256d.c into miner._sha256d (API mode, out-of-line)."""

import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, PlatformError


class BuildExtWithClearErrors(build_ext):
    """Turn a missing or failing C compiler into one line instead of a traceback wall."""

    def run(self):
        try:
            super().run()
        except (CCompilerError, CompileError, ExecError, PlatformError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            sys.exit(
                "error: cannot compile native/sha256d.c: "
                f"{first} -- install a C compiler (Debian/Ubuntu: apt install gcc python3-dev; "
                "macOS: xcode-select --install) and run the install again"
            )


setup(
    cffi_modules=["native/build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithClearErrors},
)
