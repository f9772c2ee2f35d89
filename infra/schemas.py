"""JSON Schemas of the published envelopes, generated from the pydantic event models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from application.export_schema import EXPORT_SCHEMA
from consumers.dead_letters import DEAD_LETTER_SCHEMA, DEAD_LETTER_SCHEMA_V2
from consumers.replies import RESULT_SCHEMA
from domain.base import DomainEvent
from infra.envelope import (
    CORRELATED_BY_ORDER,
    LIFTED,
    PSEUDONYMISED,
    Envelope,
    published_events,
    published_version,
)
from infra.pseudonyms import ORDER_PATTERN, SUBJECT_PATTERN

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://giftcards.example.com/schemas/"
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
# The schemas of the last release: what consumers were promised (`python -m infra.schemas
# --release` after a release; the gate in tests/unit/test_schema_compat.py compares with it).
RELEASED_DIR = SCHEMA_DIR / "released"
# The checkout consumer's outputs, hand-written beside the code that builds them (tested on the
# real outputs in tests/integration/test_dead_letters.py).
# Dead letters have two versions: v1 (released, still on the topic until it expires them) and
# v2, what the consumer writes; each letter's CloudEvents `dataschema` names its own.
CHECKOUT_RESULT, DEAD_LETTER = "checkout-result.json", "dead-letter.json"
DEAD_LETTER_V2 = "dead-letter.v2.json"
DEAD_LETTERS = {1: DEAD_LETTER, 2: DEAD_LETTER_V2}
CHECKOUT_OUTPUTS = {CHECKOUT_RESULT: RESULT_SCHEMA, DEAD_LETTER: DEAD_LETTER_SCHEMA,
                    DEAD_LETTER_V2: DEAD_LETTER_SCHEMA_V2}
# Documents that are no event: the CLI's subject export (art. 15/20, tested on real exports).
SUBJECT_EXPORT = "subject-export.json"
DOCUMENTS = {**CHECKOUT_OUTPUTS, SUBJECT_EXPORT: EXPORT_SCHEMA}
NOT_EVENTS = frozenset({"envelope.json", *DOCUMENTS})
# Envelope fields copied from the event's own field of another name (see to_envelope).
_FROM_EVENT = {
    "occurred_at": "at",
    "market": "market",
    "currency": "currency",
    "terms_version": "terms_version",
    "correlation_id": "correlation_id",
}


def _all_required(schema: dict[str, Any]) -> dict[str, Any]:
    # model_dump(mode="json") writes every field, defaults included.
    return {**schema, "required": list(schema["properties"])}


def envelope_schema() -> dict[str, Any]:
    schema = _all_required(Envelope.model_json_schema(mode="serialization"))
    return {"$schema": DIALECT, "$id": f"{BASE_ID}envelope.json", **schema}


# What a pseudonymised field is on the stream (P5): its pattern and what it stands for.
PSEUDONYM_SCHEMAS = {
    "subject": {"type": "string", "pattern": SUBJECT_PATTERN, "description":
                "keyed pseudonym of a customer or data subject id (equal ids, equal "
                "pseudonyms; only customer service can map it back)"},
    "order": {"type": "string", "pattern": ORDER_PATTERN, "description":
              "keyed pseudonym of an order id (equal ids, equal pseudonyms; only customer "
              "service can map it back)"},
}


def _pseudonymous(field: dict[str, Any], kind: str) -> dict[str, Any]:
    """A field's schema with its string replaced by the pseudonym's (null kept if allowed)."""
    title = {"title": field["title"]} if "title" in field else {}
    if "anyOf" in field:
        return {"anyOf": [PSEUDONYM_SCHEMAS[kind], {"type": "null"}], **title}
    return {**PSEUDONYM_SCHEMAS[kind], **title}


def event_schema(
    event_type: str, event_class: type[DomainEvent], *, is_card: bool, prefix: str = ""
) -> dict[str, Any]:
    """The envelope of one event type and version: constants, typed lifted fields, strict data."""
    version = published_version(event_class)
    own = event_class.model_json_schema(mode="serialization")
    fields = own["properties"]
    envelope = envelope_schema()
    properties = dict(envelope["properties"])
    properties["event_type"] = {"const": event_type, "title": "Event Type"}
    properties["schema_version"] = {"const": version, "title": "Schema Version"}
    card_id = {"format": "uuid", "type": "string"} if is_card else {"type": "null"}
    properties["card_id"] = {**card_id, "title": "Card Id"}
    for envelope_field, event_field in _FROM_EVENT.items():
        lifted = fields.get(event_field, {"type": "null"})
        properties[envelope_field] = {**lifted, "title": properties[envelope_field]["title"]}
    if prefix in CORRELATED_BY_ORDER:
        properties["correlation_id"] = _pseudonymous(properties["correlation_id"], "order")
    if not is_card:
        properties["stream_id"] = {
            **properties["stream_id"], "description": "keyed id of the stream (named after a "
            "customer in the store): the same for every event of one stream"}
    data = {k: v for k, v in fields.items() if k not in LIFTED}
    for name, kind in PSEUDONYMISED.items():
        if name in data:
            data[name] = _pseudonymous(data[name], kind)
    if "pii" in data:
        data["pii"] = {**data["pii"], "description": "sealed personal data (per-subject "
                       "ciphertext); `recipient_subject` is a subject pseudonym"}
    properties["data"] = {
        "type": "object",
        "title": "Data",
        "properties": data,
        "required": list(data),
        "additionalProperties": False,
    }
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"{BASE_ID}{file_name(event_type, version)}",
        "title": f"{event_type} v{version}",
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if "$defs" in own:  # nested models: refs are resolved against the document root
        schema["$defs"] = own["$defs"]
    return schema


def file_name(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}.json"


def generate(released: Path | None = None) -> dict[str, str]:
    """File name -> exact text of every schema file: the code's, and every released version
    that the code no longer writes (an event moved on to a new `schema_version`: its old
    records stay on the topic, so their schema stays published, frozen)."""
    texts = from_code()
    return texts | {name: text for name, text in read(released or RELEASED_DIR).items()
                    if name not in texts}


def from_code() -> dict[str, str]:
    """File name -> exact text of the schemas of the code as it is."""
    schemas = {"envelope.json": envelope_schema()}
    for name, schema in DOCUMENTS.items():
        schemas[name] = {"$schema": DIALECT, "$id": f"{BASE_ID}{name}", **schema}
    for prefix, event_type, event_class in published_events():
        # Only card events name a card (to_envelope's card_id); the others are streams.
        schema = event_schema(event_type, event_class, is_card=prefix == "GiftCard", prefix=prefix)
        schemas[file_name(event_type, schema["properties"]["schema_version"]["const"])] = schema
    return {name: json.dumps(s, indent=2, ensure_ascii=False) + "\n" for name, s in schemas.items()}


def read(directory: Path) -> dict[str, str]:
    """File name -> text of the schema files in a directory."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.json"))}


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    """(Re)write the schema files; drop stale ones so the directory is exactly the contract."""
    directory.mkdir(parents=True, exist_ok=True)
    files = generate()
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return sorted(files)


def release(directory: Path = SCHEMA_DIR, released: Path = RELEASED_DIR) -> list[str]:
    """Copy the published schemas into the release that the compatibility gate holds the
    next changes to (tests/unit/test_schema_compat.py). Released files are never removed."""
    released.mkdir(parents=True, exist_ok=True)
    files = read(directory)
    for name, text in files.items():
        (released / name).write_text(text, encoding="utf-8")
    return sorted(files)


if __name__ == "__main__":
    if sys.argv[1:] == ["--release"]:
        for name in release():
            sys.stdout.write(f"schemas/released/{name}\n")
    else:
        for written in write():
            sys.stdout.write(f"schemas/{written}\n")
