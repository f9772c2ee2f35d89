"""`giftcards gdpr ...` as real processes: exit codes, JSON, access log, erasure, deadlines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.operator_keys import enrol, with_key

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def cli(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([GIFTCARDS, "--json", *args], env=with_key(env, args),
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


def test_r21_p2_p1_gdpr_commands_end_to_end(env_for: dict[str, str]) -> None:
    env = {**env_for, "GIFTCARDS_NOW": "2027-01-31T09:00:00Z", "PATH": "/usr/bin:/bin"}
    rc, card = cli(env, "purchase", "--market", "FR", "--amount", "50", "--payment-method",
                   "card", "--buyer-id", "cust-eve", "--buyer-email", "eve@example.com",
                   "--message", "a note from eve", "--order-id", "o-eve")
    assert rc == 0 and card["code"]
    rc, refused = cli(env, "gdpr", "export", "cust-eve")
    assert (rc, refused["error"]["code"]) == (2, "operator_required")
    rc, refused = cli(env, "gdpr", "export", "cust-eve", "--operator", "agent-1")
    assert (rc, refused["error"]["code"]) == (1, "unknown_operator")  # R21: a register
    enrol(cli, env, "dpo-1", "dpo")
    enrol(cli, env, "agent-1", "support")
    rc, doc = cli(env, "gdpr", "export", "cust-eve", "--operator", "agent-1")
    assert rc == 0 and doc["cards_bought"][0]["message"] == "a note from eve"
    rc, log = cli(env, "gdpr", "access-log", "cust-eve", "--operator", "dpo-1")
    assert {(e["operator"], e["command"]) for e in log["entries"]} == {
        ("agent-1", "gdpr export"), ("dpo-1", "gdpr access-log")  # reading the log is logged
    }

    rc, request = cli(env, "gdpr", "request", "open", "--subject", "cust-eve", "--type",
                      "erasure", "--received-on", "2027-01-31", "--request-id", "r-eve")
    assert (rc, request["due_on"]) == (0, "2027-03-01")
    rc, refused = cli(env, "gdpr", "erase", "cust-eve", "--request-id", "r-eve")
    assert (rc, refused["error"]["code"]) == (2, "operator_required")
    rc, erased = cli(env, "gdpr", "erase", "cust-eve", "--request-id", "r-eve", "--operator",
                     "dpo-1")
    # SQLite proves the old bytes gone; PostgreSQL's WAL keeps them until the KEK rotates.
    postgres = env["GIFTCARDS_DATABASE_URL"].startswith("postgres")
    assert erased["shredding"] == ("final_after_kek_rotation" if postgres else "verified")
    assert rc == 0 and erased["keys_destroyed"] == 1
    assert erased["keys_destroyed"] == 1 and erased["cards_as_buyer"] == [
        card["card_id"]
    ]
    # P2: her customer id no longer leads to what the store keeps (her store id's link is
    # gone); the register still names the request, answered.
    rc, doc = cli(env, "gdpr", "export", "cust-eve", "--operator", "agent-1")
    assert rc == 0 and doc["cards_bought"] == []
    assert [(r["request_id"], r["status"]) for r in doc["requests"]] == [("r-eve", "closed")]

    rc, overdue = cli(env, "gdpr", "request", "list", "--overdue", "--as-of", "2027-03-02",
                      "--operator", "dpo-1")
    assert overdue["requests"] == []  # closed by the erasure, with its outcome
    rc, bad = cli(env, "gdpr", "request", "open", "--subject", "x", "--type", "gossip",
                  "--received-on", "2027-01-31")
    assert (rc, bad["error"]["code"]) == (2, "invalid_input")
    rc, missing = cli(env, "gdpr", "request", "close", "nope", "--outcome", "answered",
                      "--operator", "dpo-1")
    assert (rc, missing["error"]["code"]) == (1, "unknown_request")


def test_p2_purge_and_kek_rotation_from_the_cli(env_for: dict[str, str]) -> None:
    env = {**env_for, "GIFTCARDS_NOW": "2026-02-02T09:00:00Z", "PATH": "/usr/bin:/bin"}
    rc, _card = cli(env, "purchase", "--market", "FR", "--amount", "50", "--payment-method",
                   "card", "--buyer-id", "cust-old", "--buyer-email", "old@example.com",
                   "--order-id", "o-old")
    assert rc == 0
    rc, report = cli(env, "gdpr", "purge")
    assert (rc, report["subjects_erased"]) == (0, 0)
    rc, report = cli({**env, "GIFTCARDS_NOW": "2036-01-12T09:00:00Z"}, "gdpr", "purge")
    assert (rc, report["subjects_erased"], report["keys_destroyed"]) == (0, 1, 1)
    assert report["fraud_data"]["cutoff"].startswith("2031-01-12")  # 5 years of fraud data
    rc, rotated = cli(env, "gdpr", "rotate-kek")
    assert rc == 0 and len(rotated["keks_destroyed"]) == 1


def test_r21_rectify_restrict_unrestrict_from_the_cli(env_for: dict[str, str]) -> None:
    env = {**env_for, "GIFTCARDS_NOW": "2027-01-31T09:00:00Z", "PATH": "/usr/bin:/bin"}
    assert cli(env, "purchase", "--market", "FR", "--amount", "50", "--payment-method", "card",
               "--buyer-id", "cust-ann", "--buyer-email", "ann@example.com",
               "--order-id", "o-ann")[0] == 0
    enrol(cli, env, "dpo-1", "dpo")
    for kind, rid in (("rectification", "r-rect"), ("restriction", "r-res")):
        assert cli(env, "gdpr", "request", "open", "--subject", "cust-ann", "--type", kind,
                   "--received-on", "2027-01-31", "--request-id", rid)[0] == 0
    rc, done = cli(env, "gdpr", "rectify", "cust-ann", "--field", "email", "--value",
                   "ann.b@example.com", "--request-id", "r-rect", "--operator", "dpo-1")
    assert (rc, done["field"]) == (0, "email")
    rc, doc = cli(env, "gdpr", "export", "cust-ann", "--operator", "dpo-1")
    assert doc["cards_bought"][0]["buyer_email"] == "ann.b@example.com"
    rc, done = cli(env, "gdpr", "restrict", "cust-ann", "--request-id", "r-res",
                   "--operator", "dpo-1")
    assert rc == 0 and done["results"][0]["recorded"] is True
    rc, done = cli(env, "gdpr", "unrestrict", "cust-ann", "--request-id", "r-res",
                   "--operator", "dpo-1")
    assert rc == 0 and done["results"][0]["recorded"] is True
    # Finding 9: listings naming customers need a registered operator and are logged.
    rc, refused = cli(env, "fraud", "alerts")
    assert (rc, refused["error"]["code"]) == (2, "operator_required")
    rc, listed = cli(env, "gdpr", "request", "list", "--operator", "dpo-1")
    assert rc == 0 and len(listed["requests"]) == 2
    rc, log = cli(env, "gdpr", "access-log", "cust-ann", "--operator", "dpo-1")
    assert {"gdpr rectify", "gdpr export", "gdpr restrict", "gdpr unrestrict",
            "gdpr request list"} <= {e["command"] for e in log["entries"]}


def test_p5_r21_pseudonym_mapping_from_the_cli(env_for: dict[str, str]) -> None:
    """Customer service maps ids and published pseudonyms both ways: a registered operator,
    every id shown access-logged; anyone else is refused before anything is computed."""
    env = {**env_for, "PATH": "/usr/bin:/bin"}
    assert cli(env, "purchase", "--market", "FR", "--amount", "50", "--payment-method", "card",
               "--buyer-id", "cust-zoe", "--order-id", "o-zoe")[0] == 0
    rc, refused = cli(env, "gdpr", "pseudonym", "--customer-id", "cust-zoe")
    assert (rc, refused["error"]["code"]) == (2, "operator_required")
    rc, refused = cli(env, "gdpr", "pseudonym", "--order-id", "o-zoe", "--operator", "eve")
    assert (rc, refused["error"]["code"]) == (1, "unknown_operator")
    enrol(cli, env, "cs-1", "support")
    enrol(cli, env, "dpo-1", "dpo")
    rc, mapped = cli(env, "gdpr", "pseudonym", "--order-id", "o-zoe", "--operator", "cs-1")
    assert rc == 0 and mapped["pseudonym"].startswith("ord_")
    rc, back = cli(env, "gdpr", "pseudonym", "--resolve", mapped["pseudonym"], "--operator",
                   "cs-1", "--request-id", "case-7")
    assert (rc, back) == (0, {"pseudonym": mapped["pseudonym"], "order_id": "o-zoe"})
    rc, mine = cli(env, "gdpr", "pseudonym", "--customer-id", "cust-zoe", "--operator", "cs-1")
    assert rc == 0 and mine["pseudonym"].startswith("cus_")
    rc, log = cli(env, "gdpr", "access-log", "cust-zoe", "--operator", "dpo-1")
    assert [(e["operator"], e["field"], e["purpose"]) for e in log["entries"]
            if e["command"] == "gdpr pseudonym"] == [("cs-1", "pseudonym", "pseudonym mapping")]
