"""Auditors' console pages: a card's verified history, fraud alerts, evidence packs, finance
charts."""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import io
import re
import tempfile
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from application.privacy_reads import logged_read
from domain.errors import DomainError, refuse
from entrypoints.console.pages import (
    HEADERS,
    Console,
)


def add_routes(router: APIRouter, console: Console) -> None:
    app = console.app
    service = console.service
    call = console.call
    finance_db = console.finance_db
    page = console.page
    refused = console.refused
    signed_in = console.signed_in
    posted = console.posted

    # --- auditors ----------------------------------------------------------------------------

    @router.get("/audit")
    async def audit_home(request: Request) -> Response:
        session, _, answer = await signed_in(request, "audit")
        return answer or page(request, "audit.html", session)

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
        for e in app.history(card_id).events:
            cp = covering(str(card_id), e.version, checkpoints)
            events.append({"version": e.version, "type": e.type, "at": e.occurred_at,
                           "link": chain.hashes.get(e.version, ""),
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
                                   key, app.now(), out, clear, zones=console.fresh_views().zones)

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
