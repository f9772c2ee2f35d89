"""`serve` runs the retention purge (P2): a real process with the clock ten
years after a purchase shreds the buyer's key, and says so in its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from application.commands import PurchaseCard
from dev.services import unique_topic_prefix
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.kafka.topics import Topics
from tests.faults.harness import ServiceProcess
from tests.faults.test_relay_faults import kafka_env

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_p2_serve_purges_personal_data_past_its_retention_period(
    kafka_bootstrap: str, env_for: dict[str, str], tmp_path: Path
) -> None:
    env = kafka_env(env_for, kafka_bootstrap, Topics(unique_topic_prefix()))
    service = build(load_settings({**env, "GIFTCARDS_NOW": "2026-02-02T09:00:00Z"}))
    service.app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="cust-old", order_id="o-old",
        buyer_email="old@example.com",
    ))
    assert data_subjects(service) == {service.vault.resolve_store_id("cust-old")}  # its key
    service.close()

    later = {**env, "GIFTCARDS_NOW": "2036-01-12T09:00:00Z"}
    with ServiceProcess(["serve"], later, tmp_path / "serve.log") as serve:
        serve.wait_for_log("privacy: 1 subjects past retention erased", timeout=60)
        assert serve.alive(), serve.log_tail()
    service = build(load_settings(env))
    try:
        assert data_subjects(service) == set()
        assert service.vault.resolve_store_id("cust-old") is None  # the link ended too
    finally:
        service.close()


def data_subjects(service: Service) -> set[str]:
    """Keys of data subjects; a sealed code's own key (the delivery outbox's) is a card secret,
    destroyed when the code is delivered, not personal data under a retention period."""
    return {s for s in service.vault.live_subjects() if not s.startswith("card-code:")}
