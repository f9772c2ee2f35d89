"""The PostgreSQL persistence: connections with the URL's libpq (TLS) parameters; the process
recorder: stored events sent in binary, schema created one at a time, and each card's lookup
row and the vault keys its unit of work created kept in the same transaction as its events."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import parse_qsl
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresFactory, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteProcessRecorder
from eventsourcing.utils import Environment, get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.giftcard import CardFacts
from domain.streams import CheckoutAttempts, GuessingBudget
from infra.db import LibraryPool
from infra.vault_keys import INSERT_ERASED_KEY, INSERT_FIELD_KEY, INSERT_SUBJECT_KEY
from infra.vault_session import NewKeys

# Any constant shared by every process of the service: the key of the schema-creation lock.
SCHEMA_LOCK = 0x67696674  # "gift"
_INSERT_SUBJECT_KEY = INSERT_SUBJECT_KEY.replace("?", "%s")
_INSERT_FIELD_KEY = INSERT_FIELD_KEY.replace("?", "%s")
_INSERT_ERASED_KEY = INSERT_ERASED_KEY.replace("?", "%s")
FACTS_MAC_DOMAIN = b"giftcards-card-facts-v1\n"


def facts_mac(key: bytes, facts: CardFacts, version: int) -> str:
    """HMAC-SHA256 under the chain key of a lookup row's facts at `version`: a row edited by
    hand (without the key) no longer matches, and is not used."""
    def instant(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(UTC).isoformat()

    card_id = facts.card_id if type(facts.card_id) is UUID else UUID(str(facts.card_id))
    text = "\n".join([str(card_id), str(version), facts.status,
                      str(facts.balance), facts.currency, facts.market,
                      instant(facts.expires_at), instant(facts.held_until), facts.code_last4])
    return hmac.new(key, FACTS_MAC_DOMAIN + text.encode(), hashlib.sha256).hexdigest()


def facts_row_sound(key: bytes | None, facts: CardFacts, version: int, mac: str | None) -> bool:
    """Whether a lookup row is what the application wrote (no key: not checked)."""
    return key is None or (mac is not None and hmac.compare_digest(
        mac, facts_mac(key, facts, version)))


class PostgresFactoryWithOptions(PostgresFactory):
    """The library's PostgreSQL persistence, with the database URL's libpq parameters
    (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, …) on every connection of its pool: the
    library builds connections from host, port, user and password only, so without this the
    event store would connect without the TLS the URL asks for.

    Given SHARED_POOL_URL, its datastore draws from the process's one pool for that URL
    (infra.db.shared_pool, which connects with the whole URL) instead of a pool of its own:
    the process's connection budget holds for the event store too."""

    OPTIONS = "POSTGRES_CONNECTION_OPTIONS"
    SHARED_POOL_URL = "SHARED_POOL_URL"
    SHARED_POOL_SIZE = "SHARED_POOL_SIZE"

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        url = self.env.get(self.SHARED_POOL_URL)
        if url:
            size = self.env.get(self.SHARED_POOL_SIZE)
            # Never opened, so it holds no connection; the library calls what LibraryPool has.
            wait = float(self.env.get(self.POSTGRES_CONNECT_TIMEOUT) or 1.0)
            self.datastore.pool = cast(Any, LibraryPool(url, int(size) if size else None, wait))
            return
        options = dict(parse_qsl(self.env.get(self.OPTIONS) or "", strict_parsing=False))
        # The pool opens on first use (after this): every connection it makes has them.
        cast(dict[str, Any], self.datastore.pool.kwargs).update(options)


class CreatedOnceAmongMany:
    """Tables created by whichever process starting on a fresh store comes first.

    The library looks for its tracking table, then creates the tables and records its
    migration row in a second step: a process that looked before another created them records
    that row a second time and fails (IntegrityError). Looking again then finds the tables.
    A process starting while others write can also be chosen as a deadlock's victim (its
    `ALTER TABLE … IF NOT EXISTS` against their insert locks): PostgreSQL rolled it back, so
    it starts again."""

    def create_table(self) -> None:
        for attempt in range(CREATE_ATTEMPTS):
            try:
                super().create_table()  # type: ignore[misc]
                return
            except IntegrityError:
                super().create_table()  # type: ignore[misc]
                return
            except OperationalError as error:
                if not _deadlock(error) or attempt == CREATE_ATTEMPTS - 1:
                    raise


CREATE_ATTEMPTS = 5


def _deadlock(error: BaseException) -> bool:
    cause = error.__cause__
    return isinstance(cause, psycopg.Error) and cause.sqlstate == "40P01"


class BinaryPostgresProcessRecorder(CreatedOnceAmongMany, PostgresProcessRecorder):
    """The library's recorder, but the array of stored events is dumped in binary (`%b`).

    In text form psycopg escapes every field of every composite value in Python (regular
    expressions over the JSON state): about a tenth of the checkout consumer's CPU, profiled.
    The binary form costs a fifth of that per event. The SQL and its semantics are otherwise
    the library's own."""

    # The chain key (set by the composition root): each lookup row carries its facts' MAC.
    facts_key: bytes | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.insert_events_statement = _binary(self.insert_events_statement)
        names = {
            "schema": Identifier(self.datastore.schema),
            "events": Identifier(self.events_table_name),
            "facts": Identifier(f"{self.events_table_name}_card_facts"),
        }
        # One row per card: what a lookup shows, as of `version`. Only a cache of the
        # events: a row older than its card's last event is not used (see card_facts_query).
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{facts} ("
            "card_id uuid PRIMARY KEY, code_index uuid UNIQUE, version bigint NOT NULL, "
            "status text NOT NULL, balance bigint NOT NULL, currency text NOT NULL, "
            "market text NOT NULL, expires_at timestamptz NOT NULL, held_until timestamptz, "
            "code_last4 text NOT NULL)"
        ).format(**names))
        # Rows written before the MAC existed have none: not used, read in full until rewritten.
        self.sql_create_statements.append(SQL(
            "ALTER TABLE {schema}.{facts} ADD COLUMN IF NOT EXISTS mac text"
        ).format(**names))
        self.upsert_facts_statement = SQL(
            "INSERT INTO {schema}.{facts} AS f (card_id, code_index, version, status, balance, "
            "currency, market, expires_at, held_until, code_last4, mac) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (card_id) DO UPDATE SET "
            "code_index = COALESCE(EXCLUDED.code_index, f.code_index), "
            "version = EXCLUDED.version, status = EXCLUDED.status, balance = EXCLUDED.balance, "
            "currency = EXCLUDED.currency, market = EXCLUDED.market, "
            "expires_at = EXCLUDED.expires_at, held_until = EXCLUDED.held_until, "
            "code_last4 = EXCLUDED.code_last4, mac = EXCLUDED.mac"
        ).format(**names)
        self.facts_row_query = SQL(
            "SELECT version, status, balance, currency, market, expires_at, held_until, "
            "code_last4, mac FROM {schema}.{facts} WHERE card_id = %s"
        ).format(**names)
        # Lookups' one round trip, for many at once: the row of each code's card, whether an
        # event came after it (then the row is not used), and the counts of R8's windows (the
        # subject's, the source's own, the source's budget).
        self.card_facts_query = SQL(
            "SELECT q.i, f.card_id, f.status, f.balance, f.currency, f.market, f.expires_at, "
            "f.held_until, f.code_last4, f.version, f.mac, "
            "EXISTS (SELECT 1 FROM {schema}.{events} e WHERE e.originator_id = f.card_id "
            "AND e.originator_version > f.version) AS stale, "
            "(SELECT count(*) FROM {schema}.{events} w WHERE w.originator_id = q.window_id "
            "AND w.topic = %(unknown)s) AS unknown_codes, "
            "(SELECT count(*) FROM {schema}.{events} w WHERE w.originator_id = q.source_id "
            "AND w.topic = %(unknown)s) AS source_unknown_codes, "
            "(SELECT count(*) FROM {schema}.{events} w WHERE w.originator_id = q.budget_id "
            "AND w.topic = %(missed)s) AS budget_misses "
            "FROM unnest(%(codes)b::uuid[], %(windows)b::uuid[], %(sources)b::uuid[], "
            "%(budgets)b::uuid[]) WITH ORDINALITY "
            "AS q(code_index, window_id, source_id, budget_id, i) "
            # One probe of the code's unique index per lookup, whatever the table's statistics
            # say: the planner, left to choose, scanned the whole table (a fresh one has none).
            "JOIN LATERAL (SELECT * FROM {schema}.{facts} c WHERE c.code_index = q.code_index "
            "LIMIT 1) f ON true"
        ).format(**names)
        self.unknown_code_topic = get_topic(CheckoutAttempts.UnknownCodeTried)
        self.miss_counted_topic = get_topic(GuessingBudget.MissCounted)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        keys: NewKeys | None = kwargs.get("vault_keys")
        if keys:
            # With the events that use them: a card is never committed without the key of its
            # sealed code, nor that key without its card (see infra.vault_session.KeySession).
            keys.settle(lambda sql, params: _rows(curs, sql, params), postgres=True)
            if keys.erased_keys:
                curs.executemany(_INSERT_ERASED_KEY, keys.erased_keys)
            if keys.subject_keys:
                curs.executemany(_INSERT_SUBJECT_KEY, keys.subject_keys)
            if keys.field_keys:
                curs.executemany(_INSERT_FIELD_KEY, keys.field_keys)
        rows: list[tuple[CardFacts, int, Any]] = kwargs.get("card_facts") or []
        if rows:
            # In card order: two batches changing the same cards lock their rows in the same
            # order, so they wait for each other instead of risking a deadlock.
            curs.executemany(self.upsert_facts_statement, [
                (f.card_id, code_index, version, f.status, f.balance, f.currency, f.market,
                 f.expires_at, f.held_until, f.code_last4,
                 facts_mac(self.facts_key, f, version) if self.facts_key else None)
                for f, version, code_index in sorted(rows, key=lambda row: row[0].card_id)
            ])

    def facts_row(self, card_id: UUID) -> tuple[CardFacts, int, str | None] | None:
        """A card's lookup row as stored: (facts, version, MAC), or None."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.facts_row_query, (card_id,))
            row = curs.fetchone()
        if row is None:
            return None
        facts = CardFacts(card_id=card_id, status=row["status"], balance=row["balance"],
                          currency=row["currency"], market=row["market"],
                          expires_at=row["expires_at"], held_until=row["held_until"],
                          code_last4=row["code_last4"])
        return facts, int(row["version"]), row["mac"]

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # The library's schema statements include CREATE OR REPLACE FUNCTION, which fails with
        # "tuple concurrently updated" when two processes (or `serve`'s loops) start at once:
        # one at a time, under a lock released with the transaction.
        curs.execute(SQL("SELECT pg_advisory_xact_lock(%s)"), (SCHEMA_LOCK,), prepare=False)
        super()._create_table(curs)


class KeysSQLiteProcessRecorder(CreatedOnceAmongMany, SQLiteProcessRecorder):
    """The library's SQLite recorder, committing the vault keys a unit of work created (their
    tables are in the same file) in its events' transaction, as the PostgreSQL one does: a card
    and the key of its sealed code are committed together or not at all."""

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        returning = super()._insert_events(c, stored_events, **kwargs)
        keys: NewKeys | None = kwargs.get("vault_keys")
        if keys:
            # After the events' insert: the file's write lock is held, so no erasure runs
            # between settling and the commit.
            keys.settle(lambda sql, params: _sqlite_rows(c, sql, params), postgres=False)
            for statement, rows in ((INSERT_ERASED_KEY, keys.erased_keys),
                                    (INSERT_SUBJECT_KEY, keys.subject_keys),
                                    (INSERT_FIELD_KEY, keys.field_keys)):
                if rows:
                    c.executemany(statement, rows)
        return returning


def _sqlite_rows(c: SQLiteCursor, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    c.execute(sql, tuple(params))
    return [tuple(row) for row in c.fetchall()]


def _rows(curs: Cursor[DictRow], sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """A vault query (`?` placeholders) run in the recorder's transaction."""
    curs.execute(sql.replace("?", "%s"), tuple(params), prepare=False)
    # Fetched whatever `description` says: in pipeline mode it is set only once fetched.
    return [tuple(row.values()) for row in curs.fetchall()]


def _binary(statement: Composed) -> Composed:
    """The same statement with its one `%s` placeholder (the events array) as `%b`."""
    parts: list[Any] = []
    for part in statement:
        if isinstance(part, Composed):
            part = _binary(part)
        elif isinstance(part, SQL) and "%s" in part.as_string():
            part = SQL(part.as_string().replace("%s", "%b"))
        parts.append(part)
    binary = Composed(parts)
    assert binary.as_string().count("%b") == 1, "the library's insert statement changed"
    return binary
