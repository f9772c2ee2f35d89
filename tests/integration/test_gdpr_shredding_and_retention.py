"""Data protection on a real store (SQLite file, PostgreSQL): verified shredding, KEK rotation
against a saved copy of the key table, private store files, retention purge with a clock years
ahead."""

from __future__ import annotations

import sqlite3
import stat
from typing import Any

import pytest

from application.commands import PurchaseCard
from application.privacy import Privacy
from infra.bootstrap import Service
from infra.db import sqlite_path
from infra.vault_keys import ERASED, KekDestroyed
from tests.integration.test_gdpr_erasure import store_bytes
from tests.store_ids import store_id
from tests.unit.test_gdpr_privacy import (
    ALICE_EMAIL,
    ALICE_MESSAGE,
    ALICE_NAME,
    BOB_EMAIL,
    BOB_MESSAGE,
    act,
    busy_history,
    export,
)

SECRETS = [ALICE_EMAIL, ALICE_MESSAGE, ALICE_NAME, BOB_MESSAGE]


def wrapped_keys(service: Service, subjects: list[str]) -> list[tuple[str, bytes]]:
    """A copy of the subject's rows of the key table, as a backup or a replica would hold."""
    marks = ", ".join("?" for _ in subjects)
    rows = service.db.execute(
        f"SELECT key_id, wrapped_key FROM subject_keys WHERE subject_id IN ({marks})", subjects
    )
    return [(key_id, bytes(wrapped)) for key_id, wrapped in rows]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_p2_shredding_with_a_concurrent_reader_is_pending_never_falsely_verified(
    service: Service, clock: Any
) -> None:
    h = busy_history(service, clock)
    alice = [store_id(service, i) for i in h.alice_ids]  # the keys' subjects
    saved = wrapped_keys(service, alice)
    path = sqlite_path(service.db.url)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM subject_keys").fetchone()[0] > 0  # a snapshot

    result = act(service, "erase", h.alice_ids, "req-f1")

    assert result["keys_destroyed"] == 2
    assert result["shredding"] == "pending"  # the old bytes are still on disk: not "verified"
    pending = service.vault.pending_shreds()
    # One per erased subject, under the keyed hash of their tombstone: never their id in clear.
    assert sorted(pending) == sorted(service.vault.tombstone(s) for s in alice)
    assert not set(pending) & {*alice, *h.alice_ids}
    assert any(wrapped in store_bytes(service) for _, wrapped in saved)  # honest: still there
    assert export(service, alice)["cards_bought"][0]["buyer_email"] == ERASED

    reader.execute("COMMIT")
    reader.close()
    # The next writer (a purchase creating a new subject key) finishes the pending erasure.
    service.app.purchase(PurchaseCard(
        market="FR", amount=2000, payment_method="card", buyer_id="cust-new", order_id="o-next",
        buyer_email="new@example.com",
    ))
    assert service.vault.pending_shreds() == []
    stored = store_bytes(service)
    for _, wrapped in saved:
        assert wrapped not in stored
    for text in SECRETS:
        assert text.encode() not in stored, text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_p2_shredding_without_readers_is_verified(
    service: Service, clock: Any
) -> None:
    h = busy_history(service, clock)
    result = act(service, "erase", h.alice_ids, "req-f1b")
    assert result["shredding"] == "verified" and service.vault.pending_shreds() == []


def test_p2_a_key_erased_before_a_kek_rotation_is_unrecoverable_from_a_saved_copy(
    service: Service, clock: Any
) -> None:
    h = busy_history(service, clock)
    vault = service.vault
    saved = wrapped_keys(service, h.alice_ids)  # the backup taken before the erasure
    act(service, "erase", h.alice_ids, "req-kek")

    # The window: until the next rotation, the saved copy still unwraps with today's KEK.
    assert all(len(vault._unwrap(key_id, wrapped)) == 32 for key_id, wrapped in saved)

    report = vault.rotate()
    assert report["keks_destroyed"] and report["keys_rewrapped"] >= 1
    for key_id, wrapped in saved:
        with pytest.raises(KekDestroyed):
            vault._unwrap(key_id, wrapped)
    # Live subjects are untouched: Bob's data still opens after the rotation, in a new process.
    bob = export(service, ["cust-bob"])
    assert bob["cards_bought"][0]["buyer_email"] == BOB_EMAIL
    ring = service.settings.kek_file
    assert ring is not None and ring.exists()
    assert str(vault.keks.ids()) not in store_bytes(service).decode(errors="ignore")
    assert stat.S_IMODE(ring.stat().st_mode) == 0o600


@pytest.mark.parametrize("backend", ["sqlite"])
def test_store_files_are_0600_in_a_0700_directory(service: Service) -> None:
    path = sqlite_path(service.db.url)
    service.app.purchase(PurchaseCard(
        market="FR", amount=2000, payment_method="card", buyer_id="c1", order_id="o-perm",
        buyer_email="perm@example.com",
    ))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    wal = path.with_name(path.name + "-wal")
    assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_p2_purge_with_a_clock_years_ahead_shreds_old_cards_and_scans_clean(
    service: Service, clock: Any
) -> None:
    h = busy_history(service, clock)
    alice = [store_id(service, i) for i in h.alice_ids]
    clock.set("2036-01-12T09:00:00Z")  # the clock: ten years on
    recent = service.app.purchase(PurchaseCard(
        market="FR", amount=2000, payment_method="card", buyer_id="cust-recent",
        order_id="o-recent", buyer_email="recent@example.com",
    ))
    assert recent.code
    privacy = Privacy(service)
    report = privacy.purge(card_years=3)
    assert report["subjects_erased"] >= len(h.alice_ids) + len(h.bob_ids)
    assert report["shredding"] in ("verified", "final_after_kek_rotation")
    # Past the period, her customer id no longer leads to her cards; by the store id they
    # hold nothing readable.
    assert report["store_ids_forgotten"] >= 2  # Alice's, Bob's
    assert service.vault.resolve_store_id("cust-alice") is None
    assert export(service, h.alice_ids)["cards_bought"] == []
    doc = export(service, alice)
    assert doc["cards_bought"][0]["buyer_email"] == ERASED
    assert export(service, ["cust-recent"])["cards_bought"][0]["buyer_email"] == (
        "recent@example.com"
    )
    for text in SECRETS:
        assert text.encode() not in store_bytes(service), text
    assert privacy.purge(card_years=3)["subjects_erased"] == 0  # nothing left to do
