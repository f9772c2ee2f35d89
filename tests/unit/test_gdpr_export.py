"""The export (art. 15, P3) holds every datum about the subject, refund
cards, holds, profiling results, access log, rectifications and restrictions included, and
keeps to its published schema (schemas/subject-export.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from jsonschema import Draft202012Validator

from application.commands import AuthorizeHold, RedeemCard, VoidHold
from application.holds import Holds
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from application.privacy_scan import SCANNED
from domain.errors import DomainError
from infra import schemas
from infra.bootstrap import Service
from infra.db import Database
from infra.envelope import published_events
from infra.vault_keys import ERASED
from projections import queries
from projections.config import FraudConfig
from projections.runner import Projector
from projections.sources import sync_store
from tests.unit.test_gdpr_privacy import busy_history, buy, register_operator

# Fields that name a data subject or hold their sealed data, in any event.
SUBJECT_FIELDS = {"customer_id", "buyer_subject", "subject_id", "pii"}


def export_schema() -> dict[str, Any]:
    text = (schemas.SCHEMA_DIR / schemas.SUBJECT_EXPORT).read_text(encoding="utf-8")
    return dict(json.loads(text))


def test_p3_export_is_complete_and_keeps_to_its_schema(
    memory_service: Service, clock: Any, tmp_path: Path
) -> None:
    app = memory_service.app
    h = busy_history(memory_service, clock)
    for i in range(3):  # profiling: an F1 alert about Alice
        with pytest.raises(DomainError):
            app.redeem(RedeemCard(
                code=f"GUESS-{i}", market="FR", order_id=f"g-{i}", order_total=100,
                customer_id="cust-alice", source="test",
            ))
    dave = buy(app, "o-d1", "cust-dave")
    with pytest.raises(DomainError):  # a refused redemption: a card of FR tried elsewhere
        app.redeem(RedeemCard(
            code=dave.code, market="DE", order_id="shop-alice-8", order_total=100,
            customer_id="cust-alice", source="test",
        ))
    holds = Holds(app)
    holds.authorize(AuthorizeHold(
        code=dave.code, market="FR", order_id="shop-alice-9", order_total=1000,
        customer_id="cust-alice", source="test",
    ))
    holds.void(VoidHold(order_id="shop-alice-9"))
    clock.advance(minutes=1)  # the restriction below leaves earlier profiling results
    privacy, operator = Privacy(memory_service), register_operator(memory_service)
    for kind, rid in (("rectification", "rect-1"), ("restriction", "res-1")):
        privacy.open_request("cust-alice", kind, privacy.today(), rid)
    privacy.rectify("cust-alice", "name", "Alice Durand-Noel", "rect-1", operator)
    privacy.restrict(["cust-alice"], "res-1", operator)
    views = Projector(Database(f"sqlite:///{tmp_path / 'views.sqlite3'}"),
                      FraudConfig(f1_unknown_codes=3))

    def profiling(ids: list[str]) -> list[dict[str, Any]]:
        sync_store(app, views)
        return list(queries.alerts(views.db, customers=ids)["alerts"])

    reader = PiiReader(memory_service, operator, "access request", "test")
    document = privacy.export(h.alice_ids, reader, profiling)

    Draft202012Validator(export_schema()).validate(document)
    empty = [k for k, v in document.items() if isinstance(v, list) and not v]
    assert empty == []  # every section is exercised by this history
    (refund_card,) = document["refund_cards"]
    assert refund_card["amount"] == 1000 and refund_card["buyer_email"] is None  # Bob's data
    assert [h["order_id"] for h in document["holds"]] == ["shop-alice-9", "shop-alice-9"]
    alerts = {a["rule"]: a for a in document["profiling"]}
    assert set(alerts) == {"F1", "F5"} and "threshold 3" in alerts["F1"]["explanation"]
    assert len(alerts["F1"]["event_ids"]) == 3
    # The views hold pseudonyms (P5); the subject's export names them by their own ids.
    assert {a["customer_id"] for a in alerts.values()} <= set(h.alice_ids)
    assert {"gdpr rectify", "gdpr restrict"} <= {e["command"] for e in document["access_log"]}
    assert document["rectifications"][0]["field"] == "name"
    assert {r["type"] for r in document["rights_exercised"]} == {"Rectified", "Restricted"}
    assert {c["buyer_name"] for c in document["cards_bought"]} == {"Alice Durand-Noel"}


def test_p3_a_new_personal_data_field_must_be_exported(memory_service: Service) -> None:
    """Fails when an event naming a subject is not scanned by the export, or a purchase seals
    a personal field that the export (and its schema) does not carry."""
    naming = [cls for _, _, cls in published_events() if SUBJECT_FIELDS & set(cls.model_fields)]
    assert naming and [cls.__qualname__ for cls in naming if cls not in SCANNED] == []
    card = buy(memory_service.app, "o-x", "cust-x", buyer_email="x@example.org", buyer_name="X",
               recipient_email="y@example.org", recipient_name="Y", message="hi")
    sealed = set(memory_service.app.card(card.card_id).pii) - {"recipient_subject"}
    sections = export_schema()["properties"]
    exported = {
        name for section in ("cards_bought", "cards_received")
        for name in sections[section]["items"]["properties"]
    }
    assert sealed and sealed - exported == set()


def erase(memory_service: Service, ids: list[str], request_id: str) -> None:
    privacy, operator = Privacy(memory_service), register_operator(memory_service)
    privacy.open_request(ids[0], "erasure", privacy.today(), request_id)
    privacy.erase(ids, request_id, operator)


def reader(memory_service: Service) -> PiiReader:
    return PiiReader(memory_service, register_operator(memory_service), "access request", "t")


def test_p2_the_message_is_unreadable_after_the_recipients_erasure(
    memory_service: Service,
) -> None:
    app, vault = memory_service.app, memory_service.vault
    buy(app, "o-m", "cust-mia", buyer_email="mia@example.org", recipient_email="leo@example.org",
        recipient_name="Leo", message="for Leo, who fixed my bike")
    leo = vault.subject_for_email("leo@example.org")
    (bought,) = Privacy(memory_service).export(["cust-mia"], reader(memory_service))["cards_bought"]
    assert bought["message"] == "for Leo, who fixed my bike"
    stored = str(app.card(UUID(bought["card_id"])).pii)
    assert "Leo" not in stored  # sealed, twice

    erase(memory_service, [leo], "era-leo")

    privacy = Privacy(memory_service)
    (bought,) = privacy.export(["cust-mia"], reader(memory_service))["cards_bought"]
    assert bought["message"] == ERASED and bought["buyer_email"] == "mia@example.org"
    by_email = privacy.export([leo], reader(memory_service))  # what `--email` resolves to
    assert by_email["cards_received"] == [] and len(by_email["withheld"]) == 3


def test_p2_the_message_is_unreadable_after_the_buyers_erasure(
    memory_service: Service,
) -> None:
    buy(memory_service.app, "o-m", "cust-mia", recipient_email="leo@example.org",
        message="for Leo")
    leo = memory_service.vault.subject_for_email("leo@example.org")
    erase(memory_service, ["cust-mia"], "era-mia")
    (received,) = Privacy(memory_service).export([leo], reader(memory_service))["cards_received"]
    assert received["message"] == ERASED and received["recipient_email"] == "leo@example.org"
