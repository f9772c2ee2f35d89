"""Customer service's console pages: find a card, resend, cancel, refund, the rights requests."""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations.


from collections.abc import Awaitable
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from application.commands import CancelCard, RefundOrder
from application.delivery import Deliveries
from application.operators import Actor
from application.privacy import Privacy
from application.privacy_reads import PiiReader, history_subjects, logged_read
from domain.codes import last4
from domain.errors import DomainError, refuse
from entrypoints.console.pages import (
    DUE_SOON_DAYS,
    HEADERS,
    Console,
)
from entrypoints.console.sessions import Session
from entrypoints.results import card_json, history_json, refund_json


def add_routes(router: APIRouter, console: Console) -> None:
    app = console.app
    service = console.service
    call = console.call
    finance_db = console.finance_db
    page = console.page
    refused = console.refused
    signed_in = console.signed_in
    posted = console.posted

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
            card = card_json(app.show(card_id))
            history = logged_read(service, actor.name, "customer service: card page",
                                  "console card", lambda: app.history(card_id),
                                  history_subjects)
            delivery = Deliveries(service).of_card(card_id)
            return {"card": card, "events": history_json(history)["events"],
                    "delivery": delivery}

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
            await call(lambda: app.cancel(CancelCard(
                card_id=card_id, code=fields.get("code", ""), order_id=fields.get("order_id", ""),
            )))
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
            done = refund_json(app.refund(RefundOrder(
                order_id=order_id, returned_amount=market.to_minor(fields.get("amount", "")),
                received_on=received_on, request_id=fields.get("request_id") or None,
                customer_id=fields.get("customer_id") or None,
                customer_email=fields.get("customer_email") or None,
            )))
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
