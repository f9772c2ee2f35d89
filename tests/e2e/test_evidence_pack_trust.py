"""An evidence pack does not certify itself: it verifies only with the auditor's key ring, and a
pack re-signed with another key, with a card left out, or with a raised liability is refused —
by `audit verify-pack` and by the standalone `verify_pack.py` shipped in it (run with `env -i`
by an interpreter that has only `cryptography`)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra import checkpoints as cps
from tests.e2e.operator_keys import enrol
from tests.e2e.test_cli import cli

NOW = "2026-01-20T10:00:00Z"


# The pack is checked offline, whatever store it came from (export on PostgreSQL: the CLI
# contract test); the CLI calls are what this costs.
SQLITE = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def pack(env_for: dict[str, str], tmp_path: Path) -> tuple[Path, Path]:
    """(the FR pack of January, the auditor's own copy of the key ring)."""
    for market, amount, buyer in (("FR", "30", "a"), ("FR", "50", "b"), ("FR", "70", "c"),
                                  ("DE", "40", "d")):
        status, _, err = cli(env_for, "2026-01-12T10:00:00Z", "purchase", "--market", market,
                             "--amount", amount, "--payment-method", "card", "--buyer-id", buyer)
        assert status == 0, err
    status, _, err = cli(env_for, NOW, "audit", "checkpoint")
    assert status == 0, err
    out = tmp_path / "pack"
    enrol(lambda e, *a: cli(e, NOW, *a)[:2], env_for, "aud-1", "auditor")
    status, made, err = cli(env_for, NOW, "audit", "export", "--operator", "aud-1", "--period",
                            "2026-01", "--market", "FR", "--out", str(out))
    assert status == 0, err
    assert made["cards"] == 3
    ring = tmp_path / "auditor" / "trusted-keys.json"
    ring.parent.mkdir()
    shutil.copyfile(tmp_path / "var" / "checkpoints" / "trusted-keys.json", ring)
    return out, ring


def verify(env: dict[str, str], target: Path, *ring: str) -> tuple[int, dict[str, Any]]:
    status, result, _ = cli(env, NOW, "audit", "verify-pack", str(target), *ring)
    return status, result


def problems(result: dict[str, Any]) -> str:
    return " | ".join(p["problem"] for p in result["problems"])


def rehash(target: Path) -> None:
    """What a forger without the signing key can do: make the manifest's hashes match again."""
    manifest = orjson.loads((target / "manifest.json").read_bytes())
    for name in manifest["files"]:
        manifest["files"][name] = cps.hashlib.sha256((target / name).read_bytes()).hexdigest()
    (target / "manifest.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


@SQLITE
def test_the_pack_verifies_with_the_auditors_ring_and_never_without_one(
    env_for: dict[str, str], pack: tuple[Path, Path]
) -> None:
    target, ring = pack
    status, result = verify(env_for, target, "--trusted-keys", str(ring))
    assert status == 0 and result["ok"] and result["cards"] == 3, result
    # Only the pack's own key: never "ok".
    status, result = verify(env_for, target)
    assert status == 1 and not result["ok"]
    assert "not a trust root" in problems(result)
    status, result = verify(env_for, target, "--trusted-keys", str(target / "public-key.pem"))
    assert status == 2 and result["error"]["code"] == "invalid_input"


@SQLITE
def test_a_pack_re_signed_with_a_new_key_is_refused(
    env_for: dict[str, str], pack: tuple[Path, Path]
) -> None:
    target, ring = pack
    forger = Ed25519PrivateKey.generate()
    shipped = orjson.loads((target / "checkpoints.json").read_bytes())
    for cp in shipped:
        cp["header"]["key"] = cps.fingerprint(forger)
        cp["signature"] = cps.sign_bytes(forger, cps._signed_bytes(cp["header"]))
    (target / "checkpoints.json").write_bytes(orjson.dumps(shipped))
    (target / "public-key.pem").write_bytes(cps.public_pem(forger))
    rehash(target)
    manifest = orjson.loads((target / "manifest.json").read_bytes())
    manifest["key"] = cps.fingerprint(forger)
    signed = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (target / "manifest.json").write_bytes(signed)
    (target / "manifest.sig").write_text(base64.b64encode(forger.sign(signed)).decode())
    status, result = verify(env_for, target, "--trusted-keys", str(ring))
    assert status == 1 and not result["ok"]
    assert "not in the trusted key ring" in problems(result)
    assert standalone(target, ring)[0] == 1


@SQLITE
def test_a_pack_with_a_card_left_out_is_refused(
    env_for: dict[str, str], pack: tuple[Path, Path]
) -> None:
    target, ring = pack
    lines = (target / "chains.jsonl").read_bytes().splitlines()
    dropped = orjson.loads(lines[0])["card_id"]
    kept = [raw for raw in lines if orjson.loads(raw)["card_id"] != dropped]
    (target / "chains.jsonl").write_bytes(b"\n".join(kept) + b"\n")
    shipped = orjson.loads((target / "checkpoints.json").read_bytes())
    for cp in shipped:
        cp["heads"].pop(dropped, None)
    (target / "checkpoints.json").write_bytes(orjson.dumps(shipped))
    rehash(target)
    status, result = verify(env_for, target, "--trusted-keys", str(ring))
    assert status == 1 and not result["ok"]
    assert "a card was left out" in problems(result)
    assert standalone(target, ring)[0] == 1


@SQLITE
def test_a_pack_with_raised_liability_is_refused(
    env_for: dict[str, str], pack: tuple[Path, Path]
) -> None:
    target, ring = pack
    figures = orjson.loads((target / "liability.json").read_bytes())
    assert figures["end"]["markets"][0]["outstanding"] == 15000
    figures["end"]["markets"][0]["outstanding"] += 100000
    (target / "liability.json").write_bytes(orjson.dumps(figures))
    rehash(target)
    status, result = verify(env_for, target, "--trusted-keys", str(ring))
    assert status == 1 and not result["ok"]
    text = problems(result)
    assert "manifest not signed" in text and "the events give" in text
    code, out = standalone(target, ring)
    assert code == 1 and "liability" in out


def bare_interpreter(where: Path) -> Path:
    """A venv without pip or the project; `cryptography` (and its cffi) copied in beside it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    for name in ("cryptography", "cffi", "pycparser"):
        if (ours / name).exists():
            shutil.copytree(ours / name, site / name)
    for lib in ours.glob("_cffi_backend*"):
        shutil.copy(lib, site / lib.name)
    return python


def standalone(target: Path, ring: Path) -> tuple[int, str]:
    python = bare_interpreter(target.parent / f"bare-{len(list(target.parent.iterdir()))}")
    done = subprocess.run(
        ["env", "-i", str(python), "verify_pack.py", ".", "--trusted-keys", str(ring)],
        cwd=target, capture_output=True, text=True, timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


@SQLITE
def test_the_shipped_verifier_checks_the_pack_with_env_i_and_no_project(
    pack: tuple[Path, Path]
) -> None:
    target, ring = pack
    python = bare_interpreter(target.parent / "bare")
    cleared = ["env", "-i", str(python)]
    no_project = subprocess.run([*cleared, "-c", "import infra"], cwd=target,
                                capture_output=True, text=True)
    assert no_project.returncode == 1 and "ModuleNotFoundError" in no_project.stderr
    done = subprocess.run([*cleared, "verify_pack.py", ".", "--trusted-keys", str(ring)],
                          cwd=target, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stdout + done.stderr
    inside = subprocess.run([*cleared, "verify_pack.py", ".", "--trusted-keys",
                             "public-key.pem"], cwd=target, capture_output=True, text=True)
    assert inside.returncode == 1 and "outside the pack" in inside.stderr
