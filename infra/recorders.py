"""The PostgreSQL persistence: connections with the URL's libpq (TLS) parameters; the process
recorder: stored events sent in binary, schema created one at a time,
and each card's lookup row kept in the same transaction as its events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qsl

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresFactory, PostgresProcessRecorder
from eventsourcing.utils import Environment, get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.giftcard import CardFacts
from domain.streams import CheckoutAttempts

# Any constant shared by every process of the service: the key of the schema-creation lock.
SCHEMA_LOCK = 0x67696674  # "gift"


class PostgresFactoryWithOptions(PostgresFactory):
    """The library's PostgreSQL persistence, with the database URL's libpq parameters
    (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, …) on every connection of its pool: the
    library builds connections from host, port, user and password only, so without this the
    event store would connect without the TLS the URL asks for."""

    OPTIONS = "POSTGRES_CONNECTION_OPTIONS"

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        options = dict(parse_qsl(self.env.get(self.OPTIONS) or "", strict_parsing=False))
        # The pool opens on first use (after this): every connection it makes has them.
        cast(dict[str, Any], self.datastore.pool.kwargs).update(options)


class BinaryPostgresProcessRecorder(PostgresProcessRecorder):
    """The library's recorder, but the array of stored events is dumped in binary (`%b`).

    In text form psycopg escapes every field of every composite value in Python (regular
    expressions over the JSON state): about a tenth of the checkout consumer's CPU, profiled.
    The binary form costs a fifth of that per event. The SQL and its semantics are otherwise
    the library's own."""

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
        self.upsert_facts_statement = SQL(
            "INSERT INTO {schema}.{facts} AS f (card_id, code_index, version, status, balance, "
            "currency, market, expires_at, held_until, code_last4) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (card_id) DO UPDATE SET "
            "code_index = COALESCE(EXCLUDED.code_index, f.code_index), "
            "version = EXCLUDED.version, status = EXCLUDED.status, balance = EXCLUDED.balance, "
            "currency = EXCLUDED.currency, market = EXCLUDED.market, "
            "expires_at = EXCLUDED.expires_at, held_until = EXCLUDED.held_until, "
            "code_last4 = EXCLUDED.code_last4"
        ).format(**names)
        # Lookups' one round trip, for many at once: the row of each code's card, whether an
        # event came after it (then the row is not used), and the unknown codes in the
        # subject's R8 window.
        self.card_facts_query = SQL(
            "SELECT q.i, f.card_id, f.status, f.balance, f.currency, f.market, f.expires_at, "
            "f.held_until, f.code_last4, "
            "EXISTS (SELECT 1 FROM {schema}.{events} e WHERE e.originator_id = f.card_id "
            "AND e.originator_version > f.version) AS stale, "
            "(SELECT count(*) FROM {schema}.{events} w WHERE w.originator_id = q.window_id "
            "AND w.topic = %(unknown)s) AS unknown_codes "
            "FROM unnest(%(codes)s::uuid[], %(windows)s::uuid[]) WITH ORDINALITY "
            "AS q(code_index, window_id, i) "
            "JOIN {schema}.{facts} f ON f.code_index = q.code_index"
        ).format(**names)
        self.unknown_code_topic = get_topic(CheckoutAttempts.UnknownCodeTried)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        rows: list[tuple[CardFacts, int, Any]] = kwargs.get("card_facts") or []
        if rows:
            # In card order: two batches changing the same cards lock their rows in the same
            # order, so they wait for each other instead of risking a deadlock.
            curs.executemany(self.upsert_facts_statement, [
                (f.card_id, code_index, version, f.status, f.balance, f.currency, f.market,
                 f.expires_at, f.held_until, f.code_last4)
                for f, version, code_index in sorted(rows, key=lambda row: row[0].card_id)
            ])

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # The library's schema statements include CREATE OR REPLACE FUNCTION, which fails with
        # "tuple concurrently updated" when two processes (or `serve`'s loops) start at once:
        # one at a time, under a lock released with the transaction.
        curs.execute(SQL("SELECT pg_advisory_xact_lock(%s)"), (SCHEMA_LOCK,), prepare=False)
        super()._create_table(curs)


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
