"""An evidence pack carries no clear customer or order id: each is a keyed pseudonym, and the
checkpoints sign each card's chain over the pseudonymised fields, so the pack still verifies
offline and an edited field is still named."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
import pytest

from infra import checkpoints as cps
from infra.chains import ID_FIELDS
from projections.evidence import verify_pack
from tests.e2e.operator_keys import enrol
from tests.e2e.test_cli import cli
from tests.e2e.test_evidence_pack import busy_january

NOW = "2026-02-05T10:00:00Z"


def standalone(pack: Path, ring: Path) -> list[str]:
    """The verifier shipped in the pack, run from the pack."""
    spec = importlib.util.spec_from_file_location("shipped_verifier", pack / "verify_pack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problems: list[str] = module.verify(pack, module.load_ring(ring))
    return problems


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_pack_carries_ids_as_pseudonyms_and_still_verifies_field_by_field(
    env_for: dict[str, str], tmp_path: Path
) -> None:
    busy_january(env_for)
    assert cli(env_for, NOW, "audit", "checkpoint")[0] == 0
    pack = tmp_path / "pack"
    enrol(lambda env, *a: cli(env, NOW, *a)[:2], env_for, "aud", "auditor")
    status, _, err = cli(env_for, NOW, "audit", "export", "--period", "2026-01",
                            "--market", "FR", "--out", str(pack), "--operator", "aud")
    assert status == 0, err
    text = (pack / "chains.jsonl").read_bytes() + (pack / "events.jsonl").read_bytes()
    for clear in (b'"b1"', b'"P1"', b'"O1"', b'"b19"'):  # buyers, purchase and order ids
        assert clear not in text
    lines = [orjson.loads(raw) for raw in (pack / "chains.jsonl").read_bytes().splitlines()]
    shown = [line["fields"][n] for line in lines for n in ID_FIELDS if line["fields"].get(n)]
    assert len(shown) > 100 and all(v.startswith("id:") for v in shown)
    # Same customer, same pseudonym: b0…b19 bought the cards they redeemed.
    buyers = {x["fields"]["buyer_subject"] for x in lines if x["topic"].endswith("Purchased")}
    redeemers = {x["fields"]["customer_id"] for x in lines if x["topic"].endswith("Redeemed")}
    assert len(redeemers) == 20 and redeemers <= buyers
    ring_file = tmp_path / "var" / "checkpoints" / "trusted-keys.json"
    ring = cps.KeyRing.load(ring_file.read_bytes())
    assert verify_pack(pack, ring)["ok"]
    assert standalone(pack, ring_file) == []
    # The exporter holding the signing key changes one amount and signs the manifest again:
    # the redacted chain the checkpoint signed names the card.
    first = next(i for i, line in enumerate(lines) if "amount" in line["fields"])
    lines[first]["fields"]["amount"] += 100
    (pack / "chains.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    manifest = orjson.loads((pack / "manifest.json").read_bytes())
    manifest["files"]["chains.jsonl"] = cps.hashlib.sha256(
        (pack / "chains.jsonl").read_bytes()).hexdigest()
    signed = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (pack / "manifest.json").write_bytes(signed)
    key = cps.load_signing_key(tmp_path / "var" / "checkpoint-signing.pem", create=False)
    (pack / "manifest.sig").write_text(cps.sign_bytes(key, signed) + "\n")
    result = verify_pack(pack, ring)
    assert not result["ok"]
    assert {p["card_id"] for p in result["problems"] if p["card_id"]} == {lines[first]["card_id"]}
    assert any(lines[first]["card_id"] in p for p in standalone(pack, ring_file))
