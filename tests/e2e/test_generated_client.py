"""A client generated from the served OpenAPI document (openapi-python-client) drives a real
`giftcards api` process: every answer it gets is one of the document's types, not a dict."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from application.apikeys import ApiKeys
from application.operators import Operators
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET
from tests.e2e.test_http_api import start_api

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
PACKAGE = "giftcards_client"


def generate(document: Path, into: Path) -> ModuleType:
    """Generates the client package and imports it (no formatter hooks: the output is used as
    the generator writes it)."""
    into.mkdir(parents=True, exist_ok=True)
    config = into / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    done = subprocess.run(
        [GENERATOR, "generate", "--path", str(document), "--meta", "none",
         "--output-path", str(into / PACKAGE), "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(into))
    return importlib.import_module(PACKAGE)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real API process on SQLite, and the client generated from the document it serves."""
    tmp = tmp_path_factory.mktemp("generated-client")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    env = {**clean, "GIFTCARDS_DATA_DIR": str(tmp / "var"), "GIFTCARDS_SECRET_KEY": SECRET,
           "GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp / 'client.sqlite3'}"}
    service = build(load_settings(env))
    key = ApiKeys(service.app).create(
        name="shop", scopes=["checkout", "orders", "support", "audit"])["key"]
    admin = Operators(service.app).add("root", "admin", None)["key"]
    service.close()
    process, url = start_api(env, tmp / "api.log")
    try:
        document = tmp / "openapi.json"
        document.write_bytes(httpx.get(url + "/openapi.json", timeout=10).content)
        package = generate(document, tmp / "generated")
        shop = package.AuthenticatedClient(base_url=url, token=key, raise_on_unexpected_status=True)
        operator = package.AuthenticatedClient(base_url=url, token=admin,
                                               raise_on_unexpected_status=True)
        yield {"shop": shop, "operator": operator}
    finally:
        sys.path[:] = [p for p in sys.path if p != str(tmp / "generated")]
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        process.terminate()
        assert process.wait(timeout=30) == 0
    assert "Traceback" not in (tmp / "api.log").read_text()


def api(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.api.default.{name}")


def models() -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.models")


def buy(shop: Any, order_id: str, amount: int = 5000) -> Any:
    answer = api("purchase").sync_detailed(client=shop, body=models().PurchaseBody(
        order_id=order_id, market="FR", amount=amount, payment_method="card", buyer_id="c1"))
    assert answer.status_code == 201
    assert isinstance(answer.parsed, models().Purchase)
    return answer.parsed


def test_r10_r11_a_generated_client_holds_captures_and_reads_a_card_typed(
    client: dict[str, Any],
) -> None:
    shop, m = client["shop"], models()
    card = buy(shop, "gen-order-1")
    assert card.code and card.balance == 5000 and card.replayed is False
    assert isinstance(card.code_delivery, m.CodeDelivery)

    found = api("lookup").sync(client=shop, body=m.LookupBody(code=card.code, market="FR"))
    assert isinstance(found, m.Lookup)
    assert (found.card_id, found.balance, found.status) == (card.card_id, 5000, "active")

    held = api("authorize").sync(client=shop, order_id="gen-checkout-1", body=m.AuthorizeBody(
        code=card.code, market="FR", order_total=3000))
    assert isinstance(held, m.Hold)
    assert (held.status, held.amount) == ("held", 3000)
    assert isinstance(api("show_hold").sync(client=shop, order_id="gen-checkout-1"), m.Hold)

    captured = api("capture").sync(client=shop, order_id="gen-checkout-1")
    assert isinstance(captured, m.Redemption)
    assert (captured.applied, captured.forfeited, captured.status) == (3000, 2000, "redeemed")

    shown = api("show_card").sync(client=shop, card_id=card.card_id)
    assert isinstance(shown, m.Card)
    assert (shown.status, shown.balance) == ("redeemed", 0)

    history = api("card_history").sync(client=client["operator"], card_id=card.card_id)
    assert isinstance(history, m.History)
    assert [e.type_ for e in history.events][-1] == "Redeemed"


def test_r10_a_generated_client_releases_a_hold_and_the_balance_is_whole(
    client: dict[str, Any],
) -> None:
    shop, m = client["shop"], models()
    card = buy(shop, "gen-order-2", amount=2500)
    api("authorize").sync(client=shop, order_id="gen-checkout-2", body=m.AuthorizeBody(
        code=card.code, market="FR", order_total=1000))
    voided = api("void").sync(client=shop, order_id="gen-checkout-2")
    assert isinstance(voided, m.Hold)
    assert voided.status == "voided"
    found = api("lookup").sync(client=shop, body=m.LookupBody(code=card.code, market="FR"))
    assert isinstance(found, m.Lookup)
    assert (found.status, found.balance) == ("active", 2500)


def test_a_dry_run_and_a_refusal_are_typed_answers_too(client: dict[str, Any]) -> None:
    """A dry run answers 200, which the document lists; a refusal is the one Problem type."""
    shop, m = client["shop"], models()
    dry = api("purchase").sync_detailed(client=shop, simulate=True, body=m.PurchaseBody(
        order_id="gen-order-3", market="FR", amount=3000, payment_method="card",
        buyer_id="c1"))
    assert dry.status_code == 200
    assert isinstance(dry.parsed, m.Purchase)
    assert dry.parsed.simulated is True and dry.parsed.code is None

    missing = api("capture").sync_detailed(client=shop, order_id="gen-no-such-order")
    assert missing.status_code == 404
    assert isinstance(missing.parsed, m.Problem)
    assert missing.parsed.code == "unknown_hold"
