"""Human output of the CLI: money in the market's locale, dates, tables; `--json` stays raw."""

from __future__ import annotations

import re
import shutil
from functools import cache
from typing import Any

from babel.numbers import format_currency
from rich import box
from rich.console import Console
from rich.table import Table

from domain.markets import MINOR_UNITS
from infra.mail.render import LOCALES

# Integer fields that are money (minor units) when their object names a currency; counts such
# as `cards`, `events` or `open_cards` stay numbers.
MONEY = frozenset({
    "amount", "balance", "applied", "remaining_to_pay", "forfeited", "returned_amount",
    "to_new_card", "to_other_method", "order_total", "outstanding", "expired", "after_use",
    "total", "refunded", "paid", "value", "held", "released",
})
_INSTANT = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]00:00)")


@cache
def _currency_locales() -> dict[str, str]:
    """A currency without a market (a total per currency) reads in its first market's locale."""
    from composition.bootstrap import load_markets
    from infra.config import load_settings

    found: dict[str, str] = {}
    for code, market in load_markets(load_settings()).markets.items():
        found.setdefault(market.currency, LOCALES.get(code, "en_GB"))
    return found


def money(minor: int, currency: str, market: str | None = None) -> str:
    """`5000, "EUR", "FR"` → `50,00 €` (the market's locale)."""
    locale = LOCALES.get(market or "") or _currency_locales().get(currency, "en_GB")
    digits = MINOR_UNITS.get(currency, 2)
    return str(format_currency(minor / 10**digits, currency, locale=locale))


def scalar(value: Any) -> str:
    """No Python spelling: None is a dash, booleans are yes/no, UTC instants read as such."""
    if value is None or value == {} or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and (found := _INSTANT.fullmatch(value)):
        return f"{found[1]} {found[2]} UTC"
    return str(value)


def _values(obj: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The object's fields, money formatted with the currency (and market) in scope."""
    currency = obj.get("currency", context.get("currency"))
    market = obj.get("market", context.get("market"))
    shown: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, int) and not isinstance(value, bool) and key in MONEY \
                and isinstance(currency, str):
            shown[key] = money(value, currency, market)
        elif isinstance(value, dict) and value and all(k in MINOR_UNITS for k in value):
            shown[key] = ", ".join(money(v, k) if isinstance(v, int) else scalar(v)
                                   for k, v in value.items())
        else:
            shown[key] = value
    return shown


def _inline(value: Any, context: dict[str, Any]) -> str:
    if isinstance(value, dict):
        shown = _values(value, context)
        return ", ".join(f"{k}={_inline(v, {**context, **value})}" for k, v in shown.items())
    if isinstance(value, list):
        return ", ".join(_inline(v, context) for v in value) or "—"
    return scalar(value)


def _table(rows: list[dict[str, Any]], context: dict[str, Any]) -> Table:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        shown = _values(row, context)
        table.add_row(*(_inline(shown.get(c), {**context, **row}) for c in columns))
    return table


def render(payload: dict[str, Any], console: Console, context: dict[str, Any] | None = None,
           indent: int = 0) -> None:
    """Scalars as aligned `key  value` lines, lists of objects as tables, objects indented."""
    context = {**(context or {}), **{k: payload[k] for k in ("currency", "market")
                                     if isinstance(payload.get(k), str)}}
    shown = _values(payload, context)
    width = max((len(k) for k in shown), default=0)
    pad = " " * indent
    for key, value in shown.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            console.print(f"{pad}{key}:")
            console.print(_table(value, context))
        elif isinstance(value, dict) and value:
            console.print(f"{pad}{key}:")
            render(value, console, context, indent + 2)
        elif isinstance(value, list):
            console.print(f"{pad}{key.ljust(width)}  {', '.join(map(scalar, value)) or '—'}")
        else:
            console.print(f"{pad}{key.ljust(width)}  {scalar(value)}")


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 (a refusal, in our exit codes): the CLI ends a closed pipe itself.
        raise BrokenPipeError


def human(payload: dict[str, Any], stream: Any) -> None:
    width = shutil.get_terminal_size((160, 24)).columns
    console = _Console(file=stream, width=width, highlight=False, markup=False, emoji=False,
                       soft_wrap=False)
    render(payload, console)
