"""`python -m bench.checkpoints`: size and signing time of a full checkpoint and of an increment
(the heads that changed in a few seconds) over a store of many cards.

The chains are made in memory (one head per card, as the checkpointer holds them after reading
the store), so the figures are the checkpoint's own cost: heads, Merkle roots, signature and the
file written; reading the new events is the same for both and left out."""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra import checkpoints as cps
from infra.chains import CardChain

CARDS = 130_000  # ~1M stored events of the bench's history
CHANGED = (100, 1_000)  # cards whose head moved in 5 s: ~40 and ~400 events/s


class Quiet:
    """A store with nothing new to read: the chains are already in hand."""

    def max_notification_id(self) -> int:
        return 0


def chain(i: int) -> CardChain:
    cid = f"{i:08d}-0000-4000-8000-000000000000"
    head = hashlib.sha256(cid.encode()).hexdigest()
    redacted = hashlib.sha256(head.encode()).hexdigest()  # the redacted chain's head
    return CardChain(cid, hashes={1: head}, last_version=1, head=head, market="FR",
                     redacted={1: redacted})


def timed_ms(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.checkpoints")
    parser.add_argument("--cards", type=int, default=CARDS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    key = Ed25519PrivateKey.generate()
    checkpointer = cps.Checkpointer(Quiet(), None)
    checkpointer.chains = {c.card_id: c for c in map(chain, range(args.cards))}
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as directory:
        where = Path(directory)
        full_ms, full = timed_ms(lambda: checkpointer.sign(key, now, where))
        full_bytes = cps.paths(where)[-1].stat().st_size
        print(f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.cards:,} cards")
        print(f"full checkpoint: {full_bytes / 1e6:.1f} MB, {full_ms:.0f} ms")
        for changed in CHANGED:
            times, sizes = [], []
            for r in range(args.rounds):
                for i in range(changed):  # the next event of `changed` cards
                    c = checkpointer.chains[chain((r * changed + i) % args.cards).card_id]
                    c.last_version += 1
                    c.hashes[c.last_version] = c.redacted[c.last_version] = hashlib.sha256(
                        f"{c.card_id}{c.last_version}".encode()).hexdigest()
                    checkpointer.changed.add(c.card_id)
                ms, _ = timed_ms(lambda: checkpointer.sign_increment(key, now, where))
                times.append(ms)
                sizes.append(cps.increment_paths(where)[-1].stat().st_size)
            size_kb, median = statistics.median(sizes) / 1e3, statistics.median(times)
            print(f"increment of {changed:,} changed cards: {size_kb:.1f} kB, {median:.1f} ms "
                  f"median ({min(times):.1f}–{max(times):.1f})")
        assert full["header"]["cards"] == args.cards


if __name__ == "__main__":
    main()
