"""R7 in memory: the delivery outbox's states and the e-mails' languages and locale formats."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from uuid import uuid4

import pytest

from domain.delivery import CodeDelivery
from domain.errors import DomainError
from infra.mail.render import CardMail, render

NOW = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
CODE = "ABCDEF-GHJKMN-PQRSTU"


def pending() -> CodeDelivery:
    return CodeDelivery.seal(card_id=uuid4(), kind="purchase", sealed_code="gc1:k:x",
                             buyer_subject="c1", pii={"buyer_email": "gc1:k:y"},
                             refunds_order=None, now=NOW)  # fmt: skip


def test_r7_a_delivery_is_recorded_once_and_only_a_failure_is_retried() -> None:
    delivery = pending()
    assert delivery.id == CodeDelivery.id_for(delivery.card_id)  # one per card: idempotent
    delivery.record_delivered(message_id="<m>", now=NOW)
    with pytest.raises(DomainError) as twice:
        delivery.record_delivered(message_id="<m>", now=NOW)
    assert twice.value.code == "delivery_not_pending"
    with pytest.raises(DomainError) as retried:
        delivery.record_retry(operator="agent", buyer_email=None, now=NOW)
    assert retried.value.code == "delivery_not_failed"


def test_r7_r15_r21_a_failed_delivery_is_retried_by_a_named_operator_not_after_erasure() -> None:
    bounced = pending()
    bounced.record_failed(reason="address_refused", detail="550", now=NOW)
    with pytest.raises(DomainError) as anonymous:
        bounced.record_retry(operator=" ", buyer_email=None, now=NOW)
    assert anonymous.value.code == "operator_required"
    bounced.record_retry(operator="agent-7", buyer_email="gc1:k:z", now=NOW)
    assert (bounced.status, bounced.attempt) == ("pending", 1)
    assert bounced.pii["buyer_email"] == "gc1:k:z"
    erased = pending()
    erased.record_failed(reason="buyer_erased", detail="", now=NOW)
    with pytest.raises(DomainError) as refused:
        erased.record_retry(operator="agent-7", buyer_email=None, now=NOW)
    assert refused.value.code == "buyer_erased"


def mail(market: str, currency: str, zone: str, message: str | None = None) -> CardMail:
    return CardMail(
        card_id=str(uuid4()), market=market, currency=currency, amount=5000,
        purchased_at=NOW, expires_at=datetime(2026, 7, 12, 10, 0, tzinfo=UTC),
        order_id="o-1", code_last4="RSTU", code=CODE, timezone=zone,
        buyer_email="a@example.org", buyer_name=None, recipient_name=None, message=message,
        refunds_order=None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("market", "currency", "zone", "language", "amount", "expiry"),
    [
        ("FR", "EUR", "Europe/Paris", "fr", "50,00\xa0€", "12 juillet 2026"),
        ("BE", "EUR", "Europe/Brussels", "fr", "50,00\xa0€", "12 juillet 2026"),
        ("DE", "EUR", "Europe/Berlin", "de", "50,00\xa0€", "12. Juli 2026"),
        ("ES", "EUR", "Europe/Madrid", "es", "50,00\xa0€", "12 de julio de 2026"),
        ("IT", "EUR", "Europe/Rome", "it", "50,00\xa0€", "12 luglio 2026"),
        ("GB", "GBP", "Europe/London", "en", "£50.00", "12 July 2026"),
        ("US", "USD", "America/New_York", "en", "$50.00", "July 12, 2026"),
    ],
)
def test_r7_each_market_gets_its_language_and_locale_formats(
    market: str, currency: str, zone: str, language: str, amount: str, expiry: str
) -> None:
    card = mail(market, currency, zone)
    sent = render(card, "card", "<x.card@t>", NOW)
    summary = render(card, "confirmation", "<x.confirmation@t>", NOW)
    assert sent["Content-Language"] == summary["Content-Language"] == language
    for message in (sent, summary):
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert amount in text and expiry in text and expiry in html
    assert CODE in sent.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    summary_text = summary.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert CODE not in summary.as_string() and CODE not in summary_text  # no code
    assert "RSTU" in summary_text  # its last 4 only
    assert amount in str(sent["Subject"])


def test_r7_a_resend_is_the_same_email_and_the_personal_message_is_escaped_in_html() -> None:
    card = mail("FR", "EUR", "Europe/Paris", message="<i>hi</i> & <script>x()</script>")
    first, again = (render(card, "card", "<x@t>", NOW) for _ in range(2))

    def parts(message: EmailMessage) -> list[str]:
        return [str(message["Message-ID"]), str(message["Subject"])] + [
            part.get_content() for part in message.iter_parts()  # type: ignore[attr-defined]
        ]

    assert parts(first) == parts(again)  # a receiver deduplicates on the Message-ID
    html = first.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;i&gt;hi&lt;/i&gt; &amp; &lt;script&gt;x()&lt;/script&gt;" in html
    assert "<script>" not in html and "<i>" not in html
