"""Log lines: JSON on request, one object per line; kafka-python's INFO chatter kept out."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from infra.config import ConfigError, log_format
from infra.logs import JsonLines

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def test_a_json_line_has_the_fields_and_the_traceback_on_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("giftcards.relay", logging.ERROR, __file__, 1, "relay %s down",
                                   ("vm:1",), sys.exc_info())
    line = JsonLines().format(record)
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["level"] == "ERROR" and parsed["logger"] == "giftcards.relay"
    assert parsed["message"] == "relay vm:1 down" and "ValueError" in parsed["exc"]
    assert parsed["ts"].endswith("+00:00")


def test_the_format_is_text_or_json_and_anything_else_is_refused() -> None:
    assert log_format({}) == "text"
    assert log_format({"GIFTCARDS_LOG_FORMAT": "json"}) == "json"
    with pytest.raises(ConfigError, match="text or json"):
        log_format({"GIFTCARDS_LOG_FORMAT": "JSON"})


def test_the_cli_logs_json_lines_and_no_kafka_info(tmp_path: Path) -> None:
    """A real process: every stderr line a JSON object, kafka-python's INFO gone, its warning
    kept; an unknown format makes the CLI exit 2 with one JSON error."""
    env = {"GIFTCARDS_DATA_DIR": str(tmp_path), "GIFTCARDS_LOG_FORMAT": "json",
           "PATH": "/usr/bin:/bin"}
    code = (
        "import logging; from infra import logs; logs.configure('json'); "
        "logging.getLogger('kafka.conn').info('connecting to broker'); "
        "logging.getLogger('kafka.conn').warning('broker lost'); "
        "logging.getLogger('giftcards.serve').info('started')"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    lines = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("kafka.conn", "broker lost"), ("giftcards.serve", "started")]
    bad = subprocess.run([GIFTCARDS, "--json", "show", "x"],
                         env={**env, "GIFTCARDS_LOG_FORMAT": "yaml"}, capture_output=True,
                         text=True, check=False)
    assert bad.returncode == 2
    assert orjson.loads(bad.stdout)["error"]["code"] == "invalid_configuration"
