"""A signed checkpoint file is parsed and checked (signature, Merkle roots of every head) once
per process while it is unchanged: at 100k cards that takes seconds, and the console and
`audit verify --all` ask for the trusted checkpoints again and again. A file changed since is
checked again, and a tampered one is still refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from application.commands import PurchaseCard
from infra import checkpoints as cps
from infra.bootstrap import Service
from infra.chains import merkle_root, merkle_roots

KEY = Ed25519PrivateKey.generate()


def signed(service: Service, clock: Any, directory: Path) -> Path:
    for market, amount in (("FR", 2000), ("DE", 3000), ("FR", 4000)):
        service.app.purchase(PurchaseCard(
            market=market, amount=amount, payment_method="card", buyer_id="b",
            order_id=f"P-{market}-{amount}",
        ))
    cps.create(service.app.recorder, service.app.mapper, KEY, clock(), directory)
    (path,) = cps.paths(directory)
    return path


def test_a_checkpoint_is_checked_once_per_process_while_unchanged(
    memory_service: Service, clock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed(memory_service, clock, tmp_path)
    cps.forget()
    checks: list[dict[str, Any]] = []
    check = cps.check
    monkeypatch.setattr(cps, "check", lambda cp, key: checks.append(cp) or check(cp, key))
    for _ in range(3):
        trusted, bad = cps.trusted(tmp_path, KEY.public_key())
        assert len(trusted) == 1 and bad == []
    assert len(checks) == 1
    # Another key ring is another question: checked again, and refused.
    other = Ed25519PrivateKey.generate().public_key()
    assert cps.trusted(tmp_path, other)[0] == []
    assert len(checks) == 2


def test_a_checkpoint_edited_after_it_was_checked_is_refused(
    memory_service: Service, clock: Any, tmp_path: Path
) -> None:
    path = signed(memory_service, clock, tmp_path)
    cps.forget()
    assert cps.trusted(tmp_path, KEY.public_key())[1] == []
    checkpoint = orjson.loads(path.read_bytes())
    card = next(iter(checkpoint["heads"]))
    old = checkpoint["heads"][card][1]
    checkpoint["heads"][card][1] = ("0" if old[0] != "0" else "1") + old[1:]  # same size
    before = path.stat()
    path.write_bytes(orjson.dumps(checkpoint))  # in place: same inode
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    trusted, bad = cps.trusted(tmp_path, KEY.public_key())
    assert trusted == []
    assert [p["problem"] for p in bad] == [
        f"{path.name}: heads do not give the signed Merkle root"]


def test_the_roots_of_a_checkpoint_are_those_of_its_heads_and_of_each_market() -> None:
    heads: dict[str, Any] = {f"card-{i:03d}": [i % 4 + 1, f"{i:064x}", ("FR", "DE", "")[i % 3]]
                             for i in range(101)}
    heads["card-050"].append("f" * 64)  # a redacted hash
    root, markets = merkle_roots(heads)
    assert root == merkle_root(heads)
    assert markets == {
        m: {"cards": len(mine), "root": merkle_root(mine)}
        for m in ("DE", "FR")
        if (mine := {c: h for c, h in heads.items() if h[2] == m})
    }
