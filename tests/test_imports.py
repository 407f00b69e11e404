"""Every import in the product resolves, including those inside functions (which importing a
module does not run), and none is of the sandbox package."""

from __future__ import annotations

import ast
import pathlib

LIB = pathlib.Path(__file__).resolve().parents[1] / "lib" / "eks_hub_runbook"


def test_every_import_of_the_product_resolves(unresolved_imports):
    assert unresolved_imports("eks_hub_runbook") == []


def test_the_product_never_imports_the_sandbox():
    found = []
    for path in LIB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.relative_to(LIB)}:{node.lineno}" for name in names if name.split(".")[0] == "eks_hub_sandbox"]
    assert found == []
