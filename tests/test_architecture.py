"""The package boundaries in pyproject.toml's import-linter contracts hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.unit


def test_the_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def test_no_module_imports_itself_through_others() -> None:
    """No import circles between modules, inside a package or across (an import hidden in
    a function to break one counts too: grimp sees it)."""
    import grimp

    graph = grimp.build_graph("bff", "connectors", "resolvers", cache_dir=None)
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None and module not in graph.find_children(imported):
                circles.append((module, *back))
    assert circles == []
