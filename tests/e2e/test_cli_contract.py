"""The CLI explains itself: every option described, every command one JSON object,
bad input exit 2 naming the accepted form, human output for people, a closed pipe is quiet."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from entrypoints.cli import base, cards, views
from entrypoints.cli.main import build_parser, run
from tests.conftest import SECRET

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
NOW = "2026-01-12T10:00:00Z"
MISSING = "0d1534c6-c16e-4a26-a6e2-78c7f3b5f81f"


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command (a parser without subcommands), with its words."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from leaves(child, (*path, name))


def test_every_option_of_every_command_is_described_and_every_command_has_an_example() -> None:
    """Also catches the commands added later: a bare option fails here."""
    bare, no_example = [], []
    for path, parser in leaves(build_parser()):
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
                name = "/".join(action.option_strings) or action.dest
                bare.append(f"giftcards {' '.join(path)} {name}")
        if f"giftcards {' '.join(path)}" not in (parser.epilog or ""):
            no_example.append(" ".join(path))
    assert not bare, bare
    assert not no_example, no_example
    for action in build_parser()._actions:  # the global options too
        assert isinstance(action, argparse._SubParsersAction) or action.help


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An embedded SQLite store for in-process runs; the CLI's per-process caches reset."""
    for name in list(os.environ):
        if name.startswith(("GIFTCARDS_", "KAFKA_")):
            monkeypatch.delenv(name)
    env = {"GIFTCARDS_DATA_DIR": str(tmp_path / "var"), "GIFTCARDS_SECRET_KEY": SECRET,
           "GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
           "GIFTCARDS_NOW": NOW}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caches = (cards.service, views.projector, base.market_codes)
    for cached in caches:
        cached.cache_clear()
    yield env
    if cards.service.cache_info().currsize:
        cards.service().close()
    for cached in caches:
        cached.cache_clear()


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = run(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_object(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    status, out, err = call(capsys, "--json", *argv)
    lines = out.splitlines()
    assert len(lines) == 1, (argv, out, err)
    assert "Traceback" not in out + err
    payload = orjson.loads(lines[0])
    assert isinstance(payload, dict)
    return status, payload


def test_every_command_prints_exactly_one_json_object(
    store: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each command runs once the way it ends on an embedded store (done, refused, or refused
    for its missing Kafka); the long-running ones (`serve`, `project`, `api`, `deliver`
    without --once) on their refusal of a bad option. A command added without a case here
    fails the test."""
    status, card = one_object(capsys, "purchase", "--market", "fr", "--amount", "50",
                              "--payment-method", "card", "--buyer-id", "C1",
                              "--buyer-email", "alice@example.org", "--order-id", "O1")
    assert (status, card["market"], card["amount"]) == (0, "FR", 5000)
    cid, code = card["card_id"], card["code"]
    key_status, key = one_object(capsys, "api-key", "create", "--name", "shop", "--scope",
                                 "checkout")
    assert key_status == 0
    cases: dict[tuple[str, ...], list[list[str]]] = {
        ("purchase",): [["purchase", "--market", "FR", "--amount", "5", "--payment-method",
                         "card", "--buyer-id", "C1"]],
        ("redeem",): [["redeem", "--code", code, "--market", "FR", "--order-id", "O2",
                       "--order-total", "30", "--customer-id", "C2"]],
        ("cancel",): [["cancel", "--order-id", "O1", "--code", code]],
        ("refund",): [["refund", "--order-id", "O2", "--amount", "10",
                       "--received-on", "2026-01-12"]],
        ("expire",): [["expire", "--as-of", "2026-01-12T10:00:00Z"]],
        ("show",): [["show", cid], ["show", MISSING]],
        ("history",): [["history", cid], ["history", cid, "--operator", "nobody"]],
        # The bootstrap admin (the service's secret alone), whose key runs the rest.
        ("gdpr", "operator", "add"): [["gdpr", "operator", "add", "alice", "--role", "admin"],
                                      ["gdpr", "operator", "add", "bob", "--role", "support"]],
        ("gdpr", "operator", "role"): [["gdpr", "operator", "role", "bob", "--role", "dpo"]],
        ("gdpr", "operator", "disable"): [["gdpr", "operator", "disable", "bob"]],
        ("gdpr", "operator", "rekey"): [["gdpr", "operator", "rekey", "bob"]],
        ("gdpr", "operator", "list"): [["gdpr", "operator", "list"]],
        ("gdpr", "subject"): [["gdpr", "subject", "--email", "bob@example.org",
                               "--operator", "alice"]],
        ("gdpr", "export"): [["gdpr", "export", "C1", "--operator", "alice"]],
        ("gdpr", "pseudonym"): [["gdpr", "pseudonym", "--customer-id", "C1", "--operator",
                                 "alice"],
                                ["gdpr", "pseudonym", "--resolve", "cus_" + "a" * 32,
                                 "--operator", "alice"]],
        ("gdpr", "access-log"): [["gdpr", "access-log", "C1", "--operator", "alice"]],
        ("gdpr", "object"): [["gdpr", "object", "C9", "--request-id", "R0",
                              "--operator", "alice"]],
        ("gdpr", "request", "open"): [["gdpr", "request", "open", "--subject", "C9", "--type",
                                       "erasure", "--received-on", "2026-01-12",
                                       "--request-id", "R1"]],
        ("gdpr", "request", "extend"): [["gdpr", "request", "extend", "R1", "--months", "1",
                                         "--reason", "complex"]],
        ("gdpr", "request", "list"): [["gdpr", "request", "list", "--operator", "alice"]],
        ("gdpr", "request", "close"): [["gdpr", "request", "close", "R1", "--outcome", "done"]],
        ("gdpr", "rectify"): [["gdpr", "rectify", "C9", "--field", "email", "--value",
                               "c9@example.org", "--request-id", "R1", "--operator", "alice"]],
        ("gdpr", "restrict"): [["gdpr", "restrict", "C9", "--request-id", "R1",
                                "--operator", "alice"]],
        ("gdpr", "unrestrict"): [["gdpr", "unrestrict", "C9", "--request-id", "R1",
                                  "--operator", "alice"]],
        ("gdpr", "erase"): [["gdpr", "erase", "C9", "--request-id", "R1",
                             "--operator", "alice"]],
        ("gdpr", "purge"): [["gdpr", "purge"]],
        ("gdpr", "rotate-kek"): [["gdpr", "rotate-kek"]],
        ("consume",): [["consume", "checkout"]],
        ("serve",): [["serve", "--max-poll-records", "many"]],
        ("relay",): [["relay", "--once"]],
        ("status",): [["status"]],
        ("project",): [["project", "--source", "nowhere"]],
        ("projections", "rebuild"): [["projections", "rebuild", "--source", "store"]],
        ("liability",): [["liability", "--market", "fr"]],
        ("breakage",): [["breakage", "--month", "2026-01"]],
        ("fraud", "alerts"): [["fraud", "alerts", "--rule", "F1", "--operator", "alice"]],
        ("audit", "verify"): [["audit", "verify", cid]],
        ("audit", "checkpoint"): [["audit", "checkpoint"]],
        ("audit", "seal"): [["audit", "seal"]],
        ("audit", "keygen"): [["audit", "keygen"], ["audit", "keygen"]],
        ("audit", "rotate-key"): [["audit", "rotate-key"]],
        ("audit", "export"): [["audit", "export", cid], ["audit", "export", cid, "--format",
                                                         "csv", "--operator", "alice"],
                              ["audit", "export", MISSING, "--operator", "alice"],
                              ["audit", "export", "--period", "2026-01", "--market", "FR",
                               "--out", str(tmp_path / "pack")]],
        ("audit", "verify-pack"): [["audit", "verify-pack", str(tmp_path / "pack"),
                                    "--trusted-keys", str(tmp_path / "var" / "checkpoints" /
                                                          "trusted-keys.json")]],
        ("deliver",): [["deliver", "--once"]],
        ("deliveries", "failed"): [["deliveries", "failed"]],
        ("deliveries", "retry"): [["deliveries", "retry", cid, "--operator", "alice"]],
        ("api",): [["api", "--port", "eighty"]],
        ("console",): [["console", "--port", "eighty"]],
        ("api-key", "create"): [["api-key", "create", "--name", "n", "--scope", "audit"]],
        ("api-key", "list"): [["api-key", "list"]],
        ("api-key", "revoke"): [["api-key", "revoke", key["key_id"]]],
    }
    commands = {path for path, _ in leaves(build_parser())}
    assert commands - set(cases) == set(), "a command without a case here"
    seen: dict[tuple[str, ...], list[int]] = {}
    for path, runs in cases.items():
        for argv in runs:
            status, payload = one_object(capsys, *argv)
            seen.setdefault(path, []).append(status)
            if argv[:4] == ["gdpr", "operator", "add", "alice"]:
                monkeypatch.setenv("GIFTCARDS_OPERATOR_KEY", payload["key"])
            if status:
                assert set(payload) == {"error"} or payload.get("ok") is False, (argv, payload)
    # The contract's edges, by name: audit export is one object, an unknown card an error.
    _, trail = one_object(capsys, "audit", "export", cid, "--operator", "alice")
    assert trail["format"] == "jsonl" and trail["records"][0]["card_id"] == cid
    assert one_object(capsys, "audit", "export", MISSING, "--operator", "alice") == (
        1, {"error": {"code": "unknown_card", "message": f"no gift card with id {MISSING}"}})
    assert seen[("show",)] == [0, 1] and seen[("gdpr", "pseudonym")] == [0, 1]
    assert seen[("redeem",)] == [0] and seen[("relay",)] == [2] and seen[("serve",)] == [2]


def test_r21_history_and_audit_trail_need_a_registered_operator_and_are_logged(
    store: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card's events and trail name its customers (pseudonymous ids are personal data)."""
    _, card = one_object(capsys, "purchase", "--market", "FR", "--amount", "50",
                         "--payment-method", "card", "--buyer-id", "cust-r21", "--order-id", "O1")
    cid = card["card_id"]
    for argv in (["history", cid], ["audit", "export", cid, "--format", "csv"]):
        status, refused = one_object(capsys, *argv)
        assert (status, refused["error"]["code"]) == (2, "operator_required"), argv
        status, refused = one_object(capsys, *argv, "--operator", "mallory")
        assert (status, refused["error"]["code"]) == (1, "unknown_operator"), argv
    _, root = one_object(capsys, "gdpr", "operator", "add", "root", "--role", "admin")
    monkeypatch.setenv("GIFTCARDS_OPERATOR_KEY", root["key"])
    _, agent = one_object(capsys, "gdpr", "operator", "add", "agent-7", "--role", "support")
    monkeypatch.setenv("GIFTCARDS_OPERATOR_KEY", agent["key"])
    status, history = one_object(capsys, "history", cid, "--operator", "agent-7")
    buyer = history["events"][0]["data"]["buyer_subject"]  # the store id, not "cust-r21" (P2)
    assert status == 0 and buyer.startswith("s-") and buyer != "cust-r21"
    status, trail = one_object(capsys, "audit", "export", cid, "--operator", "agent-7")
    # The trail is the audit view, built from the published envelopes: the pseudonym (P5).
    _, mapped = one_object(capsys, "gdpr", "pseudonym", "--customer-id", "cust-r21",
                           "--operator", "agent-7")
    assert (status, trail["records"][0]["actor"]) == (0, mapped["pseudonym"])
    monkeypatch.setenv("GIFTCARDS_OPERATOR_KEY", root["key"])  # support reads no access log
    _, log = one_object(capsys, "gdpr", "access-log", "cust-r21")
    assert {(e["command"], e["operator"]) for e in log["entries"]} >= {
        ("history", "agent-7"), ("audit export CARD_ID", "agent-7")}


# The bad inputs, and their kind on every command that takes them.
BAD = [
    (["breakage", "--month", "2026-8"], "YYYY-MM"),
    (["breakage", "--month", "2026-13"], "YYYY-MM"),
    (["audit", "export", "--period", "26-01", "--market", "FR", "--out", "x"], "YYYY-MM"),
    (["liability", "--market", "xx"], "one of FR, BE, DE"),
    (["breakage", "--market", "fr-"], "one of FR, BE, DE"),
    (["purchase", "--market", "zz", "--amount", "50", "--payment-method", "card",
      "--buyer-id", "C1"], "one of FR, BE, DE"),
    (["redeem", "--code", "X", "--market", "Frr", "--order-id", "O", "--order-total", "1"],
     "one of FR, BE, DE"),
    (["liability", "--as-of", "2026-01"], "YYYY-MM-DDTHH:MM"),
    (["liability", "--as-of", "20260110"], "YYYY-MM-DDTHH:MM"),
    (["show", MISSING, "--as-of", "2026-01-10 09:00"], "YYYY-MM-DDTHH:MM"),
    (["expire", "--as-of", "yesterday"], "YYYY-MM-DDTHH:MM"),
    (["fraud", "alerts", "--since", "2026-W02"], "YYYY-MM-DDTHH:MM"),
    (["refund", "--order-id", "O", "--amount", "1", "--received-on", "2026-1-2"],
     "YYYY-MM-DD"),
    (["gdpr", "request", "list", "--as-of", "20260102"], "YYYY-MM-DD"),
]


@pytest.mark.parametrize(("argv", "form"), BAD, ids=[" ".join(a[:3]) for a, _ in BAD])
def test_bad_input_is_exit_2_naming_the_accepted_form(
    store: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], form: str
) -> None:
    status, payload = one_object(capsys, *argv)
    assert status == 2 and payload["error"]["code"] == "invalid_input"
    assert form in payload["error"]["message"]
    status, out, err = call(capsys, *argv)  # the human form says the same on stderr
    assert status == 2 and out == "" and form in err and "Traceback" not in err


def test_markets_in_any_case_are_the_same_market(
    store: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    one_object(capsys, "purchase", "--market", "Fr", "--amount", "20", "--payment-method",
               "card", "--buyer-id", "C1")
    assert one_object(capsys, "liability", "--market", "fr") == one_object(
        capsys, "liability", "--market", "FR")


def test_human_output_is_for_people(
    store: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Money in the market's locale (Babel), instants as UTC, tables, no Python spelling."""
    status, out, _ = call(capsys, "purchase", "--market", "FR", "--amount", "50",
                          "--payment-method", "card", "--buyer-id", "C1", "--order-id", "O1")
    assert status == 0
    assert re.search(r"amount\s+50,00\s€", out), out
    assert "2026-07-12 10:00:00 UTC" in out
    cid = re.search(r"card_id\s+(\S+)", out)[1]  # type: ignore[index]
    status, alice = one_object(capsys, "gdpr", "operator", "add", "alice", "--role", "admin")
    assert status == 0
    monkeypatch.setenv("GIFTCARDS_OPERATOR_KEY", alice["key"])
    for argv in (["show", cid], ["history", cid, "--operator", "alice"], ["liability"],
                 ["audit", "verify", cid]):
        status, out, _ = call(capsys, *argv)
        assert status == 0, out
        assert not re.search(r"\b(None|True|False)\b|[{}]", out), out
    _, out, _ = call(capsys, "liability")
    assert re.search(r"FR\s+EUR\s+50,00\s€\s+1", out), out


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`giftcards … | head`: the reader is gone before the output is written."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    env = {**clean, "GIFTCARDS_DATA_DIR": str(tmp_path), "GIFTCARDS_SECRET_KEY": SECRET,
           "GIFTCARDS_NOW": NOW}
    done = subprocess.run(
        ["bash", "-c", f"{GIFTCARDS} purchase --market FR --amount 50 --payment-method card "
         "--buyer-id C1 | (exec 0<&-; sleep 0.5); exit ${PIPESTATUS[0]}"],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.stderr.strip() == "", done.stderr
    assert done.returncode == 141  # 128 + SIGPIPE, not a refusal's 1


@pytest.mark.postgres
def test_an_unreachable_database_is_named_by_host_and_port(
    store: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIFTCARDS_DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:1/giftcards")
    status, payload = one_object(capsys, "show", MISSING)
    assert status == 3 and payload["error"]["code"] == "database_unavailable"
    assert "127.0.0.1:1" in payload["error"]["message"]
    assert "hunter2" not in payload["error"]["message"]


def test_third_party_info_logs_are_off_unless_verbose(
    store: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    kafka = logging.getLogger("kafka")
    try:
        assert one_object(capsys, "liability")[0] == 0
        assert kafka.getEffectiveLevel() == logging.WARNING
        assert one_object(capsys, "liability", "--verbose")[0] == 0  # anywhere on the line
        assert kafka.getEffectiveLevel() == logging.INFO
    finally:
        kafka.setLevel(logging.WARNING)


def test_r21_audit_keygen_creates_the_signing_key_once_even_in_production(
    store: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Production never generates the checkpoint signing key unasked: `audit keygen`
    is the operator's step (compose runs it once); a second run keeps the key it found."""
    monkeypatch.setenv("GIFTCARDS_ENV", "production")
    monkeypatch.setenv("GIFTCARDS_SMTP_URL", "smtps://mail.example.com")  # no plaintext link
    monkeypatch.delenv("GIFTCARDS_NOW")
    monkeypatch.setenv("GIFTCARDS_SECRET_KEY", "k7Gq2vN9xP4mR8sT1wY6zB3cD5fH0jL-aE_uI")
    key_file = tmp_path / "secrets" / "signing.pem"
    monkeypatch.setenv("GIFTCARDS_SIGNING_KEY_FILE", str(key_file))
    chain_key = tmp_path / "chain" / "chain.key"  # apart from the signing key
    monkeypatch.setenv("GIFTCARDS_CHAIN_KEY_FILE", str(chain_key))
    status, first = one_object(capsys, "audit", "keygen")
    assert status == 0 and first["created"] is True, first
    assert first["chain_key_created"] is True and chain_key.stat().st_mode & 0o777 == 0o600
    assert key_file.stat().st_mode & 0o777 == 0o600
    pem, sealing = key_file.read_bytes(), chain_key.read_bytes()
    status, again = one_object(capsys, "audit", "keygen")
    assert status == 0 and again["created"] is False, again
    assert again["chain_key_created"] is False and chain_key.read_bytes() == sealing
    assert again["public_key"] == first["public_key"]
    assert key_file.read_bytes() == pem  # kept, never replaced
    assert "PRIVATE" not in first["public_key"]
