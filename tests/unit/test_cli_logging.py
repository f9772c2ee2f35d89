"""The CLI's log filters hide only kafka-python's reports of its own sockets closed on shutdown,
not real errors."""

from __future__ import annotations

import logging

import pytest

from entrypoints.cli.base import _closed_socket_unregistered, _closed_transport_read


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


def test_a_task_unregistering_a_closed_tls_socket_is_dropped() -> None:
    """As kafka-python's selector reports it: the KeyError, then the ValueError raised while
    handling it (the log of a clean `relay --once` over TLS)."""
    try:
        try:
            raise KeyError("<ssl.SSLSocket [closed] fd=-1, family=2, type=1, proto=6> "
                           "is not registered")
        except KeyError:
            raise ValueError("Invalid file descriptor: -1") from None
    except ValueError as exc:
        error = exc
    assert not _closed_socket_unregistered(logged(error))
    assert not _closed_socket_unregistered(logged(KeyError(
        "<ssl.SSLSocket [closed] fd=-1, family=2, type=1, proto=6> is not registered")))


@pytest.mark.parametrize("error", [KeyError("<socket fd=7> is not registered"),
                                   ValueError("Invalid file descriptor: 7"),
                                   ConnectionResetError("reset by peer")])
def test_other_errors_of_the_selectors_tasks_are_kept(error: BaseException) -> None:
    assert _closed_socket_unregistered(logged(error))
    plain = logging.LogRecord("kafka.net.selector", logging.ERROR, __file__, 1, "x", (), None)
    assert _closed_socket_unregistered(plain)
