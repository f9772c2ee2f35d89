"""P1 warning list: `gdpr request list --due-within N` lists the open rights requests due within
N days (late ones included) before they are late, and /metrics counts them, naming no one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.testclient import TestClient

from application.privacy import Privacy
from entrypoints.http.app import create_app
from infra.bootstrap import Service
from tests.e2e.operator_keys import enrol
from tests.e2e.test_gdpr_cli import cli
from tests.unit.test_gdpr_privacy import register_operator


def test_p1_requests_due_within_days_from_the_cli(env_for: dict[str, str]) -> None:
    env = {**env_for, "GIFTCARDS_NOW": "2027-02-25T09:00:00Z", "PATH": "/usr/bin:/bin"}
    enrol(cli, env, "dpo-1", "dpo")
    for request_id, received in (("late", "2027-01-20"), ("soon", "2027-01-28"),
                                 ("later", "2027-02-20")):
        rc, _ = cli(env, "gdpr", "request", "open", "--subject", f"cust-{request_id}",
                    "--type", "access", "--received-on", received, "--request-id", request_id)
        assert rc == 0

    rc, found = cli(env, "gdpr", "request", "list", "--due-within", "7", "--operator", "dpo-1")

    assert rc == 0
    assert [(r["request_id"], r["overdue"]) for r in found["requests"]] == [
        ("late", True), ("soon", False)]
    rc, refused = cli(env, "gdpr", "request", "list", "--due-within", "x", "--operator", "dpo-1")
    assert rc == 2 and refused["error"]["code"] == "invalid_input"


def test_p1_metrics_count_requests_due_within_a_week(service: Service, clock: Any) -> None:
    privacy = Privacy(service)
    register_operator(service)
    today = privacy.today()
    privacy.open_request("cust-late", "access", today - timedelta(days=40), "late")
    privacy.open_request("cust-new", "access", today, "new")
    clock.advance(days=27)  # "new" is due within the week now

    with TestClient(create_app(service)) as client:
        text = client.get("/metrics").text

    assert "giftcards_gdpr_requests_overdue 1.0" in text
    assert "giftcards_gdpr_requests_due_within_days 2.0" in text
    assert "cust-" not in text
