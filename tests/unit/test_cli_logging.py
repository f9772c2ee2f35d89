"""The CLI's log filter hides only kafka-python's read-after-close report, not real errors."""

from __future__ import annotations

import logging

import pytest

from entrypoints.cli.base import _closed_transport_read


def logged(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException as exc:
        return logging.LogRecord("kafka.net.transport", logging.ERROR, __file__, 1,
                                 "Error receiving network data closing socket", (),
                                 (type(exc), exc, exc.__traceback__))


def test_the_read_of_a_transport_closed_on_shutdown_is_dropped() -> None:
    with pytest.raises(AttributeError) as closed:
        None.recv(4096)  # type: ignore[attr-defined]  # what kafka-python does after close()
    assert not _closed_transport_read(logged(closed.value))


@pytest.mark.parametrize("error", [ConnectionResetError("reset by peer"),
                                   AttributeError("'Foo' object has no attribute 'recv'"),
                                   OSError("bad file descriptor")])
def test_other_transport_errors_are_kept(error: BaseException) -> None:
    assert _closed_transport_read(logged(error))
    plain = logging.LogRecord("kafka.net.transport", logging.ERROR, __file__, 1, "x", (), None)
    assert _closed_transport_read(plain)
