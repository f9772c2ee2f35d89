"""Hostile CLI input (R1, R8): always exit 1 or 2, one JSON error object, no traceback, no card."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoints.cli import cards
from entrypoints.cli.main import run
from infra.bootstrap import build
from infra.config import load_settings
from tests.e2e.test_cli import BUY, T0, cli

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
HOSTILE_AMOUNTS = ["-50", "-0.01", "0", "1e309", "-1e309", "1e999999999", "1e-999999999", "NaN",
                   "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "9" * 40, "50,00",
                   "50.001", "0x32", "５０", "50_0", "", " ", "\x00", "50\x00", "½", "fifty",
                   "19.99", "500.01", "1" + "0" * 20]
HOSTILE_TEXT = ["x" * 1001, "a\x00b", "\x1b[31mred", "line\rfeed", "\udcff", "\u202e", "XX",
                "fr", "FRA", ""]
MARKETS = {"FR", "BE", "DE", "ES", "IT", "GB", "US"}


def plausible_amount(text: str) -> bool:
    """Inputs that may be a valid 20..500 amount are not hostile enough for this test."""
    try:
        return Decimal(text.strip()).is_finite() and 20 <= Decimal(text.strip()) <= 500
    except (InvalidOperation, ValueError):
        return False


def positive(text: str) -> bool:
    """An order total that may well be valid (any positive number) is not hostile."""
    try:
        return Decimal(text.strip()).is_finite() and Decimal(text.strip()) > 0
    except (InvalidOperation, ValueError):
        return False


amounts = st.one_of(
    st.sampled_from(HOSTILE_AMOUNTS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**40), 10**40).map(str),
    st.text(max_size=45),
).filter(lambda a: not plausible_amount(a))
texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=30))
bad_dates = st.one_of(
    st.sampled_from(["2026-02-30", "2026-13-01", "yesterday", "0000-01-01", "26-01-01", "",
                     "2026-01-01T25:00", "10000-01-01", "\x00"]),
    st.text(max_size=20).filter(lambda t: not re.fullmatch(r"[0-9W:T+\-. ]*", t)),
)
unknown_options = st.text(alphabet="abcdefgxyz-_", min_size=1, max_size=12).map(
    lambda s: f"--zz{s}"
)


def purchase_cases() -> st.SearchStrategy[list[str]]:
    hostile_amount = amounts.map(lambda a: [*BUY, "--amount", a])
    bad_market = texts.filter(lambda m: m.strip().upper() not in MARKETS).map(
        lambda m: ["purchase", "--market", m, "--amount", "50", "--payment-method", "card",
                   "--buyer-id", "c1"])
    bad_method = texts.filter(lambda m: m != "card").map(
        lambda m: [*BUY[:4], m, *BUY[5:], "--amount", "50"])
    bad_message = st.sampled_from(HOSTILE_TEXT[:5]).map(
        lambda m: [*BUY, "--amount", "50", "--message", m])
    extra = unknown_options.map(lambda o: [*BUY, "--amount", "50", o])
    return st.one_of(hostile_amount, bad_market, bad_method, bad_message, extra)


def other_cases(code: str) -> st.SearchStrategy[list[str]]:
    hostile_total = amounts.filter(lambda a: not positive(a)).map(
        lambda a: ["redeem", "--code", code, "--market", "FR", "--order-id", "o", "--order-total",
                   a])
    bad_code_market = texts.filter(lambda m: m.strip().upper() not in MARKETS).map(
        lambda m: ["redeem", "--code", code, "--market", m, "--order-id", "o", "--order-total",
                   "10"])
    bad_refund = bad_dates.map(lambda d: ["refund", "--order-id", "o", "--amount", "1",
                                          "--received-on", d])
    bad_instant = bad_dates.flatmap(lambda d: st.sampled_from([["expire", "--as-of", d],
                                                               ["show", code, "--as-of", d]]))
    garbage = st.lists(texts, max_size=5).filter(
        lambda a: not a or a[0] not in {"expire", "-h", "--help", "--json"})
    return st.one_of(hostile_total, bad_code_market, bad_refund, bad_instant, garbage)


def purchased(service: Any) -> int:
    """Cards in the store, counted from their Purchased events."""
    return sum(n.topic.endswith("GiftCard.Purchased")
               for n in service.app.recorder.select_notifications(1, 10**6))


@pytest.fixture
def in_process(
    env_for: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The CLI's process-wide service on this test's store, with one real card bought."""
    for name, value in {**env_for, "GIFTCARDS_NOW": T0}.items():
        monkeypatch.setenv(name, value)
    cards.service.cache_clear()
    assert run(["--json", *BUY, "--amount", "50", "--order-id", "fuzz-card"]) == 0
    card = json.loads(capsys.readouterr().out)
    yield cards.service(), card
    cards.service().close()
    cards.service.cache_clear()


def one_error(out: str) -> dict[str, Any]:
    lines = out.splitlines()
    assert len(lines) == 1, out
    payload = json.loads(lines[0])
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}
    assert all(isinstance(v, str) and v for v in payload["error"].values())
    return payload


@SQLITE_ONLY
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_r1_r8_hostile_input_in_process(
    in_process: tuple[Any, dict[str, Any]], capsys: pytest.CaptureFixture[str],
    data: st.DataObject,
) -> None:
    service, card = in_process
    argv = data.draw(st.one_of(purchase_cases(), other_cases(card["code"])))
    before = purchased(service)
    status = run(["--json", *argv])
    captured = capsys.readouterr()
    assert status in (1, 2), (argv, captured.out)
    one_error(captured.out)
    assert "Traceback" not in captured.out + captured.err
    assert card["code"] not in captured.out + captured.err
    assert purchased(service) == before == 1
    shown = service.app.show(UUID(card["card_id"]))
    assert (shown.status, shown.balance) == ("active", 5000)


@SQLITE_ONLY
@pytest.mark.parametrize(
    "args",
    [
        [*BUY, "--amount", b"\xff\xfe50"],
        [*BUY[:2], b"F\xc3R", *BUY[3:], "--amount", "50"],
        [*BUY, "--amount", "50", "--message", b"caf\xe9 cr\xe8me"],
        ["redeem", "--code", b"\x80\x81", "--market", "FR", "--order-id", "o", "--order-total",
         "1"],
        [*BUY, "--amount", "1e309"],
        [*BUY, "--amount", "NaN"],
        [*BUY, "--amount", "-Infinity"],
        [*BUY, "--amount", "50", "--message", "m" * 5000],
        [*BUY, "--amount", "50", "--bogus"],
        ["refund", "--order-id", "o", "--amount", "1", "--received-on", "2026-02-30"],
    ],
)
def test_r1_hostile_argv_in_real_subprocesses(env_for: dict[str, str], args: list[Any]) -> None:
    status, payload, err = cli(env_for, T0, *args)
    assert status in (1, 2)
    one_error(json.dumps(payload))
    assert "Traceback" not in err
    store = build(load_settings(env_for))
    try:
        assert purchased(store) == 0  # a refused purchase leaves no card behind
    finally:
        store.close()


@SQLITE_ONLY
@pytest.mark.parametrize("instant", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
def test_r9_extreme_instants_never_crash(
    in_process: tuple[Any, dict[str, Any]], capsys: pytest.CaptureFixture[str], instant: str
) -> None:
    status = run(["--json", "expire", "--as-of", instant])
    out = capsys.readouterr().out
    assert status in (0, 2), out
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize("argv", [["--json", "--help"], ["--json", "purchase", "-h"]])
def test_help_is_one_json_object_not_an_argparse_exit(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "usage: giftcards" in json.loads(lines[0])["help"]


@pytest.mark.parametrize("argv", [["--json", "--he"], ["--json", "expire", "--as", "2026-01-01"]])
def test_abbreviated_options_are_refused_not_guessed(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["error"]["code"] == "invalid_input"
