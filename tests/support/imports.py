"""The modules a Python file imports (absolute imports only), for the architecture tests of tests/unit."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of each absolute import in ``path``."""
    return imports_of(ast.parse(path.read_text(), str(path)))


def imports_of(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found
