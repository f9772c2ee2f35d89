"""Two `serve` instances over one store and one checkpoint directory: the checkpoint chain stays
one chain (each signature follows the directory's latest, not the signer's own last), and only
the holder of the checkpoint lease signs while the other stands by."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from application.commands import PurchaseCard
from infra import checkpoints as cps
from infra.bootstrap import Service
from infra.checkpoint_signer import SigningLease, every, signing_instance
from infra.lease import current_holder
from projections.verify import verify_store

KEY = Ed25519PrivateKey.generate()


def buy(service: Service, n: int) -> None:
    service.app.purchase(PurchaseCard(
        market="FR", amount=2000, payment_method="card", buyer_id=f"b{n}", order_id=f"P-{n}",
    ))


def problems(service: Service, directory: Path) -> list[Any]:
    """What `audit verify --all` reports from the store and the checkpoint directory."""
    cps.forget()  # as a new process (`giftcards audit verify --all`) reads the files
    trusted, bad = cps.trusted(directory, KEY.public_key())
    return bad + verify_store(service.app, trusted)


def test_increments_signed_in_turn_by_two_instances_form_one_chain(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "checkpoints"
    first = cps.Checkpointer(service.app.recorder, service.app.mapper)
    second = cps.Checkpointer(service.app.recorder, service.app.mapper)
    buy(service, 0)
    first.sign(KEY, clock(), directory)
    for n, signer in enumerate([second, first, first, second, second, first], start=1):
        buy(service, n)
        assert signer.sign_increment(KEY, clock(), directory) is not None
    assert problems(service, directory) == []
    # A full checkpoint by one, then increments by the other: still one chain.
    buy(service, 10)
    second.sign(KEY, clock(), directory)
    buy(service, 11)
    assert first.sign_increment(KEY, clock(), directory) is not None
    assert problems(service, directory) == []
    trusted, _ = cps.trusted(directory, KEY.public_key())
    assert [cps.is_increment(cp) for cp in trusted][-2:] == [False, True]


def test_two_checkpoint_loops_over_one_store_sign_one_chain_from_the_lease_holder(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "checkpoints"
    stops = [threading.Event(), threading.Event()]
    leases = [SigningLease(service.db, f"instance-{i}", 2.0, keeper=False) for i in range(2)]
    signers: list[str] = []

    def loop(lease: SigningLease, stop: threading.Event) -> None:
        checkpointer = cps.Checkpointer(service.app.recorder, service.app.mapper)

        def increment() -> None:
            if checkpointer.sign_increment(KEY, clock(), directory) is not None:
                signers.append(lease.holder)

        def full() -> None:
            checkpointer.sign(KEY, clock(), directory)
            signers.append(lease.holder)

        try:
            every(checkpointer, full, 12, 3600, stop, 0.05, increment, active=lease.held)
        finally:
            lease.release()  # as serve's checkpoint loop does when it stops

    threads = [threading.Thread(target=loop, args=pair) for pair in zip(leases, stops, strict=True)]
    for thread in threads:
        thread.start()
    try:
        for n in range(12):
            buy(service, n)
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while len(signers) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        holder = current_holder(service.db, leases[0].name)
        assert holder is not None and set(signers) == {holder.holder}
        assert signing_instance(service.db) == holder.holder  # what `status` shows
        # The holder stops (its lease handed back): the other takes over and goes on.
        active = next(i for i, lease in enumerate(leases) if lease.holder == holder.holder)
        other = leases[1 - active]
        stops[active].set()
        threads[active].join(10)
        for n in range(12, 20):
            buy(service, n)
            time.sleep(0.1)
        while other.holder not in signers and time.monotonic() < deadline + 10:
            time.sleep(0.05)
        assert other.holder in signers
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(10)
    assert problems(service, directory) == []
