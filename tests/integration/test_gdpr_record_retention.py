"""End dates of the accountability records, enforced by `gdpr purge`: access-log entries
after GIFTCARDS_RETENTION_ACCESS_LOG_DAYS, closed rights requests and their outcomes
GIFTCARDS_RETENTION_REQUEST_YEARS after closing; open requests are kept (P1, P2, R21)."""

from __future__ import annotations

from typing import Any

from application.privacy import Privacy
from entrypoints.cli.gdpr import run_purge
from infra.bootstrap import Service
from tests.unit.test_gdpr_privacy import busy_history, export, register_operator


def counts(service: Service) -> tuple[int, int, int]:
    db = service.db
    return (db.execute("SELECT count(*) FROM pii_access_log")[0][0],
            db.execute("SELECT count(*) FROM gdpr_requests")[0][0],
            db.execute("SELECT count(*) FROM gdpr_request_outcomes")[0][0])


def test_p2_purge_ends_the_access_log_and_closed_requests_past_their_periods(
    service: Service, clock: Any
) -> None:
    busy_history(service, clock)
    privacy, operator = Privacy(service), register_operator(service)
    privacy.open_request("cust-alice", "objection", privacy.today(), "obj-1")
    privacy.object(["cust-alice"], "obj-1", operator)  # closed, with its outcome
    export(service, ["cust-alice"])
    assert counts(service)[0] > 0
    clock.advance(days=300)
    privacy.open_request("cust-bob", "access", privacy.today(), "still-open")
    before = counts(service)[0]
    export(service, ["cust-bob"])  # newer entries, kept
    newer = counts(service)[0] - before

    clock.advance(days=100)  # the first entries are past 365 days, the newer ones are not
    report = run_purge(service)["records"]

    assert report["access_log_entries_deleted"] > 0 and report["requests_deleted"] == 0
    assert counts(service) == (newer, 2, 1)
    clock.advance(days=365 * 5)  # the closed request is past its 5 years; still-open is open
    report = run_purge(service)["records"]
    assert report["requests_deleted"] == 1
    assert counts(service) == (0, 1, 0)
    assert privacy.request("still-open")["status"] == "open"
