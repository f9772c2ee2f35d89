"""Rotating the checkpoint signing key twice keeps history verifiable: the ring keeps retired
keys with their validity periods, so `audit verify --all`, `audit export --period`,
`projections rebuild` and packs made before the rotations all still verify."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra import checkpoints as cps
from tests.e2e.operator_keys import enrol
from tests.e2e.test_cli import cli


@pytest.mark.parametrize("backend", ["sqlite"])  # keys and checkpoints are files: any store
def test_two_rotations_then_verify_export_rebuild_and_old_packs_still_verify(
    env_for: dict[str, str], tmp_path: Path
) -> None:
    ring = tmp_path / "var" / "checkpoints" / "trusted-keys.json"
    status, _, err = cli(env_for, "2026-01-12T10:00:00Z", "purchase", "--market", "FR",
                         "--amount", "30", "--payment-method", "card", "--buyer-id", "a")
    assert status == 0, err
    status, first, err = cli(env_for, "2026-01-13T10:00:00Z", "audit", "checkpoint")
    assert status == 0, err
    old_pack = tmp_path / "pack-before"
    enrol(lambda e, *a: cli(e, "2026-01-13T10:30:00Z", *a)[:2], env_for, "aud-1", "auditor")
    status, _, err = cli(env_for, "2026-01-13T11:00:00Z", "audit", "export", "--operator",
                         "aud-1", "--period", "2026-01", "--market", "FR", "--out", str(old_pack))
    assert status == 0, err
    fingerprints = [first["key"]]
    for when in ("2026-01-14T10:00:00Z", "2026-01-16T10:00:00Z"):
        status, rotated, err = cli(env_for, when, "audit", "rotate-key")
        assert status == 0, err
        assert rotated["retired"] == fingerprints[-1] and rotated["checkpoint"]["ok"]
        fingerprints.append(rotated["current"])
    assert len(set(fingerprints)) == 3
    later = "2026-01-20T10:00:00Z"
    status, verified, err = cli(env_for, later, "audit", "verify", "--all")
    assert status == 0 and verified["ok"] and verified["checkpoints"] == 3, verified
    new_pack = tmp_path / "pack-after"
    status, _, err = cli(env_for, later, "audit", "export", "--operator", "aud-1", "--period",
                         "2026-01", "--market", "FR", "--out", str(new_pack))
    assert status == 0, err
    status, rebuilt, err = cli(env_for, later, "projections", "rebuild", "--source", "store")
    assert status == 0, (rebuilt, err)
    auditor = tmp_path / "auditor-ring.json"
    shutil.copyfile(ring, auditor)
    status, result, _ = cli(env_for, later, "audit", "verify-pack", str(old_pack),
                            "--trusted-keys", str(auditor))
    assert status == 0 and result["ok"] and result["key"] == fingerprints[0], result
    # A key swapped into the key file by hand (not rotated) signs nothing.
    key_file = tmp_path / "var" / "checkpoint-signing.pem"
    key_file.unlink()
    cps.write_private_key(key_file, cps.Ed25519PrivateKey.generate())
    status, refused, _ = cli(env_for, later, "audit", "checkpoint")
    assert status != 0 and "not in the trusted key ring" in refused["error"]["message"]
