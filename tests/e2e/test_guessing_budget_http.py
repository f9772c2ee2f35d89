"""R8 over HTTP, against a real `giftcards api` process on both stores: dry runs, lookups and
authorizations spend one guessing budget, per customer and per API key."""

# ruff: noqa: F811  (the `api` fixture is imported, and named by the tests that use it)
from __future__ import annotations

from collections import Counter
from uuid import uuid4

import httpx

from application.apikeys import ApiKeys
from infra.bootstrap import build
from infra.config import load_settings
from tests.e2e.test_http_api import Api, api, assert_problem, buy  # noqa: F401

LIMIT = 10  # per customer (and per key naming none), domain/markets.toml
CEILING = 30  # per key whatever customer ids it names, domain/markets.toml


def new_key(api: Api) -> str:
    """A key of its own per test: budgets are per key, and the windows outlive a test."""
    service = build(load_settings(api.env))
    try:
        return str(ApiKeys(service.app).create(name=f"k-{uuid4().hex[:8]}",
                                               scopes=["checkout"])["key"])
    finally:
        service.close()


def dry_run(api: Api, key: str, code: str, order: str, **more: str) -> httpx.Response:
    return api.client.post(
        f"{api.url}/v1/checkouts/{order}/authorize?simulate=true",
        json={"code": code, "market": "FR", "order_total": 1000, **more},
        headers={"Authorization": f"Bearer {key}"})


def test_r8_five_hundred_random_dry_runs_are_refused_past_the_limit(api: Api) -> None:
    key = new_key(api)
    statuses = [dry_run(api, key, f"RANDOM-{uuid4().hex[:12]}", f"dry-{n}").status_code
                for n in range(500)]
    assert statuses[:LIMIT] == [409] * LIMIT
    assert Counter(statuses[LIMIT:]) == {429: 500 - LIMIT}
    locked = dry_run(api, key, "RANDOM-LAST", "dry-last")
    assert_problem(locked, 429, "too_many_attempts")
    assert 0 < int(locked.headers["Retry-After"]) <= 3600


def test_r8_dry_run_misses_count_and_a_locked_out_valid_code_answers_as_an_unknown_one(
    api: Api,
) -> None:
    key = new_key(api)
    card = buy(api, f"buy-{uuid4().hex[:8]}")
    customer = f"cust-{uuid4().hex[:8]}"
    for n in range(LIMIT):
        assert_problem(dry_run(api, key, f"RANDOM-{n}", f"d-{n}", customer_id=customer),
                       409, "unknown_code")
    auth = {"Authorization": f"Bearer {key}"}
    answers = []
    for code in (card["code"], "RANDOM-UNKNOWN"):
        for response in (
            dry_run(api, key, code, "d-x", customer_id=customer),
            api.client.post(f"{api.url}/v1/checkouts/real-{code}/authorize", headers=auth,
                            json={"code": code, "market": "FR", "order_total": 1000,
                                  "customer_id": customer}),
            api.client.post(f"{api.url}/v1/cards/lookup", headers=auth,
                            json={"code": code, "market": "FR", "customer_id": customer}),
        ):
            assert_problem(response, 429, "too_many_attempts")
            answers.append(response.json())
    assert all(answer == answers[0] for answer in answers)  # nothing tells them apart


def test_r8_an_api_key_has_a_ceiling_across_changing_customer_ids(api: Api) -> None:
    key = new_key(api)
    card = buy(api, f"buy-{uuid4().hex[:8]}")
    for n in range(CEILING):
        assert_problem(dry_run(api, key, f"RANDOM-{n}", f"c-{n}", customer_id=f"c-{n}"),
                       409, "unknown_code")
    fresh = dry_run(api, key, card["code"], "c-new", customer_id=f"c-{uuid4().hex[:8]}")
    assert_problem(fresh, 429, "too_many_attempts")
    lookup = api.client.post(f"{api.url}/v1/cards/lookup",
                             headers={"Authorization": f"Bearer {key}"},
                             json={"code": card["code"], "market": "FR", "customer_id": "zz"})
    assert_problem(lookup, 429, "too_many_attempts")
