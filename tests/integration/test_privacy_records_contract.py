"""The PrivacyRecords port's contract, on each store (SQLite, PostgreSQL): what the rights'
use cases rely on of the register, the access log and the identifiers a person has had."""

from __future__ import annotations

import re
from pathlib import Path

from application.ports import PrivacyRecords, RequestRow
from infra.bootstrap import Service

ROOT = Path(__file__).resolve().parents[2]


def records_of(service: Service) -> PrivacyRecords:
    records: PrivacyRecords = service.privacy_records
    records.create()
    records.create()  # twice: idempotent
    return records


def request(request_id: str, subject: str, due_on: str, status: str = "open") -> RequestRow:
    return {"request_id": request_id, "subject_id": subject, "type": "access",
            "received_on": "2026-01-10", "due_on": due_on, "extension_months": 0,
            "extension_reason": None, "status": status, "opened_at": "2026-01-10T09:00:00Z",
            "closed_on": None}


def test_r21_access_log_lists_a_subjects_entries_in_order_and_purges_by_age(
    service: Service,
) -> None:
    records = records_of(service)
    records.log_access([
        ("2026-01-02T00:00:00Z", 1, "agent-7", "cust-a", "buyer_email", "access", "gdpr export"),
        ("2026-01-02T00:00:00Z", 0, "agent-7", "cust-a", "buyer_name", "access", "gdpr export"),
        ("2026-01-01T00:00:00Z", 0, "agent-8", "cust-b", "*", "erasure", "gdpr erase"),
    ])
    assert [e["field"] for e in records.access_log(["cust-a"])] == ["buyer_name", "buyer_email"]
    assert records.access_log([]) == []
    both = records.access_log(["cust-a", "cust-b"])
    assert [e["subject_id"] for e in both] == ["cust-b", "cust-a", "cust-a"]
    assert set(both[0]) == {"at", "operator", "subject_id", "field", "purpose", "command"}
    assert records.purge(logged_before="2026-01-02T00:00:00Z", closed_before="2000-01-01") == (
        1, 0)
    assert records.access_log(["cust-b"]) == []


def test_r21_a_rectification_retires_old_identifiers_and_finds_the_person_by_any(
    service: Service,
) -> None:
    records = records_of(service)
    records.record_rectification("cust-a", "email", "sealed-1", "2026-01-03T00:00:00Z",
                                 {"r-old"}, "r-new")
    assert records.rectified_token("cust-a", "email") == "sealed-1"
    assert records.rectified_token("cust-a", "name") is None
    assert records.person_of("r-new") == records.person_of("r-old") == "cust-a"
    assert records.person_of("cust-z") == "cust-z"
    assert records.current_owner("r-new") == "cust-a"
    assert records.current_owner("r-old") is None  # former: never for a delivery
    assert records.retired_at("r-old") == "2026-01-03T00:00:00Z"
    assert records.retired_at("r-new") is None
    assert records.former_identifiers("cust-a") == {"r-old"}
    assert records.identifiers_of("cust-a") == ["r-new", "r-old"]
    # A second correction replaces the first; the address given back is current again.
    records.record_rectification("cust-a", "email", "sealed-2", "2026-01-04T00:00:00Z",
                                 {"r-new"}, "r-old")
    assert records.rectified_token("cust-a", "email") == "sealed-2"
    assert records.retired_at("r-old") is None and records.current_owner("r-old") == "cust-a"
    assert [r["field"] for r in records.rectifications(["cust-a", "cust-b"])] == ["email"]
    records.forget_subject("cust-a")
    assert records.identifiers_of("cust-a") == []
    assert records.rectified_token("cust-a", "email") is None
    assert records.rectifications(["cust-a"]) == []


def test_p1_the_register_lists_late_and_due_requests_and_keeps_one_outcome(
    service: Service,
) -> None:
    records = records_of(service)
    records.add_request(request("req-late", "cust-a", "2026-01-05"))
    records.add_request(request("req-soon", "cust-a", "2026-01-15"))
    records.add_request(request("req-far", "cust-b", "2026-03-01"))
    assert records.request("req-none") is None
    assert records.request("req-late") == request("req-late", "cust-a", "2026-01-05")
    assert [r["request_id"] for r in records.requests_of("cust-a")] == ["req-late", "req-soon"]
    assert len(records.all_requests()) == 3
    late = records.open_requests_due(before="2026-01-12")
    soon = records.open_requests_due(by="2026-01-19")
    assert [r["request_id"] for r in late] == ["req-late"]
    assert [r["request_id"] for r in soon] == ["req-late", "req-soon"]
    assert records.due_counts(late_before="2026-01-12", due_by="2026-01-19") == (1, 2)
    records.extend_request("req-far", 2, "numerous requests", "2026-05-01")
    far = records.request("req-far")
    assert far is not None and (far["extension_months"], far["due_on"]) == (2, "2026-05-01")

    salt = records.salt("req-late", "fresh-1")
    assert salt == "fresh-1" and records.salt("req-late", "fresh-2") == "fresh-1"
    assert records.outcome("req-late") is None
    records.close_request("req-late", "agent-7", '{"outcome": "sent"}',
                          "2026-01-12T10:00:00Z", "2026-01-12")
    assert records.outcome("req-late") == ("agent-7", '{"outcome": "sent"}',
                                           "2026-01-12T10:00:00Z")
    closed = records.request("req-late")
    assert closed is not None and (closed["status"], closed["closed_on"]) == (
        "closed", "2026-01-12")
    assert records.due_counts(late_before="2026-01-12", due_by="2026-01-19") == (0, 1)
    # End dates: a closed request goes with its outcome; open ones stay whatever their age.
    assert records.purge(logged_before="2000-01-01", closed_before="2026-01-13") == (0, 1)
    assert records.request("req-late") is None and records.outcome("req-late") is None
    assert records.request("req-soon") is not None


def test_r21_privacy_use_cases_build_no_sql() -> None:
    """The rights' SQL lives in the adapter (infra.privacy_records), behind the port."""
    modules = sorted((ROOT / "application").glob("privacy*.py"))
    assert len(modules) > 1  # the rights are split by area: every module is checked
    found = {
        path.name: hits for path in modules
        if (hits := re.findall(r"\b(SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET|CREATE TABLE)\b",
                               path.read_text()))
    }
    assert found == {}
