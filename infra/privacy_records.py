"""The rights' records in SQL beside the store: register, outcomes, access log, corrections."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from application.ports import AccessEntry, RequestRow
from infra.db import Database

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS gdpr_requests (
        request_id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, type TEXT NOT NULL,
        received_on TEXT NOT NULL, due_on TEXT NOT NULL, extension_months INTEGER NOT NULL,
        extension_reason TEXT, status TEXT NOT NULL, opened_at TEXT NOT NULL, closed_on TEXT)""",
    "CREATE INDEX IF NOT EXISTS gdpr_requests_due ON gdpr_requests (status, due_on)",
    """CREATE TABLE IF NOT EXISTS pii_access_log (
        at TEXT NOT NULL, seq INTEGER NOT NULL, operator TEXT NOT NULL, subject_id TEXT NOT NULL,
        field TEXT NOT NULL, purpose TEXT NOT NULL, command TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS pii_access_log_subject ON pii_access_log (subject_id, at)",
    # Accountability: who acted on a request, when, and the outcome. `salt` makes the request
    # reference published per subject unlinkable across subjects of one request.
    """CREATE TABLE IF NOT EXISTS gdpr_request_outcomes (
        request_id TEXT PRIMARY KEY, salt TEXT NOT NULL, operator TEXT,
        outcome TEXT, closed_at TEXT)""",
    # Art. 16: the corrected value, sealed under the subject's key; a later correction
    # overwrites it (secure_delete on SQLite), an erasure destroys the key and the row.
    """CREATE TABLE IF NOT EXISTS gdpr_rectifications (
        subject_id TEXT NOT NULL, field TEXT NOT NULL, token TEXT NOT NULL,
        rectified_at TEXT NOT NULL, PRIMARY KEY (subject_id, field))""",
    # A recipient's id is a keyed hash of their e-mail: a rectified e-mail hashes to another
    # id, so the rectification records that id as an alias of the subject (never the e-mail).
    """CREATE TABLE IF NOT EXISTS gdpr_subject_aliases (
        alias TEXT PRIMARY KEY, subject_id TEXT NOT NULL, recorded_at TEXT NOT NULL)""",
    # The pseudonyms of addresses a rectification replaced: they still find the person for an
    # erasure or an export (art. 15, 17), never for a lookup or a delivery; `retired_at`
    # separates the cards received there before (theirs) from later gifts (someone else's).
    """CREATE TABLE IF NOT EXISTS gdpr_former_identifiers (
        alias TEXT PRIMARY KEY, subject_id TEXT NOT NULL, retired_at TEXT NOT NULL)""",
]
REQUEST_COLUMNS = (
    "request_id", "subject_id", "type", "received_on", "due_on", "extension_months",
    "extension_reason", "status", "opened_at", "closed_on",
)
SELECT_REQUESTS = f"SELECT {', '.join(REQUEST_COLUMNS)} FROM gdpr_requests "
ACCESS_COLUMNS = ("at", "operator", "subject_id", "field", "purpose", "command")


class SqlPrivacyRecords:
    """The application's PrivacyRecords port on the service's SQL database (SQLite or
    PostgreSQL); the tables are created at first use by this process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._created = False

    def create(self) -> None:
        if not self._created:
            for statement in SCHEMA:
                self.db.execute(statement)
            self._created = True

    # --- access log (R21) -------------------------------------------------------------

    def log_access(self, rows: Sequence[AccessEntry]) -> None:
        with self.db.tx():
            self.db.executemany(
                "INSERT INTO pii_access_log (at, seq, operator, subject_id, field, purpose, "
                "command) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def access_log(self, subject_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not subject_ids:
            return []
        marks = ", ".join("?" * len(subject_ids))
        rows = self.db.execute(
            f"SELECT {', '.join(ACCESS_COLUMNS)} FROM pii_access_log "
            f"WHERE subject_id IN ({marks}) ORDER BY at, seq",
            tuple(subject_ids),
        )
        return [dict(zip(ACCESS_COLUMNS, row, strict=True)) for row in rows]

    # --- corrections and the identifiers a person has had (art. 16) ----------------------

    def rectified_token(self, subject_id: str, field: str) -> str | None:
        rows = self.db.execute(
            "SELECT token FROM gdpr_rectifications WHERE subject_id = ? AND field = ?",
            (subject_id, field),
        )
        return str(rows[0][0]) if rows else None

    def rectifications(self, subject_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not subject_ids:
            return []
        marks = ", ".join("?" * len(subject_ids))
        rows = self.db.execute(
            "SELECT subject_id, field, rectified_at FROM gdpr_rectifications "
            f"WHERE subject_id IN ({marks}) ORDER BY rectified_at",
            tuple(subject_ids),
        )
        return [dict(zip(("subject_id", "field", "rectified_at"), r, strict=True)) for r in rows]

    def record_rectification(
        self, subject_id: str, field: str, token: str, at: str,
        retired: Iterable[str], alias: str | None,
    ) -> None:
        with self.db.tx():
            self.db.execute(
                "DELETE FROM gdpr_rectifications WHERE subject_id = ? AND field = ?",
                (subject_id, field),
            )
            self.db.execute(
                "INSERT INTO gdpr_rectifications (subject_id, field, token, rectified_at) "
                "VALUES (?, ?, ?, ?)",
                (subject_id, field, token, at),
            )
            for old in sorted(retired):
                self.db.execute("DELETE FROM gdpr_subject_aliases WHERE alias = ?", (old,))
                self.db.execute(
                    "INSERT INTO gdpr_former_identifiers (alias, subject_id, retired_at) "
                    "VALUES (?, ?, ?) ON CONFLICT (alias) DO UPDATE SET "
                    "subject_id = excluded.subject_id, retired_at = excluded.retired_at",
                    (old, subject_id, at),
                )
            if alias is not None:  # an address given back is current again
                self.db.execute("DELETE FROM gdpr_former_identifiers WHERE alias = ?", (alias,))
            if alias not in (None, subject_id):
                self.db.execute(
                    "INSERT INTO gdpr_subject_aliases (alias, subject_id, recorded_at) "
                    "VALUES (?, ?, ?) ON CONFLICT (alias) DO UPDATE SET "
                    "subject_id = excluded.subject_id, recorded_at = excluded.recorded_at",
                    (alias, subject_id, at),
                )

    def forget_subject(self, subject_id: str) -> None:
        with self.db.tx():
            for table in ("gdpr_rectifications", "gdpr_subject_aliases",
                          "gdpr_former_identifiers"):
                self.db.execute(f"DELETE FROM {table} WHERE subject_id = ?", (subject_id,))

    def retired_at(self, alias: str) -> str | None:
        rows = self.db.execute(
            "SELECT retired_at FROM gdpr_former_identifiers WHERE alias = ?", (alias,))
        return str(rows[0][0]) if rows else None

    def former_identifiers(self, subject_id: str) -> set[str]:
        rows = self.db.execute(
            "SELECT alias FROM gdpr_former_identifiers WHERE subject_id = ?", (subject_id,))
        return {str(r[0]) for r in rows}

    def current_owner(self, alias: str) -> str | None:
        rows = self.db.execute(
            "SELECT subject_id FROM gdpr_subject_aliases WHERE alias = ?", (alias,))
        return str(rows[0][0]) if rows else None

    def person_of(self, identifier: str) -> str:
        rows = self.db.execute(
            "SELECT subject_id FROM gdpr_subject_aliases WHERE alias = ? UNION ALL "
            "SELECT subject_id FROM gdpr_former_identifiers WHERE alias = ?",
            (identifier, identifier),
        )
        return str(rows[0][0]) if rows else identifier

    def identifiers_of(self, person: str) -> list[str]:
        rows = self.db.execute(
            "SELECT alias FROM gdpr_subject_aliases WHERE subject_id = ? UNION ALL "
            "SELECT alias FROM gdpr_former_identifiers WHERE subject_id = ? ORDER BY 1",
            (person, person),
        )
        return [str(r[0]) for r in rows]

    # --- the request register (P1) and its outcomes --------------------------------------

    def add_request(self, row: RequestRow) -> None:
        marks = ", ".join("?" * len(REQUEST_COLUMNS))
        self.db.execute(
            f"INSERT INTO gdpr_requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({marks})",
            tuple(row[c] for c in REQUEST_COLUMNS),
        )

    def request(self, request_id: str) -> RequestRow | None:
        rows = self._requests("WHERE request_id = ?", (request_id,))
        return rows[0] if rows else None

    def requests_of(self, subject_id: str) -> list[RequestRow]:
        return self._requests("WHERE subject_id = ? ORDER BY received_on", (subject_id,))

    def all_requests(self) -> list[RequestRow]:
        return self._requests("ORDER BY received_on, request_id", ())

    def open_requests_due(self, *, before: str | None = None,
                          by: str | None = None) -> list[RequestRow]:
        """Open requests due before a day (late), or on or before it (ISO dates compare as
        text)."""
        if before is not None:
            return self._requests(
                "WHERE status = 'open' AND due_on < ? ORDER BY due_on", (before,))
        return self._requests(
            "WHERE status = 'open' AND due_on <= ? ORDER BY due_on, request_id", (by,))

    def due_counts(self, *, late_before: str, due_by: str) -> tuple[int, int]:
        rows = self.db.execute(
            "SELECT sum(CASE WHEN due_on < ? THEN 1 ELSE 0 END), count(*) FROM gdpr_requests "
            "WHERE status = 'open' AND due_on <= ?",
            (late_before, due_by),
        )
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    def extend_request(self, request_id: str, months: int, reason: str, due_on: str) -> None:
        self.db.execute(
            "UPDATE gdpr_requests SET extension_months = ?, extension_reason = ?, due_on = ? "
            "WHERE request_id = ?",
            (months, reason, due_on, request_id),
        )

    def salt(self, request_id: str, fresh: str) -> str:
        """The request's salt, `fresh` if it has none yet (its outcome row is made then)."""
        self.db.execute(
            "INSERT INTO gdpr_request_outcomes (request_id, salt) VALUES (?, ?) "
            "ON CONFLICT (request_id) DO NOTHING",
            (request_id, fresh),
        )
        return str(self.db.execute(
            "SELECT salt FROM gdpr_request_outcomes WHERE request_id = ?", (request_id,)
        )[0][0])

    def outcome(self, request_id: str) -> tuple[str, str, str] | None:
        """(operator, outcome as JSON, closed at) of a request acted on, else None."""
        rows = self.db.execute(
            "SELECT operator, outcome, closed_at FROM gdpr_request_outcomes "
            "WHERE request_id = ? AND outcome IS NOT NULL", (request_id,),
        )
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def close_request(self, request_id: str, operator: str, outcome: str, closed_at: str,
                      closed_on: str) -> None:
        with self.db.tx():
            self.db.execute(
                "UPDATE gdpr_request_outcomes SET operator = ?, outcome = ?, closed_at = ? "
                "WHERE request_id = ?",
                (operator, outcome, closed_at, request_id),
            )
            self.db.execute(
                "UPDATE gdpr_requests SET status = 'closed', closed_on = ? "
                "WHERE request_id = ? AND status = 'open'",
                (closed_on, request_id),
            )

    # --- end dates ----------------------------------------------------------------------

    def purge(self, *, logged_before: str, closed_before: str) -> tuple[int, int]:
        """Deletes access-log entries logged before a time and requests (with outcomes)
        closed before a day; returns how many of each."""
        with self.db.tx():
            old_log = self.db.execute(
                "SELECT count(*) FROM pii_access_log WHERE at < ?", (logged_before,))[0][0]
            self.db.execute("DELETE FROM pii_access_log WHERE at < ?", (logged_before,))
            ended = [r[0] for r in self.db.execute(
                "SELECT request_id FROM gdpr_requests WHERE status = 'closed' "
                "AND closed_on < ?", (closed_before,))]
            for request_id in ended:
                self.db.execute(
                    "DELETE FROM gdpr_request_outcomes WHERE request_id = ?", (request_id,))
                self.db.execute("DELETE FROM gdpr_requests WHERE request_id = ?", (request_id,))
        return int(old_log), len(ended)

    def _requests(self, where: str, params: tuple[Any, ...]) -> list[RequestRow]:
        rows = self.db.execute(SELECT_REQUESTS + where, params)
        return [dict(zip(REQUEST_COLUMNS, r, strict=True)) for r in rows]
