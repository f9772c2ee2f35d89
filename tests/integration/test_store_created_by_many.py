"""Processes starting together on a fresh store: each finds or creates the event tables."""

from __future__ import annotations

from infra.bootstrap import build
from infra.config import load_settings


def test_a_process_that_looked_before_another_created_the_tables_starts_all_the_same(
    env_for: dict[str, str],
) -> None:
    """A relay, a projector and a till started at once on a new store (seen in a fault test:
    the projector died with IntegrityError and the views were never created)."""
    settings = load_settings(env_for)
    late = build(settings, create_tables=False)  # a process that has not created its tables
    recorder = late.app.recorder
    others: list[object] = []
    looked = recorder.max_tracking_id

    def look_then_another_process_creates_the_store(name: str) -> int | None:
        try:
            return looked(name)
        finally:
            if not others:  # between this look and this process's create: the other one's
                others.append(build(settings))

    recorder.max_tracking_id = look_then_another_process_creates_the_store  # type: ignore[method-assign]
    try:
        recorder.create_table()  # type: ignore[attr-defined]
        assert others, "the other process created the store in between"
        assert recorder.max_tracking_id("__migration__") == 1
    finally:
        late.close()
        for other in others:
            other.close()  # type: ignore[attr-defined]

