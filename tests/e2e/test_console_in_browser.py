"""The console in a real Chromium against a real server on PostgreSQL: signing in, sessions,
CSRF, roles; customer service's card page, resend, cancellation, erasure; the auditor's
verified history."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from uuid import UUID

import pytest
from selenium.webdriver.common.by import By

from application.commands import PurchaseCard, RedeemCard
from application.delivery import Deliveries
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from application.results import DeliveryState, Purchase
from tests.e2e.console_browser import GIFTCARDS, IDLE_SECONDS, Console, console, wait_until
from tests.mail.inbox import message_parts

__all__ = ["console"]  # the module's fixture
pytestmark = pytest.mark.timeout(300)


def buy(console: Console, order_id: str, buyer_id: str, email: str) -> Purchase:
    service = console.service()
    try:
        return service.app.purchase(PurchaseCard(
            order_id=order_id, market="FR", amount=5000, payment_method="card", buyer_id=buyer_id,
            buyer_email=email,
        ))
    finally:
        service.close()


def delivery_of(console: Console, card_id: str) -> DeliveryState:
    service = console.service()
    try:
        return Deliveries(service).of_card(UUID(card_id))
    finally:
        service.close()


def access_log(console: Console, subject_id: str) -> set[tuple[str, str]]:
    service = console.service()
    try:
        reader = PiiReader(service, "root", "test: who read", "test")
        entries = Privacy(service).access_log(subject_id, reader)["entries"]
    finally:
        service.close()
    return {(e["operator"], e["purpose"]) for e in entries}


def card_status(console: Console, card_id: str) -> str:
    service = console.service()
    try:
        return str(service.app.show(UUID(card_id)).status)
    finally:
        service.close()


def test_r21_an_operator_signs_in_with_their_own_key_and_out(console: Console) -> None:
    console.browser.delete_all_cookies()
    console.open("/console/cards")
    assert "/console/sign-in" in console.browser.current_url
    console.fill({"key": "not-a-key"})
    console.click("sign-in")
    assert "invalid_operator_key" in console.text("error")
    console.sign_in("sam", lang="fr")
    assert "Connecté en tant que sam" in console.text("who")
    cookie = console.browser.get_cookie("giftcards_console")
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain HTTP here; behind TLS the cookie is Secure
    console.shot("sign-in-done")
    console.click("sign-out")
    assert "/console/sign-in" in console.browser.current_url
    # The signed-out session is gone on the server too: its cookie opens nothing.
    console.browser.add_cookie({**cookie, "sameSite": "Strict"})
    console.open("/console/cards")
    assert "/console/sign-in" in console.browser.current_url


def test_a_form_posted_without_its_csrf_token_is_refused(console: Console) -> None:
    card = buy(console, "ord-console-csrf", "cus-csrf", "csrf@example.org")
    console.sign_in("sam")
    console.open(f"/console/cards/{card.card_id}")
    console.browser.execute_script(
        "document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    console.fill({"cancel-order": "ord-console-csrf", "cancel-code": card.code})
    console.click("cancel")
    assert "reload the page" in console.text("refused")
    assert card_status(console, str(card.card_id)) == "active"


def test_support_and_auditors_see_only_their_own_pages(console: Console) -> None:
    card = buy(console, "ord-console-roles", "cus-roles", "roles@example.org")
    console.sign_in("sam")
    for path in (f"/console/audit/cards/{card.card_id}", "/console/audit/liability",
                 "/console/audit/breakage", "/console/audit/alerts"):
        console.open(path)
        assert "does not open this page" in console.text("refused"), path
    assert not console.browser.find_elements(By.LINK_TEXT, "Audit")
    console.sign_in("ava")
    for path in (f"/console/cards/{card.card_id}", "/console/cards", "/console/requests"):
        console.open(path)
        assert "does not open this page" in console.text("refused"), path
    assert not console.browser.find_elements(By.LINK_TEXT, "Find a card")


def test_r19_r20_support_finds_a_card_resends_its_code_and_cancels_it(console: Console) -> None:
    console.smtp.control("reject 10")  # the mail server refuses: the delivery fails for good
    card = buy(console, "ord-console-1", "cus-1", "buyer@example.org")
    wait_until(lambda: delivery_of(console, str(card.card_id)).status == "failed",
               "the delivery did not fail")
    console.smtp.control("")
    console.sign_in("sam")
    console.fill({"order_id": "ord-console-1", "last4": "0000"})
    console.click("find")
    assert "unknown_card" in console.text("error")
    console.fill({"order_id": "ord-console-1", "last4": card.code[-4:]})
    console.click("find")
    url = console.browser.current_url
    assert url.endswith(f"/console/cards/{card.card_id}")
    assert "ord-console-1" not in url and card.code[-4:] not in url
    assert console.text("status") == "active"
    assert "Purchased" in console.text("timeline")
    assert console.text("delivery-status") == "failed"
    assert card.code not in console.browser.page_source  # only its last 4
    console.shot("support-card")
    # R21: the page named the buyer: logged as the operator who opened it.
    assert ("sam", "customer service: card page") in access_log(console, "cus-1")
    console.click("resend")
    assert "Sent again" in console.text("resent")
    sent = wait_until(lambda: [m for m in console.smtp.received()
                               if message_parts(m)[0] == str(card.card_id)],
                      "the SMTP server did not receive the code again")
    assert {m["To"] for m in sent} == {"buyer@example.org"}
    # R20: the order id and the code typed by the agent, both checked.
    console.fill({"cancel-order": "ord-console-1", "cancel-code": "WRONG-CODE-0000"})
    console.click("cancel")
    assert "code_mismatch" in console.text("refused")
    console.fill({"cancel-order": "ord-console-1", "cancel-code": card.code})
    console.click("cancel")
    assert "Cancelled" in console.text("cancelled")
    assert console.text("status") == "cancelled"
    assert card_status(console, str(card.card_id)) == "cancelled"
    assert card.code not in console.log.read_text()


def test_the_dpo_carries_out_an_erasure_request_from_the_register(console: Console) -> None:
    buy(console, "ord-console-erase", "cus-erase", "erase@example.org")
    service = console.service()
    try:
        Privacy(service).open_request("cus-erase", "erasure", datetime.now(UTC).date(),
                                      "req-erase-1")
    finally:
        service.close()
    console.sign_in("dora")
    console.open("/console/requests")
    row = console.browser.find_element(By.XPATH, "//tr[td[text()='req-erase-1']]")
    assert "open" in row.text
    due = row.find_elements(By.TAG_NAME, "td")[4].text
    # Art. 12(3): extended by a month, with its reason, from the same row.
    row.find_element(By.NAME, "reason").send_keys("many cards to trace")
    console.press(row.find_element(By.CSS_SELECTOR, "form.extend button"))
    row = console.browser.find_element(By.XPATH, "//tr[td[text()='req-erase-1']]")
    assert "+1 (many cards to trace)" in row.text
    assert row.find_elements(By.TAG_NAME, "td")[4].text != due
    console.shot("support-requests")
    console.press(row.find_element(By.CLASS_NAME, "erase"))
    row = console.browser.find_element(By.XPATH, "//tr[td[text()='req-erase-1']]")
    assert "closed" in row.text
    service = console.service()
    try:
        listed = Privacy(service).list_requests(overdue=False, as_of=None)["requests"]
    finally:
        service.close()
    assert [r["status"] for r in listed if r["request_id"] == "req-erase-1"] == ["closed"]


def test_an_auditor_sees_a_verified_history_and_the_liability_and_breakage_charts(
    console: Console,
) -> None:
    card = buy(console, "ord-console-audit", "cus-audit", "audit@example.org")
    # A signed checkpoint covers the purchase; the redemption after it is not covered yet.
    done = subprocess.run([GIFTCARDS, "--json", "audit", "checkpoint"], env=console.env,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    service = console.service()
    try:  # R11: 30.00 of the 50.00 card used, the remainder is breakage after use
        service.app.redeem(RedeemCard(
            code=card.code, market="FR", order_id="ord-console-audit-use", order_total=3000,
            customer_id="cus-audit", source="test",
        ))
    finally:
        service.close()
    console.browser.get_log("browser")  # drained: the earlier tests' refusals are logged
    console.sign_in("ava")
    console.fill({"card_id": str(card.card_id)})
    console.click("open-history")
    rows = console.browser.find_elements(By.CSS_SELECTOR, "#history tr")[1:]
    kinds = [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows]
    assert (kinds[0], kinds[-1]) == ("Purchased", "Redeemed")
    covered = [r.find_element(By.CLASS_NAME, "checkpoint").text for r in rows]
    assert covered[0].startswith("#") and covered[-1] == "not yet covered"
    assert all(len(r.find_element(By.TAG_NAME, "code").text) == 64 for r in rows)
    console.click("verify")
    assert "Verified" in console.text("verified")
    console.shot("auditor-history")
    console.open("/console/audit/liability")
    console.wait_for_chart("liability-chart")
    assert "FR" in console.text("liability-table")
    console.shot("auditor-liability")
    console.open("/console/audit/breakage")
    console.wait_for_chart("breakage-chart")
    assert "€20.00" in console.text("breakage-table")
    console.shot("auditor-breakage")
    # F2: five cards bought by one buyer within the window, explained.
    for n in range(5):
        buy(console, f"ord-console-velocity-{n}", "cus-velocity", "velocity@example.org")
    console.open("/console/audit/alerts")
    rows = [r.text for r in console.browser.find_elements(By.CSS_SELECTOR, "#alerts tr")
            if " F2 " in f" {r.text} "]
    assert rows and "5 cards bought by one buyer" in rows[0]
    console.shot("auditor-alerts")
    errors = [e["message"] for e in console.browser.get_log("browser")
              if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
    assert errors == []


def test_an_idle_session_expires(console: Console) -> None:
    console.sign_in("sam")
    # The server's own clock: nothing but waiting makes a session idle.
    time.sleep(IDLE_SECONDS + 0.5)
    console.open("/console/cards")
    assert "/console/sign-in" in console.browser.current_url
    assert "session ended" in console.text("expired")
