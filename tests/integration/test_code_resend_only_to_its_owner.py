"""R7/R21: `deliveries retry` resends a code only to the address on file or its recorded
rectification; another address is a rectification by a registered operator under the buyer's
request, access-logged, and the previous address is told without the code."""

from __future__ import annotations

from application.privacy import Privacy
from application.privacy_reads import PiiReader
from infra.bootstrap import Service
from tests.e2e.operator_keys import enrol as enrol_key
from tests.e2e.test_cli import assert_error, cli
from tests.mail.inbox import SmtpServer, code_in, message_parts, smtp_server, text_of
from tests.operator_register import enrol

__all__ = ["smtp_server"]  # the fixture
AT = "2026-01-12T10:00:00Z"


def to_address(smtp: SmtpServer) -> dict[str, list[str]]:
    """The kinds of e-mail (card, confirmation, notice) each address received."""
    found: dict[str, list[str]] = {}
    for message in smtp.received():
        found.setdefault(str(message["To"]), []).append(message_parts(message)[2])
    return found


def test_r7_r21_retry_to_another_address_needs_a_registered_operator_and_a_rectification(
    env_for: dict[str, str], service: Service, smtp_server: SmtpServer
) -> None:
    env = {**env_for, "GIFTCARDS_SMTP_URL": smtp_server.url}
    rc, card, _ = cli(env, AT, "purchase", "--market", "FR", "--amount", "250",
                      "--payment-method", "card", "--buyer-id", "cust-alice", "--buyer-email",
                      "alice@example.org", "--order-id", "o-resend")  # fmt: skip
    assert rc == 0
    smtp_server.control("reject 1")  # the first delivery fails for good: customer service
    assert cli(env, AT, "deliver", "--once")[:2] == (0, {"delivered": 0, "failed": 1})
    cid = card["card_id"]
    # Nobody outside the register; a registered one without a rectification: refused.
    retry = ["deliveries", "retry", cid, "--buyer-email", "mallory@evil.example"]
    assert_error(cli(env, AT, *retry, "--operator", "nobody-at-all"), 1, "unknown_operator")
    enrol_key(lambda e, *a: cli(e, AT, *a)[:2], env, "agent-1", "support")
    assert_error(cli(env, AT, *retry, "--operator", "agent-1"), 1, "rectification_required")
    assert cli(env, AT, "gdpr", "request", "open", "--subject", "cust-bob", "--type",
               "rectification", "--received-on", "2026-01-12", "--request-id", "req-bob")[0] == 0
    assert_error(cli(env, AT, *retry, "--operator", "agent-1", "--request-id", "req-bob"), 1,
                 "request_mismatch")
    assert cli(env, AT, "deliver", "--once")[:2] == (0, {"delivered": 0, "failed": 0})
    assert "mallory@evil.example" not in to_address(smtp_server)
    # The buyer's own rectification request: recorded, logged as the operator, old address told.
    assert cli(env, AT, "gdpr", "request", "open", "--subject", "cust-alice", "--type",
               "rectification", "--received-on", "2026-01-12", "--request-id", "req-al")[0] == 0
    rc, done, _ = cli(env, AT, "deliveries", "retry", cid, "--buyer-email", "alice@new.example",
                      "--operator", "agent-1", "--request-id", "req-al")  # fmt: skip
    assert (rc, done["attempt"], done["previous_address_notified"]) == (0, 1, True)
    assert cli(env, AT, "deliver", "--once")[:2] == (0, {"delivered": 1, "failed": 0})
    got = to_address(smtp_server)
    assert sorted(got["alice@new.example"]) == ["card", "confirmation"]
    assert got["alice@example.org"] == ["notice"]
    notice = next(m for m in smtp_server.received() if message_parts(m)[2] == "notice")
    card_mail = next(m for m in smtp_server.received() if message_parts(m)[2] == "card")
    code = code_in(card_mail)
    assert code not in notice.as_string() and card["code_last4"] in text_of(notice, "plain")
    privacy = Privacy(service)
    enrol(service, "dpo-1", "dpo")
    log = privacy.access_log("cust-alice", PiiReader(service, "dpo-1", "audit", "t"))
    assert {r["command"] for r in log["entries"] if r["operator"] == "agent-1"} >= {
        "deliveries retry", "gdpr rectify"}
    rectified = privacy.export(["cust-alice"], PiiReader(service, "dpo-1", "p", "t"))
    assert [r["field"] for r in rectified["rectifications"]] == ["email"]


def test_r7_retry_without_an_address_goes_to_the_address_on_file(
    env_for: dict[str, str], service: Service, smtp_server: SmtpServer
) -> None:
    env = {**env_for, "GIFTCARDS_SMTP_URL": smtp_server.url}
    rc, card, _ = cli(env, AT, "purchase", "--market", "GB", "--amount", "25",
                      "--payment-method", "card", "--buyer-id", "cust-b", "--buyer-email",
                      "b@example.org", "--order-id", "o-again")  # fmt: skip
    assert rc == 0
    smtp_server.control("reject 1")
    assert cli(env, AT, "deliver", "--once")[:2] == (0, {"delivered": 0, "failed": 1})
    enrol_key(lambda e, *a: cli(e, AT, *a)[:2], env, "agent-2", "support")
    same = cli(env, AT, "deliveries", "retry", card["card_id"], "--operator", "agent-2",
               "--buyer-email", "B@example.org")  # the address on file, however spelt
    assert same[0] == 0 and same[1]["previous_address_notified"] is False
    assert cli(env, AT, "deliver", "--once")[:2] == (0, {"delivered": 1, "failed": 0})
    assert {a: sorted(k) for a, k in to_address(smtp_server).items()} == {
        "b@example.org": ["card", "confirmation"]}

