"""An unexpected failure: one JSON error for the caller, where it broke for the operator's log,
and never the failure's message (a database's message can quote a row's values)."""

from __future__ import annotations

import importlib
import logging

import orjson
import pytest

from entrypoints.cli import views

main = importlib.import_module("entrypoints.cli.main")  # the package's `main` is the function


def test_an_internal_error_names_its_frames_in_the_log_and_keeps_its_message_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(args: object) -> None:
        raise RuntimeError("duplicate key (email)=(zed.secret@example.org)")

    monkeypatch.setattr(views, "project", broken)
    with caplog.at_level(logging.ERROR, logger="giftcards"):
        status = main.run(["--json", "project", "--source", "store"])
    assert status == main.EXIT_INTERNAL
    answer = orjson.loads(capsys.readouterr().out)
    assert answer["error"] == {"code": "internal_error", "message": "RuntimeError"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "internal error RuntimeError at tests/unit/test_cli_internal_error.py:" in logged
    assert "broken" in logged and "zed.secret" not in logged
