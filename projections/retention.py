"""Fraud-data retention: alerts and window state about customers dropped past their period."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from infra.db import Database
from projections.batch import Batch
from projections.schema import ALERTS, FRAUD_STATE, PG_LOCK
from projections.timefmt import fmt

# The FRAUD_STATE row holding the purge horizon: nothing detected before it is written again
# (an event arriving late, from another partition, must not bring a purged alert back).
HORIZON = "retention|fraud"
WINDOWED = ("F1|", "F2|")  # state keys ending with their window's start


def purged(b: Batch, at: str) -> bool:
    """True if `at` lies before the purge horizon: its fraud data was already dropped."""
    horizon = b.get(FRAUD_STATE, HORIZON)
    return horizon is not None and at < horizon["data"]


def horizon(db: Database) -> str | None:
    """The purge horizon recorded in the views, if a purge ran."""
    row = Batch(db).get(FRAUD_STATE, HORIZON)
    return None if row is None else str(row["data"])


def keep_horizon(db: Database, at: str) -> None:
    """Writes the horizon back (after a rebuild dropped the views): P2 bookkeeping, not a view
    of any event, so no replay could recompute it."""
    b = Batch(db)
    b.put(FRAUD_STATE, {"state_key": HORIZON, "data": at})
    b.flush()


def purge_fraud_data(db: Database, cutoff: datetime) -> dict[str, Any]:
    """Drops alerts detected, and window state started, before `cutoff` (GIFTCARDS_RETENTION_
    FRAUD_YEARS before now), under the projector's lock so no batch writes them back."""
    horizon = fmt(cutoff)
    with db.tx():
        if db.is_postgres:
            db.execute("SELECT pg_advisory_xact_lock(?)", [PG_LOCK])
        alerts = db.execute(
            f"SELECT count(*) FROM {ALERTS.name} WHERE detected_at < ?", [horizon]
        )[0][0]
        db.execute(f"DELETE FROM {ALERTS.name} WHERE detected_at < ?", [horizon])
        keys = [k for (k,) in db.execute(f"SELECT state_key FROM {FRAUD_STATE.name}")]
        old = [k for k in keys if k.startswith(WINDOWED) and k.rsplit("|", 1)[1] < horizon]
        b = Batch(db)
        for key in old:
            b.delete(FRAUD_STATE, key)
        previous = b.get(FRAUD_STATE, HORIZON)
        if previous is None or previous["data"] < horizon:
            b.put(FRAUD_STATE, {"state_key": HORIZON, "data": horizon})
        b.flush()
    return {"cutoff": horizon, "alerts_dropped": int(alerts), "window_states_dropped": len(old)}
