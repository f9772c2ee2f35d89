"""P5, R21: every topic's readers are in the operations docs' ACL table; the reply topic, whose
clear order ids would link orders to pseudonyms, is read by the order service only."""

from __future__ import annotations

from pathlib import Path

from infra.kafka.topics import Topics

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_p5_every_topic_has_its_readers_and_checkout_results_is_the_order_services_own() -> None:
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")
            for line in (DOCS / "operations.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")}
    topics = Topics()
    for topic in (topics.events, topics.checkout, topics.results, topics.dead_letters,
                  topics.relay_positions):
        assert topic in rows, f"{topic} has no row in the ACL table of docs/operations.md"
    assert rows[topics.results][3].strip() == "`User:order-service` only"
    assert "User:analytics" not in "".join(
        "".join(cells) for name, cells in rows.items() if name != topics.events)
    assert "order service's own topic" in (DOCS / "kafka.md").read_text(encoding="utf-8")
