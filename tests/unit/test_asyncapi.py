"""asyncapi.yaml: generated from the code, never drifting from it, valid for the official parser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from infra import asyncapi, schemas
from infra.envelope import published_events, published_version
from infra.kafka.topics import Topics

ROOT = Path(__file__).resolve().parents[2]


def committed() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(asyncapi.DOCUMENT.read_text(encoding="utf-8"))
    return loaded


def test_committed_document_equals_the_generated_one() -> None:
    """Run `python -m infra.asyncapi` after changing a topic, an event or a header."""
    assert asyncapi.DOCUMENT.read_text(encoding="utf-8") == asyncapi.text(), (
        "asyncapi.yaml is stale: run `python -m infra.asyncapi`"
    )


def test_every_topic_of_the_code_is_a_channel_with_its_partitions_and_configs() -> None:
    doc = committed()
    channels = {c["address"]: c for c in doc["channels"].values()}
    topics = Topics()
    assert set(channels) == set(topics.configs())
    for name, config in topics.configs().items():
        kafka = channels[name]["bindings"]["kafka"]
        assert kafka["topic"] == name
        single = (topics.relay_positions, topics.checkpoints)
        assert kafka["partitions"] == (1 if name in single else 12)
        assert kafka["replicas"] == 1
        assert {k: str(v) if not isinstance(v, list) else ",".join(v)
                for k, v in kafka["topicConfiguration"].items()} == config
    # Another prefix names other topics, all of them.
    prefixed = asyncapi.document(Topics("staging."))
    assert {c["address"] for c in prefixed["channels"].values()} == set(
        Topics("staging.").configs()
    )


def test_every_published_event_type_is_a_message_of_the_events_channel() -> None:
    doc = committed()
    events = doc["channels"]["giftcardEvents"]["messages"]
    expected = {f"{t}.v{published_version(c)}" for _, t, c in published_events()}
    assert expected <= set(events)
    for name in events:
        message = doc["components"]["messages"][name]
        ref = message["payload"]["schema"]["$ref"]
        assert (ROOT / ref).is_file(), ref
        assert message["headers"]["properties"]["ce_dataschema"]["const"] == (
            schemas.BASE_ID + Path(ref).name
        )


def test_receivers_name_their_consumer_groups() -> None:
    operations = committed()["operations"]
    groups = {
        op["channel"]["$ref"]: op["bindings"]["kafka"]["groupId"]["enum"]
        for op in operations.values()
        if op["action"] == "receive" and "bindings" in op
    }
    assert groups == {
        "#/channels/giftcardEvents": [Topics().projections_group],
        "#/channels/orderCheckout": [Topics().checkout_group],
    }
    sent = {op["channel"]["$ref"] for op in operations.values() if op["action"] == "send"}
    assert sent == {"#/channels/giftcardEvents", "#/channels/checkoutResults",
                    "#/channels/deadLetters", "#/channels/relayPositions",
                    "#/channels/auditCheckpoints"}


def test_the_official_parser_accepts_the_document_and_refuses_a_broken_copy(
    tmp_path: Path,
) -> None:
    """@asyncapi/parser (dev/asyncapi, installed from its lockfile by `make asyncapi-parser`)
    resolves the schema files the document references and checks the Kafka bindings."""
    subprocess.run(["make", "-s", "asyncapi-parser"], cwd=ROOT, check=True, timeout=600)
    shutil.copytree(schemas.SCHEMA_DIR, tmp_path / "schemas")
    broken = tmp_path / "broken.yaml"
    text = asyncapi.text()
    assert "partitions: 12" in text and "./schemas/GiftCardRedeemed.v1.json" in text
    broken.write_text(
        text.replace("partitions: 12", "partitions: 0", 1).replace(
            "./schemas/GiftCardRedeemed.v1.json", "./schemas/GiftCardRedeemedTypo.v1.json"
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        ["node", "dev/asyncapi/validate.mjs", "asyncapi.yaml", str(broken)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # the broken copy
    ours = [line for line in done.stdout.splitlines() if line.startswith("asyncapi.yaml: ")]
    assert [line for line in ours if " error " in line or " warning " in line] == [], out
    assert any(line.startswith("asyncapi.yaml: valid AsyncAPI 3.1.0") for line in ours), out
    errors = [line for line in done.stdout.splitlines() if line.startswith(f"{broken}: error")]
    assert any("/partitions" in line for line in errors), out
    assert any("GiftCardRedeemedTypo.v1.json" in line for line in errors), out
