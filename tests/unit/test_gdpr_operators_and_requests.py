"""Data protection on the in-memory application: operators in a register, accountable erasure,
logged subject lookups, dead-letter retention."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from application.operators import Operators
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from domain.errors import DomainError
from infra.bootstrap import Service
from tests.store_ids import store_id
from tests.unit.test_gdpr_privacy import ALICE_EMAIL, busy_history, register_operator


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(DomainError) as error:
        call(*args)
    return error.value.code


def test_r21_operators_are_checked_against_the_register(
    memory_service: Service,
) -> None:
    assert refused(PiiReader, memory_service, "anyone", "access request", "test") == (
        "unknown_operator"
    )
    operators = Operators(memory_service.app)
    root = operators.add("root", "admin", None)  # the bootstrap admin founds the register
    assert refused(operators.add, "mallory", "support", None) == "operator_required"
    admin = operators.authenticate(root["key"])
    added = operators.add("agent-7", "support", admin)
    assert added["by"] == "root"
    assert refused(operators.add, "agent-7", "dpo", admin) == "operator_conflict"
    PiiReader(memory_service, "agent-7", "access request", "test")  # now accepted


def test_p2_erasure_needs_a_registered_request_and_operator_and_closes_it(
    memory_service: Service, clock: Any
) -> None:
    h = busy_history(memory_service, clock)
    privacy = Privacy(memory_service)
    operator = register_operator(memory_service)
    assert refused(privacy.erase, h.alice_ids, "req-unknown", operator) == "unknown_request"
    privacy.open_request("cust-alice", "erasure", privacy.today(), "req-a")
    assert refused(privacy.erase, h.alice_ids, "req-a", "nobody") == "unknown_operator"
    alice = {store_id(memory_service, i) for i in h.alice_ids}  # the keys' subjects
    assert memory_service.vault.live_subjects() >= alice  # nothing done yet

    result = privacy.erase(h.alice_ids, "req-a", operator)

    assert result["operator"] == operator and result["keys_destroyed"] == 2
    request = privacy.request("req-a")
    assert request["status"] == "closed" and request["closed_on"] == privacy.today().isoformat()
    outcome = memory_service.db.execute(
        "SELECT operator, outcome FROM gdpr_request_outcomes WHERE request_id = 'req-a'"
    )
    assert outcome[0][0] == operator and '"keys_destroyed": 2' in outcome[0][1]
    reader = PiiReader(memory_service, operator, "review", "test")
    log = privacy.access_log("cust-alice", reader)["entries"]
    assert {(e["operator"], e["purpose"], e["command"]) for e in log if e["field"] == "*"} == {
        (operator, "erasure request", "gdpr erase")
    }


def test_p3_subject_lookup_by_email_needs_an_operator_and_is_logged(
    memory_service: Service, clock: Any
) -> None:
    privacy = Privacy(memory_service)
    assert refused(PiiReader, memory_service, "", "lookup", "gdpr subject") == (
        "operator_required"
    )
    operator = register_operator(memory_service)
    reader = PiiReader(memory_service, operator, "subject lookup", "gdpr subject")
    subject = privacy.subject_for_email(ALICE_EMAIL, reader)["subject_id"]
    log = privacy.access_log(subject, PiiReader(memory_service, operator, "review", "t"))
    first = log["entries"][0]
    assert (first["field"], first["command"]) == ("email", "gdpr subject")


def test_p1_objection_is_accountable_too(memory_service: Service) -> None:
    privacy = Privacy(memory_service)
    operator = register_operator(memory_service)
    assert refused(privacy.object, ["cust-x"], "obj-x", operator) == "unknown_request"
    privacy.open_request("cust-x", "objection", date(2026, 1, 12), "obj-x")
    assert privacy.object(["cust-x"], "obj-x", operator)["operator"] == operator
    assert privacy.request("obj-x")["status"] == "closed"


def test_p2_dead_letters_expire_after_their_retention_period() -> None:
    from infra.config import load_settings
    from infra.kafka.topics import Topics

    settings = load_settings({"GIFTCARDS_DATABASE_URL": "memory://",
                              "GIFTCARDS_SECRET_KEY": "s" * 20 + "-0123456789abcdef",
                              "GIFTCARDS_RETENTION_DEAD_LETTER_DAYS": "7"})
    topics = Topics("t.", settings.retention_dead_letter_days)
    assert topics.configs()[topics.dead_letters]["retention.ms"] == str(7 * 86_400_000)
    assert topics.configs()[topics.events]["retention.ms"] == "-1"  # the audit log: forever
