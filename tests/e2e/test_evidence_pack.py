"""The evidence pack of a busy month verifies offline, in a fresh clone, with only the
pack and the public key; an edited pack does not."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import orjson
import pytest

from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import FixedClock
from tests.e2e.operator_keys import enrol
from tests.e2e.test_cli import cli

ROOT = Path(__file__).resolve().parents[2]


def busy_january(env: dict[str, str]) -> None:
    """40 FR cards bought in January 2026, half redeemed, some cancelled or refunded; DE cards
    and a February purchase that the FR January pack must leave out."""
    clock = FixedClock()
    service = build(load_settings(env), clock=clock)
    try:
        app = service.app
        cards = []
        for i in range(40):
            cards.append(app.purchase(PurchaseCard(
                market="FR", amount=2000 + 100 * i, payment_method="card", buyer_id=f"b{i}",
                order_id=f"P{i}",
            )))
            clock.advance(hours=6)
        for i, card in enumerate(cards[:20]):
            app.redeem(RedeemCard(
                code=card.code, market="FR", order_id=f"O{i}", order_total=5000,
                customer_id=f"b{i}", source="test",
            ))
        for card in cards[20:25]:
            app.cancel(CancelCard(card_id=card.card_id))
        app.refund(RefundOrder(order_id="O1", returned_amount=1000, received_on=clock().date()))
        app.purchase(PurchaseCard(
            market="DE", amount=5000, payment_method="card", buyer_id="d", order_id="PD",
        ))
        clock.set("2026-02-03T10:00:00Z")
        app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="f", order_id="PF",
        ))
    finally:
        service.close()
    assert date(2026, 1, 1) <= clock().date()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_evidence_pack_of_a_busy_month_verifies_offline_in_a_fresh_clone(
    env_for: dict[str, str], tmp_path: Path
) -> None:
    busy_january(env_for)
    now = "2026-02-05T10:00:00Z"
    status, _signed, err = cli(env_for, now, "audit", "checkpoint")
    assert status == 0, err
    pack = tmp_path / "pack-2026-01-FR"
    enrol(lambda env, *a: cli(env, now, *a)[:2], env_for, "aud", "auditor")  # R21
    status, made, err = cli(env_for, now, "audit", "export", "--period", "2026-01",
                            "--market", "FR", "--out", str(pack), "--operator", "aud")
    assert status == 0, err
    # Every FR card, so that none can be left out: 40 bought, one refund card, one in February.
    assert made["cards"] == 42 and made["events"] > 100
    liability = orjson.loads((pack / "liability.json").read_bytes())
    assert liability["start"]["markets"] == [] and liability["end"]["markets"][0]["market"] == "FR"

    # Only the pack and the key leave the building: a fresh clone, no database, no settings.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    # The auditor's own copy of the service's key ring (not the key inside the pack).
    key = auditor / "trusted-keys.json"
    key.write_bytes((tmp_path / "var" / "checkpoints" / "trusted-keys.json").read_bytes())
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(clone),
           "GIFTCARDS_DATA_DIR": str(auditor / "var"), "HOME": str(auditor)}

    def verify(target: Path) -> tuple[int, dict[str, object]]:
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from entrypoints.cli.main import run; "
             "m = sys.modules['entrypoints.cli.main']; "
             f"assert m.__file__.startswith({str(clone)!r}), m.__file__; "
             "sys.exit(run(sys.argv[1:]))",
             "--json", "audit", "verify-pack", str(target), "--trusted-keys", str(key)],
            cwd=auditor, env=env, capture_output=True, timeout=120,
        )
        assert done.returncode in (0, 1), done.stderr.decode()[-2000:]
        return done.returncode, orjson.loads(done.stdout)

    status, result = verify(pack)
    assert status == 0, result
    assert result["ok"] and result["cards"] == 42 and result["not_yet_checkpointed"] == 0

    # The same pack with one amount changed and every hash and the manifest recomputed.
    lines = (pack / "chains.jsonl").read_bytes().splitlines()
    first = orjson.loads(lines[0])
    first["fields"]["amount"] += 100
    from domain.chain import link  # the forger knows the algorithm

    prev = None
    forged = []
    for raw in lines:
        line = orjson.loads(raw) if raw != lines[0] else first
        if line["card_id"] == first["card_id"]:
            line["fields"]["prev_hash"] = prev
            line["fields"]["event_hash"] = prev = link(prev, line["topic"], {
                **line["fields"], "originator_id": line["card_id"],
                "originator_version": line["version"]})
        forged.append(orjson.dumps(line))
    (pack / "chains.jsonl").write_bytes(b"\n".join(forged) + b"\n")
    status, result = verify(pack)
    assert status == 1
    named = {(p["card_id"], p["version"]) for p in result["problems"]}  # type: ignore[union-attr,index]
    assert any(card == first["card_id"] for card, _ in named)
