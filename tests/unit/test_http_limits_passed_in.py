"""The HTTP connection limits are passed to the protocol with uvicorn's options, from the
settings: no module state, and whole in each worker process of `api --processes N`."""

from __future__ import annotations

import pickle

from entrypoints.cli.api_parts import limited
from entrypoints.http import protocol
from entrypoints.http.protocol import LimitedHttpToolsProtocol, Limits
from infra.config import load_settings


def settings_with(connections: int, header_seconds: float) -> dict[str, str]:
    return {"GIFTCARDS_DATABASE_URL": "sqlite:///:memory:",
            "GIFTCARDS_HTTP_MAX_CONNECTIONS": str(connections),
            "GIFTCARDS_HTTP_HEADER_TIMEOUT_SECONDS": str(header_seconds)}


def test_each_server_gets_the_limits_of_its_own_settings() -> None:
    first = limited(load_settings(settings_with(7, 1.5)))["http"]
    second = limited(load_settings(settings_with(9, 2.5)))["http"]
    assert first.func is second.func is LimitedHttpToolsProtocol
    assert (first.keywords["limits"].max_connections,
            first.keywords["limits"].header_timeout) == (7, 1.5)
    assert (second.keywords["limits"].max_connections,
            second.keywords["limits"].header_timeout) == (9, 2.5)


def test_the_limits_reach_the_worker_processes_with_the_pickled_config() -> None:
    factory = limited(load_settings(settings_with(7, 1.5)))["http"]
    copy = pickle.loads(pickle.dumps(factory))
    assert copy.func is LimitedHttpToolsProtocol
    assert copy.keywords == {"limits": Limits(1.5, 10.0, 16_384, 7)}


def test_the_protocol_module_holds_no_limits_of_its_own() -> None:
    assert not [name for name, value in vars(protocol).items() if isinstance(value, Limits)]
