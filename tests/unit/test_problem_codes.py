"""``Problem.code`` is an enum of every code the API can answer (issue 21): each code the source can put in a
problem is in api.schemas.ProblemCode, docs/api.md's "Error codes" table names exactly those, and the contract
(../shared/API.md) names none other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from api import problems
from api.routes import webhooks  # noqa: F401  (its WebhookTargetRefusedError is a BookingError subclass)
from api.schemas import PROBLEM_CODES, Problem
from engine import errors

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("api", "engine", "persistence")
# problem() calls whose code is not a literal, and where those codes come from (checked below); a Problem is
# made only by problem()
COMPUTED = {
    ("api/problems.py", "_domain"),  # a BookingError's class code
    ("api/problems.py", "_auth"),  # an AuthError's (its literal codes are scanned)
    ("api/problems.py", "_http"),  # HTTP_CODES, http_error, internal_error
    ("api/problems.py", "Problem() in problem"),
}


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


class _Codes(ast.NodeVisitor):
    """The codes one module can answer: literal codes of problem(...) and AuthError(...), and ``code = "..."``
    class attributes; problem() calls with a computed code are noted with their function."""

    def __init__(self, path: str) -> None:
        self.path, self.function = path, ""
        self.codes: dict[str, str] = {}
        self.computed: set[tuple[str, str]] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for stmt in node.body:
            if (
                isinstance(stmt, ast.Assign)
                and [_name(t) for t in stmt.targets] == ["code"]
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                self.codes[stmt.value.value] = f"{self.path}: class {node.name}"
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _name(node.func)
        if name in ("problem", "AuthError") and len(node.args) >= 2:
            code = node.args[1]
            if isinstance(code, ast.Constant) and isinstance(code.value, str):
                self.codes[code.value] = f"{self.path}:{node.lineno} {name}()"
            else:
                self.computed.add((self.path, self.function))
        elif name == "Problem":
            self.computed.add((self.path, f"Problem() in {self.function}"))
        self.generic_visit(node)


def _scan() -> tuple[dict[str, str], set[tuple[str, str]]]:
    codes: dict[str, str] = {}
    computed: set[tuple[str, str]] = set()
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            visitor = _Codes(rel)
            visitor.visit(ast.parse(path.read_text(), rel))
            codes.update(visitor.codes)
            computed |= visitor.computed
    return codes, computed


def _booking_errors() -> list[type[errors.BookingError]]:
    found, todo = [], [errors.BookingError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_code_the_source_answers_is_in_the_enum() -> None:
    codes, computed = _scan()
    assert len(codes) >= 20, codes  # the scan sees the codes (an empty scan would pass anything)
    assert computed == COMPUTED, "a problem whose code is computed somewhere new: check where it comes from"
    # the computed ones: a domain error's class code, and Litestar's HTTP errors by status
    codes.update({cls.code: f"class {cls.__qualname__}" for cls in _booking_errors()})
    codes.update({code: "api/problems.py HTTP_CODES" for code in [*problems.HTTP_CODES.values(), "http_error"]})
    missing = {code: where for code, where in codes.items() if code not in PROBLEM_CODES}
    assert not missing, f"codes answered but not in api.schemas.ProblemCode: {missing}"


def test_the_enum_holds_no_code_nothing_answers() -> None:
    codes, _ = _scan()
    answered = set(codes) | {cls.code for cls in _booking_errors()} | {*problems.HTTP_CODES.values(), "http_error"}
    assert set(PROBLEM_CODES) - answered == set()


def test_the_openapi_schema_of_problem_states_the_enum() -> None:
    from litestar.openapi.spec import Schema

    from api.app import create_app
    from tests.support.config import settings_for

    schema = create_app(settings_for(None), background=False).openapi_schema.components.schemas[Problem.__name__]
    code = schema.properties["code"]  # type: ignore[index]
    assert isinstance(code, Schema) and sorted(code.enum or ()) == sorted(PROBLEM_CODES)


def _docs_table() -> set[tuple[str, str]]:
    text = (ROOT / "docs" / "api.md").read_text()
    table = text.split("## Error codes", 1)[1].split("\n\n", 2)[1]
    rows = set()
    for line in table.splitlines()[2:]:  # after the header and its rule
        m = re.match(r"\| (\d{3}|\dxx) \| `([a-z_]+)` \|", line)
        assert m, f"docs/api.md error-code table: an odd row {line!r}"
        rows.add((m[1], m[2]))
    return rows


def test_the_docs_table_names_exactly_the_enum() -> None:
    rows = _docs_table()
    assert {code for _, code in rows} == PROBLEM_CODES
    # and each domain error under the status it is answered with
    for cls, (status, _title) in problems.DOMAIN_STATUS.items():
        assert (str(status), cls.code) in rows, (cls.__name__, status)


def test_the_contract_names_no_other_code() -> None:
    contract = ROOT.parent / "shared" / "API.md"
    if not contract.exists():
        pytest.skip(f"{contract} is not beside this checkout")
    named = set(re.findall(r"\b\d{3} `([a-z_]+)`", contract.read_text()))
    assert len(named) >= 5, named
    assert named <= PROBLEM_CODES, named - PROBLEM_CODES
