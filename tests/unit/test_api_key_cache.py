"""API keys as the HTTP API reads them: what one process reuses, and for how long."""

from __future__ import annotations

from application.apikeys import ApiKeys
from infra.service import Service
from tests.conftest import Ticks


def test_a_key_revoked_elsewhere_is_reused_until_the_cache_time_then_refused(
    memory_service: Service,
) -> None:
    ticks = Ticks()
    api = ApiKeys(memory_service.app, cache_seconds=1.0, clock=ticks)
    cli = ApiKeys(memory_service.app)  # another process: its own (empty) cache
    created = cli.create(name="till", scopes=["checkout"])
    assert api.authenticate(created["key"]) is not None
    cli.revoke(created["key_id"])
    ticks.now += 0.9
    assert api.cached(created["key"])[0] and api.authenticate(created["key"]) is not None
    ticks.now += 0.2
    assert not api.cached(created["key"])[0]
    assert api.authenticate(created["key"]) is None
    assert api.cached(created["key"]) == (True, None)  # the refusal is reused too


def test_a_revocation_through_the_same_process_is_refused_at_once(
    memory_service: Service,
) -> None:
    api = ApiKeys(memory_service.app, cache_seconds=60.0, clock=Ticks())
    created = api.create(name="till", scopes=["checkout"])
    assert api.authenticate(created["key"]) is not None
    api.revoke(created["key_id"])
    assert api.authenticate(created["key"]) is None


def test_without_a_cache_time_every_read_goes_to_the_store(memory_service: Service) -> None:
    api = ApiKeys(memory_service.app)
    created = api.create(name="till", scopes=["checkout"])
    assert api.authenticate(created["key"]) is not None
    assert api.cached(created["key"]) == (False, None)
    assert api.cached("not-a-key") == (True, None)  # malformed: refused without a read
