"""The relay's confirmed position, kept in the store database: Kafka's never goes below it."""

from __future__ import annotations

from dataclasses import dataclass

from infra.db import Database

TABLE = """CREATE TABLE IF NOT EXISTS relay_floors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    partitions INTEGER NOT NULL,
    stopped_at_read BIGINT
)"""


@dataclass(frozen=True)
class Floor:
    """The last position whose commit the broker confirmed to a relay, the events topic's
    partition count it was published with, and the lower position read if that stopped it."""

    position: int
    partitions: int
    stopped_at_read: int | None = None


def read_floor(db: Database, name: str) -> Floor | None:
    rows = db.execute(
        "SELECT position, partitions, stopped_at_read FROM relay_floors WHERE name = ?", (name,)
    )
    if not rows:
        return None
    position, partitions, stopped = rows[0]
    return Floor(int(position), int(partitions), None if stopped is None else int(stopped))


def raise_floor(db: Database, name: str, position: int, partitions: int) -> None:
    """Record a confirmed commit; a floor only rises (relays taking turns never lower it)."""
    db.execute(
        "INSERT INTO relay_floors (name, position, partitions) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
        "partitions = excluded.partitions, stopped_at_read = NULL "
        "WHERE relay_floors.position <= excluded.position",
        (name, position, partitions),
    )


def mark_stopped(db: Database, name: str, read: int) -> None:
    """The relay stopped: Kafka's committed position `read` is below its floor (the alert)."""
    db.execute("UPDATE relay_floors SET stopped_at_read = ? WHERE name = ?", (read, name))


def stopped_relays(db: Database) -> dict[str, tuple[int, int]]:
    """Relays stopped by a position below their floor: name -> (floor, position read)."""
    rows = db.execute(
        "SELECT name, position, stopped_at_read FROM relay_floors "
        "WHERE stopped_at_read IS NOT NULL"
    )
    return {str(name): (int(floor), int(read)) for name, floor, read in rows}
