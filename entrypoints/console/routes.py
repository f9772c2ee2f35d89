"""The console's pages: decode the form, check the session, its CSRF token and the role, call
the same use cases as the HTTP API and the CLI, render a page."""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import io
import re
import secrets
import tempfile
import zipfile
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote
from uuid import UUID

import jinja2
import orjson
from babel.numbers import format_currency
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from application.delivery import Deliveries
from application.operators import PERMISSIONS, PERSONAL, Actor, Operators
from application.privacy import Privacy
from application.privacy_reads import PiiReader, history_subjects, logged_read
from domain.codes import last4
from domain.errors import DomainError, refuse
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


def console_router(service: Service, operators: Operators,
                   call: Callable[[Callable[[], Any]], Awaitable[Any]],
                   fresh_views: Callable[[], Any]) -> APIRouter:
    """The console under /console/, over the API's own service, register and thread pool."""
    app = service.app
    sessions = Sessions(service.settings.console_idle_seconds)
    router = APIRouter(prefix="/console", include_in_schema=False)

    def page(request: Request, name: str, session: Session | None, status: int = 200,
             **values: Any) -> HTMLResponse:
        lang = session.lang if session else language(
            request.query_params.get("lang"), request.headers.get("accept-language"))
        html = TEMPLATES.get_template(name).render(
            t=TEXTS[lang], lang=lang, langs=LANGS, session=session, pages=PAGES,
            money=lambda minor, currency: money(minor, currency, lang), when=when, **values)
        return HTMLResponse(html, status, headers=HEADERS)

    def refused(request: Request, session: Session | None, status: int, message: str
                ) -> HTMLResponse:
        return page(request, "refused.html", session, status, message=message)

    def set_cookie(request: Request, response: Response, name: str, value: str,
                   path: str = "/console") -> None:
        response.set_cookie(name, value, path=path, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")

    async def form(request: Request) -> dict[str, str]:
        raw = request.scope.get("state", {}).get("raw_body") or await request.body()
        return dict(parse_qsl(raw.decode("utf-8", "replace"), max_num_fields=20))

    async def signed_in(request: Request, page_name: str | None = None
                        ) -> tuple[Session | None, Actor | None, Response | None]:
        """The session's operator, checked again against the register, and their role
        against the page; else the answer to send (sign in, or 403)."""
        session = sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None, None, RedirectResponse("/console/sign-in?expired=1", 303)
        try:
            actor = await call(lambda: operators.authenticate(session.key))
        except DomainError:
            sessions.end(request.cookies.get(COOKIE))
            return None, None, RedirectResponse("/console/sign-in?expired=1", 303)
        if page_name is not None and actor.role not in PAGES[page_name]:
            return session, actor, refused(request, session, 403, TEXTS[session.lang]["forbidden"])
        return session, actor, None

    async def posted(request: Request, page_name: str | None
                     ) -> tuple[Session | None, Actor | None, dict[str, str], Response | None]:
        """A form: signed in, its CSRF token the session's, the role allowed."""
        session, actor, answer = await signed_in(request, page_name)
        fields = await form(request)
        if answer is None and session is not None and not session.check_csrf(fields.get("csrf")):
            answer = refused(request, session, 403, TEXTS[session.lang]["csrf"])
        return session, actor, fields, answer

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

    # --- customer service ----------------------------------------------------------------

    @router.get("/cards")
    async def find_form(request: Request) -> Response:
        session, _, answer = await signed_in(request, "card")
        return answer or page(request, "find.html", session, error=None)

    @router.post("/cards/find")
    async def find(request: Request) -> Response:
        """By order id and the code's last 4, in the body: never in a URL."""
        session, _, fields, answer = await posted(request, "card")
        if answer is not None:
            return answer
        try:
            card_id = await call(lambda: app.find_by_order(fields.get("order_id", ""),
                                                           fields.get("last4", "")))
        except DomainError as error:
            return page(request, "find.html", session, 404, error=error.code)
        return RedirectResponse(f"/console/cards/{card_id}", 303)

    def card_page(request: Request, session: Session, actor: Actor, card_id: UUID,
                  status: int = 200, **done: Any) -> Awaitable[Response]:
        def read() -> dict[str, Any]:
            card = app.show(card_id)
            history = logged_read(service, actor.name, "customer service: card page",
                                  "console card", lambda: app.history(card_id),
                                  history_subjects)
            delivery = Deliveries(service).of_card(card_id)
            return {"card": card, "events": history["events"], "delivery": delivery}

        async def render() -> Response:
            try:
                values = await call(read)
            except DomainError as error:
                return refused(request, session, 404, error.code)
            return page(request, "card.html", session, status, done=done, **values)

        return render()

    @router.get("/cards/{card_id}")
    async def card(request: Request, card_id: UUID) -> Response:
        session, actor, answer = await signed_in(request, "card")
        if answer is not None or session is None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        return await card_page(request, session, actor, card_id)

    @router.post("/cards/{card_id}/resend")
    async def resend(request: Request, card_id: UUID) -> Response:
        session, actor, _, answer = await posted(request, "resend")
        if answer is not None or session is None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        try:
            await call(lambda: Deliveries(service).retry(card_id, operator=actor.name))
        except DomainError as error:
            return await card_page(request, session, actor, card_id, 409, refused=error.code)
        return await card_page(request, session, actor, card_id, resent=True)

    @router.post("/cards/{card_id}/cancel")
    async def cancel(request: Request, card_id: UUID) -> Response:
        """R19/R20: the order id and the code as the agent typed them, checked as the CLI's
        `cancel` checks them."""
        session, actor, fields, answer = await posted(request, "cancel")
        if answer is not None or session is None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        try:
            await call(lambda: app.cancel(card_id, code=fields.get("code", ""),
                                          order_id=fields.get("order_id", "")))
        except DomainError as error:
            return await card_page(request, session, actor, card_id, 409, refused=error.code)
        return await card_page(request, session, actor, card_id, cancelled=True)

    @router.post("/refunds")
    async def refund(request: Request) -> Response:
        """R16-R18: goods of an order paid by card came back: a new card (its code e-mailed to
        the customer of that order, shown here by its last 4 only), the rest otherwise."""
        session, _, fields, answer = await posted(request, "refund")
        if answer is not None or session is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        order_id = fields.get("order_id", "")

        def run() -> dict[str, Any]:
            try:
                received_on = date.fromisoformat(fields.get("received_on", ""))
            except ValueError:
                raise refuse("invalid_input", "received_on: a date, YYYY-MM-DD") from None
            market = app.markets.get(app.order_market(order_id))
            done = app.refund(
                order_id=order_id, returned_amount=market.to_minor(fields.get("amount", "")),
                received_on=received_on, request_id=fields.get("request_id") or None,
                customer_id=fields.get("customer_id") or None,
                customer_email=fields.get("customer_email") or None)
            new = done.get("new_card")
            if new is not None:  # the code is the customer's: its last 4 only
                done["new_card"] = {**{k: v for k, v in new.items() if k != "code"},
                                    "code_last4": last4(new["code"]) if new["code"] else None}
            return done

        try:
            done = await call(run)
        except DomainError as error:
            return page(request, "find.html", session, 409, error=error.code)
        return page(request, "refund.html", session, done=done)

    @router.get("/requests")
    async def requests(request: Request) -> Response:
        session, actor, answer = await signed_in(request, "requests")
        if answer is not None or session is None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        found = await call(lambda: logged_read(
            service, actor.name, "request register review", "console requests",
            lambda: Privacy(service).list_requests(overdue=False, as_of=None, due_within=None),
            lambda found: (r["subject_id"] for r in found["requests"])))
        soon = (date.fromisoformat(found["as_of"]) + timedelta(days=DUE_SOON_DAYS)).isoformat()
        return page(request, "requests.html", session, found=found, soon=soon)

    @router.post("/requests/{request_id}/extend")
    async def extend(request: Request, request_id: str) -> Response:
        """Art. 12(3): by 1 or 2 months, with its reason (`gdpr request extend`)."""
        session, _, fields, answer = await posted(request, "extend")
        if answer is not None or session is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        months = fields.get("months", "")
        if months not in ("1", "2"):
            return refused(request, session, 422, "invalid_input")
        try:
            await call(lambda: Privacy(service).extend(request_id, int(months),
                                                       fields.get("reason", "")))
        except DomainError as error:
            return refused(request, session, 409, error.code)
        return RedirectResponse("/console/requests", 303)

    @router.post("/requests/{request_id}/export")
    async def export(request: Request, request_id: str) -> Response:
        """Art. 15/20: everything held about the request's subject, as `gdpr export`, as a
        JSON file to download (posted: it is never in a URL, a history or a cache)."""
        from projections.queries import alerts

        session, actor, _, answer = await posted(request, "export")
        if answer is not None or session is None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)

        def run() -> dict[str, Any]:
            privacy = Privacy(service)
            found = privacy.request(request_id)
            reader = PiiReader(service, actor.name, f"{found['type']} request", "gdpr export")
            return privacy.export([found["subject_id"]], reader, profiling=lambda ids: alerts(
                finance_db(), customers=ids)["alerts"])

        try:
            held = await call(run)
        except DomainError as error:
            return refused(request, session, 409, error.code)
        return Response(orjson.dumps(held, option=orjson.OPT_INDENT_2),
                        media_type="application/json", headers={
                            **HEADERS, "Content-Disposition":
                            f'attachment; filename="export-{quote(request_id)}.json"'})

    @router.post("/requests/{request_id}/{action}")
    async def carry_out(request: Request, request_id: str, action: str) -> Response:
        """An erasure, a restriction or a rectification request carried out from its row, as
        `gdpr erase|restrict|rectify --request-id` (the request checked, closed with its
        outcome, every subject access-logged)."""
        if action not in ("erase", "restrict", "rectify"):
            return Response(status_code=404)
        session, actor, fields, answer = await posted(request, action)
        if answer is not None or session is None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)

        def run() -> dict[str, Any]:
            privacy = Privacy(service)
            subject = privacy.request(request_id)["subject_id"]
            if action == "erase":
                return privacy.erase([subject], request_id, actor.name)
            if action == "restrict":
                return privacy.restrict([subject], request_id, actor.name)
            field = fields.get("field", "")
            if field not in ("email", "name"):
                raise refuse("invalid_input", "field: email or name")
            return privacy.rectify(subject, field, fields.get("value", ""), request_id,
                                   actor.name)

        try:
            await call(run)
        except DomainError as error:
            return refused(request, session, 409, error.code)
        return RedirectResponse("/console/requests", 303)

    # --- auditors ----------------------------------------------------------------------------

    @router.get("/audit")
    async def audit_home(request: Request) -> Response:
        session, _, answer = await signed_in(request, "audit")
        return answer or page(request, "audit.html", session)

    def finance_db() -> Any:
        """The finance views, as the API's /v1/liability reads them (the API's own projector)."""
        return fresh_views().db

    def trusted_checkpoints() -> list[dict[str, Any]]:
        from infra import checkpoints as cps

        settings = service.settings
        ring = cps.service_ring(settings.checkpoint_dir, settings.signing_key_file)
        return [] if ring is None else cps.trusted(settings.checkpoint_dir, ring)[0]

    def audit_values(card_id: UUID, verify: bool) -> dict[str, Any]:
        """The card's events (no personal data: types, versions, instants), each with its
        chain link and the first signed checkpoint covering it; `verify`: the chain recomputed
        and compared with those checkpoints, and the views replayed (`audit verify`)."""
        from infra.chains import card_chain
        from infra.checkpoints import covering
        from projections.verify import verify_card

        app.card(card_id)  # unknown_card
        chain = card_chain(app.recorder, app.mapper, card_id)
        checkpoints = trusted_checkpoints()
        events = []
        for e in app.history(card_id)["events"]:
            cp = covering(str(card_id), e["version"], checkpoints)
            events.append({"version": e["version"], "type": e["type"], "at": e["occurred_at"],
                           "link": chain.hashes.get(e["version"], ""),
                           "checkpoint": None if cp is None else cp["header"]})
        result = None
        if verify:
            replayed, problems = verify_card(app, finance_db(), card_id, checkpoints)
            result = {"ok": not problems, "replayed": replayed, "problems": problems,
                      "checkpoints": len(checkpoints)}
        return {"card_id": str(card_id), "events": events, "result": result}

    @router.get("/audit/alerts")
    async def fraud_alerts(request: Request) -> Response:
        """Fraud alerts with their explanation; each customer named is access-logged."""
        from projections.queries import alerts

        session, actor, answer = await signed_in(request, "alerts")
        if answer is not None or session is None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        found = await call(lambda: logged_read(
            service, actor.name, "fraud review", "console alerts",
            lambda: alerts(finance_db()), lambda f: (a["customer_id"] for a in f["alerts"])))
        return page(request, "alerts.html", session, alerts=found["alerts"])

    @router.post("/audit/evidence")
    async def evidence_pack(request: Request) -> Response:
        """A market's month as an evidence pack (`audit export --period`), downloaded as a zip:
        its stored histories name customers, so each is access-logged under your name."""
        from application.privacy_scan import SUBJECT_FIELDS
        from infra import checkpoints as cps
        from projections import evidence

        session, actor, fields, answer = await posted(request, "evidence")
        if answer is not None or session is None or actor is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        market, period = fields.get("market", "").upper(), fields.get("period", "")
        if not re.fullmatch(r"[A-Z]{2}", market) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}",
                                                                         period):
            return refused(request, session, 422, "invalid_input")

        clear: list[dict[str, Any]] = []  # the pack's stored fields: whom it concerns

        def write(out: Path) -> dict[str, Any]:
            app.markets.get(market)  # unknown_market
            db = finance_db()
            checkpoints = evidence.for_pack(trusted_checkpoints())
            if not checkpoints:
                raise refuse("no_checkpoint", "no trusted checkpoint to put in the pack "
                             "(run `audit checkpoint`)")
            settings = service.settings
            key = cps.trusted_signing_key(settings.signing_key_file, settings.checkpoint_dir,
                                          create=False)
            return evidence.export(app.recorder, app.mapper, db, market, period, checkpoints,
                                   key, app.now(), out, clear)

        def run() -> bytes:
            with tempfile.TemporaryDirectory(prefix="giftcards-pack-") as tmp:
                out = Path(tmp) / "pack"
                logged_read(service, actor.name, f"evidence pack {market} {period}",
                            "console evidence", lambda: write(out),
                            lambda _: evidence.pack_subjects(clear, SUBJECT_FIELDS))
                packed = io.BytesIO()
                with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
                    for path in sorted(out.rglob("*")):
                        if path.is_file():
                            archive.write(path, f"pack/{path.relative_to(out)}")
                return packed.getvalue()

        try:
            data = await call(run)
        except DomainError as error:
            return refused(request, session, 409, error.code)
        name = f"evidence-{market}-{period}.zip"
        return Response(data, media_type="application/zip", headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})

    @router.get("/audit/card")
    async def audit_card_form(request: Request, card_id: UUID) -> Response:
        return RedirectResponse(f"/console/audit/cards/{card_id}", 303)

    @router.get("/audit/cards/{card_id}")
    async def audit_card(request: Request, card_id: UUID) -> Response:
        session, _, answer = await signed_in(request, "audit")
        if answer is not None or session is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        try:
            values = await call(lambda: audit_values(card_id, False))
        except DomainError as error:
            return refused(request, session, 404, error.code)
        return page(request, "audit_card.html", session, **values)

    @router.post("/audit/cards/{card_id}/verify")
    async def audit_verify(request: Request, card_id: UUID) -> Response:
        session, _, _, answer = await posted(request, "audit")
        if answer is not None or session is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        try:
            values = await call(lambda: audit_values(card_id, True))
        except DomainError as error:
            return refused(request, session, 404, error.code)
        return page(request, "audit_card.html", session, **values)

    # The finance views as charts: the page holds the table (the fallback, and what a screen
    # reader reads); console.js draws the chart from the same JSON the API answers.
    def month_ends(start: str, end: str) -> list[datetime]:
        first, last = date.fromisoformat(start + "-01"), date.fromisoformat(end + "-01")
        if last < first or (last.year - first.year) * 12 + last.month - first.month >= 36:
            raise refuse("invalid_input", "the period is 1 to 36 months, from before to")
        ends, month = [], first
        while month <= last:
            following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
            ends.append(datetime.combine(following, datetime.min.time(), UTC)
                        - timedelta(microseconds=1))
            month = following
        return ends

    def liability_values(as_of: str | None, start: str | None, end: str | None
                         ) -> dict[str, Any]:
        from projections.queries import liability

        db = finance_db()
        now = app.now()
        day = date.fromisoformat(as_of) if as_of else now.date()
        instant = datetime.combine(day, datetime.max.time(), UTC)
        end = end or f"{now.year:04d}-{now.month:02d}"
        # By default the year up to `end`: twelve month ends.
        year, month = divmod(int(end[:4]) * 12 + int(end[5:7]) - 1 - 11, 12)
        start = start or f"{year:04d}-{month + 1:02d}"
        series = [{**liability(db, min(e, now)), "month": e.strftime("%Y-%m")}
                  for e in month_ends(start, end)]
        return {"as_of": day.isoformat(), "now": liability(db, min(instant, now)),
                "from": start, "to": end, "series": series}

    def breakage_values(market: str | None) -> dict[str, Any]:
        from projections.queries import breakage

        return breakage(finance_db(), market, None)

    # Annotated: FastAPI gives each parameter its own copy (one shared Query() mixes them up).
    Month = Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$")]

    @router.get("/audit/liability")
    async def liability_page(
        request: Request, as_of: date | None = None, start: Month = None, end: Month = None,
    ) -> Response:
        session, _, answer = await signed_in(request, "audit")
        if answer is not None or session is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        day = as_of.isoformat() if as_of else None
        try:
            values = await call(lambda: liability_values(day, start, end))
        except DomainError as error:
            return refused(request, session, 422, error.code)
        return page(request, "liability.html", session, **values)

    @router.get("/audit/liability.json")
    async def liability_json(
        request: Request, as_of: date | None = None, start: Month = None, end: Month = None,
    ) -> Response:
        _, _, answer = await signed_in(request, "audit")
        if answer is not None:
            return Response(status_code=401)
        day = as_of.isoformat() if as_of else None
        return JSONResponse(await call(lambda: liability_values(day, start, end)),
                            headers={"Cache-Control": "no-store"})

    Market = Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")]

    @router.get("/audit/breakage")
    async def breakage_page(request: Request, market: Market = None) -> Response:
        session, _, answer = await signed_in(request, "audit")
        if answer is not None or session is None:
            return answer or RedirectResponse("/console/sign-in", 303)
        values = await call(lambda: breakage_values(market))
        if market is None and values["rows"]:  # one market's currency per chart
            market = values["rows"][0]["market"]
            values = await call(lambda: breakage_values(market))
        return page(request, "breakage.html", session, market=market, **values)

    @router.get("/audit/breakage.json")
    async def breakage_json(request: Request, market: Market = None) -> Response:
        _, _, answer = await signed_in(request, "audit")
        if answer is not None:
            return Response(status_code=401)
        return JSONResponse(await call(lambda: breakage_values(market)),
                            headers={"Cache-Control": "no-store"})

    return router
