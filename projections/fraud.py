"""Fraud rules F1-F6 as explainable alerts; computed from event time only, so replays agree."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from infra.envelope import EnvelopeJson
from projections.batch import Batch, Row
from projections.config import COMPELLING_GROUNDS, LEGITIMATE_INTEREST, FraudConfig
from projections.retention import HORIZON, purged
from projections.schema import ALERTS, BALANCE, FRAUD_STATE, SUBJECTS, VIEWS, Table
from projections.timefmt import bucket, instant, norm

RESTRICTED = "restricted"  # FRAUD_STATE key prefix: a subject's restriction periods (art. 18)
ERASED_PREFIX = "erased_"  # an erased subject's pseudonym in the views, once rotated out


def emit(
    b: Batch,
    config: FraudConfig,
    *,
    alert_id: str,
    rule: str,
    card_id: str | None,
    customer_id: str | None,
    event_ids: list[str],
    detected_at: str,
    explanation: str,
    event_at: str | None = None,
) -> None:
    """Write (or rewrite) the one alert of its key; P4 decides whether it may exist at all.

    `event_at` is the time of the event being processed (P4, judged by event time): an alert opened
    before an objection may stay as it was, but no event after the objection grows it."""
    if purged(b, detected_at):  # past the fraud-data retention: never written again
        return
    stopped_at = _stopped_at(b, customer_id, event_at or detected_at)
    after_objection = stopped_at is not None
    if stopped_at is not None and rule not in config.compelling_rules:
        existing = b.get(ALERTS, alert_id)
        if existing is not None and existing["detected_at"] >= stopped_at:
            b.delete(ALERTS, alert_id)
        return
    b.put(ALERTS, {
        "alert_id": alert_id, "rule": rule, "severity": config.severities.get(rule, "medium"),
        "card_id": card_id, "customer_id": customer_id, "event_ids": event_ids,
        "detected_at": detected_at, "explanation": explanation,
        "legal_basis": COMPELLING_GROUNDS if after_objection else LEGITIMATE_INTEREST,
    })


def _objected_at(b: Batch, customer_id: str | None) -> str | None:
    subject = b.get(SUBJECTS, customer_id) if customer_id else None
    return None if subject is None else subject["objected_at"]


def _stopped_at(b: Batch, customer_id: str | None, at: str) -> str | None:
    """Since when profiling of the subject is stopped at instant `at`: by an objection (P4,
    for good) or by a restriction in force then (art. 18, until lifted); None if it runs."""
    objected_at = _objected_at(b, customer_id)
    if objected_at is not None and at >= objected_at:
        return objected_at
    state = b.get(FRAUD_STATE, f"{RESTRICTED}|{customer_id}") if customer_id else None
    for start, end in state["data"] if state else []:
        if start <= at and (end is None or at < end):
            return str(start)
    return None


def profiling_stopped(
    b: Batch, config: FraudConfig, rule: str, customer_id: str | None, at: str
) -> bool:
    """P4: after an objection, a rule that is not compelling-grounds builds no state for the
    subject from events at or after it (the state is profiling too)."""
    if purged(b, at):
        return True
    if rule in config.compelling_rules:
        return False
    return _stopped_at(b, customer_id, at) is not None


def _window(b: Batch, key: str, entry: list[Any]) -> list[list[Any]]:
    """Add an event to a fixed window's list, kept sorted by (time, event id): arrival order
    across partitions then changes nothing."""
    state = b.get(FRAUD_STATE, key)
    items: list[list[Any]] = state["data"] if state else []
    if all(item[1] != entry[1] for item in items):
        items = sorted([*items, entry], key=lambda e: (e[0], e[1]))
        b.put(FRAUD_STATE, {"state_key": key, "data": items})
    return items


# --- F1 code guessing ------------------------------------------------------------------------


def unknown_code_key(env: EnvelopeJson, config: FraudConfig) -> tuple[str, str, str]:
    """(state key, customer, window start) of an unknown-code attempt."""
    # The attempts stream is per customer; its id stands in when the id itself is not published.
    customer = env["data"].get("customer_id") or env["stream_id"]
    start = bucket(env["occurred_at"], timedelta(minutes=config.f1_window_minutes))
    return f"F1|{customer}|{start}", customer, start


# An alert lists the ids of the first attempts of its window, and counts all of them: a guesser
# hammering through a lock-out must not grow one view row without bound.
F1_LISTED = 100


def unknown_code(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    """An unknown code, or an attempt refused unchecked during a lock-out (R8): both count.
    The earliest attempts by (time, event id) and the counts do not depend on arrival order;
    a redelivered event never gets here (its stream's version is checked first)."""
    key, customer, start = unknown_code_key(env, config)
    if profiling_stopped(b, config, "F1", customer, norm(env["occurred_at"])):
        return
    state = b.get(FRAUD_STATE, key)
    window = _f1_state(state["data"] if state else None)
    locked = env["event_type"] == "CheckoutAttemptRefused"
    window["unknown" if not locked else "refused"] += 1
    entry = [norm(env["occurred_at"]), env["event_id"]]
    listed = max(F1_LISTED, config.f1_unknown_codes)
    window["first"] = sorted([*window["first"], entry])[:listed]
    b.put(FRAUD_STATE, {"state_key": key, "data": window})
    unknown, refused, first = window["unknown"], window["refused"], window["first"]
    if unknown + refused < config.f1_unknown_codes:
        return
    # A locked-out attempt's code was never looked up: it is not called unknown.
    what = f"{unknown} redemption attempts with unknown codes" + (
        f" and {refused} refused unchecked for too many attempts" if refused else ""
    )
    emit(
        b, config, alert_id=key, rule="F1", card_id=None, customer_id=customer,
        event_ids=[e[1] for e in first], detected_at=first[config.f1_unknown_codes - 1][0],
        event_at=entry[0],
        explanation=f"{what} in the {config.f1_window_minutes}-minute window from {start} "
        f"(threshold {config.f1_unknown_codes} attempts"
        + (f"; the first {len(first)} listed)" if len(first) < unknown + refused else ")"),
    )


def _f1_state(data: Any) -> dict[str, Any]:
    if isinstance(data, list):  # the old layout: every unknown code's [time, id]
        return {"first": data, "unknown": len(data), "refused": 0}
    return data or {"first": [], "unknown": 0, "refused": 0}


# --- F2 purchase velocity and F4 refund cycling (on every purchase) --------------------------


def profiling_rows(customer_id: str | None) -> list[tuple[Table, tuple[str]]]:
    """The rows `profiling_stopped` reads for a subject (the purge horizon, an objection, the
    restrictions): a batch reads them for all its events at once, not one query each."""
    rows: list[tuple[Table, tuple[str]]] = [(FRAUD_STATE, (HORIZON,))]
    if customer_id:
        rows += [(SUBJECTS, (customer_id,)), (FRAUD_STATE, (f"{RESTRICTED}|{customer_id}",))]
    return rows


def purchase_state_keys(env: EnvelopeJson, config: FraudConfig) -> list[str]:
    keys = [f"F4|{env['card_id']}"]
    buyer = env["data"].get("buyer_subject")
    if buyer and env["data"].get("payment_method") != "refund":
        width = timedelta(hours=config.f2_window_hours)
        keys.append(f"F2|{buyer}|{bucket(env['occurred_at'], width)}")
    return keys


def on_purchase(b: Batch, env: EnvelopeJson, card: Row, config: FraudConfig) -> None:
    if card["buyer"] and env["data"].get("payment_method") != "refund":
        _velocity(b, env, card, config)
    # Descendants that arrived first (other partitions) waited for this card: look again.
    waiting = b.get(FRAUD_STATE, f"F4|{card['card_id']}")
    if waiting is not None:
        b.delete(FRAUD_STATE, waiting["state_key"])
        for descendant in waiting["data"]:
            _chain(b, descendant, config)
    if card["replaces"]:
        _chain(b, card["card_id"], config)


def _velocity(b: Batch, env: EnvelopeJson, card: Row, config: FraudConfig) -> None:
    if profiling_stopped(b, config, "F2", card["buyer"], norm(env["occurred_at"])):
        return
    start = bucket(env["occurred_at"], timedelta(hours=config.f2_window_hours))
    key = f"F2|{card['buyer']}|{start}"
    items = _window(b, key, [card["purchased_at"], env["event_id"], card["amount"],
                             card["currency"], card["card_id"]])
    totals: dict[str, int] = {}
    for index, (at, _, amount, currency, card_id) in enumerate(items):
        totals[currency] = totals.get(currency, 0) + amount
        if index + 1 >= config.f2_cards or totals[currency] >= config.f2_total_minor:
            emit(
                b, config, alert_id=key, rule="F2", card_id=card_id, customer_id=card["buyer"],
                event_ids=[e[1] for e in items], detected_at=at,
                event_at=norm(env["occurred_at"]),
                explanation=f"{len(items)} cards bought by one buyer in the "
                f"{config.f2_window_hours} h window from {start}, "
                + ", ".join(f"{v} {c}" for c, v in sorted(_sums(items).items()))
                + f" (thresholds {config.f2_cards} cards or {config.f2_total_minor} minor units)",
            )
            return


def _sums(items: list[list[Any]]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for item in items:
        sums[item[3]] = sums.get(item[3], 0) + item[2]
    return sums


def _chain(b: Batch, card_id: str, config: FraudConfig) -> None:
    """F4: once the whole lineage up to an original purchase is known, alert at depth N."""
    path = [card_id]
    parent = b.get(BALANCE, card_id)["replaces"]  # type: ignore[index]
    while parent is not None:
        row = b.get(BALANCE, parent)
        if row is None:  # not seen yet: wait for it (it is in another partition)
            key = f"F4|{parent}"
            state = b.get(FRAUD_STATE, key)
            known = state["data"] if state else []
            b.put(FRAUD_STATE, {"state_key": key, "data": sorted({*known, card_id})})
            return
        path.append(parent)
        parent = row["replaces"]
    if len(path) - 1 != config.f4_depth:
        return
    chain = [b.get(BALANCE, c) for c in reversed(path)]
    emit(
        b, config, alert_id=f"F4|{card_id}", rule="F4", card_id=card_id,
        customer_id=chain[0]["buyer"],  # type: ignore[index]
        event_ids=[c["purchase_event_id"] for c in chain],  # type: ignore[index]
        detected_at=chain[-1]["purchased_at"],  # type: ignore[index]
        explanation=f"card {card_id} is replacement number {config.f4_depth} in a chain of "
        f"refunds starting at card {path[-1]} (threshold depth {config.f4_depth})",
    )


# --- F3, F5, F6 (one card's own events) ------------------------------------------------------


def fast_cash_out(b: Batch, env: EnvelopeJson, card: Row, config: FraudConfig) -> None:
    redeemer = env["data"].get("customer_id")
    elapsed = instant(env["occurred_at"]) - instant(card["purchased_at"])
    if (
        card["amount"] >= config.f3_min_amount_minor
        and redeemer != card["buyer"]
        and elapsed <= timedelta(minutes=config.f3_minutes)
    ):
        emit(
            b, config, alert_id=f"F3|{card['card_id']}", rule="F3", card_id=card["card_id"],
            customer_id=redeemer, event_ids=[card["purchase_event_id"], env["event_id"]],
            detected_at=norm(env["occurred_at"]),
            explanation=f"card of {card['amount']} {card['currency']} minor units redeemed "
            f"{int(elapsed.total_seconds())} s after purchase by a customer other than the buyer "
            f"(thresholds {config.f3_min_amount_minor} within {config.f3_minutes} min)",
        )


def cross_market(b: Batch, env: EnvelopeJson, card: Row, config: FraudConfig) -> None:
    data = env["data"]
    if data.get("reason") != "wrong_market" or data.get("attempted_market") == card["market"]:
        return
    alert_id = f"F5|{card['card_id']}"
    previous = b.get(ALERTS, alert_id)
    customer = previous["customer_id"] if previous else data.get("customer_id")
    if profiling_stopped(b, config, "F5", customer, norm(env["occurred_at"])):
        return
    event_ids = [*(previous["event_ids"] if previous else []), env["event_id"]]
    emit(
        b, config, alert_id=alert_id, rule="F5", card_id=card["card_id"],
        customer_id=customer,
        event_ids=event_ids,
        detected_at=previous["detected_at"] if previous else norm(env["occurred_at"]),
        event_at=norm(env["occurred_at"]),
        explanation=f"card of market {card['market']} tried {len(event_ids)} time(s) on another "
        f"market, latest {data.get('attempted_market')}",
    )


def cancel_after_attempt(b: Batch, env: EnvelopeJson, card: Row, config: FraudConfig) -> None:
    if card["refused_attempts"] <= 0:
        return
    emit(
        b, config, alert_id=f"F6|{card['card_id']}", rule="F6", card_id=card["card_id"],
        customer_id=card["buyer"], event_ids=[env["event_id"]],
        detected_at=norm(env["occurred_at"]),
        explanation=f"cancellation requested after {card['refused_attempts']} refused "
        "redemption attempt(s) on this card",
    )


# --- data subjects (P2, P4) ------------------------------------------------------------------


def _subject(b: Batch, env: EnvelopeJson, column: str) -> tuple[str, str]:
    subject_id = env["data"]["subject_id"]
    at = norm(env["occurred_at"])
    row = b.get(SUBJECTS, subject_id) or {
        "subject_id": subject_id, "erased_at": None, "objected_at": None,
    }
    row[column] = min(filter(None, [row[column], at]))
    b.put(SUBJECTS, row)
    return subject_id, row[column]


def subject_erased(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    """P2: views hold pseudonyms and amounts, never clear PII; the erased subject's pseudonym
    is rotated out of every view (a name derived from the erasure event, so a replay agrees),
    leaving nothing that links their rows to their events on the topic."""
    _subject(b, env, "erased_at")
    rotate_pseudonym(b, env["data"]["subject_id"], rotated_pseudonym(env["event_id"]))


def rotated_pseudonym(event_id: str) -> str:
    return ERASED_PREFIX + hashlib.sha256(f"rotated\x00{event_id}".encode()).hexdigest()[:32]


def rotate_pseudonym(b: Batch, old: str, new: str) -> None:
    """Replaces `old` wherever a view's text holds it: ids, keys, JSON state, explanations."""
    b.flush()  # the batch's rows first: the SQL below must see them, and the cache goes
    if not b.db.is_postgres:
        b.db.execute("PRAGMA secure_delete=ON")  # the old values' cells are zeroed
    b.rotated = True
    for table in VIEWS:
        for column, kind in table.columns.items():
            if kind == "TEXT":
                b.db.execute(
                    f"UPDATE {table.name} SET {column} = replace({column}, ?, ?) "
                    f"WHERE {column} LIKE ?", (old, new, f"%{old}%"))


def subject_objected(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    """P4: alerts from the objection on keep only the compelling-grounds rules."""
    subject_id, since = _subject(b, env, "objected_at")
    _drop_profiling(b, subject_id, since, config)


def subject_restricted(
    b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig
) -> None:
    """Art. 18: while restricted, the subject is profiled like after an objection; the
    periods are kept (an event is judged by its own time, as for objections)."""
    subject_id, at = env["data"]["subject_id"], norm(env["occurred_at"])
    key = f"{RESTRICTED}|{subject_id}"
    state = b.get(FRAUD_STATE, key)
    periods = [p for p in (state["data"] if state else []) if p[0] != at]
    b.put(FRAUD_STATE, {"state_key": key, "data": sorted([*periods, [at, None]])})
    _drop_profiling(b, subject_id, at, config)


def restriction_lifted(
    b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig
) -> None:
    subject_id, at = env["data"]["subject_id"], norm(env["occurred_at"])
    key = f"{RESTRICTED}|{subject_id}"
    state = b.get(FRAUD_STATE, key)
    periods = state["data"] if state else []
    for period in periods:
        if period[1] is None and period[0] <= at:
            period[1] = at
    b.put(FRAUD_STATE, {"state_key": key, "data": periods})


def _drop_profiling(b: Batch, subject_id: str, since: str, config: FraudConfig) -> None:
    b.flush()  # the alerts below may sit in the batch: write them before the SQL sees the table
    rules = list(config.compelling_rules)
    marks = ", ".join("?" * len(rules)) or "NULL"
    b.db.execute(
        f"DELETE FROM {ALERTS.name} WHERE customer_id = ? AND detected_at >= ? "
        f"AND rule NOT IN ({marks})",
        [subject_id, since, *rules],
    )
    b.db.execute(
        f"UPDATE {ALERTS.name} SET legal_basis = ? WHERE customer_id = ? AND detected_at >= ?",
        [COMPELLING_GROUNDS, subject_id, since],
    )
