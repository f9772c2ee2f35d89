"""What a helper process and its parent share: the helper's errors raised in the parent as
themselves, and the helper's end once its parent is gone."""

from __future__ import annotations

import multiprocessing
import pickle


class ReaderFailed(Exception):
    """A reader process died, or failed with an error that could not be sent."""


def sendable(exc: BaseException) -> BaseException:
    """`exc` if the parent can load it as it was raised, else a ReaderFailed naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return ReaderFailed(f"{type(exc).__name__}: {exc}")
    return exc


def parent_alive() -> bool:
    """In a helper process: whether the process that started it still runs (a helper whose
    parent was SIGKILLed must not outlive it)."""
    parent = multiprocessing.parent_process()
    return parent is not None and parent.is_alive()
