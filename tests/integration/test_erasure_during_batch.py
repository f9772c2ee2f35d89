"""P2: a subject erased while a unit of work creates their first vault key keeps no live key.

The unit reads the subject's keys (none), the erasure runs to its end, then the unit commits:
the key it created must be committed already destroyed, so what it sealed is unreadable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from application.privacy import Privacy
from application.privacy_reads import PiiReader
from infra.bootstrap import Service
from infra.recorders import _rows
from infra.vault_keys import ERASED, INSERT_SUBJECT_KEY
from infra.vault_session import KeySession
from tests.store_ids import store_id
from tests.unit.test_gdpr_privacy import act, buy, register_operator

ZED_EMAIL, ZED_NAME = "zed.window@example.org", "Zed Fenetre"
WAIT_S = 20.0


def erase_between_read_and_commit(service: Service, erase: Callable[[], Any]) -> None:
    """The barrier: the next unit of work that creates keys runs `erase` after it read the
    subjects' keys and before it writes its own (once)."""
    vault = service.vault
    make_session = vault.session
    fired: list[bool] = []

    def session() -> KeySession:
        made = make_session()
        commit_keys = made.before_commit

        def before_commit() -> dict[str, Any]:
            if made.new and not fired:
                fired.append(True)
                erase()
            return commit_keys()

        made.before_commit = before_commit  # type: ignore[method-assign]
        return made

    vault.session = session  # type: ignore[method-assign]


def test_p2_subject_erased_while_their_first_key_is_being_created_keeps_no_live_key(
    service: Service,
) -> None:
    register_operator(service)
    privacy = Privacy(service)
    privacy.open_request("cust-zed", "erasure", privacy.today(), "req-zed-window")
    zed: list[str | None] = []  # the store id the unit in flight was given
    erase_between_read_and_commit(service, lambda: (
        zed.append(service.vault.resolve_store_id("cust-zed")),
        act(service, "erase", ["cust-zed"], "req-zed-window")))

    card = buy(service.app, "o-zed-1", "cust-zed", buyer_email=ZED_EMAIL, buyer_name=ZED_NAME)

    (subject,) = zed
    assert subject is not None and subject not in service.vault.live_subjects()
    reader = PiiReader(service, "agent-7", "access request", "test")
    assert privacy.export(["cust-zed"], reader)["cards_bought"] == []  # no longer leads there
    exported = privacy.export([subject], reader)
    bought = exported["cards_bought"]
    assert [c["card_id"] for c in bought] == [str(card.card_id)]
    assert bought[0]["buyer_email"] == ERASED
    assert bought[0]["buyer_name"] == ERASED
    # The card itself, its money and its code's own key, are untouched (P2 keeps accounts).
    assert service.app.show(card.card_id).status == "active"


def test_p2_a_subject_erased_before_a_later_purchase_gets_a_readable_new_key(
    service: Service,
) -> None:
    """The erased window is the unit in flight only: a purchase begun after the erasure
    seals under a new live key (the person came back)."""
    buy(service.app, "o-zed-0", "cust-zed", buyer_email=ZED_EMAIL)
    before = store_id(service, "cust-zed")
    act(service, "erase", ["cust-zed"], "req-zed-before")

    buy(service.app, "o-zed-2", "cust-zed", buyer_email=ZED_EMAIL, buyer_name=ZED_NAME)

    # A new person to the store: a new store id, its key live.
    now = store_id(service, "cust-zed")
    assert now != before and now in service.vault.live_subjects()
    reader = PiiReader(service, "agent-7", "access request", "test")
    exported = Privacy(service).export(["cust-zed"], reader)
    assert [c["buyer_email"] for c in exported["cards_bought"]] == [ZED_EMAIL]
    earlier = Privacy(service).export([before], reader)["cards_bought"]
    assert [c["buyer_email"] for c in earlier] == [ERASED]


@pytest.mark.parametrize("backend", ["postgres"])
def test_p2_an_erasure_waits_for_the_unit_creating_the_subjects_first_key_then_destroys_it(
    service: Service,
) -> None:
    """PostgreSQL, the other order: the unit has written the key but not committed when the
    erasure starts. The erasure waits for the unit's commit, then destroys the key."""
    vault = service.vault
    session = vault.session()
    session.prefetch(["cust-zed"])
    session.seal("cust-zed", ZED_NAME)
    keys = session.new
    url = service.settings.database_url
    with psycopg.connect(url) as unit:
        cursor = unit.cursor(row_factory=dict_row)
        keys.settle(lambda sql, params: _rows(cursor, sql, params), postgres=True)
        cursor.executemany(INSERT_SUBJECT_KEY.replace("?", "%s"), keys.subject_keys)
        erasing = threading.Thread(target=vault.erase, args=("cust-zed",))
        erasing.start()
        deadline = time.monotonic() + WAIT_S
        while not waiting_for_an_advisory_lock(url) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert waiting_for_an_advisory_lock(url), "the erasure did not wait for the unit"
        assert erasing.is_alive()
        unit.commit()
    erasing.join(WAIT_S)
    assert not erasing.is_alive()
    assert "cust-zed" not in vault.live_subjects()


def waiting_for_an_advisory_lock(url: str) -> bool:
    # On a connection of its own: the erasure holds the service's.
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d "
                           "ON d.oid = l.database WHERE d.datname = current_database() "
                           "AND l.locktype = 'advisory' AND NOT l.granted").fetchone()
    return bool(row and row[0])
