"""R8/F1: code guessing is counted per subject in fixed windows and locked out past the limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from domain.errors import DomainError
from domain.markets import Markets
from domain.streams import CheckoutAttempts
from infra.bootstrap import Service
from infra.db import Database
from infra.envelope import stored_envelope
from projections import queries
from projections.config import FraudConfig
from projections.fraud import F1_LISTED
from projections.runner import Projector
from projections.sources import sync_store
from tests.conftest import FixedClock
from tests.store_ids import published, store_id
from tests.unit.rules_helpers import buy, pay, refused, stored_bytes, types

LIMIT = 10  # the default of domain/markets.toml


def wrong(
    app: Any, n: int, customer: str | None, *, prefix: str = "w", source: str = "test"
) -> list[str]:
    """`n` redemptions with codes that match no card; the refusal code of each."""
    codes = []
    for i in range(n):
        try:
            pay(app, f"WRONG-{prefix}-{i}", f"{prefix}-{customer}-{i}", 1000,
                customer_id=customer, source=source)
        except DomainError as refusal:
            codes.append(refusal.code)
    return codes


def topics_written(app: Any) -> list[str]:
    return [n.topic.rsplit(".", 1)[-1] for n in app.recorder.select_notifications(1, 10**6)]


def test_r8_limit_is_in_markets_toml_with_a_sensible_default(tmp_path: Path) -> None:
    shipped = Markets.load()
    assert (shipped.guessing.max_unknown_codes, shipped.guessing.window_minutes) == (LIMIT, 60)
    custom = tmp_path / "markets.toml"
    markets_only = Path("domain/markets.toml").read_text().split("[markets.FR]")[1]
    custom.write_text("[guessing]\nmax_unknown_codes = 3\nwindow_minutes = 15\n"
                      "[markets.FR]" + markets_only)
    assert Markets.load(custom).guessing.max_unknown_codes == 3
    custom.write_text("[guessing]\nmax_unknown_codes = 0\n[markets.FR]" + markets_only)
    with pytest.raises(ValidationError, match="max_unknown_codes"):
        Markets.load(custom)


def test_r8_valid_code_refused_during_lockout_then_accepted_after_the_window(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    card = buy(app)
    clock.set("2026-01-12T10:05:00Z")
    assert wrong(app, LIMIT, "mallory") == ["unknown_code"] * LIMIT
    before = len(topics_written(app))
    with refused("too_many_attempts") as valid:
        pay(app, card.code, "shop-valid", 1000, customer_id="mallory")
    with refused("too_many_attempts") as invalid:
        pay(app, "NOPE-NOPE-NOPE", "shop-invalid", 1000, customer_id="mallory")
    # The answer does not tell a valid code from an invalid one, nor does what is recorded.
    assert valid.value.message == invalid.value.message
    assert card.code not in valid.value.message
    written = topics_written(app)[before:]
    assert written == ["Opened", "AttemptRefused"] * 2
    assert types(app, str(card.card_id)) == ["Purchased", "Activated"]  # the card was not touched
    assert app.show(card.card_id).status == "active"
    clock.set("2026-01-12T10:59:59.999999Z")
    with refused("too_many_attempts"):
        pay(app, card.code, "shop-valid", 1000, customer_id="mallory")
    clock.set("2026-01-12T11:00:00Z")  # the next window
    assert pay(app, card.code, "shop-valid", 1000, customer_id="mallory").applied == 1000


def test_r8_retrying_the_same_order_during_lockout_records_one_refusal(
    memory_service: Service,
) -> None:
    app = memory_service.app
    wrong(app, LIMIT, "mallory")
    for _ in range(3):
        with refused("too_many_attempts"):
            pay(app, "NOPE-NOPE-NOPE", "same-order", 1000, customer_id="mallory")
    assert topics_written(app).count("AttemptRefused") == 1


def test_r3_r8_a_paid_order_retried_during_lockout_gets_its_result_again(
    memory_service: Service,
) -> None:
    """Idempotent on the order id: the lock-out refuses new attempts, not the replay of one that
    succeeded; another code on that order is still refused without being looked up."""
    app = memory_service.app
    card = buy(app)
    paid = pay(app, card.code, "shop-paid", 1000, customer_id="mallory")
    wrong(app, LIMIT, "mallory")
    assert pay(app, card.code, "shop-paid", 1000, customer_id="mallory") == paid
    with refused("too_many_attempts"):
        pay(app, "NOPE-NOPE-NOPE", "shop-paid", 1000, customer_id="mallory")


def test_r8_counts_per_customer_and_per_source_and_a_locked_source_stays_locked(
    memory_service: Service,
) -> None:
    app = memory_service.app
    card = buy(app)
    assert wrong(app, LIMIT + 1, "mallory")[-1] == "too_many_attempts"
    assert wrong(app, LIMIT + 1, None, source="cli")[-1] == "too_many_attempts"
    # Another customer, another source: unaffected.
    assert wrong(app, LIMIT, "alice", prefix="a") == ["unknown_code"] * LIMIT
    assert wrong(app, LIMIT, None, prefix="k", source="api-key-7") == ["unknown_code"] * LIMIT
    assert pay(app, card.code, "shop-carol", 1000, customer_id="carol", source="other")
    # Naming a customer does not reopen the locked source.
    assert wrong(app, 1, "bob", prefix="b", source="cli") == ["too_many_attempts"]
    assert wrong(app, 1, "mallory", prefix="m2") == ["too_many_attempts"]


def test_r8_source_names_are_validated(memory_service: Service) -> None:
    with refused("invalid_input"):
        pay(memory_service.app, "NOPE-NOPE-NOPE", "o-1", 1000, customer_id=None, source="")
    with refused("invalid_input"):
        pay(memory_service.app, "NOPE-NOPE-NOPE", "o-1", 1000, customer_id=None, source="a\nb")


def test_r8_windows_are_fixed_and_epoch_aligned(memory_service: Service, clock: FixedClock) -> None:
    """Documented bound: at most twice the limit in one window length, across a boundary."""
    app = memory_service.app
    clock.set("2026-01-12T10:59:00Z")
    assert wrong(app, LIMIT, "mallory", prefix="before") == ["unknown_code"] * LIMIT
    clock.set("2026-01-12T11:00:00Z")
    assert wrong(app, LIMIT, "mallory", prefix="after") == ["unknown_code"] * LIMIT
    assert wrong(app, 1, "mallory", prefix="more") == ["too_many_attempts"]
    window = app.attempt_ids("mallory", "cli", "x", clock())[0]
    # Derived from the customer's store id (P2), not from the customer id anyone could hash.
    assert window == CheckoutAttempts.window_id(store_id(memory_service, "mallory"), clock())
    assert app.repository.get(window).unknown_codes == LIMIT
    # Each window's stream holds its Opened event and at most LIMIT attempts.
    streams = {n.originator_id for n in app.recorder.select_notifications(1, 10**6)}
    for stream in streams:
        assert len(app.recorder.select_events(stream)) <= LIMIT + 1


def test_r8_no_code_is_recorded_for_refused_attempts(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app)
    wrong(app, LIMIT, "mallory")
    with refused("too_many_attempts"):
        pay(app, card.code, "shop-x", 1000, customer_id="mallory")
    raw = stored_bytes(app)
    assert card.code.encode() not in raw
    assert app.hasher.lookup_key(card.code.replace("-", "")).encode() not in raw


@pytest.fixture
def alerts(memory_service: Service, tmp_path: Path) -> Any:
    views = Projector(Database(f"sqlite:///{tmp_path / 'views.sqlite3'}"),
                      FraudConfig(f1_unknown_codes=5))

    def run(rule: str) -> list[dict[str, Any]]:
        sync_store(memory_service.app, views)
        return list(queries.alerts(views.db, rule=rule)["alerts"])

    return run


def test_f1_r8_alert_counts_refused_attempts_and_says_which_were_not_looked_up(
    memory_service: Service, alerts: Any, clock: FixedClock
) -> None:
    app = memory_service.app
    for i in range(LIMIT + 3):
        clock.advance(seconds=10)
        wrong(app, 1, "mallory", prefix=f"g{i}")
    (alert,) = alerts("F1")
    # P5: the view holds the pseudonym of the customer's store id
    assert alert["customer_id"] == published(memory_service, "mallory")
    assert len(alert["event_ids"]) == LIMIT + 3
    assert alert["explanation"].startswith(
        f"{LIMIT} redemption attempts with unknown codes and 3 refused unchecked for too many "
        "attempts in the 60-minute window from 2026-01-12T10:00:00"
    )
    assert alert["detected_at"].startswith("2026-01-12T10:00:50")  # the fifth attempt


def test_f1_r8_streams_of_the_old_layout_still_load_and_project(
    memory_service: Service, alerts: Any
) -> None:
    """In the old layout every unknown code of a customer went into one stream: still readable."""
    app = memory_service.app
    old = CheckoutAttempts.open("legacy", CheckoutAttempts.id_for("legacy"))
    market = app.markets.get("FR")
    for i in range(6):
        old.record_unknown_code(order_id=f"old-{i}", market="FR", currency=market.currency,
                                at=app.now(), terms_version=market.terms_version,
                                correlation_id=f"old-{i}")
    app.save(old)
    assert app.repository.get(CheckoutAttempts.id_for("legacy")).unknown_codes == 6
    (alert,) = alerts("F1")
    published = memory_service.pseudonyms.subject("legacy")  # P5: the view holds it
    assert alert["customer_id"] == published and len(alert["event_ids"]) == 6
    assert alert["explanation"].startswith("6 redemption attempts with unknown codes in the")
    # The new layout does not count them: old streams are history, not a lock-out.
    assert wrong(app, 1, "legacy") == ["unknown_code"]


def test_f1_r8_hammering_through_a_lockout_keeps_the_alert_row_bounded(
    memory_service: Service, alerts: Any, clock: FixedClock
) -> None:
    app = memory_service.app
    for i in range(F1_LISTED + 50):
        clock.advance(seconds=1)
        wrong(app, 1, "mallory", prefix=f"h{i}")
    (alert,) = alerts("F1")
    assert len(alert["event_ids"]) == F1_LISTED
    assert alert["explanation"].startswith(
        f"{LIMIT} redemption attempts with unknown codes and {F1_LISTED + 50 - LIMIT} refused"
    )
    assert alert["explanation"].endswith(f"; the first {F1_LISTED} listed)")
    stored = app.recorder.select_notifications(1, 10**6)
    envelopes = [stored_envelope(app.mapper, n, app.pseudonyms) for n in stored]
    attempts = sorted((e["occurred_at"], e["event_id"]) for e in envelopes if e is not None)
    assert alert["event_ids"] == [event_id for _, event_id in attempts[:F1_LISTED]]


def test_r8_p2_a_redemption_refused_for_its_source_gives_a_customer_never_seen_no_store_id(
    memory_service: Service,
) -> None:
    app = memory_service.app
    code = buy(app).code
    # Bad input is refused before anything is written: no store id for whom it named
    with pytest.raises(DomainError) as refused_for_source:
        pay(app, code, "pay-bad-source", 1000, customer_id="never-seen", source="")
    assert refused_for_source.value.code == "invalid_input"
    assert memory_service.vault.resolve_store_id("never-seen") is None
    # A customer id that is itself invalid is still the error named first
    with pytest.raises(DomainError, match="customer_id"):
        pay(app, code, "pay-bad-both", 1000, customer_id="", source="")
