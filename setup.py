"""Build glue: cffi compiles native/sha256d.c into miner._sha256d (API mode, out-of-line)."""

import os
import shlex
import shutil
import sys
import sysconfig

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


NO_COMPILER = ("error: cannot compile native/sha256d.c: no C compiler ({cc!r} not found) -- install one "
               "(Debian/Ubuntu: apt install gcc python3-dev; macOS: xcode-select --install) and run the install again")


def missing_compiler() -> str | None:
    """The compiler the build would call (CC, else Python's own), when it is not on PATH. Checked
    before setuptools starts, so the user's one line is not buried under pages of build output."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(cc)
    if not words or shutil.which(words[0]) is None:
        return words[0] if words else cc
    return None


if any(command in sys.argv for command in ("build_ext", "editable_wheel", "bdist_wheel", "build", "install")):
    missing = missing_compiler()
    if missing is not None:
        sys.exit(NO_COMPILER.format(cc=missing))

setup(
    cffi_modules=["native/build_ffi.py:ffibuilder", "native/build_pump.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithClearErrors},
)
