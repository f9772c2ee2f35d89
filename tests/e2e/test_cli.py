"""The real `giftcards` entry point as subprocesses: JSON shapes and exit codes 0/1/2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.operator_keys import enrol, with_key

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def cli(env: dict[str, str], now: str, *args: str | bytes) -> tuple[int, dict[str, Any], str]:
    """Run `giftcards --json ARGS` at instant `now`; exit code, the one JSON object, stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    done = subprocess.run(
        [GIFTCARDS, "--json", *args],
        env={**clean, **with_key(env, tuple(str(a) for a in args)), "GIFTCARDS_NOW": now},
        capture_output=True,
        timeout=60,
        check=False,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    lines = out.splitlines()
    assert len(lines) == 1, (out, err)
    assert "Traceback" not in out + err
    return done.returncode, orjson.loads(lines[0]), err


def assert_error(result: tuple[int, dict[str, Any], str], status: int, code: str) -> None:
    rc, payload, _ = result
    assert rc == status, payload
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}
    assert payload["error"]["code"] == code


BUY = ["purchase", "--market", "FR", "--payment-method", "card", "--buyer-id", "c1"]
T0 = "2026-01-12T10:00:00Z"


def test_r1_r11_r17_r19_lifecycle_through_the_cli(env_for: dict[str, str]) -> None:
    rc, card, _ = cli(env_for, T0, *BUY, "--amount", "50.00", "--order-id", "b-1",
                      "--message", "Bon anniversaire")
    assert rc == 0
    assert set(card) == {"card_id", "status", "market", "currency", "amount", "balance",
                         "purchased_at", "expires_at", "code_last4", "replaces", "replaced_by",
                         "code", "replayed"}
    assert (card["amount"], card["currency"], card["status"]) == (5000, "EUR", "active")
    assert card["expires_at"] == "2026-07-12T10:00:00Z"

    rc, again, _ = cli(env_for, T0, *BUY, "--amount", "50", "--order-id", "b-1")
    assert (rc, again["card_id"], again["code"]) == (0, card["card_id"], None)

    rc, used, _ = cli(env_for, T0, "redeem", "--code", card["code"], "--market", "FR",
                      "--order-id", "s-1", "--order-total", "80.00")
    assert rc == 0
    assert used == {"card_id": card["card_id"], "order_id": "s-1", "applied": 5000,
                    "remaining_to_pay": 3000, "forfeited": 0, "currency": "EUR",
                    "status": "redeemed"}

    second = cli(env_for, T0, "redeem", "--code", card["code"], "--market", "FR",
                 "--order-id", "s-2", "--order-total", "10")
    assert_error(second, 1, "already_redeemed")
    assert card["code"] not in second[1]["error"]["message"] + second[2]

    rc, back, _ = cli(env_for, "2026-01-20T10:00:00Z", "refund", "--order-id", "s-1",
                      "--amount", "60", "--received-on", "2026-01-14")
    assert rc == 0
    assert (back["new_card"]["amount"], back["to_other_method"]) == (5000, 1000)
    assert back["new_card"]["code"] != card["code"]

    rc, shown, _ = cli(env_for, T0, "show", card["card_id"])
    assert (rc, shown["replaced_by"]) == (0, [back["new_card"]["card_id"]])
    enrol(lambda env, *a: cli(env, T0, *a)[:2], env_for, "agent-1", "support")  # R21
    rc, history, _ = cli(env_for, T0, "history", card["card_id"], "--operator", "agent-1")
    assert rc == 0
    assert [e["type"] for e in history["events"]] == [
        "Purchased", "Activated", "Redeemed", "RedemptionRefused", "Refunded"]
    assert "Bon anniversaire" not in str(history) and card["code"] not in str(history)

    rc, other, _ = cli(env_for, T0, *BUY, "--amount", "20", "--order-id", "b-2")
    rc, cancelled, _ = cli(env_for, "2026-01-26T10:00:00Z", "cancel", other["card_id"],
                           "--code", other["code"], "--order-id", "b-2")
    assert rc == 0
    assert cancelled["refund"] == {"amount": 2000, "currency": "EUR",
                                   "method": "original_payment"}

    rc, expired, _ = cli(env_for, "2026-08-01T00:00:00Z", "expire")
    assert (rc, expired["expired"], expired["forfeited"]) == (0, 1, {"EUR": 5000})


@SQLITE_ONLY
def test_r19_r20_cancel_refusals_exit_1(env_for: dict[str, str]) -> None:
    _, card, _ = cli(env_for, T0, *BUY, "--amount", "30", "--order-id", "b-3")
    wrong = cli(env_for, T0, "cancel", card["card_id"], "--code", "AAAAAA-BBBBBB-CCCCCC",
                "--order-id", "b-3")
    assert_error(wrong, 1, "code_mismatch")
    # R20: the order id AND the code are required; the card id is not.
    assert_error(cli(env_for, T0, "cancel", card["card_id"], "--code", card["code"]), 2,
                 "invalid_input")
    assert_error(cli(env_for, T0, "cancel", "--order-id", "b-3"), 2, "invalid_input")
    late = cli(env_for, "2026-01-27T10:00:00Z", "cancel", "--code", card["code"],
               "--order-id", "b-3")
    assert_error(late, 1, "cancellation_period_over")
    assert card["code"] not in late[1]["error"]["message"] + late[2]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        ([*BUY, "--amount", "19.99"], 1, "amount_out_of_range"),
        ([*BUY[:4], "bnpl", *BUY[5:], "--amount", "50"], 1, "payment_method_not_allowed"),
        ([*BUY, "--amount", "abc"], 2, "invalid_amount"),
        ([*BUY, "--amount", "NaN"], 2, "invalid_amount"),
        (["purchase", "--market", "FR"], 2, "invalid_input"),
        (["show", "not-a-uuid"], 2, "invalid_input"),
        (["show", "00000000-0000-0000-0000-000000000000"], 1, "unknown_card"),
        (["refund", "--order-id", "x", "--amount", "1", "--received-on", "yesterday"], 2,
         "invalid_input"),
        (["expire", "--as-of", "soon"], 2, "invalid_input"),
        (["frobnicate"], 2, "invalid_input"),
    ],
)
def test_r1_r2_bad_input_exit_codes(
    env_for: dict[str, str], args: list[str], status: int, code: str
) -> None:
    assert_error(cli(env_for, T0, *args), status, code)


@SQLITE_ONLY
def test_r9_show_as_of_replays_the_past(env_for: dict[str, str]) -> None:
    _, card, _ = cli(env_for, T0, *BUY, "--amount", "25", "--order-id", "b-4")
    cli(env_for, "2026-02-01T10:00:00Z", "redeem", "--code", card["code"], "--market", "FR",
        "--order-id", "s-4", "--order-total", "5")
    rc, past, _ = cli(env_for, T0, "show", card["card_id"], "--as-of", "2026-01-20T00:00:00Z")
    assert (rc, past["status"], past["balance"], past["as_of"]) == (
        0, "active", 2500, "2026-01-20T00:00:00Z")
    rc, now, _ = cli(env_for, T0, "show", card["card_id"])
    assert (rc, now["status"], now["balance"]) == (0, "redeemed", 0)
