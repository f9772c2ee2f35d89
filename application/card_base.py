"""The core of the gift card application: its ports, how a command runs, shared names."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ProcessRecorder, RecordConflictError, Tracking
from eventsourcing.utils import EnvType

from application.ports import Pseudonyms
from application.unit_of_work import UnitOfWork
from domain.codes import normalize_code
from domain.errors import DomainError, refuse
from domain.giftcard import GiftCard
from domain.ids import check_id, is_id
from domain.markets import Markets
from domain.ports import Clock, CodeGenerator, CodeHasher, PersonalDataVault, StreamLoader
from domain.streams import Index, stream_id

R = TypeVar("R")
Json = dict[str, Any]

PURCHASE_ORDER = "purchase-order"
REDEMPTION_ORDER = "redemption-order"
REFUND_REQUEST = "refund-request"
CODE = "code"
MAX_ORDER_ID = 200
# A guesser's attempts window is one hot stream that several processes may write at once: each
# loser of a conflict redoes its command on fresh state, and may lose again to a fast writer.
COMMAND_RETRIES = 10

# Marks a message sealed under the recipient's key inside the buyer's seal (see PiiReader).
SEALED_FOR_BOTH = "\x1eboth\x1e"


class CardsBase(Application[UUID]):
    """The gift card application's ports, its transactions (`run`, `batch`) and the reads
    its use cases share; the use cases are in the areas GiftCards is made of."""

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        clock: Clock,
        codes: CodeGenerator,
        hasher: CodeHasher,
        vault: PersonalDataVault,
        markets: Markets,
        pseudonyms: Pseudonyms,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.codes = codes
        self.hasher = hasher
        self.vault = vault
        self.markets = markets
        # Of the stream its events are published on (the relay, the views, verify).
        self.pseudonyms = pseudonyms
        # Set by the store's application (infra) when the store can answer it in one query.
        self.load_streams: StreamLoader | None = None
        # Set by the store's application when its recorder keeps each card's lookup row.
        self.keeps_card_facts = False

    def store_id_of(self, customer_id: str | None) -> str | None:
        """P2: what the store keeps for a customer, their store id from the vault's index
        (random for anyone first seen since store ids; their own id for a customer named in
        clear before): an erasure deletes the link, so the store's copy has an end date."""
        if customer_id is None:
            return None
        return self.vault.store_id(check_id("customer_id", customer_id))

    def store_ids_for_batch(self, customer_ids: Iterable[str | None]
                            ) -> AbstractContextManager[None]:
        """A batch's store ids read in a few queries for all its customers (ids that are not
        valid customer ids are left to their command to refuse)."""
        return self.vault.store_ids_for_batch(
            {c for c in customer_ids if c is not None and is_id(c)})

    def construct_recorder(self) -> ProcessRecorder:
        # A process recorder: commands from Kafka are stored with their consumed offset.
        return self.factory.process_recorder()

    def record(self, processing: Any) -> None:
        self._record(processing)

    @contextmanager
    def batch(self, tracking: Tracking | None = None) -> Iterator[UnitOfWork]:
        """Group commit: the commands given `within=` this unit of work are saved in one
        transaction with `tracking` when the block ends (not if it raises)."""
        uow = UnitOfWork(self)
        yield uow
        uow.commit(tracking)

    def run(self, command: Callable[[UnitOfWork], R], within: UnitOfWork | None = None) -> R:
        """Runs one command in the caller's unit of work, or atomically on its own; a refusal
        still saves what it recorded (attempts)."""
        if within is not None:
            return command(within)
        for attempt in range(COMMAND_RETRIES):
            uow = UnitOfWork(self)
            try:
                try:
                    result = command(uow)
                except DomainError:
                    uow.commit()
                    raise
                uow.commit()
                return result
            except RecordConflictError:
                # A concurrent command wrote the same stream first: redo on fresh state,
                # where the idempotency checks will see its result.
                if attempt == COMMAND_RETRIES - 1:
                    raise
                # Jitter: two writers that conflicted must not retry in lockstep.
                time.sleep(random.random() * 0.001 * (attempt + 1))
        raise AssertionError("unreachable")

    def now(self) -> datetime:
        return self.clock()

    def code_index_id(self, code: str) -> UUID:
        """The index stream of a code: keyed by its HMAC, so the code itself is never stored."""
        return stream_id(CODE, self.hasher.lookup_key(normalize_code(code)))

    def register_code(self, uow: UnitOfWork, code: str, card_id: UUID) -> Index:
        """A new card's code index; the card's lookup row is keyed by it too."""
        index = Index.register(CODE, self.hasher.lookup_key(normalize_code(code)), card_id)
        uow.code_indexes[card_id] = index.id
        return index

    def _card(self, uow: UnitOfWork, card_id: UUID) -> GiftCard:
        card = uow.get(card_id, GiftCard)
        if card is None:
            raise refuse("unknown_card", f"no gift card with id {card_id}")
        return card

    def _code_matches(self, uow: UnitOfWork, code: str, card: GiftCard) -> bool:
        index = uow.get(self.code_index_id(code), Index)
        return index is not None and index.target == card.id

    def release_timed_out_hold(self, uow: UnitOfWork, card: GiftCard, now: datetime) -> None:
        terms = self.markets.get(card.market).terms_version
        if card.release_timed_out_hold(now=now, terms_version=terms):
            uow.add(card)


def delivery_key_subject(card_id: UUID) -> str:
    """The vault subject whose key seals one card's code until it is delivered (then erased)."""
    return f"card-code:{card_id}"


def notice_key_subject(card_id: UUID, attempt: int) -> str:
    """The vault subject whose key seals a previous address until its re-send notice is sent
    (then erased): a rectified address is told its code went elsewhere, and then forgotten."""
    return f"notice:{card_id}:{attempt}"


def check_order_id(order_id: str) -> None:
    check_id("order_id", order_id)


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")
