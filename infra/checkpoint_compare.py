"""One card's recomputed chain against trusted checkpoints: which checkpoint covers a version,
what differs, how many events no checkpoint holds yet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Problem = dict[str, Any]


def is_increment(checkpoint: dict[str, Any]) -> bool:
    return bool(checkpoint["header"].get("kind") == "increment")


def covering(card_id: str, version: int, checkpoints: list[dict[str, Any]]
             ) -> dict[str, Any] | None:
    """The first checkpoint (oldest first) whose head of this card includes `version`."""
    for cp in checkpoints:
        head = cp["heads"].get(card_id)
        if head is not None and int(head[0]) >= version:
            return cp
    return None


def compare(card_id: str, hashes: dict[int, str], last_version: int,
            checkpoints: list[dict[str, Any]],
            redacted: dict[int, str] | None = None) -> Iterator[Problem]:
    """Differences between one card's recomputed chain (and its redacted chain, when given)
    and every trusted checkpoint."""
    for cp in checkpoints:
        head = cp["heads"].get(card_id)
        if head is None:
            continue
        version, expected = int(head[0]), head[1]
        at = f"checkpoint at position {cp['header']['position']} ({cp['header']['signed_at']})"
        if version > last_version:
            yield {"card_id": card_id, "version": version,
                   "problem": f"{at} has version {version}; the store has only "
                              f"{last_version}: events were deleted"}
        elif hashes.get(version) != expected or (
                redacted is not None and len(head) > 3 and redacted.get(version) != head[3]):
            yield {"card_id": card_id, "version": version,
                   "problem": f"history up to version {version} differs from the {at}: "
                              "an event was edited, inserted, removed or reordered"}


def not_checkpointed(card_id: str, last_version: int, checkpoints: list[dict[str, Any]]) -> int:
    """Events of a card after the latest checkpoint (or increment) that holds its head."""
    for cp in reversed(checkpoints):
        head = cp["heads"].get(card_id)
        if head is not None:
            return last_version - int(head[0])
        if not is_increment(cp):
            return last_version
    return last_version
