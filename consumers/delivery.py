"""The delivery worker (R7): follows the sealed codes in store order, e-mails each card's two
messages, records the outcome with its position in ONE transaction, destroys the card's key."""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from typing import cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError, ProcessRecorder, Tracking
from eventsourcing.utils import get_topic

from application.card_base import delivery_key_subject, notice_key_subject
from application.cards import GiftCards
from application.privacy_reads import PiiReader
from application.unit_of_work import UnitOfWork
from domain.delivery import CodeDelivery
from domain.giftcard import GiftCard
from infra.lease import Lease, instance_id, lease_clock
from infra.mail.render import CardMail, render, render_notice
from infra.mail.transport import PermanentSendError, TransientSendError, Transport
from infra.ratelog import RateLimitedLog, backoff
from infra.service import Service
from infra.transient import Stopped, never
from infra.vault_keys import ERASED

log = logging.getLogger("giftcards.delivery")
LEASE = "code-deliveries"  # one active worker per store (see DeliveryWorker.run)
TRACKING = "code-deliveries"  # the tracking records' name: the worker's position in the log
TOPICS = [get_topic(CodeDelivery.CodeSealed), get_topic(CodeDelivery.DeliveryRetried)]
WORKER = "delivery-worker"  # the operator named in the access log (R21)
MAIL_DOMAIN = "giftcards.marketplace.invalid"
MAX_DELAY_S = 30.0


def message_id(card_id: UUID, attempt: int, which: str) -> str:
    """The same e-mail always has the same Message-ID: a re-send after a crash is recognisable
    as a duplicate by the receiver; an operator's retry (new attempt) is a new e-mail."""
    return f"<{card_id}.{attempt}.{which}@{MAIL_DOMAIN}>"


class DeliveryWorker:
    """At-least-once: send, destroy the code's key, then record `CodeDelivered` + position.
    A crash before the key is destroyed re-sends the same e-mails; after it, the restart finds
    the key gone and records the delivery without sending (both e-mails had been accepted)."""

    def __init__(
        self,
        service: Service,
        transport: Transport,
        *,
        page: int = 100,
        sleep: Callable[[float], None] = time.sleep,
        max_delay: float = MAX_DELAY_S,
    ) -> None:
        self.service, self.app, self.vault = service, service.app, service.vault
        self.transport = transport
        self.page = page
        self.sleep = sleep
        self.max_delay = max_delay
        self.waits = RateLimitedLog(log)
        self.delivered = 0
        self.failed = 0
        self.renew_every = 1.0

    def run(self, stop: threading.Event, idle_s: float = 0.5) -> None:
        """Until `stop` is set, while holding the deliveries' lease (one active worker per store,
        like the relay: several `serve` instances must not send the same e-mails); standing by
        otherwise. Waits for new sealed codes when it has caught up."""
        lease = Lease(self.service.db, LEASE, instance_id(),
                      self.service.settings.relay_lease_seconds, clock=lease_clock(self.service))
        try:
            while not stop.is_set():
                if not lease.acquire():
                    stop.wait(min(1.0, lease.seconds / 4))
                    continue
                self.renew_every = lease.seconds / 3
                if not self.drain(stop.is_set, lease.acquire):
                    stop.wait(idle_s)
        except Stopped:
            log.info("stopped while a delivery was waiting to be retried")
        finally:
            with contextlib.suppress(Exception):  # a lease left behind expires on its own
                lease.release()

    def drain(
        self, stopped: Callable[[], bool] = never, holding: Callable[[], bool] = lambda: True
    ) -> int:
        """One page of pending deliveries after the stored position; how many were handled.
        `holding()` renews the lease before each delivery and while a send waits for the mail
        server: a worker that lost it stops without sending or recording anything more."""
        recorder = cast(ProcessRecorder, self.app.recorder)  # see GiftCards.construct_recorder
        position = recorder.max_tracking_id(TRACKING) or 0
        page = self.app.recorder.select_notifications(position + 1, self.page, topics=TOPICS)
        handled = 0
        renewal = Renewal(holding, self.renew_every)
        for notification in page:
            if stopped():
                raise Stopped("delivery")
            try:
                renewal.renew(force=True)
                self.handle(UUID(str(notification.originator_id)), notification.id, stopped,
                            renewal)
            except LeaseLost:
                log.warning("delivery worker lost its lease: standing by")
                break
            handled += 1
        return handled

    def handle(
        self, stream: UUID, position: int, stopped: Callable[[], bool],
        renewal: Renewal | None = None,
    ) -> None:
        uow = UnitOfWork(self.app)
        delivery = uow.get(stream, CodeDelivery)
        if delivery is not None and delivery.status == "pending":
            outcome = self.deliver(delivery, stopped, renewal or Renewal(lambda: True, 1.0))
            now = self.app.now()
            if isinstance(outcome, PermanentSendError):
                delivery.record_failed(reason=outcome.reason, detail=outcome.detail, now=now)
                self.failed += 1
                # The alert: customer service lists these (`giftcards deliveries failed`).
                log.error(
                    "code delivery failed card=%s reason=%s: %s",
                    delivery.card_id, outcome.reason, outcome.detail,
                )
            else:
                delivery.record_delivered(message_id=outcome, now=now)
                self.delivered += 1
            uow.add(delivery)
        try:
            uow.commit(Tracking(TRACKING, position))
        except IntegrityError:
            # A worker whose lease this one outlived (a send slower than the lease) recorded
            # this position first: its record stands, and the e-mails carried the same
            # Message-IDs, so the receiver keeps one copy.
            log.info("delivery at position %d was recorded by another worker", position)

    def deliver(
        self, delivery: CodeDelivery, stopped: Callable[[], bool], renewal: Renewal
    ) -> str | PermanentSendError:
        """The card e-mail's Message-ID once both e-mails are accepted, or why they never will.
        Erasure wins over delivery: the buyer's data is opened just before each attempt and
        never kept across attempts, so an erasure during an outage stops the next one."""
        card = UnitOfWork(self.app).get(delivery.card_id, GiftCard)
        if card is None:
            raise LookupError(f"delivery of an unknown card {delivery.card_id}")
        card_message_id = message_id(delivery.card_id, delivery.attempt, "card")
        reader = PiiReader(
            self.service, WORKER, "gift card code delivery (R7)", "deliver", process=True
        )
        if delivery.notice_to is not None:
            told = self.send(lambda: self.notice(reader, card, delivery), delivery, stopped,
                             renewal)
            if isinstance(told, PermanentSendError):
                log.warning("re-send notice to the previous address failed card=%s: %s",
                            card.id, told.detail)
            self.vault.erase(notice_key_subject(card.id, delivery.attempt), tombstone=False)
        sent_at = self.app.now()
        for which in ("confirmation", "card"):
            built = functools.partial(self.compose, reader, card, delivery, which, sent_at)
            outcome = self.send(built, delivery, stopped, renewal)
            if outcome is not None:
                return outcome
        # The code exists nowhere; its key is the card's own (no person's to tombstone).
        self.vault.erase(delivery_key_subject(delivery.card_id), tombstone=False)
        return card_message_id

    def compose(
        self, reader: PiiReader, card: GiftCard, delivery: CodeDelivery, which: str,
        sent_at: datetime,
    ) -> EmailMessage | PermanentSendError | str:
        """One e-mail, from personal data opened now (access-logged), or the reason not to
        send: the buyer erased, no address; or the card e-mail's Message-ID when a previous run
        already had both e-mails accepted (it destroyed the code's key, then died)."""
        code_subject = delivery_key_subject(delivery.card_id)
        code = self.vault.open(code_subject, delivery.sealed_code)
        pii = delivery.pii
        buyer = delivery.buyer_subject
        email = reader.open(buyer, pii.get("buyer_email"), "buyer_email") if buyer else None
        if email == ERASED:
            # The buyer was erased before this attempt: nobody may receive the code any more.
            reader.flush()
            self.vault.erase(code_subject, tombstone=False)
            return PermanentSendError(
                "buyer_erased",
                "the buyer's personal data was erased before delivery; the card stays in the "
                "liability until it expires",
            )
        if code == ERASED:
            reader.flush()
            return message_id(delivery.card_id, delivery.attempt, "card")
        if email is None:
            reader.flush()
            return PermanentSendError(
                "no_address",
                "no e-mail address of the card's owner: it waits for customer service "
                "(`giftcards deliveries retry`)",
            )
        recipient = pii.get("recipient_subject")
        mail = CardMail(
            card_id=str(card.id),
            market=card.market,
            currency=card.currency,
            amount=card.amount,
            purchased_at=card.purchased_at,
            expires_at=card.expires_at,
            order_id=delivery.refunds_order or card.purchase_order_id,
            code_last4=card.code_last4,
            code=code,
            timezone=self.app.markets.get(card.market).timezone,
            buyer_email=email,
            buyer_name=_clear(reader.open(buyer, pii.get("buyer_name"), "buyer_name"))
            if buyer
            else None,
            recipient_name=_clear(
                reader.open(recipient, pii.get("recipient_name"), "recipient_name")
            )
            if recipient
            else None,
            message=_clear(reader.open_message(buyer, pii)),
            refunds_order=delivery.refunds_order,
        )
        reader.flush()  # the access log is written before anything is shown (sent)
        return render(mail, which, message_id(card.id, delivery.attempt, which), sent_at)

    def notice(
        self, reader: PiiReader, card: GiftCard, delivery: CodeDelivery
    ) -> EmailMessage | PermanentSendError | str:
        """The previous address of a rectified delivery is told the code was re-sent elsewhere
        (never the code). Its address is sealed under a key of the notice's own, destroyed once
        the notice is sent: afterwards the old address exists nowhere."""
        subject = notice_key_subject(delivery.card_id, delivery.attempt)
        assert delivery.notice_to is not None
        address = self.vault.open(subject, delivery.notice_to)
        if address == ERASED:
            return "sent"  # a previous run sent it, then died
        owner = delivery.buyer_subject
        if owner is not None and reader.open(owner, delivery.pii.get("buyer_email"),
                                             "buyer_email") == ERASED:
            reader.flush()
            return "owner erased"  # erasure wins: nobody is told anything any more
        reader.flush()
        return render_notice(
            address, card.market, card.code_last4,
            message_id(card.id, delivery.attempt, "notice"), self.app.now(),
        )

    def send(
        self,
        compose: Callable[[], EmailMessage | PermanentSendError | str],
        delivery: CodeDelivery,
        stopped: Callable[[], bool],
        renewal: Renewal,
    ) -> PermanentSendError | str | None:
        """Retries transient failures with exponential backoff and jitter, until stopped,
        composing the e-mail afresh for each attempt; the lease is renewed while it waits.
        None once the server accepted it, else why not (or a Message-ID: already sent)."""
        failures = 0
        while True:
            renewal.renew()
            built = compose()
            if not isinstance(built, EmailMessage):
                return built
            try:
                self.transport.send(built, owner=delivery.buyer_subject)
                return None
            except PermanentSendError as refused:
                return refused
            except TransientSendError as error:
                # Jitter: workers that lost the same server do not come back in lockstep.
                pause = backoff(failures, cap=self.max_delay) * (0.5 + random.random() / 2)
                failures += 1
                self.waits.log(
                    logging.WARNING, "smtp", "code delivery waits for the mail server "
                    "(card %s, retrying in %.1f s): %s", delivery.card_id, pause, error,
                )
            del built  # the buyer's data is not kept across attempts
            deadline = time.monotonic() + pause
            while (left := deadline - time.monotonic()) > 0:
                if stopped():
                    raise Stopped("delivery")
                renewal.renew()
                self.sleep(min(left, 0.1))


class LeaseLost(Exception):
    """The worker's lease went to another worker while it was sending."""


class Renewal:
    """Renews the deliveries' lease at most every `every` seconds while a send waits, so that
    a mail server outage longer than the lease does not hand the same card to a second worker."""

    def __init__(self, holding: Callable[[], bool], every: float) -> None:
        self.holding, self.every = holding, every
        self.last = time.monotonic()

    def renew(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            if not self.holding():
                raise LeaseLost()


def _clear(value: str | None) -> str | None:
    """An erased recipient's name or message is left out, not shown as `[erased]`."""
    return None if value in (None, ERASED) else value


def pending(app: GiftCards, limit: int) -> int:
    """Deliveries not yet attempted: sealed codes (and operator retries) after the worker's
    stored position, counted up to `limit` so that a status call stays cheap."""
    recorder = cast(ProcessRecorder, app.recorder)  # see GiftCards.construct_recorder
    position = recorder.max_tracking_id(TRACKING) or 0
    return len(app.recorder.select_notifications(position + 1, limit, topics=TOPICS))
