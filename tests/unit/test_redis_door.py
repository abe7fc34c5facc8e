"""One Redis door (issue 20, item 3): only ``engine/redis/`` imports redis-py or registers Lua scripts with it, and
private modules of redis-py and Litestar are imported only by the one module of each that says why
(engine/redis/private.py, api/litestar_private.py; their version tests sit beside this one)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.imports import imports_of

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("engine", "api", "persistence")
PRIVATE_USERS = {"engine/redis/private.py", "api/litestar_private.py"}


def _modules() -> list[tuple[str, ast.AST]]:
    return [
        (str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path)))
        for pkg in SHIPPED
        for path in sorted((ROOT / pkg).rglob("*.py"))
    ]


def test_only_the_redis_package_imports_redis_py() -> None:
    offending = [
        f"{name}:{line} imports {module}"
        for name, tree in _modules()
        if not name.startswith("engine/redis/")
        for line, module in imports_of(tree)
        if module == "redis" or module.startswith("redis.")
    ]
    assert offending == []


def test_only_the_redis_package_registers_scripts() -> None:
    offending = [
        f"{name}:{node.lineno}"
        for name, tree in _modules()
        if not name.startswith("engine/redis/")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "register_script"
    ]
    assert offending == []


def test_private_modules_of_redis_py_and_litestar_are_imported_in_one_module_each() -> None:
    offending = [
        f"{name}:{line} imports {module}"
        for name, tree in _modules()
        if name not in PRIVATE_USERS
        for line, module in imports_of(tree)
        if module.split(".")[0] in ("redis", "litestar") and any(p.startswith("_") for p in module.split(".")[1:])
    ]
    assert offending == []
