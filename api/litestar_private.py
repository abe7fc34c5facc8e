"""Every use of Litestar's private API, in one module (checked on Litestar 2.25.0: tests/unit/test_litestar_private.py).
Nothing else in the project imports ``litestar._*``.

``StructSchemaPlugin``: how Litestar renders a msgspec Struct as an OpenAPI schema. Litestar 2 does not export it, and
its public schema-plugin protocol has no way to start from the default rendering of a Struct; api/openapi.py extends
it (``additionalProperties: false`` for Structs that refuse unknown fields, ``format`` on instants and dates). The
public alternative, editing ``Litestar.openapi_schema`` after it is built, costs 0.44 s per app at start-up (measured
2026-12-06), because that property builds the whole document eagerly.
"""

from __future__ import annotations

from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin

CHECKED_ON = ("2.25.0",)

__all__ = ["CHECKED_ON", "StructSchemaPlugin"]
