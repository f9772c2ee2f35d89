"""The AsyncAPI 3 document of our topics (`asyncapi.yaml`), generated from the code."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from infra import schemas
from infra.config import load_settings
from infra.kafka.cloudevents import (
    CloudEvents,
    event_headers_schema,
    event_type_name,
    output_headers_schema,
)
from infra.kafka.positions import POSITION_SCHEMA
from infra.kafka.topics import Topics
from infra.wire.messages import CheckoutMessage

DOCUMENT = Path(__file__).resolve().parents[1] / "asyncapi.yaml"
KAFKA_BINDING = "0.5.0"
# Every schema file is referenced from the document's folder: the parser resolves them there.
SCHEMAS_REF = "./schemas/"
_SCHEMA_FORMAT = "application/schema+json;version=draft-07"
_UUID_KEY = {"type": "string", "format": "uuid"}


@dataclass(frozen=True)
class Channel:
    """What the code does not say by itself about a topic: its id, meaning and key."""

    id: str
    title: str
    description: str
    key: dict[str, Any]


# By `Topics` property; a topic added there without an entry here fails `generate`.
CHANNELS = {
    "events": Channel(
        "giftcardEvents",
        "Gift card events",
        "Every published event of the store, once, in Kafka transactions (read with "
        "isolation.level=read_committed), a card's events in order in one partition. The value "
        "is the envelope; the headers are its CloudEvents 1.0 attributes (binary mode). "
        "Retained forever: a new consumer group reads the whole history.",
        {**_UUID_KEY, "description": "card id; stream id for checkout attempts and subjects"},
    ),
    "checkout": Channel(
        "orderCheckout",
        "Order service commands",
        "The order service's checkout messages, one of four types. Each message id is answered "
        "once on the results topic; a malformed message is dead-lettered too.",
        {"type": "string", "description": "order id"},
    ),
    "results": Channel(
        "checkoutResults",
        "Checkout results",
        "Exactly one reply per input showing a message id, in Kafka transactions (read with "
        "isolation.level=read_committed).",
        {"type": "string", "description": "order id"},
    ),
    "dead_letters": Channel(
        "deadLetters",
        "Dead letters",
        "Refused inputs: reason, field path, source record and the bytes with codes and "
        "personal data redacted. Version 2 (what the consumer writes; `ce_dataschema` names "
        "each letter's version): the message id as a keyed pseudonym, and the input as "
        "received sealed under the day's dead-letter key, which `gdpr purge` destroys "
        "GIFTCARDS_RETENTION_DEAD_LETTER_DAYS after that day, when the topic expires the "
        "letter too. Version 1 letters (clear message id, no sealed original) stay until then.",
        {"type": ["string", "null"], "description": "v2: the order id's keyed pseudonym, v1: "
         "the order id, when publishable, else none"},
    ),
    "relay_positions": Channel(
        "relayPositions",
        "Relay positions (internal)",
        "The relay's committed position, written in each of its Kafka transactions and read "
        "back at start. Not for other consumers.",
        {"type": "string", "description": "the relay's transactional id"},
    ),
    "checkpoints": Channel(
        "auditCheckpoints",
        "Signed audit checkpoints",
        "Ed25519-signed checkpoints of every card's hash chain: the signed header "
        "(store position, signing time, card count, Merkle root of the chain heads) and its "
        "signature, in signing order, kept forever. The heads themselves are in the checkpoint "
        "files an auditor keeps; `giftcards audit verify --all` checks the store against both.",
        {"type": "null", "description": "no key: one partition, signing order"},
    ),
}

# The value of a `giftcard.checkpoints` record (infra/kafka/checkpoints.publish).
CHECKPOINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["header", "signature"],
    "properties": {
        "header": {
            "type": "object",
            "required": ["position", "signed_at", "cards", "root"],
            "properties": {
                "position": {"type": "integer", "minimum": 0},
                "signed_at": {"type": "string", "format": "date-time"},
                "cards": {"type": "integer", "minimum": 0},
                "root": {"type": "string", "description": "hex SHA-256 Merkle root"},
            },
        },
        "signature": {"type": "string", "contentEncoding": "base64"},
    },
}


def document(
    topics: Topics | None = None, cloudevents: CloudEvents | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document for the default settings (topic prefix, partitions,
    replicas and CloudEvents names of an environment that sets none of them)."""
    settings = load_settings({"GIFTCARDS_SECRET_KEY": "not-a-secret: the defaults only" * 2})
    topics = topics or Topics(settings.topic_prefix)
    cloudevents = cloudevents or CloudEvents.of(settings)
    names = {attr: getattr(topics, attr) for attr in CHANNELS}
    missing = set(topics.configs()) - set(names.values())
    if missing:
        raise KeyError(f"topics without a channel in infra/asyncapi.py CHANNELS: {missing}")
    counts = topics.partition_counts(settings.partitions)
    configs = topics.configs()
    messages = _messages(cloudevents)
    channels = {}
    for attr, channel in CHANNELS.items():
        name = names[attr]
        channels[channel.id] = {
            "address": name,
            "title": channel.title,
            "description": channel.description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages[attr]},
            "bindings": {
                "kafka": {
                    "topic": name,
                    "partitions": counts[name],
                    "replicas": settings.replication_factor,
                    "topicConfiguration": _topic_configuration(configs[name]),
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "Gift card service: Kafka contract",
            "version": package_version("giftcards"),
            "description": "Generated by `python -m infra.asyncapi` from infra/kafka/topics.py, "
            "the topic configs, the CloudEvents headers and the JSON Schemas in schemas/; "
            "tests/unit/test_asyncapi.py fails when they drift. Topic names take "
            "GIFTCARDS_TOPIC_PREFIX in front; partitions are GIFTCARDS_PARTITIONS (the "
            "positions topic has one), replicas GIFTCARDS_REPLICATION_FACTOR.",
            "license": {"name": "Proprietary"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "The brokers named by KAFKA_BOOTSTRAP_SERVERS.",
            }
        },
        "channels": channels,
        "operations": _operations(topics),
        "components": {
            "messages": {m: body for group in messages.values() for m, body in group.items()},
            "schemas": _input_definitions(),
        },
    }


def _messages(cloudevents: CloudEvents) -> dict[str, dict[str, dict[str, Any]]]:
    """Message objects per channel (by `Topics` property)."""
    channel = CHANNELS
    events = {}
    for name, schema in _event_schemas():
        event_type = schema["properties"]["event_type"]["const"]
        version = schema["properties"]["schema_version"]["const"]
        events[f"{event_type}.v{version}"] = {
            "name": event_type,
            "title": f"{event_type} v{version}",
            "summary": "CloudEvents type "
            + event_type_name(cloudevents.type_prefix, event_type, version),
            "contentType": "application/json",
            "headers": event_headers_schema(cloudevents, event_type, version),
            "payload": _file(name),
            "correlationId": {"location": "$message.payload#/correlation_id"},
            "bindings": _key(channel["events"]),
        }
    checkout = {
        model.__name__: {
            "name": model.__name__,
            "contentType": "application/json",
            "payload": _model(model),
            "correlationId": {"location": "$message.payload#/message_id"},
            "bindings": _key(channel["checkout"]),
        }
        for model in _input_models()
    }
    return {
        "events": events,
        "checkout": checkout,
        "results": {
            "CheckoutResult": {
                "name": "CheckoutResult",
                "contentType": "application/json",
                "headers": output_headers_schema(cloudevents, dead_letter=False),
                "payload": _file(schemas.CHECKOUT_RESULT),
                "correlationId": {"location": "$message.payload#/message_id"},
                "bindings": _key(channel["results"]),
            }
        },
        "dead_letters": {
            name: {
                "name": name,
                "title": f"Dead letter v{version}",
                "contentType": "application/json",
                "headers": output_headers_schema(cloudevents, dead_letter=True, version=version),
                "payload": _file(schemas.DEAD_LETTERS[version]),
                "bindings": _key(channel["dead_letters"]),
            }
            # v2 is what the consumer writes; v1 letters stay until the topic expires them.
            for version, name in ((1, "DeadLetter"), (2, "DeadLetter.v2"))
        },
        "relay_positions": {
            "RelayPosition": {
                "name": "RelayPosition",
                "contentType": "application/json",
                "payload": POSITION_SCHEMA,
                "bindings": _key(channel["relay_positions"]),
            }
        },
        "checkpoints": {
            "Checkpoint": {
                "name": "Checkpoint",
                "contentType": "application/json",
                "payload": CHECKPOINT_SCHEMA,
                "bindings": _key(channel["checkpoints"]),
            }
        },
    }


def _operations(topics: Topics) -> dict[str, Any]:
    """What this service sends and receives; a receiving side names its consumer group."""

    def op(action: str, attr: str, description: str, group: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{CHANNELS[attr].id}"},
            "description": description,
        }
        if group is not None:
            body["bindings"] = {
                "kafka": {"groupId": {"type": "string", "enum": [group]},
                          "bindingVersion": KAFKA_BINDING}
            }
        return body

    return {
        "publishEvents": op(
            "send", "events", "The relay (`giftcards relay`, `serve`) publishes each stored "
            "event once, with its position, in one Kafka transaction."
        ),
        "projectEvents": op(
            "receive", "events", "The views (`giftcards project --source kafka`, `serve`) "
            "store each batch with its offsets in one database transaction. Analytics "
            "consumers read the same way under a group of their own.", topics.projections_group,
        ),
        "consumeCheckout": op(
            "receive", "checkout", "The checkout consumer (`giftcards consume checkout`, "
            "`serve`) stores each batch's effects, replies and offsets in one transaction.",
            topics.checkout_group,
        ),
        "replyToCheckout": op("send", "results", "One result per message id."),
        "deadLetterCheckout": op("send", "dead_letters", "One dead letter per refused input."),
        "commitRelayPosition": op(
            "send", "relay_positions", "The relay's position, in the events' transaction."
        ),
        "readRelayPosition": op(
            "receive", "relay_positions", "Read to its end by a starting relay (no group)."
        ),
        "publishCheckpoint": op(
            "send", "checkpoints", "`serve` (every N events or minutes) and `audit checkpoint`."
        ),
        "readCheckpoints": op(
            "receive", "checkpoints", "Read to its end by `audit verify --all` (no group)."
        ),
    }


def _event_schemas() -> list[tuple[str, dict[str, Any]]]:
    """(file name, schema) of every published event schema: every version still published."""
    outputs = schemas.NOT_EVENTS
    texts = schemas.generate()
    return [(name, json.loads(texts[name])) for name in sorted(texts) if name not in outputs]


def _input_models() -> list[type[BaseModel]]:
    """The four `order.checkout` message models, from the discriminated union."""
    union = get_args(CheckoutMessage)[0]
    return list(get_args(union))


def _model(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _input_definitions() -> dict[str, Any]:
    """Nested models of the input messages (Buyer, Recipient), referenced by the payloads."""
    found: dict[str, Any] = {}
    for model in _input_models():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found |= schema.get("$defs", {})
    return dict(sorted(found.items()))


def _file(name: str) -> dict[str, Any]:
    return {"schemaFormat": _SCHEMA_FORMAT, "schema": {"$ref": f"{SCHEMAS_REF}{name}"}}


def _key(channel: Channel) -> dict[str, Any]:
    return {"kafka": {"key": channel.key, "bindingVersion": KAFKA_BINDING}}


def _topic_configuration(config: dict[str, str]) -> dict[str, Any]:
    """Kafka's string configs as the binding types them: lists and integers."""
    typed: dict[str, Any] = {}
    for name, value in config.items():
        if name == "cleanup.policy":
            typed[name] = value.split(",")
        elif value.lstrip("-").isdigit():
            typed[name] = int(value)
        else:
            typed[name] = value
    return typed


def text() -> str:
    """The exact text of asyncapi.yaml."""
    body = yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100)
    return "# Generated by `python -m infra.asyncapi`: edit the code, not this file.\n" + body


def write(path: Path = DOCUMENT) -> Path:
    path.write_text(text(), encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.stdout.write(f"{write().name}\n")
