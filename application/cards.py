"""The gift card application: one method per use case of the terms, atomic and idempotent."""

from __future__ import annotations

from application.card_base import (
    PURCHASE_ORDER,
    REDEMPTION_ORDER,
    REFUND_REQUEST,
    SEALED_FOR_BOTH,
    check_order_id,
    delivery_key_subject,
)
from application.card_queries import CardQueries
from application.commands import PurchaseCard, RefundOrder
from application.redemption import Redeeming
from application.results import CardView, NewCard, Purchase, Refund
from application.unit_of_work import UnitOfWork
from application.upkeep import Upkeep
from domain.addresses import check_address
from domain.codes import last4
from domain.delivery import CodeDelivery, Kind
from domain.errors import refuse
from domain.giftcard import GiftCard
from domain.ids import check_id
from domain.streams import Index, stream_id
from domain.subjects import rectified_field


class GiftCards(Redeeming, CardQueries, Upkeep):
    """Use cases: purchase, redeem, cancel, refund, expire, show, history (one area per
    module: redemption, card_queries, upkeep; purchase and refund here)."""

    name = "GiftCards"

    def purchase(self, command: PurchaseCard, *, within: UnitOfWork | None = None
                 ) -> Purchase:
        """R1-R5, R9: buy one card per order; a repeated order id returns the same card."""
        the_market = self.markets.get(command.market)
        order_id, amount, buyer_id = command.order_id, command.amount, command.buyer_id
        check_order_id(order_id)
        if buyer_id is not None:
            check_id("buyer_id", buyer_id)
        check_address(command.buyer_email, "buyer_email")
        check_address(command.recipient_email, "recipient_email")
        buyer_id = self.store_id_of(buyer_id)

        def purchase(uow: UnitOfWork) -> Purchase:
            existing = uow.get(stream_id(PURCHASE_ORDER, order_id), Index)
            if existing is not None:
                card = self._card(uow, existing.target)
                if card.market != the_market.code or card.amount != amount:
                    raise refuse(
                        "order_id_conflict",
                        "this order id was already used for a different purchase",
                    )
                return Purchase(CardView.of(card), code=None, replayed=True)
            GiftCard.check_payment_method(command.payment_method)
            GiftCard.check_amount(the_market, amount)
            code = self.codes()
            pii = self._seal_purchase_pii(uow, command, buyer_id)
            card = GiftCard.purchase(
                market=the_market,
                amount=amount,
                payment_method=command.payment_method,
                now=self.now(),
                code_last4=last4(code),
                buyer_subject=buyer_id,
                pii=pii,
                order_id=order_id,
            )
            uow.add(
                card,
                Index.register(PURCHASE_ORDER, order_id, card.id),
                self.register_code(uow, code, card.id),
                self._sealed_delivery(uow, card, code, "purchase", buyer_id, pii, None),
            )
            return Purchase(CardView.of(card), code=code, replayed=False)

        return self.run(purchase, within)

    def _sealed_delivery(
        self,
        uow: UnitOfWork,
        card: GiftCard,
        code: str,
        kind: Kind,
        buyer_subject: str | None,
        pii: dict[str, str],
        refunds_order: str | None,
    ) -> CodeDelivery:
        """R7: the code, sealed under a key of the card's own, recorded as pending delivery in
        the card's transaction (the outbox); the delivery worker e-mails it and destroys the key."""
        return CodeDelivery.seal(
            card_id=card.id,
            kind=kind,
            sealed_code=uow.keys.seal_new_subject(delivery_key_subject(card.id), code),
            buyer_subject=buyer_subject,
            pii=dict(pii),
            refunds_order=refunds_order,
            now=self.now(),
        )

    def seal_pii(self, uow: UnitOfWork, subject_id: str, name: str, value: str) -> str:
        """A rectifiable field (e-mail, name) under its own key, which a rectification
        destroys (art. 16); anything else under the subject's key."""
        kind = rectified_field(name)
        if kind is None:
            return uow.keys.seal(subject_id, value)
        return uow.keys.seal_field(subject_id, kind, value)

    def purchase_subjects(self, buyer_id: str | None, recipient_email: str | None) -> list[str]:
        """The vault subjects a purchase seals under (a batch reads their keys at once)."""
        recipient = self.vault.subject_for_email(recipient_email) if recipient_email else None
        return [s for s in (self.store_id_of(buyer_id), recipient) if s]

    def _seal_purchase_pii(self, uow: UnitOfWork, command: PurchaseCard, buyer_id: str | None
                           ) -> dict[str, str]:
        """R5/R21: personal data is sealed with its subject's key (the buyer's: under their
        store id); only ids stay in clear."""
        message = command.message
        recipient_email, recipient_name = command.recipient_email, command.recipient_name
        sealed: dict[str, str] = {}
        buyer_fields = {"buyer_email": command.buyer_email, "buyer_name": command.buyer_name,
                        "message": message}
        if any(buyer_fields.values()) and not buyer_id:
            raise refuse("invalid_input", "personal data needs the buyer's customer id")
        recipient = self.vault.subject_for_email(recipient_email) if recipient_email else None
        if message and recipient:
            # Written by the buyer, about and for the recipient: sealed under both keys, so
            # either one's erasure makes it unreadable (P2).
            buyer_fields["message"] = SEALED_FOR_BOTH + uow.keys.seal(recipient, message)
        for name, value in buyer_fields.items():
            if value and buyer_id:
                sealed[name] = self.seal_pii(uow, buyer_id, name, value)
        if recipient_email and recipient:
            sealed["recipient_subject"] = recipient
            sealed["recipient_email"] = self.seal_pii(uow, recipient, "recipient_email",
                                                      recipient_email)
            if recipient_name:
                sealed["recipient_name"] = self.seal_pii(uow, recipient, "recipient_name",
                                                         recipient_name)
        elif recipient_name:
            raise refuse("invalid_input", "a recipient name needs the recipient's email")
        return sealed

    def refund(self, command: RefundOrder, *, within: UnitOfWork | None = None) -> Refund:
        """R16-R18: returned goods paid by card come back as a NEW card, the rest otherwise.
        R17: the card belongs to the customer of the refunded order, named by the request with
        their e-mail; it is mailed to them and nobody else (without an e-mail it waits for
        customer service)."""
        order_id, returned_amount, request_id = (
            command.order_id, command.returned_amount, command.request_id)
        check_order_id(order_id)
        customer_id = self.store_id_of(command.customer_id)
        if (command.customer_email or command.customer_name) and not customer_id:
            raise refuse("invalid_input", "a customer's e-mail or name needs their customer id")
        now = self.now()

        def refund(uow: UnitOfWork) -> Refund:
            used = uow.get(stream_id(REDEMPTION_ORDER, order_id), Index)
            if used is None:
                raise refuse("unknown_order", "no order paid with a gift card has this id")
            if request_id is not None:
                done = uow.get(stream_id(REFUND_REQUEST, request_id), Index)
                if done is not None:
                    raise refuse("duplicate_request", "this refund request was already processed")
            original = self._card(uow, used.target)
            owner = customer_id or original.redeemed_by
            if customer_id and original.redeemed_by not in (None, customer_id):
                raise refuse(
                    "customer_mismatch",
                    "the refund names another customer than the one who paid this order",
                )
            market = self.markets.get(original.market)
            to_card, to_other = original.split_refund(
                market, returned_amount, command.received_on, now)
            new_card: GiftCard | None = None
            code = ""
            if to_card > 0:
                code = self.codes()
                # The returning customer's e-mail and name, sealed under their key (R21).
                pii = {
                    name: self.seal_pii(uow, owner, name, value)
                    for name, value in (("buyer_email", command.customer_email),
                                        ("buyer_name", command.customer_name))
                    if value and owner
                }
                new_card = GiftCard.issue_replacement(
                    original=original,
                    market=market,
                    amount=to_card,
                    now=now,
                    code_last4=last4(code),
                    order_id=order_id,
                    owner=owner,
                    pii=pii,
                )
                uow.add(
                    new_card,
                    self.register_code(uow, code, new_card.id),
                    self._sealed_delivery(uow, new_card, code, "refund", owner, pii, order_id),
                )
            original.record_refund(
                order_id=order_id,
                returned_amount=returned_amount,
                to_new_card=to_card,
                to_other_method=to_other,
                new_card_id=new_card.id if new_card else None,
                received_on=command.received_on,
                at=now,
                terms_version=market.terms_version,
            )
            uow.add(original)
            if request_id is not None:
                uow.add(Index.register(REFUND_REQUEST, request_id, original.id))
            return Refund(
                order_id=order_id, card_id=original.id, currency=original.currency,
                returned_amount=returned_amount, to_other_method=to_other,
                new_card=None if new_card is None else NewCard(
                    card_id=new_card.id, code=code, amount=new_card.amount,
                    expires_at=new_card.expires_at),
            )

        return self.run(refund, within)
