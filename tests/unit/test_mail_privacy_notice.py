"""Art. 13: the code and confirmation e-mails carry the privacy notice and the contact for the
subject's rights, in the language of the card's market, in both the text and the HTML part."""

from __future__ import annotations

import html as htmlmod

import pytest

from infra.mail.render import LOCALES, PRIVACY_CONTACT, language, render
from infra.mail.texts import TEXTS
from tests.unit.test_code_delivery import NOW, mail

CURRENCY = {"GB": "GBP", "US": "USD"}
# A word of the rights sentence in each language (it must be translated, not English).
RIGHT_TO_OBJECT = {"fr": "opposer", "de": "widersprechen", "es": "oponerse",
                   "it": "opporvisi", "en": "object"}


@pytest.mark.parametrize("market", sorted(LOCALES))
def test_r7_every_email_carries_the_privacy_notice_and_contact_in_its_language(
    market: str,
) -> None:
    card = mail(market, CURRENCY.get(market, "EUR"), "Europe/Paris")
    lang = language(market)
    for which in ("card", "confirmation"):
        message = render(card, which, f"<x.{which}@t>", NOW)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = htmlmod.unescape(
            message.get_body(("html",)).get_content())  # type: ignore[union-attr]
        for part in (text, html):
            assert PRIVACY_CONTACT in part, (market, which)
            assert TEXTS[lang]["privacy_title"] in part
            assert RIGHT_TO_OBJECT[lang] in part
