"""The service's PostgreSQL sessions never JIT-compile a statement: its statements are short,
and on tables without statistics yet (a store just written, views being rebuilt) the planner's
estimates crossed jit_above_cost with batches of a few dozen keys (a lookup batch: 23 of 24 ms)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from composition.bootstrap import Service, build_card_facts_reader
from infra.db import Database, session_options

POSTGRES = pytest.mark.parametrize("backend", ["postgres"])


@POSTGRES
def test_every_pool_of_the_service_opens_its_sessions_without_jit(service: Service) -> None:
    url = service.settings.database_url
    # The views' and the vault's statements, and the event store library's
    assert Database(url).execute("SHOW jit") == [("off",)]
    with service.app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        assert conn.execute("SHOW jit").fetchone()["jit"] == "off"
    # The API's lookups, read from its event loop
    reader = build_card_facts_reader(service)
    assert reader is not None

    async def shown() -> Any:
        await reader.pool.open()
        try:
            async with reader.pool.connection() as conn:
                return await (await conn.execute("SHOW jit")).fetchone()
        finally:
            await reader.pool.close()

    assert asyncio.run(shown()) == ("off",)


def test_a_urls_own_session_options_are_kept() -> None:
    assert session_options("postgresql://u@h/db") == "-c jit=off"
    assert (session_options("postgresql://u@h/db?options=-c%20search_path%3Dviews")
            == "-c search_path=views -c jit=off")
