"""R21 at the CLI: the operator is whoever's key verifies against the register, never a typed
name; break-glass with the service's secret alone is logged with the Unix user; evidence packs
need an auditor; every export and every closed request names its operator."""

from __future__ import annotations

import getpass
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli_contract import one_object, store  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("store")  # an embedded store per test, in-process
KEY = "GIFTCARDS_OPERATOR_KEY"
Capsys = pytest.CaptureFixture[str]


def enrol(capsys: Capsys, monkeypatch: pytest.MonkeyPatch, *people: tuple[str, str]
          ) -> dict[str, str]:
    """The bootstrap admin `root`, then each (name, role) added with root's key."""
    monkeypatch.delenv(KEY, raising=False)
    status, root = one_object(capsys, "gdpr", "operator", "add", "root", "--role", "admin")
    assert status == 0, root
    keys = {"root": root["key"]}
    monkeypatch.setenv(KEY, root["key"])
    for name, role in people:
        status, added = one_object(capsys, "gdpr", "operator", "add", name, "--role", role)
        assert status == 0, added
        keys[name] = added["key"]
    monkeypatch.delenv(KEY)
    return keys


def access_log(capsys: Capsys, monkeypatch: pytest.MonkeyPatch, root: str, subject: str
               ) -> set[tuple[str, str]]:
    monkeypatch.setenv(KEY, root)
    status, log = one_object(capsys, "gdpr", "access-log", subject)
    assert status == 0, log
    return {(e["command"], e["operator"]) for e in log["entries"]}


def buy(capsys: Capsys, buyer: str, order: str) -> dict[str, Any]:
    status, card = one_object(capsys, "purchase", "--market", "FR", "--amount", "50",
                              "--payment-method", "card", "--buyer-id", buyer,
                              "--buyer-email", f"{buyer}@example.org", "--order-id", order)
    assert status == 0, card
    return card


def test_r21_a_typed_operator_name_is_not_proof_the_key_is(
    capsys: Capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    cid = buy(capsys, "cust-x", "O1")["card_id"]
    assert one_object(capsys, "history", cid, "--operator", "mallory")[1]["error"]["code"] == (
        "unknown_operator")
    keys = enrol(capsys, monkeypatch, ("sam", "support"))
    status, refused = one_object(capsys, "history", cid, "--operator", "sam")  # no key
    assert (status, refused["error"]["code"]) == (1, "operator_key_required")
    monkeypatch.setenv(KEY, keys["sam"])
    status, refused = one_object(capsys, "history", cid, "--operator", "root")
    assert (status, refused["error"]["code"]) == (1, "operator_mismatch")
    assert one_object(capsys, "history", cid)[0] == 0  # the key alone names sam
    # From a file, as a secret manager mounts it: only its owner may read it.
    monkeypatch.delenv(KEY)
    key_file = tmp_path / "sam.key"
    key_file.write_text(keys["sam"] + "\n")
    key_file.chmod(0o644)
    monkeypatch.setenv(f"{KEY}_FILE", str(key_file))
    status, refused = one_object(capsys, "history", cid)
    assert (status, refused["error"]["code"]) == (2, "invalid_configuration")
    key_file.chmod(0o600)
    assert one_object(capsys, "history", cid, "--operator", "sam")[0] == 0
    monkeypatch.delenv(f"{KEY}_FILE")
    # Break-glass: the service's secret alone, on purpose, logged with the Unix user.
    status, refused = one_object(capsys, "history", cid)
    assert (status, refused["error"]["code"]) == (2, "operator_required")
    assert one_object(capsys, "history", cid, "--break-glass")[0] == 0
    assert access_log(capsys, monkeypatch, keys["root"], "cust-x") >= {
        ("history", "sam"), ("history", f"break-glass:{getpass.getuser()}")}


def test_r21_a_support_key_cannot_manage_the_register(
    capsys: Capsys, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = enrol(capsys, monkeypatch, ("sam-support", "support"))
    monkeypatch.setenv(KEY, keys["sam-support"])
    status, refused = one_object(capsys, "gdpr", "operator", "add", "mallory", "--role", "dpo")
    assert (status, refused["error"]["code"]) == (1, "operator_forbidden")
    monkeypatch.setenv(KEY, keys["root"])
    assert one_object(capsys, "gdpr", "operator", "disable", "sam-support")[0] == 0
    monkeypatch.setenv(KEY, keys["sam-support"])
    status, refused = one_object(capsys, "gdpr", "request", "list")
    assert (status, refused["error"]["code"]) == (1, "invalid_operator_key")
    monkeypatch.setenv(KEY, keys["root"])
    status, rekeyed = one_object(capsys, "gdpr", "operator", "rekey", "sam-support")
    monkeypatch.setenv(KEY, rekeyed["key"])
    assert one_object(capsys, "gdpr", "request", "list")[0] == 0


def test_r21_audit_export_period_needs_an_auditor_is_access_logged_and_private(
    capsys: Capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    buy(capsys, "cust-pack", "O1")
    assert one_object(capsys, "audit", "checkpoint")[0] == 0
    keys = enrol(capsys, monkeypatch, ("sam", "support"), ("aud", "auditor"))
    pack = tmp_path / "evidence"
    argv = ("audit", "export", "--period", "2026-01", "--market", "FR", "--out", str(pack))
    monkeypatch.setenv(KEY, keys["sam"])
    status, refused = one_object(capsys, *argv)
    assert (status, refused["error"]["code"]) == (1, "operator_forbidden")
    assert not pack.exists()
    monkeypatch.setenv(KEY, keys["aud"])
    status, done = one_object(capsys, *argv)
    assert status == 0 and done["cards"] == 1, done
    assert stat.S_IMODE(pack.stat().st_mode) == 0o700
    files = list(pack.iterdir())
    assert files and {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert access_log(capsys, monkeypatch, keys["root"], "cust-pack") >= {
        ("audit export --period", "aud")}


def test_r21_an_export_needing_no_decryption_is_access_logged(
    capsys: Capsys, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A customer who only redeemed (no sealed field of theirs): still an access to their
    data, logged."""
    card = buy(capsys, "cust-buyer", "O1")
    status, _ = one_object(capsys, "redeem", "--code", card["code"], "--market", "FR",
                           "--order-id", "O2", "--order-total", "30", "--customer-id", "cust-r")
    assert status == 0
    keys = enrol(capsys, monkeypatch, ("sam", "support"))
    monkeypatch.setenv(KEY, keys["sam"])
    status, exported = one_object(capsys, "gdpr", "export", "cust-r")
    assert status == 0 and len(exported["redemptions"]) == 1
    assert ("gdpr export", "sam") in access_log(capsys, monkeypatch, keys["root"], "cust-r")


def test_p1_closing_a_request_needs_an_operator_and_records_the_outcome(
    capsys: Capsys, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = enrol(capsys, monkeypatch, ("dee", "dpo"))
    assert one_object(capsys, "gdpr", "request", "open", "--subject", "cust-a", "--type",
                      "access", "--received-on", "2026-01-12", "--request-id", "R1")[0] == 0
    close = ("gdpr", "request", "close", "R1", "--outcome", "export sent by e-mail")
    status, refused = one_object(capsys, *close)
    assert (status, refused["error"]["code"]) == (2, "operator_required")
    status, refused = one_object(capsys, *close, "--operator", "nobody")
    assert (status, refused["error"]["code"]) == (1, "unknown_operator")
    monkeypatch.setenv(KEY, keys["dee"])
    status, closed = one_object(capsys, *close)
    assert status == 0, closed
    assert (closed["status"], closed["closed_by"], closed["outcome"]) == (
        "closed", "dee", "export sent by e-mail")
    status, again = one_object(capsys, "gdpr", "request", "close", "R1", "--outcome", "other")
    assert (again["closed_by"], again["outcome"]) == ("dee", "export sent by e-mail")
    assert ("gdpr request close", "dee") in access_log(capsys, monkeypatch, keys["root"],
                                                       "cust-a")
