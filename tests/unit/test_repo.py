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


def _module_imports() -> dict[str, tuple[set[str], list[str]]]:
    """Every project module -> (project modules it imports, `_names` it imports from another module)."""
    import ast

    modules = {}
    for base, package in ((ROOT / "miner", "miner"), (ROOT / "drivers", "miner.drivers")):
        for path in base.rglob("*.py"):
            parts = [p for p in path.relative_to(base).with_suffix("").parts if p != "__init__"]
            modules[".".join([package, *parts])] = path
    graph: dict[str, tuple[set[str], list[str]]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        private: list[str] = []
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base_name = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base_name = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base_name}.{alias.name}"
                    edges.add(full if full in modules else base_name)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and base_name in modules:
                        private.append(f"{alias.name} from {base_name}")
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = ({e for e in edges if e in modules and e != name}, private)
    return graph


def test_no_import_cycle_and_no_private_imports_among_the_project_modules():
    graph = _module_imports()
    assert {name: private for name, (_, private) in graph.items() if private} == {}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:  # depth-first; a module met again on the path is a cycle
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name):], name]))
        if name in done:
            return
        for other in sorted(graph[name][0]):
            visit(other, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_a_missing_c_compiler_is_one_line_before_any_build_output():
    """issue 14 item 12: the promised line was buried in 44 lines of setuptools output inside pip's."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "setup.py", "build_ext"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "CC": "/nonexistent/cc"}, timeout=60)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1 and "'/nonexistent/cc' not found" in lines[0] and "install" in lines[0], lines
