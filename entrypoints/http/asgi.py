"""The API as uvicorn's worker processes build it: one app per process, from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from composition.bootstrap import build
from entrypoints.http.app import create_app
from infra import logs
from infra.config import Settings, load_settings, log_format
from infra.runtime import tune_gc
from infra.service import Service


def service_app(settings: Settings, workers: int | None = None) -> tuple[Service, FastAPI]:
    """The API over a service of its own (its pools, writer and API-key cache); the schema
    was set up by the process that started it."""
    service = build(settings, create_tables=False)
    return service, create_app(service, hold_seconds=settings.hold_seconds, workers=workers,
                               group_commit=settings.api_group_commit)


def app_from_environment() -> FastAPI:
    """Each of `giftcards api --processes N`'s processes, from the same GIFTCARDS_* variables."""
    logs.configure(log_format())
    tune_gc()
    settings = load_settings()
    return service_app(settings)[1]
