"""The console's own files, its home, and signing in and out."""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from application.operators import PERSONAL
from domain.errors import DomainError
from entrypoints.console.pages import (
    COOKIE,
    SIGN_IN_COOKIE,
    STATIC,
    Console,
)
from entrypoints.console.texts import TEXTS, language


def add_routes(router: APIRouter, console: Console) -> None:
    call = console.call
    sessions = console.sessions
    operators = console.operators
    page = console.page
    refused = console.refused
    set_cookie = console.set_cookie
    form = console.form
    signed_in = console.signed_in
    posted = console.posted

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        """The console's own files, served from here (no CDN)."""
        if name not in STATIC:
            return Response(status_code=404)
        return Response(STATIC[name][1], media_type=STATIC[name][0],
                        headers={"Cache-Control": "max-age=3600"})

    # --- signing in and out ------------------------------------------------------------

    @router.get("")
    @router.get("/")
    async def home(request: Request) -> Response:
        _, actor, answer = await signed_in(request)
        if answer is not None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        return RedirectResponse("/console/cards" if actor.role in PERSONAL else "/console/audit",
                                303)

    @router.get("/sign-in")
    async def sign_in_form(request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        expired = request.query_params.get("expired") == "1"
        response = page(request, "sign_in.html", None, csrf=token, expired=expired, error=None)
        set_cookie(request, response, SIGN_IN_COOKIE, token, "/console/sign-in")
        return response

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        fields = await form(request)
        expected = request.cookies.get(SIGN_IN_COOKIE, "")
        given = fields.get("csrf", "")
        if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
            return refused(request, None, 403, TEXTS["en"]["csrf"])
        key = fields.get("key", "").strip()
        lang = language(fields.get("lang"), request.headers.get("accept-language"))
        try:
            actor = await call(lambda: operators.authenticate(key))
        except DomainError as error:
            token = secrets.token_urlsafe(32)
            again = page(request, "sign_in.html", None, 401, csrf=token, expired=False,
                         error=error.code)
            set_cookie(request, again, SIGN_IN_COOKIE, token, "/console/sign-in")
            return again
        response = RedirectResponse("/console/", 303)
        set_cookie(request, response, COOKIE, sessions.start(key, actor.name, actor.role, lang))
        response.delete_cookie(SIGN_IN_COOKIE, path="/console/sign-in")
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        _, _, _, answer = await posted(request, None)
        if answer is not None:
            return answer
        sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/console/sign-in", 303)
        response.delete_cookie(COOKIE, path="/console")
        return response
