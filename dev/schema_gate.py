"""The schema compatibility gate: what consumers were promised (schemas/released/) still holds."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import jsoncompat

from infra import schemas
from infra.envelope import published_events
from infra.orjsonpydantic import class_version


def problems(released: dict[str, str], published: dict[str, str]) -> list[str]:
    """Why `published` (file name -> schema text) breaks a consumer of `released`; empty when
    it does not. Both directions count, as the topic keeps every record forever: records
    written under the new schema must validate under the released one (no field removed,
    renamed or added, no type widened) and old records under the new one (no type narrowed,
    no new required field). A new event type, or a new schema_version of one, is a new file:
    an addition, as long as every released version stays published."""
    found = []
    for name, text in sorted(released.items()):
        if name not in published:
            found.append(f"{name}: released, no longer published (old records still need it)")
            continue
        old, new = json.loads(text), json.loads(published[name])
        # jsoncompat does not compare patterns or lengths: any change to one is a break, as
        # whether one regular expression contains another is not worth deciding here.
        strings = list(string_constraint_changes(old, new))
        if strings or not jsoncompat.check_compat(_checkable(old), _checkable(new), "both"):
            changes = "; ".join([*differences(old, new), *strings]) or "a constraint changed"
            found.append(
                f"{name}: not compatible with the released schema ({changes}); publish a new "
                "schema_version with an upcaster instead"
            )
    return found


def differences(old: dict[str, Any], new: dict[str, Any], path: str = "") -> Iterator[str]:
    """Fields removed, added, or whose schema changed, by path (to say what broke)."""
    before, after = old.get("properties", {}), new.get("properties", {})
    for field in before.keys() - after.keys():
        yield f"{path}{field} removed"
    for field in after.keys() - before.keys():
        yield f"{path}{field} added"
    for field in before.keys() & after.keys():
        if "properties" in before[field] or "properties" in after[field]:
            yield from differences(before[field], after[field], f"{path}{field}.")
        elif _assertions(before[field]) != _assertions(after[field]):
            yield f"{path}{field} changed"
    if set(old.get("required", [])) != set(new.get("required", [])):
        yield f"{path or 'top level'} required fields changed"


STRING_CONSTRAINTS = ("pattern", "format", "minLength", "maxLength", "contentEncoding")


def string_constraint_changes(old: Any, new: Any, path: str = "") -> Iterator[str]:
    """String constraints (a pattern, a length, a format) added, removed or changed, by path:
    a pattern is what keeps an opaque id free of personal data, for readers who rely on it."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            at = f"{path}.{key}" if path else key
            if key in STRING_CONSTRAINTS and old.get(key) != new.get(key):
                yield f"{_shown(at)} changed"
            elif key in old and key in new:
                yield from string_constraint_changes(old[key], new[key], at)
    elif isinstance(old, list) and isinstance(new, list):
        for index, (before, after) in enumerate(zip(old, new, strict=False)):
            yield from string_constraint_changes(before, after, f"{path}[{index}]")


def _shown(path: str) -> str:
    # The path as `differences` names fields: without the schema's own `properties` levels.
    return path.replace("properties.", "")


def missing_upcasters(events: Iterable[tuple[str, type[Any]]] | None = None) -> list[str]:
    """Event classes past version 1 without the upcasters that bring older stored events up
    (the library's `upcast_vN_vM` static methods): the way through a breaking change.
    `events`: (event type, class) pairs, by default every published one."""
    if events is None:
        events = [(event_type, cls) for _, event_type, cls in published_events()]
    found = []
    for event_type, cls in events:
        for version in range(1, class_version(cls)):
            if not callable(getattr(cls, f"upcast_v{version}_v{version + 1}", None)):
                found.append(f"{event_type}: no upcast_v{version}_v{version + 1}")
    return found


def _checkable(schema: dict[str, Any]) -> str:
    # jsoncompat resolves `$ref`s against `$id` and only knows local documents: the ids are
    # names, not places, so drop them.
    return json.dumps({k: v for k, v in schema.items() if k != "$id"})


def _assertions(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in {"title", "description", "examples"}}


def main() -> int:
    found = [
        *problems(schemas.read(schemas.RELEASED_DIR), schemas.read(schemas.SCHEMA_DIR)),
        *missing_upcasters(),
    ]
    for problem in found:
        sys.stdout.write(f"{problem}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
