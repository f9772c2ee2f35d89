"""Liability and breakage read by several requests at once: the first reads bring the finance views
up to date one at a time, so none of them answers 500 for a row another one inserted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from application.commands import PurchaseCard
from entrypoints.http.context import ApiContext
from infra.service import Service


def test_r9_concurrent_first_reads_of_the_finance_views_all_answer(service: Service) -> None:
    app = service.app
    for n in range(40):
        app.purchase(PurchaseCard(
            order_id=f"ord-{n}", market="FR", amount=2000 + n, payment_method="card",
            buyer_id=f"cus-{n}", buyer_email=f"b{n}@example.org",
        ))
    context = ApiContext(service, hold_seconds=60, workers=2, group_commit=False)
    with ThreadPoolExecutor(8) as pool:
        views = list(pool.map(lambda _: context.fresh_views(), range(8)))
    assert len({id(v) for v in views}) == 1  # one projector, brought up to date once at a time
