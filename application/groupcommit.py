"""Group commit: concurrent commands saved in one store transaction, each with its own answer."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.card_base import COMMAND_RETRIES
from application.cards import GiftCards
from application.unit_of_work import UnitOfWork
from domain.errors import DomainError


@dataclass(frozen=True)
class Done:
    """One command's answer: its result, or the error it raised (a refusal or a failure)."""

    value: Any = None
    error: BaseException | None = None

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def run_together(
    app: GiftCards,
    commands: Sequence[Callable[[UnitOfWork], Any]],
    keys: Iterable[UUID] = (),
) -> list[Done]:
    """The commands in arrival order in ONE unit of work, committed once: a later command sees
    what an earlier one did (two holds of one card: the second is refused). A refusal keeps what
    it recorded (attempts), as alone; a command that fails otherwise may have left the unit of
    work half changed, so it gets its error and the batch is redone without it. A conflict with
    another writer redoes the batch on fresh state; if conflicts persist, each runs alone."""
    keys = list(keys)
    answers: dict[int, Done] = {}
    pending = list(range(len(commands)))
    conflicts = 0
    while pending and conflicts < COMMAND_RETRIES:
        uow = UnitOfWork(app)
        # One or two queries read every stream the batch declared, instead of several each.
        uow.prefetch(keys)
        uow.prefetch_targets()
        done: dict[int, Done] = {}
        broken = None
        for i in pending:
            try:
                done[i] = Done(commands[i](uow))
            except DomainError as refusal:
                done[i] = Done(error=refusal)
            except Exception as failure:  # handed to its own caller
                broken = i
                answers[i] = Done(error=failure)
                break
        if broken is not None:
            pending.remove(broken)
            continue
        try:
            uow.commit()
        except RecordConflictError:
            conflicts += 1
            # Jitter: two writers that conflicted must not retry in lockstep.
            time.sleep(random.random() * 0.001 * conflicts)
            continue
        except Exception as failure:  # the store failed: every caller is told
            return [answers.get(i) or Done(error=failure) for i in range(len(commands))]
        answers.update(done)
        pending = []
    for i in pending:  # conflicts persisted: each alone, with its own retries
        answers[i] = _alone(app, commands[i])
    return [answers[i] for i in range(len(commands))]


def _alone(app: GiftCards, command: Callable[[UnitOfWork], Any]) -> Done:
    try:
        return Done(app.run(command))
    except Exception as error:  # handed to its own caller
        return Done(error=error)
