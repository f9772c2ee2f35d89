"""The view tables: their columns, keys and indexes, created and dropped on either backend."""

from __future__ import annotations

from dataclasses import dataclass

from infra.db import Database


@dataclass(frozen=True)
class Table:
    """A view table; `json` columns hold lists/dicts, encoded on the way to the database."""

    name: str
    key: tuple[str, ...]
    columns: dict[str, str]
    json: frozenset[str] = frozenset()
    indexes: tuple[tuple[str, ...], ...] = ()
    # One row per event, never rewritten (the stream version check admits each event once):
    # written with plain inserts, and a second write of a key fails loudly.
    append_only: bool = False

    def ddl(self) -> list[str]:
        cols = ", ".join(f"{name} {kind}" for name, kind in self.columns.items())
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.name} ({cols}, PRIMARY KEY ({', '.join(self.key)}))"
        ]
        for index in self.indexes:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {self.name}_{'_'.join(index)} "
                f"ON {self.name} ({', '.join(index)})"
            )
        return statements


T, N = "TEXT", "BIGINT"

BALANCE = Table(
    "view_balance",
    ("card_id",),
    {
        "card_id": T, "status": T, "market": T, "currency": T, "amount": N, "balance": N,
        "purchased_at": T, "expires_at": T, "buyer": T, "redeemed_by": T, "replaces": T,
        "replaced_by": T, "refused_attempts": N, "last_version": N, "purchase_event_id": T,
    },
    json=frozenset({"replaced_by"}),
)
# Per stream: the last version applied (idempotency) and the head of its audit hash chain.
STREAMS = Table("view_streams", ("stream_id",), {"stream_id": T, "version": N, "head": T})
LEDGER = Table(
    "view_ledger",
    ("card_id", "version"),
    {
        "card_id": T, "version": N, "market": T, "currency": T, "occurred_at": T,
        "delta": N, "open_delta": N,
    },
    indexes=(("occurred_at",),),
    append_only=True,
)
BREAKAGE = Table(
    "view_breakage",
    ("market", "currency", "month"),
    {"market": T, "currency": T, "month": T, "after_use": N, "expired": N},
)
AUDIT = Table(
    "view_audit",
    ("card_id", "version"),
    {
        "card_id": T, "version": N, "event_id": T, "event_type": T, "occurred_at": T,
        "actor": T, "correlation_id": T, "terms_version": T, "hash": T, "prev_hash": T,
    },
    append_only=True,
)
ALERTS = Table(
    "view_fraud_alerts",
    ("alert_id",),
    {
        "alert_id": T, "rule": T, "severity": T, "card_id": T, "customer_id": T,
        "event_ids": T, "detected_at": T, "explanation": T, "legal_basis": T,
    },
    json=frozenset({"event_ids"}),
    indexes=(("detected_at",), ("customer_id",)),
)
# Working state of the windowed and chained fraud rules, one JSON document per key.
FRAUD_STATE = Table("view_fraud_state", ("state_key",), {"state_key": T, "data": T},
                    json=frozenset({"data"}))
SUBJECTS = Table("view_subjects", ("subject_id",),
                 {"subject_id": T, "erased_at": T, "objected_at": T})

# The advisory lock (PostgreSQL) taken by every writer of the views.
PG_LOCK = 7_402_104

VIEWS = (BALANCE, STREAMS, LEDGER, BREAKAGE, AUDIT, ALERTS, FRAUD_STATE, SUBJECTS)
VIEW_NAMES = ("balance", "liability", "breakage", "fraud", "audit")

POSITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS view_positions "
    "(source TEXT, part BIGINT, pos BIGINT, PRIMARY KEY (source, part))"
)
# Messages that could not be read as envelopes: kept with the reason, never retried forever.
REJECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS view_rejects "
    "(source TEXT, part BIGINT, pos BIGINT, reason TEXT, PRIMARY KEY (source, part, pos))"
)


def create(db: Database) -> None:
    with db.tx():
        for table in VIEWS:
            for statement in table.ddl():
                db.execute(statement)
        db.execute(POSITIONS_DDL)
        db.execute(REJECTS_DDL)


def drop(db: Database) -> None:
    with db.tx():
        for name in [t.name for t in VIEWS] + ["view_positions", "view_rejects"]:
            db.execute(f"DROP TABLE IF EXISTS {name}")


def missing(db: Database) -> list[str]:
    """The views not created yet in `db` (a projector creates them when it starts)."""
    if db.is_postgres:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    else:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    present = {r[0] for r in rows}
    return [t.name for t in VIEWS if t.name not in present]


def dump(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every view row, ordered by key: what the determinism checks compare."""
    return {
        t.name: db.execute(f"SELECT * FROM {t.name} ORDER BY {', '.join(t.key)}") for t in VIEWS
    }
