"""The README's test command is what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    # The one command line: it installs the regtest node (npm), then the package, then tests.
    command = [line for line in ci if "pytest" in line and not line.startswith("#")]
    assert len(command) == 1
    assert command[0] in (ROOT / "README.md").read_text()


def test_shared_vector_copies_are_current():
    shared = ROOT.parent / "shared" / "protocols" / "vectors"
    if not shared.is_dir():  # a clean clone outside the workplace has only the copies
        return
    for original in shared.glob("*.json"):
        assert (ROOT / "tests" / "vectors" / original.name).read_bytes() == original.read_bytes()
