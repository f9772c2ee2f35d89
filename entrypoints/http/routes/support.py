"""For customer service: a card shown, its history (an operator's own key, R21), a
cancellation (R19/R20), and the sweep of timed-out holds on demand."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from application.commands import CancelCard
from application.operators import Actor
from application.privacy_reads import history_subjects
from domain.apikeys import ApiKey
from entrypoints.http import responses as answers
from entrypoints.http.bodies import CancelBody, IdemKey
from entrypoints.http.context import ApiContext
from entrypoints.results import cancellation_json, card_json, history_json, released_json


def routes(context: ApiContext) -> APIRouter:
    router = APIRouter()
    app, holds = context.app, context.holds
    Support = Annotated[ApiKey, Depends(context.scoped("support"))]
    Reader = Annotated[ApiKey, Depends(context.scoped("support", "audit", "orders"))]
    HistoryReader = Annotated[
        Actor, Depends(context.operator_key("GET /v1/cards/{card_id}/history"))]

    @router.post("/v1/cancellations", operation_id="cancel",
                 response_model=answers.Cancellation)
    async def cancel(
        request: Request, body: CancelBody, key: Support, idempotency_key: IdemKey = None,
    ) -> Response:
        """R19/R20: the purchase order id and the card's code, both checked."""
        return await context.idempotent(
            request, key, idempotency_key,
            lambda uow: cancellation_json(app.cancel(CancelCard(
                card_id=body.card_id, code=body.code, order_id=body.order_id,
            ), within=uow)),
        )

    @router.get("/v1/cards/{card_id}", operation_id="show_card", response_model=answers.Card)
    async def show(card_id: UUID, key: Reader) -> dict[str, Any]:
        """The card as of now: `held` while an order holds it, as a lookup says."""
        return card_json(await context.call(lambda: app.show(card_id)))

    @router.get("/v1/cards/{card_id}/history", operation_id="card_history",
                response_model=answers.History)
    async def history(card_id: UUID, actor: HistoryReader) -> dict[str, Any]:
        """The card's events; the customer ids they name: an operator's own key (R21)."""
        return history_json(await context.logged(actor, "card history", "GET history",
                                                 lambda: app.history(card_id),
                                                 history_subjects))

    @router.post("/v1/holds/release-timed-out", operation_id="release_timed_out_holds",
                 response_model=answers.Sweep)
    async def sweep(key: Support) -> dict[str, Any]:
        """The sweep `serve` runs: every hold past its time released (an event each)."""
        return released_json(await context.call(holds.release_timed_out))

    return router
