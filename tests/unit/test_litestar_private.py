"""What api/litestar_private.py takes from Litestar's private API is still there and still renders a Struct the way
api/openapi.py extends it. Checked on Litestar 2.25.0 (CHECKED_ON); on another release (``scripts/test --latest``)
this says what moved before a client generator does."""

from __future__ import annotations

import litestar
import msgspec
from litestar.openapi.spec import Schema
from litestar.typing import FieldDefinition

from api.app import create_app
from api.litestar_private import CHECKED_ON, StructSchemaPlugin
from api.openapi import StrictStructSchemaPlugin


def test_the_struct_plugin_is_litestars_own_and_ours_extends_it() -> None:
    assert issubclass(StrictStructSchemaPlugin, StructSchemaPlugin)

    class Probe(msgspec.Struct):
        a: int

    assert StructSchemaPlugin().is_plugin_supported_field(FieldDefinition.from_annotation(Probe)), (
        f"Litestar {litestar.__version__} (checked on {CHECKED_ON})"
    )


def test_a_struct_that_refuses_unknown_fields_is_closed_in_the_document() -> None:
    schemas = create_app().openapi_schema.components.schemas
    hold_in = schemas["HoldIn"]
    assert isinstance(hold_in, Schema)
    assert hold_in.additional_properties is False, f"Litestar {litestar.__version__} (checked on {CHECKED_ON})"
    assert set(hold_in.required or ()) >= {"practitioner_id", "visit_type_id", "start"}
    hold_out = schemas["HoldOut"]
    assert isinstance(hold_out, Schema) and hold_out.properties is not None
    assert hold_out.properties["start"].format is not None  # type: ignore[union-attr]
