"""R21: operators are principals. The register is a stream changed only by an admin; each
operator's credential is an API key of their own (hashed, revocable, expiring). On both stores."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.utils import get_topic

from application.apikeys import key_hash
from application.operators import Operators
from domain.errors import DomainError
from domain.operators import REGISTER, OperatorRegister, check_grant
from infra.bootstrap import Service


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(DomainError) as error:
        call(*args)
    return error.value.code


def founded(service: Service) -> tuple[Operators, Any]:
    operators = Operators(service.app)
    root = operators.add("root", "admin", None)  # the service's secret alone: bootstrap
    return operators, operators.authenticate(root["key"])


def test_r21_a_support_operator_cannot_create_a_dpo_nor_anyone(service: Service) -> None:
    operators, admin = founded(service)
    sam = operators.authenticate(operators.add("sam-support", "support", admin)["key"])
    assert refused(operators.add, "mallory", "dpo", sam) == "operator_forbidden"
    assert refused(operators.add, "mallory", "support", sam) == "operator_forbidden"
    assert refused(operators.change_role, "sam-support", "admin", sam) == "operator_forbidden"
    assert refused(operators.add, "mallory", "dpo", None) == "operator_required"  # no 2nd root
    assert not operators.is_registered("mallory")
    assert operators.authenticate(operators.add("dee", "dpo", admin)["key"]).role == "dpo"


def test_r21_register_changes_are_events_on_the_register_stream_naming_who(
    service: Service,
) -> None:
    operators, admin = founded(service)
    operators.add("sam", "support", admin)
    operators.change_role("sam", "dpo", admin)
    operators.disable("sam", admin)
    operators.rekey("sam", admin)
    events = list(service.app.repository.event_store.get(REGISTER))
    assert [type(e).__name__ for e in events] == [
        "Founded", "Registered", "Registered", "RoleChanged", "Rekeyed", "Disabled", "Rekeyed"]
    assert [getattr(e, "by", None) for e in events[1:]] == [
        "bootstrap", "root", "root", "root", "root", "root"]
    topic = get_topic(OperatorRegister.Registered)
    assert service.app.recorder.select_notifications(1, 1000, topics=[topic])


def test_r21_disable_and_rekey_work_and_a_disabled_or_old_key_is_refused(
    service: Service,
) -> None:
    operators, admin = founded(service)
    first = operators.add("sam", "support", admin)
    assert operators.authenticate(first["key"]).name == "sam"
    operators.disable("sam", admin)
    assert refused(operators.authenticate, first["key"]) == "invalid_operator_key"
    second = operators.rekey("sam", admin)  # a new key; the operator is enabled again
    assert operators.authenticate(second["key"]).name == "sam"
    assert refused(operators.authenticate, first["key"]) == "invalid_operator_key"
    third = operators.rekey("sam", admin)
    assert refused(operators.authenticate, second["key"]) == "invalid_operator_key"
    assert operators.authenticate(third["key"]).role == "support"
    # The key is stored hashed: its text is nowhere in the store, its hash is its stream.
    rows = service.app.recorder.select_notifications(1, 10_000)
    assert not any(third["key"].encode() in n.state for n in rows)
    assert key_hash(third["key"]) not in third.values()


def test_r21_an_expired_operator_key_is_refused(service: Service, clock: Any) -> None:
    operators, admin = founded(service)
    sam = operators.add("sam", "support", admin)
    clock.advance(days=89)
    assert operators.authenticate(sam["key"]).name == "sam"
    clock.advance(days=2)
    assert refused(operators.authenticate, sam["key"]) == "invalid_operator_key"
    assert refused(operators.authenticate, "gck_made-up") == "invalid_operator_key"


def test_r21_a_role_change_issues_a_key_with_the_new_role(service: Service) -> None:
    operators, admin = founded(service)
    old = operators.add("sam", "support", admin)
    changed = operators.change_role("sam", "auditor", admin)
    assert refused(operators.authenticate, old["key"]) == "invalid_operator_key"
    assert operators.authenticate(changed["key"]).role == "auditor"


def test_r21_nobody_grants_a_role_above_their_own() -> None:
    assert refused(check_grant, "dpo", "admin") == "role_above_own"
    assert refused(check_grant, "support", "dpo") == "role_above_own"
    check_grant("admin", "dpo")
    check_grant("dpo", "support")
