"""The C core's self-test (native/selftest.c) for every engine: cross-built for aarch64 and run
under qemu-user (the NEON and ARMv8 SHA-2 engines), and built natively for this machine.

The cross toolchain is part of the test command (README.md "Run the tests"), so a missing one is
a failure here, not a skip. Speed under qemu means nothing; only pass/fail is asserted.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from miner.core import hashing

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [str(ROOT / "native" / "selftest.c"), str(ROOT / "native" / "sha256d.c")]
CROSS_CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"
SYSROOT = "/usr/aarch64-linux-gnu"  # where Debian's libc6-arm64-cross puts the aarch64 loader and libc
INSTALL_HINT = "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user (README's test command does)"


def build(compiler: str, out: Path) -> Path:
    proc = subprocess.run([compiler, "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(ROOT / "native"), *SOURCES,
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def verdicts(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """engine (or "core") -> PASS / FAIL / SKIP, from the self-test's one line per engine."""
    lines = [line.split() for line in proc.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    return {words[1]: words[0] for words in lines}


@pytest.fixture(scope="module")
def aarch64_selftest(tmp_path_factory) -> Path:
    for tool in (CROSS_CC, QEMU):
        assert shutil.which(tool), f"{tool} is missing: {INSTALL_HINT}"
    return build(CROSS_CC, tmp_path_factory.mktemp("aarch64") / "selftest")


# qemu 7.2 has no aarch64 CPU model without the SHA-2 instructions (its cortex-a72 has them, the
# Raspberry Pi 4's SoC does not), so the NEON engine is checked alongside SHA-2 on each model.
@pytest.mark.parametrize("cpu", ["max", "cortex-a72", "cortex-a76"])
def test_aarch64_engines_pass_under_qemu(aarch64_selftest, cpu):
    proc = subprocess.run([QEMU, "-L", SYSROOT, "-cpu", cpu, str(aarch64_selftest)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = verdicts(proc)
    assert result["core"] == "PASS"
    assert {name: result[name] for name in ("portable", "neon", "armv8-sha2")} == dict.fromkeys(
        ("portable", "neon", "armv8-sha2"), "PASS")
    assert {name: result[name] for name in ("avx2", "avx512", "sha-ni")} == dict.fromkeys(
        ("avx2", "avx512", "sha-ni"), "SKIP")


def test_native_selftest_passes_for_every_engine_this_cpu_has(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "no C compiler (the package build needs one too)"
    proc = subprocess.run([str(build(compiler, tmp_path / "selftest"))], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = verdicts(proc)
    assert result.pop("core") == "PASS"
    # the self-test and the Python binding agree on what this CPU can run
    assert sorted(name for name, verdict in result.items() if verdict == "PASS") == sorted(hashing.engines())
    assert "FAIL" not in result.values()
