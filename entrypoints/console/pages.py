"""The console's shared parts: which role opens which page, templates, sessions checked per
request, forms with their CSRF token."""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations.


from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from babel.numbers import format_currency
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from application.operators import PERMISSIONS, PERSONAL, Actor, Operators
from domain.errors import DomainError
from domain.markets import MINOR_UNITS
from entrypoints.console.sessions import Session, Sessions
from entrypoints.console.texts import LANGS, LOCALES, TEXTS, language
from infra.service import Service

COOKIE = "giftcards_console"
SIGN_IN_COOKIE = "giftcards_console_csrf"  # the sign-in form's token (double submit)
AUDIT = ("auditor", "admin")
DUE_SOON_DAYS = 7  # highlighted in the register, as /metrics counts them (P1)
# Which roles open which page: customer service sees personal data, auditors do not, and
# a page naming customers is access-logged as the operator who opened it (R21).
PAGES: dict[str, tuple[str, ...]] = {
    "card": PERSONAL,
    "resend": PERMISSIONS["deliveries retry"],
    "cancel": PERSONAL,
    "refund": PERSONAL,
    "requests": PERMISSIONS["gdpr request close"],
    "erase": PERMISSIONS["gdpr erase"],
    "restrict": PERMISSIONS["gdpr restrict"],
    "rectify": PERMISSIONS["gdpr rectify"],
    "extend": PERSONAL,
    "export": PERMISSIONS["gdpr export"],
    "audit": AUDIT,
    "evidence": PERMISSIONS["audit export --period"],
    # Profiling results name customers (pseudonymous ids): logged as for GET /v1/fraud/alerts.
    "alerts": tuple(r for r in PERMISSIONS["GET /v1/fraud/alerts"] if r in AUDIT),
}
TYPES = {".css": "text/css", ".js": "text/javascript"}
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True, undefined=jinja2.StrictUndefined,
)
STATIC = {
    path.name: (TYPES[path.suffix], path.read_bytes())
    for path in sorted(Path(__file__).with_name("static").iterdir()) if path.suffix in TYPES
}
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
}


def money(minor: int, currency: str, lang: str) -> str:
    """An amount in minor units as the operator reads money (as the code e-mails show it)."""
    return str(format_currency(minor / 10 ** MINOR_UNITS[currency], currency,
                               locale=LOCALES[lang]))


def when(instant: str) -> str:
    """An ISO instant to the minute, in UTC (the store's clock)."""
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")



class Console:
    """What every console page uses: the API's service, register and thread pool, the
    sessions, and the page and form helpers."""

    def __init__(self, service: Service, operators: Operators,
                 call: Callable[[Callable[[], Any]], Awaitable[Any]],
                 fresh_views: Callable[[], Any]) -> None:
        self.service, self.app = service, service.app
        self.operators, self.call, self.fresh_views = operators, call, fresh_views
        self.sessions = Sessions(service.settings.console_idle_seconds)

    def finance_db(self) -> Any:
        """The finance views, as the API's /v1/liability reads them (the API's own projector)."""
        return self.fresh_views().db

    def page(self, request: Request, name: str, session: Session | None, status: int = 200,
             **values: Any) -> HTMLResponse:
        lang = session.lang if session else language(
            request.query_params.get("lang"), request.headers.get("accept-language"))
        html = TEMPLATES.get_template(name).render(
            t=TEXTS[lang], lang=lang, langs=LANGS, session=session, pages=PAGES,
            money=lambda minor, currency: money(minor, currency, lang), when=when, **values)
        return HTMLResponse(html, status, headers=HEADERS)

    def refused(self, request: Request, session: Session | None, status: int, message: str
                ) -> HTMLResponse:
        return self.page(request, "refused.html", session, status, message=message)

    def set_cookie(self, request: Request, response: Response, name: str, value: str,
                   path: str = "/console") -> None:
        response.set_cookie(name, value, path=path, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")

    async def form(self, request: Request) -> dict[str, str]:
        raw = request.scope.get("state", {}).get("raw_body") or await request.body()
        return dict(parse_qsl(raw.decode("utf-8", "replace"), max_num_fields=20))

    async def signed_in(self, request: Request, page_name: str | None = None
                        ) -> tuple[Session | None, Actor | None, Response | None]:
        """The session's operator, checked again against the register, and their role
        against the page; else the answer to send (sign in, or 403)."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None, None, RedirectResponse("/console/sign-in?expired=1", 303)
        try:
            actor = await self.call(lambda: self.operators.authenticate(session.key))
        except DomainError:
            self.sessions.end(request.cookies.get(COOKIE))
            return None, None, RedirectResponse("/console/sign-in?expired=1", 303)
        if page_name is not None and actor.role not in PAGES[page_name]:
            return session, actor, self.refused(request, session, 403,
                                                TEXTS[session.lang]["forbidden"])
        return session, actor, None

    async def posted(self, request: Request, page_name: str | None
                     ) -> tuple[Session | None, Actor | None, dict[str, str], Response | None]:
        """A form: signed in, its CSRF token the session's, the role allowed."""
        session, actor, answer = await self.signed_in(request, page_name)
        fields = await self.form(request)
        if answer is None and session is not None and not session.check_csrf(fields.get("csrf")):
            answer = self.refused(request, session, 403, TEXTS[session.lang]["csrf"])
        return session, actor, fields, answer
