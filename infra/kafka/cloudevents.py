"""CloudEvents 1.0 attributes of every record we publish, as Kafka binary-mode headers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from infra.config import CLOUDEVENTS_SOURCE, CLOUDEVENTS_TYPE_PREFIX, Settings
from infra.envelope import CONTENT_TYPE, PUBLISHED
from infra.schemas import BASE_ID, CHECKOUT_RESULT, DEAD_LETTERS, file_name

SPECVERSION = "1.0"
# Attributes every record of ours carries (kcat, the cloudevents SDK and the tests read these).
REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "content-type")
Headers = list[tuple[str, bytes]]
_WORD = re.compile(r"(?<!^)(?=[A-Z])")
# The events' aggregate prefixes; a card's events sit at the root of the type namespace.
_AGGREGATES = sorted(set(PUBLISHED.values()), key=len, reverse=True)
_ROOT = "GiftCard"


@dataclass(frozen=True)
class CloudEvents:
    """Where our events come from (`source`, a URI) and how their types are named
    (`type_prefix`, reverse DNS): GIFTCARDS_CLOUDEVENTS_SOURCE / _TYPE_PREFIX."""

    type_prefix: str = CLOUDEVENTS_TYPE_PREFIX
    source: str = CLOUDEVENTS_SOURCE

    @classmethod
    def of(cls, settings: Settings) -> CloudEvents:
        return cls(settings.cloudevents_type_prefix, settings.cloudevents_source)

    def event_headers(self, envelope: dict[str, Any], subject: bytes) -> Headers:
        """Headers of a `giftcard.events` record: the envelope stays the value, unchanged.
        Per record only id, source (cached per market), subject and time are looked at."""
        return [
            *_event_constants(self.type_prefix, envelope["event_type"], envelope["schema_version"]),
            ("ce_id", envelope["event_id"].encode()),
            ("ce_source", _market_source(self.source, envelope["market"])),
            ("ce_subject", subject),
            ("ce_time", envelope["occurred_at"].encode()),
        ]

    def result_headers(self, result: dict[str, Any], key: bytes | None) -> Headers:
        """Headers of a checkout result: one per message id, so the id is the message id
        (a reply published again after a crash is the same event)."""
        headers = [
            *_output_constants(self.type_prefix, self.source, f"checkout.{result['status']}",
                               CHECKOUT_RESULT, "/checkout/results"),
            ("ce_id", str(result["message_id"]).encode()),
        ]
        return headers if key is None else [*headers, ("ce_subject", key)]

    def dead_letter_headers(self, letter: dict[str, Any], key: bytes | None) -> Headers:
        """Headers of a dead letter: one per input record, named by where it was read; its
        type's version and `dataschema` name the dead-letter schema it follows."""
        where = letter["source"]
        version = dead_letter_version(letter)
        headers = [
            *_output_constants(self.type_prefix, self.source, "checkout.dead_lettered",
                               DEAD_LETTERS[version], "/checkout/dead-letters", version),
            ("ce_id", f"{where['topic']}/{where['partition']}/{where['offset']}".encode()),
        ]
        return headers if key is None else [*headers, ("ce_subject", key)]


DEFAULT = CloudEvents()


def dead_letter_version(letter: dict[str, Any]) -> int:
    """2 for a letter with the sealed original (DEAD_LETTER_SCHEMA_V2), else 1."""
    return 2 if "original_sealed" in letter else 1


def event_type_name(type_prefix: str, event_type: str, version: int) -> str:
    """`GiftCardRedeemed` v1 -> `<prefix>.redeemed.v1`; `CheckoutUnknownCodeTried` ->
    `<prefix>.checkout.unknown_code_tried.v1`; `SubjectErased` -> `<prefix>.subject.erased.v1`."""
    aggregate = next(a for a in _AGGREGATES if event_type.startswith(a))
    name = _WORD.sub("_", event_type[len(aggregate):]).lower()
    scope = "" if aggregate == _ROOT else f"{aggregate.lower()}."
    return f"{type_prefix}.{scope}{name}.v{version}"


def market_source(source: str, market: str | None) -> str:
    """The source of a market's events; events of no market (data subjects) come from the
    service itself."""
    return f"{source}/markets/{market}" if market else source


@cache
def _event_constants(
    type_prefix: str, event_type: str, version: int
) -> tuple[tuple[str, bytes], ...]:
    """What every record of one event type and version shares, encoded once. The first two
    headers are the ones published before CloudEvents, kept for today's consumers."""
    return (
        ("event_type", event_type.encode()),
        ("schema_version", str(version).encode()),
        ("content-type", CONTENT_TYPE.encode()),
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_type", event_type_name(type_prefix, event_type, version).encode()),
        ("ce_dataschema", f"{BASE_ID}{file_name(event_type, version)}".encode()),
    )


@cache
def _market_source(source: str, market: str | None) -> bytes:
    return market_source(source, market).encode()


@cache
def _output_constants(
    type_prefix: str, source: str, kind: str, schema: str, path: str, version: int = 1
) -> tuple[tuple[str, bytes], ...]:
    return (
        ("content-type", CONTENT_TYPE.encode()),
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_type", f"{type_prefix}.{kind}.v{version}".encode()),
        ("ce_source", f"{source}{path}".encode()),
        ("ce_dataschema", f"{BASE_ID}{schema}".encode()),
    )


def event_headers_schema(cloudevents: CloudEvents, event_type: str, version: int) -> dict[str, Any]:
    """JSON Schema of the headers `event_headers` writes for one event type and version."""
    constants = _event_constants(cloudevents.type_prefix, event_type, version)
    markets = re.escape(cloudevents.source) + "(/markets/[A-Z]{2})?"
    return _headers_schema(
        constants,
        {
            "ce_id": {"type": "string", "format": "uuid", "description": "= event_id"},
            "ce_source": {
                "type": "string",
                "pattern": f"^{markets}$",
                "description": "the service, and the card's market when the event has one",
            },
            "ce_subject": {
                "type": "string",
                "format": "uuid",
                "description": "= the record key: the card id (the stream id for checkout "
                "attempts and data subjects)",
            },
            "ce_time": {"type": "string", "format": "date-time", "description": "= occurred_at"},
        },
        optional=(),
    )


def output_headers_schema(
    cloudevents: CloudEvents, *, dead_letter: bool, version: int = 1
) -> dict[str, Any]:
    """JSON Schema of the headers of checkout results (`dead_letter=False`) or dead letters
    (of one dead-letter schema `version`)."""
    if dead_letter:
        kinds, path = ["checkout.dead_lettered"], "/checkout/dead-letters"
        schema = DEAD_LETTERS[version]
        ce_id = {"type": "string", "pattern": "^.+/[0-9]+/[0-9]+$",
                 "description": "the input record: topic/partition/offset"}
    else:
        kinds = [f"checkout.{status}" for status in ("accepted", "rejected")]
        schema, path = CHECKOUT_RESULT, "/checkout/results"
        ce_id = {"type": "string", "pattern": "^[ -~]{1,200}$", "description": "= message_id"}
    variants = [_output_constants(cloudevents.type_prefix, cloudevents.source, kind, schema, path,
                                  version) for kind in kinds]
    headers = _headers_schema(
        variants[0],
        {"ce_id": ce_id, "ce_subject": {"type": "string", "description": "= the record key, "
                                        "the order id (absent when the record has no key)"}},
        optional=("ce_subject",),
    )
    headers["properties"]["ce_type"] = {"enum": [dict(v)["ce_type"].decode() for v in variants]}
    return headers


def _headers_schema(
    constants: tuple[tuple[str, bytes], ...],
    variable: dict[str, dict[str, Any]],
    optional: tuple[str, ...],
) -> dict[str, Any]:
    properties = {name: {"const": value.decode()} for name, value in constants} | variable
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }
