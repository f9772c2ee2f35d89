"""The API as uvicorn's worker processes build it: one app per process, from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from entrypoints.http.app import create_app
from infra import logs
from infra.bootstrap import build
from infra.config import load_settings, log_format
from infra.runtime import tune_gc


def app_from_environment() -> FastAPI:
    """Each of `giftcards api --processes N`'s processes: the same settings (GIFTCARDS_*, the
    schema already set up by the parent), its own pools, writer and API-key cache."""
    logs.configure(log_format())
    tune_gc()
    settings = load_settings()
    service = build(settings, create_tables=False)
    return create_app(service, hold_seconds=settings.hold_seconds,
                      group_commit=settings.api_group_commit)
