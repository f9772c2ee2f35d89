"""The JSON Schema of `gdpr export` (art. 15 access, art. 20 portability), published in schemas/."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
TEXT: Schema = {"type": "string"}
SEALED: Schema = {"type": ["string", "null"], "description": "clear text, `[erased]` or absent"}
INSTANT: Schema = {"type": "string", "format": "date-time"}


def record(properties: dict[str, Schema], *, closed: bool = True) -> Schema:
    """An object with all these fields; closed: nothing else (a new field needs a schema)."""
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": not closed}


def items(schema: Schema) -> Schema:
    return {"type": "array", "items": schema}


CARD: dict[str, Schema] = {
    "card_id": {"type": "string", "format": "uuid"},
    "market": TEXT, "currency": TEXT, "amount": {"type": "integer"},
    "purchased_at": INSTANT, "expires_at": INSTANT,
}
STATUS: Schema = {"enum": ["active", "redeemed", "cancelled", "expired"]}
# An event's own facts (minus store bookkeeping): each event type's fields are in its schema.
EVENT_FACTS = record({"at": INSTANT, "correlation_id": TEXT}, closed=False)
EXPORT_SCHEMA: Schema = {
    "title": "SubjectExport",
    "description": "Everything held about one person (their subject ids), nothing about others.",
    **record({
        "subject_ids": items(TEXT),
        "generated_at": INSTANT,
        "cards_bought": items(record({
            **CARD, "order_id": TEXT, "code_last4": TEXT, "buyer_email": SEALED,
            "buyer_name": SEALED, "message": SEALED, "has_recipient": {"type": "boolean"},
            "cancelled": items(EVENT_FACTS),
        })),
        "cards_received": items(record({
            **CARD, "status": STATUS, "recipient_email": SEALED, "recipient_name": SEALED,
            "message": SEALED,
        })),
        "refund_cards": items(record({
            **CARD, "status": STATUS, "replaces": {"type": ["string", "null"]},
            "buyer_email": SEALED, "buyer_name": SEALED,
        })),
        "holds": items(record({"card_id": TEXT, **EVENT_FACTS["properties"]}, closed=False)),
        "profiling": items(record({
            "alert_id": TEXT, "rule": TEXT, "severity": TEXT,
            "card_id": {"type": ["string", "null"]}, "customer_id": {"type": ["string", "null"]},
            "event_ids": items(TEXT), "detected_at": TEXT,
            "explanation": TEXT, "legal_basis": TEXT,
        })),
        "rectifications": items(record({
            "subject_id": TEXT, "field": {"enum": ["email", "name"]}, "rectified_at": INSTANT,
        })),
        "access_log": items(record({
            "at": INSTANT, "operator": TEXT, "subject_id": TEXT, "field": TEXT,
            "purpose": TEXT, "command": TEXT,
        })),
        "redemptions": items(record({"card_id": TEXT, **EVENT_FACTS["properties"]},
                                    closed=False)),
        "refunds": items(EVENT_FACTS),
        "refused_redemptions": items(EVENT_FACTS),
        "unknown_code_attempts": items(EVENT_FACTS),
        "rights_exercised": items(record({
            "type": {"enum": ["Erased", "ObjectedToProfiling", "Rectified", "Restricted",
                              "RestrictionLifted"]},
            "subject_id": TEXT, "request_id": TEXT, "at": INSTANT,
        }, closed=False)),
        "requests": items(record({
            "request_id": TEXT, "subject_id": TEXT, "type": TEXT, "received_on": TEXT,
            "due_on": TEXT, "extension_months": {"type": "integer"},
            "extension_reason": {"type": ["string", "null"]}, "status": TEXT,
            "opened_at": TEXT, "closed_on": {"type": ["string", "null"]},
            "overdue": {"type": "boolean"},
        })),
        "withheld": items(TEXT),
    }),
}
