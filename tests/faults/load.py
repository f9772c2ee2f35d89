"""Load for fault tests: checkout messages on the input topic, CLI purchases in a thread."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import orjson

from application.commands import PurchaseCard
from infra.bootstrap import build
from infra.config import load_settings
from infra.kafka.topics import Topics
from tests.faults.processes import GIFTCARDS, STOP_TIMEOUT_S
from tests.integration.kafka_helpers import produce
from tests.integration.test_checkout_consumer import completed, ordered


def produce_checkout_load(
    bootstrap: str, topics: Topics, n: int, *, seed: int, codes: Sequence[str] = ()
) -> Counter[str]:
    """`n` checkout messages on `topics.checkout`: new gift card orders, payments with the given
    `codes` (each card paid at most once by its own order; a code is retried under a second
    message id for the same order), order retries under a new message id, and exact duplicates
    (same message id and bytes, as an at-least-once producer resends). Returns how many inputs
    carry each message id (each input gets one reply)."""
    rng = random.Random(seed)
    sent: list[bytes] = []
    ids: Counter[str] = Counter()
    unused = list(codes)
    rng.shuffle(unused)
    paid: list[tuple[str, str]] = []  # (order id, code)
    for i in range(n):
        roll = rng.random()
        message_id = f"load-{seed}-{i}"
        if roll < 0.15 and sent:
            raw = rng.choice(sent)  # redelivered as is
        elif roll < 0.25 and sent:
            # The order service retried an order under a new message id: still one effect.
            again = orjson.loads(rng.choice(sent))
            again["message_id"] = message_id
            raw = orjson.dumps(again)
        elif roll < 0.5 and unused:
            order_id, code = f"pay-{seed}-{i}", unused.pop()
            paid.append((order_id, code))
            raw = completed(message_id, order_id, code)
        else:
            raw = ordered(message_id, f"buy-{seed}-{i}", amount=rng.choice([2000, 5000, 30000]))
        sent.append(raw)
        ids[orjson.loads(raw)["message_id"]] += 1
    produce(bootstrap, topics.checkout, sent)
    return ids


def purchase_codes(env: Mapping[str, str], n: int, *, tag: str = "codes") -> list[str]:
    """Codes of `n` new FR cards of 50.00 bought straight through the application on env's store
    (the buyer's inbox), for CheckoutCompleted load."""
    service = build(load_settings(dict(env)))
    try:
        with service.app.batch():
            return [
                service.app.purchase(PurchaseCard(
                    market="FR", amount=5000, payment_method="card", buyer_id="load",
                    order_id=f"{tag}-{i}",
                )).code or "replayed"  # a new order always shows its code
                for i in range(n)
            ]
    finally:
        service.close()


@dataclass
class PurchaseLoop:
    """Runs `giftcards --json purchase` one after the other in a thread until stopped, as a till
    would: a purchase that failed (exit 3) is retried with the same order id."""

    env: Mapping[str, str]
    tag: str = "till"
    outcomes: list[tuple[str, int, dict[str, Any] | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True, name="purchase-loop")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(STOP_TIMEOUT_S)

    def _run(self) -> None:
        env = {**os.environ, **self.env}
        i = 0
        while not self._stop.is_set():
            order_id = f"{self.tag}-{i}"
            done = subprocess.run(
                [GIFTCARDS, "--json", "purchase", "--market", "FR", "--amount", "50",
                 "--payment-method", "card", "--buyer-id", "till", "--order-id", order_id],
                env=env, capture_output=True, check=False,
            )
            try:
                reply = orjson.loads(done.stdout)
            except orjson.JSONDecodeError:
                reply = None
            self.outcomes.append((order_id, done.returncode, reply))
            if done.returncode != 3:
                i += 1

    def wait_for(self, purchases: int, timeout: float = 60.0) -> None:
        """Returns once `purchases` purchases succeeded."""
        deadline = time.monotonic() + timeout
        while len(self.succeeded) < purchases:
            assert time.monotonic() < deadline, f"{purchases} purchases not done: {self.outcomes}"
            time.sleep(0.1)

    @property
    def succeeded(self) -> set[str]:
        """Order ids that got a card."""
        return {order for order, code, _ in self.outcomes if code == 0}

    @property
    def unexpected(self) -> list[tuple[str, int, dict[str, Any] | None]]:
        """Outcomes other than success or an internal error that the till retries."""
        return [o for o in self.outcomes if o[1] not in (0, 3)]
