"""What the stream's pseudonyms cost the envelope (the relay's and the rebuild's hot path)."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any
from uuid import UUID

from bench.common import SECRET
from infra import envelope
from infra.bootstrap import build
from infra.config import load_settings
from infra.pseudonyms import StreamPseudonyms
from infra.secrets import Keys


class Clear:
    """The same-run baseline: the envelope as before the pseudonyms (ids copied)."""

    def subject(self, subject_id: str) -> str:
        return subject_id

    def order(self, order_id: str) -> str:
        return order_id

    def stream(self, stream_id: UUID) -> UUID:
        return stream_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cards", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    service = build(load_settings({"GIFTCARDS_DATABASE_URL": "memory://",
                                   "GIFTCARDS_SECRET_KEY": SECRET}))
    app = service.app
    for i in range(args.cards):  # 300 customers, each card bought and redeemed once
        card = app.purchase(market="FR", amount=5000, payment_method="card",
                            buyer_id=f"cust-{i % 300}", order_id=f"o-{i}")
        assert card.code is not None  # a new order: its code is shown
        app.redeem(code=card.code, market="FR", order_id=f"shop-{i}", order_total=3000,
                   customer_id=f"cust-{i * 7 % 300}", source="bench")
    topics = set(envelope.published_topics())
    stored = [n for n in app.recorder.select_notifications(1, 10**7) if n.topic in topics]
    key = Keys.from_master(service.settings.master_key).stream_pseudonym
    warm = StreamPseudonyms(key)
    timings: dict[str, list[float]] = {"clear": [], "cold": [], "warm": []}
    for _ in range(args.rounds):  # interleaved: the machine's noise hits all three alike
        ways: list[tuple[str, Any]] = [("clear", Clear()), ("cold", StreamPseudonyms(key)),
                                       ("warm", warm)]
        for name, pseudonyms in ways:
            start = time.perf_counter()
            for n in stored:
                envelope.stored_envelope(app.mapper, n, pseudonyms)
            timings[name].append((time.perf_counter() - start) / len(stored) * 1e6)
    service.close()
    for name, values in timings.items():
        print(f"{name:>5}: {statistics.median(values):6.2f} us/envelope "
              f"({min(values):.2f}-{max(values):.2f}), {len(stored)} envelopes, "
              f"{args.rounds} rounds")


if __name__ == "__main__":
    main()
