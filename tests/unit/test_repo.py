"""The README's test command is what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


SOURCE_GLOBS = ("miner/**/*.py", "drivers/**/*.py", "native/*.[ch]", "tests/**/*.py", "benchmarks/*.py", "README.md")


def _sources():
    for pattern in SOURCE_GLOBS:
        yield from (p for p in ROOT.glob(pattern) if "node_modules" not in p.parts)


def test_every_docs_reference_resolves_in_the_repository():
    import re

    cited = set()
    for path in _sources():
        for name in re.findall(r"docs/([\w.-]+\.md)", path.read_text(errors="replace")):
            cited.add(name)
            assert (ROOT / "docs" / name).is_file(), f"{path.relative_to(ROOT)} cites docs/{name}, which is missing"
    assert cited, "no source cites docs/ at all"


def test_no_source_refers_to_files_outside_the_repository():
    for path in _sources():
        if path.name == "test_repo.py":
            continue
        assert "shared/protocols" not in path.read_text(errors="replace"), path.relative_to(ROOT)
