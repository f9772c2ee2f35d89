"""The console's sessions over HTTP, in-process on both stores: the cookie's flags (Secure
behind TLS), CSRF on the sign-in form, the idle timeout, a disabled operator's session."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from application.operators import Operators
from entrypoints.console.sessions import Sessions
from entrypoints.http.app import create_app
from infra.service import Service
from tests.conftest import Ticks

TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def keys(service: Service) -> dict[str, str]:
    operators = Operators(service.app)
    root = operators.add("root", "admin", None)["key"]
    admin = operators.authenticate(root)
    return {"root": root, "sam": operators.add("sam", "support", admin)["key"]}


def sign_in(client: TestClient, key: str) -> TestClient:
    form = client.get("/console/sign-in")
    token = TOKEN.search(form.text)
    assert token is not None
    done = client.post("/console/sign-in", data={"csrf": token.group(1), "key": key},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    return client


def test_r21_behind_tls_the_session_cookie_is_secure_httponly_and_strict(
    console_service: Service,
) -> None:
    with TestClient(create_app(console_service), base_url="https://console.test") as client:
        sign_in(client, keys(console_service)["sam"])
        set_cookie = client.get("/console/sign-in").headers.get_list("set-cookie")
        assert set_cookie and all("Secure" in h and "HttpOnly" in h for h in set_cookie)
        page = client.get("/console/cards")
        assert page.status_code == 200 and "sam" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_the_sign_in_form_without_its_token_is_refused(console_service: Service) -> None:
    with TestClient(create_app(console_service)) as client:
        client.get("/console/sign-in")
        refused = client.post("/console/sign-in", data={"key": keys(console_service)["sam"]},
                              follow_redirects=False)
        assert refused.status_code == 403
        assert "giftcards_console=" not in refused.headers.get("set-cookie", "")


def test_r21_a_disabled_operator_is_signed_out_at_their_next_page(
    console_service: Service,
) -> None:
    given = keys(console_service)
    with TestClient(create_app(console_service)) as client:
        sign_in(client, given["sam"])
        assert client.get("/console/cards").status_code == 200
        operators = Operators(console_service.app)
        operators.disable("sam", operators.authenticate(given["root"]))
        gone = client.get("/console/cards", follow_redirects=False)
        assert gone.status_code == 303 and "/console/sign-in" in gone.headers["location"]


def test_an_idle_session_ends_and_a_used_one_lives_on() -> None:
    ticks = Ticks()
    sessions = Sessions(idle_seconds=60, clock=ticks)
    token = sessions.start("key", "sam", "support", "en")
    ticks.now += 59
    assert sessions.get(token) is not None  # used: the idle time starts again
    ticks.now += 59
    assert sessions.get(token) is not None
    ticks.now += 61
    assert sessions.get(token) is None
    assert sessions.get(token) is None  # ended for good, not revived
