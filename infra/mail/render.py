"""The two e-mails of a card, multipart text + HTML, in its market's language (Jinja2, Babel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from domain.markets import MINOR_UNITS
from infra.mail.texts import TEXTS

LOCALES = {
    "FR": "fr_FR",
    "BE": "fr_BE",
    "DE": "de_DE",
    "ES": "es_ES",
    "IT": "it_IT",
    "GB": "en_GB",
    "US": "en_US",
}
SENDER = Address("Gift cards", "giftcards", "marketplace.invalid")
# The controller's contact for the rights of data subjects, as the privacy policy gives it;
# every e-mail carries it with the privacy notice (art. 13).
PRIVACY_CONTACT = ("legal@backmarket.com (Service Juridique / Responsable Données Personnelles, "
                   "152 boulevard Macdonald, 75019 Paris)")

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    # The personal message and names are the buyer's input: escaped in every HTML part.
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class CardMail:
    """What the e-mails of one card say; `code` only in the card e-mail."""

    card_id: str
    market: str
    currency: str
    amount: int
    purchased_at: datetime
    expires_at: datetime
    order_id: str
    code_last4: str
    code: str
    timezone: str
    buyer_email: str
    buyer_name: str | None
    recipient_name: str | None
    message: str | None
    refunds_order: str | None


def language(market: str) -> str:
    return LOCALES.get(market, "en_GB").split("_")[0]


def render(mail: CardMail, which: str, message_id: str, sent_at: datetime) -> EmailMessage:
    """`which` is `confirmation` (no code) or `card`; the same inputs give the same e-mail."""
    locale = LOCALES.get(mail.market, "en_GB")
    zone = ZoneInfo(mail.timezone)
    context: dict[str, Any] = {
        "mail": mail,
        "amount": format_currency(
            mail.amount / 10 ** MINOR_UNITS[mail.currency], mail.currency, locale=locale
        ),
        "purchase_date": format_date(mail.purchased_at.astimezone(zone), "long", locale=locale),
        "expiry_date": format_date(mail.expires_at.astimezone(zone), "long", locale=locale),
        "platform": PLATFORMS.get(mail.market, mail.market),
        "privacy_contact": PRIVACY_CONTACT,
    }
    lang = language(mail.market)
    context["t"] = TEXTS[lang]
    subject = TEXTS[lang][f"{which}_subject"].format(amount=context["amount"])
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = SENDER
    msg["To"] = mail.buyer_email
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(sent_at)
    msg.set_content(_env.get_template(f"{which}.txt").render(context))
    msg.add_alternative(_env.get_template(f"{which}.html").render(context), subtype="html")
    msg["Content-Language"] = lang  # after the parts: set_content drops Content-* headers
    return msg


NOTICE = {
    "fr": ("Votre carte cadeau a été renvoyée",
           "Le code de votre carte cadeau (se terminant par {last4}) a été renvoyé à une adresse "
           "e-mail corrigée à votre demande. Si vous n'êtes pas à l'origine de cette demande, "
           "contactez le service client."),
    "de": ("Ihre Geschenkkarte wurde erneut gesendet",
           "Der Code Ihrer Geschenkkarte (endet auf {last4}) wurde auf Ihren Antrag an eine "
           "berichtigte E-Mail-Adresse gesendet. Wenn Sie das nicht beantragt haben, wenden Sie "
           "sich an den Kundenservice."),
    "es": ("Su tarjeta regalo se ha reenviado",
           "El código de su tarjeta regalo (termina en {last4}) se ha reenviado a una dirección "
           "de correo rectificada a petición suya. Si no lo ha pedido, contacte con atención al "
           "cliente."),
    "it": ("La sua carta regalo è stata inviata di nuovo",
           "Il codice della sua carta regalo (termina con {last4}) è stato inviato a un indirizzo "
           "e-mail rettificato su sua richiesta. Se non l'ha chiesto, contatti il servizio "
           "clienti."),
    "en": ("Your gift card was sent again",
           "The code of your gift card (ending in {last4}) was sent again to an e-mail address "
           "corrected at your request. If you did not ask for this, contact customer service."),
}


def render_notice(
    to: str, market: str, code_last4: str, message_id: str, sent_at: datetime
) -> EmailMessage:
    """The notice to a previous address that the code went to its rectified value: the last
    four characters only, never the code."""
    lang = language(market)
    subject, body = NOTICE.get(lang, NOTICE["en"])
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = SENDER
    msg["To"] = to
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(sent_at)
    msg.set_content(body.format(last4=code_last4) + "\n")
    msg["Content-Language"] = lang
    return msg


PLATFORMS = {
    "FR": "marketplace.fr",
    "BE": "marketplace.be",
    "DE": "marketplace.de",
    "ES": "marketplace.es",
    "IT": "marketplace.it",
    "GB": "marketplace.co.uk",
    "US": "marketplace.com",
}
