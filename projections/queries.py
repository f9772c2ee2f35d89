"""Answers read from the views: liability as of an instant, breakage, fraud alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from infra.db import Database
from projections.schema import ALERTS, BALANCE, BREAKAGE, LEDGER
from projections.timefmt import fmt


def liability(db: Database, as_of: datetime, market: str | None = None) -> dict[str, Any]:
    """Outstanding balance and open cards per market: the ledger summed up to `as_of`, less the
    cards past their validity at `as_of` that the expiry sweep has not closed yet (R9). The
    sweep records `Expired` at the card's expiry, so a figure once shown never changes."""
    only = " AND market = ?" if market else ""
    params = [fmt(as_of), *([market] if market else [])]
    rows = db.execute(
        f"SELECT market, currency, SUM(delta), SUM(open_delta) FROM {LEDGER.name} "
        f"WHERE occurred_at <= ?{only} GROUP BY market, currency ORDER BY market, currency",
        params,
    )
    # Unswept: still active in the views, but expired at `as_of`; nothing can change a card's
    # balance after its expiry, so its current balance is the one it expired with.
    unswept = {
        (m, c): (int(b), int(n)) for m, c, b, n in db.execute(
            f"SELECT market, currency, SUM(balance), COUNT(*) FROM {BALANCE.name} "
            f"WHERE status = 'active' AND expires_at <= ?{only} GROUP BY market, currency",
            params,
        )
    }
    return {
        "as_of": fmt(as_of),
        "markets": [
            {"market": m, "currency": c,
             "outstanding": int(o) - unswept.get((m, c), (0, 0))[0],
             "open_cards": int(n) - unswept.get((m, c), (0, 0))[1]}
            for m, c, o, n in rows
        ],
    }


def breakage(db: Database, market: str | None = None, month: str | None = None) -> dict[str, Any]:
    where, params = _filters({"market": market, "month": month})
    rows = db.execute(
        f"SELECT market, currency, month, after_use, expired FROM {BREAKAGE.name}{where} "
        "ORDER BY month, market, currency",
        params,
    )
    return {
        "rows": [
            {"market": m, "currency": c, "month": mo, "after_use": int(a), "expired": int(e),
             "total": int(a) + int(e)}
            for m, c, mo, a, e in rows
        ]
    }


def alerts(
    db: Database, since: datetime | None = None, rule: str | None = None,
    customers: list[str] | None = None,
) -> dict[str, Any]:
    """Fraud alerts oldest first; `customers`: only those about these subjects (art. 15)."""
    clauses: list[str] = []
    params: list[Any] = []
    if customers is not None:
        clauses.append(f"customer_id IN ({', '.join('?' * len(customers)) or 'NULL'})")
        params.extend(customers)
    if since is not None:
        clauses.append("detected_at >= ?")
        params.append(fmt(since))
    if rule is not None:
        clauses.append("rule = ?")
        params.append(rule)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    cols = list(ALERTS.columns)
    rows = db.execute(
        f"SELECT {', '.join(cols)} FROM {ALERTS.name}{where} ORDER BY detected_at, alert_id",
        params,
    )
    found = []
    for values in rows:
        alert = dict(zip(cols, values, strict=True))
        alert["event_ids"] = orjson.loads(alert["event_ids"])
        found.append(alert)
    return {"alerts": found}


def _filters(given: dict[str, str | None]) -> tuple[str, list[str]]:
    used = {k: v for k, v in given.items() if v is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = ?" for k in used), list(used.values())
