"""The bench's generated history: a valid, chained store, kept once made and copied into
PostgreSQL row for row, in parts, the same events with the same ids."""

from __future__ import annotations

from pathlib import Path

from bench.data import Clock, copy_to_postgres, kept_store
from dev.services import drop_postgres_database, fresh_postgres_database
from infra.bootstrap import Service, build
from infra.chains import CARD_TOPIC_PREFIX
from infra.config import load_settings
from projections.verify import verify_store

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"


def test_kept_history_copied_into_postgres_is_the_same_valid_chained_store(
    tmp_path: Path, postgres_server: str
) -> None:
    def service_at(url: str, clock: Clock | None = None) -> Service:
        return build(load_settings({"GIFTCARDS_DATABASE_URL": url,
                                    "GIFTCARDS_SECRET_KEY": SECRET,
                                    "GIFTCARDS_DATA_DIR": str(tmp_path / "var")}), clock=clock)

    path, seconds = kept_store(1500, service_at, folder=tmp_path)
    assert seconds > 0 and not path.with_name(path.name + ".partial").exists()
    assert kept_store(1500, service_at, folder=tmp_path) == (path, 0.0)  # kept, not regenerated
    url = fresh_postgres_database(postgres_server)
    source, copy = service_at(f"sqlite:///{path}"), service_at(url)
    try:
        first = copy_to_postgres(path, url, upto=700)
        last = copy_to_postgres(path, url, after=first)
        stored = source.app.recorder.max_notification_id()
        assert first == 700 and last == stored and stored >= 1500
        assert copy.app.recorder.max_notification_id() == stored
        mine = copy.app.recorder.select_notifications(1, stored + 1)
        theirs = source.app.recorder.select_notifications(1, stored + 1)
        assert [(n.id, n.originator_id, n.originator_version, n.state) for n in mine] == [
            (n.id, n.originator_id, n.originator_version, n.state) for n in theirs]
        assert sum(n.topic.startswith(CARD_TOPIC_PREFIX) for n in mine) > 500
        assert verify_store(copy.app, []) == []  # every card's chain holds on PostgreSQL
    finally:
        source.close()
        copy.close()
        drop_postgres_database(url)
