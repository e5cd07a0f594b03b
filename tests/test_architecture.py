"""The layers hold (issue 28): import-linter's contracts in pyproject.toml, and no import cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="import-linter (requirements.txt) is not installed")

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _tarjan_cycles(graph, modules):
    """Strongly connected components of more than one module (import cycles)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_of_the_project_imports_itself_back():
    sys.path[:0] = [str(ROOT), str(ROOT / "backend")]
    graph = grimp.build_graph("dreamwaltz", "dreamwaltz_blender")
    assert _tarjan_cycles(graph, graph.modules) == []


def test_an_upward_import_from_core_breaks_the_contracts(tmp_path):
    """A copy of the tree where core imports the server: `lint-imports` fails and names the contract."""
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed here")
    shutil.copytree(ROOT / "backend" / "dreamwaltz", tmp_path / "dreamwaltz", ignore=shutil.ignore_patterns("data"))
    shutil.copytree(ROOT / "dreamwaltz_blender", tmp_path / "dreamwaltz_blender")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    run = lambda: subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path)},
    )
    clean = run()
    assert clean.returncode == 0, clean.stdout[-2000:]
    errors = tmp_path / "dreamwaltz" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom dreamwaltz.server import app  # noqa\n")
    broken = run()
    assert broken.returncode != 0
    assert "core is pure numpy: it imports nothing else of the project BROKEN" in broken.stdout
    assert "dreamwaltz.core.errors -> dreamwaltz.server.app" in broken.stdout
