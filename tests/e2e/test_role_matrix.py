"""R21, least privilege: every operator command and every endpoint that takes a key, run with the
key of every role, is allowed or refused exactly as the generated table says (exit 1 / 403)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from application.commands import PurchaseCard
from application.operators import PERMISSIONS, ROLES, Operators, break_glass
from entrypoints.cli.main import build_parser
from entrypoints.http.app import access_table, create_app
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET
from tests.e2e.test_cli_contract import leaves, one_object, store  # noqa: F401  (a fixture)

KEY = "GIFTCARDS_OPERATOR_KEY"


def cli_cases(cid: str, out: Path, role: str) -> dict[str, list[str]]:
    """One valid command line per operator command (what happens after the role check may
    still be a refusal of its own: an unknown request, a register conflict)."""
    return {
        "history": ["history", cid],
        "audit export CARD_ID": ["audit", "export", cid],
        "audit export --period": ["audit", "export", "--period", "2026-01", "--market", "FR",
                                  "--out", str(out / f"pack-{role}")],
        "fraud alerts": ["fraud", "alerts"],
        "gdpr access-log": ["gdpr", "access-log", "C1"],
        "gdpr request list": ["gdpr", "request", "list"],
        "gdpr request close": ["gdpr", "request", "close", "R1", "--outcome", "answered"],
        "gdpr subject": ["gdpr", "subject", "--email", "c1@example.org"],
        "gdpr pseudonym": ["gdpr", "pseudonym", "--customer-id", "C1"],
        "gdpr export": ["gdpr", "export", "C1"],
        "gdpr rectify": ["gdpr", "rectify", "C1", "--field", "name", "--value", "Cy",
                         "--request-id", "R-none"],
        "deliveries retry": ["deliveries", "retry", cid],
        "gdpr erase": ["gdpr", "erase", "C9", "--request-id", "R-none"],
        "gdpr object": ["gdpr", "object", "C9", "--request-id", "R-none"],
        "gdpr restrict": ["gdpr", "restrict", "C9", "--request-id", "R-none"],
        "gdpr unrestrict": ["gdpr", "unrestrict", "C9", "--request-id", "R-none"],
        "gdpr operator add": ["gdpr", "operator", "add", f"new-{role}", "--role", "support"],
        "gdpr operator role": ["gdpr", "operator", "role", "target", "--role", "auditor"],
        "gdpr operator disable": ["gdpr", "operator", "disable", "target"],
        "gdpr operator rekey": ["gdpr", "operator", "rekey", "target"],
        "gdpr operator list": ["gdpr", "operator", "list"],
    }


def operator_commands() -> set[str]:
    """Every command that takes an operator (it has --break-glass), by its words."""
    found = set()
    for path, parser in leaves(build_parser()):
        if any("--break-glass" in a.option_strings for a in parser._actions
               if isinstance(a, argparse.Action)):
            found.add(" ".join(path))
    return found


def test_r21_every_operator_command_by_every_role_is_as_the_table_says(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    store: dict[str, str],  # noqa: F811
) -> None:
    status, card = one_object(capsys, "purchase", "--market", "FR", "--amount", "50",
                              "--payment-method", "card", "--buyer-id", "C1",
                              "--buyer-email", "c1@example.org", "--order-id", "O1")
    assert status == 0
    assert one_object(capsys, "audit", "checkpoint")[0] == 0
    assert one_object(capsys, "gdpr", "request", "open", "--subject", "C1", "--type", "access",
                      "--received-on", "2026-01-12", "--request-id", "R1")[0] == 0
    _, root = one_object(capsys, "gdpr", "operator", "add", "root", "--role", "admin")
    monkeypatch.setenv(KEY, root["key"])
    keys = {"admin": root["key"]}
    for role in ("support", "dpo", "auditor"):
        _, added = one_object(capsys, "gdpr", "operator", "add", f"op-{role}", "--role", role)
        keys[role] = added["key"]
    one_object(capsys, "gdpr", "operator", "add", "target", "--role", "support")
    cli = {a: roles for a, roles in PERMISSIONS.items() if not a.startswith("GET ")}
    assert {a.replace(" CARD_ID", "").split(" --")[0] for a in cli} == operator_commands()
    for role in ROLES:
        cases = cli_cases(card["card_id"], tmp_path, role)
        assert set(cases) == set(cli), "every operator command has a case here"
        monkeypatch.setenv(KEY, keys[role])
        for action, argv in cases.items():
            status, answer = one_object(capsys, *argv)
            code = answer.get("error", {}).get("code")
            if role in cli[action]:
                assert code not in ("operator_forbidden", "operator_required"), (role, argv)
            else:
                assert (status, code) == (1, "operator_forbidden"), (role, argv, answer)


def test_r21_every_endpoint_by_every_role_is_as_the_table_says(tmp_path: Path) -> None:
    env = {"GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
           "GIFTCARDS_SECRET_KEY": SECRET, "GIFTCARDS_DATA_DIR": str(tmp_path / "var")}
    service = build(load_settings(env))
    try:
        card = service.app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="C1", order_id="O1",
        ))
        operators = Operators(service.app)
        keys = {role: operators.add(f"op-{role}", role, break_glass("tests"))["key"]
                for role in ROLES}
        api = create_app(service)
        table = access_table(api)
        operator_routes = {a for a in PERMISSIONS if a.startswith("GET ")}
        assert operator_routes <= set(table)
        with TestClient(api) as client:
            for route, allowed in table.items():
                method, path = route.split(" ", 1)
                url = path.format(card_id=str(card.card_id), order_id="O-matrix")
                for role in ROLES:
                    answer = client.request(method, url, content=b"{}", headers={
                        "Authorization": f"Bearer {keys[role]}",
                        "Content-Type": "application/json"})
                    if role in allowed:
                        assert answer.status_code != 403, (role, route, answer.text)
                    else:
                        assert answer.status_code == 403, (role, route, answer.text)
    finally:
        service.close()


def test_r21_a_shop_key_with_x_operator_cannot_read_a_history(tmp_path: Path) -> None:
    """A key with only the shop's scopes, plus `X-Operator: sam-support`: 403, nothing read."""
    from application.apikeys import ApiKeys
    from application.privacy import Privacy

    env = {"GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
           "GIFTCARDS_SECRET_KEY": SECRET, "GIFTCARDS_DATA_DIR": str(tmp_path / "var")}
    service = build(load_settings(env))
    try:
        card = service.app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="C1", order_id="O1",
        ))
        Operators(service.app).add("sam-support", "support", break_glass("tests"))
        shop = ApiKeys(service.app).create(name="shop", scopes=["checkout", "orders"])["key"]
        with TestClient(create_app(service)) as client:
            answer = client.get(f"/v1/cards/{card.card_id}/history", headers={
                "Authorization": f"Bearer {shop}", "X-Operator": "sam-support"})
        assert answer.status_code == 403 and answer.json()["code"] == "operator_required"
        Privacy(service)  # its tables
        logged = service.db.execute("SELECT count(*) FROM pii_access_log")
        assert logged[0][0] == 0
    finally:
        service.close()
