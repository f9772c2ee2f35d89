"""Stored-event mapping for pydantic events with orjson (the library's aggregate7 recipe)."""

from __future__ import annotations

from typing import Any, cast

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

from domain.chain import link_mac

MAC_FIELD = "chain_mac"  # stored beside the event's fields, never one of them
# What `PydanticMapper.to_state` gives: (event class, stored fields, whether an upcaster ran).
StoredState = tuple[type[Any], dict[str, Any], bool]


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper):  # type: ignore[type-arg]
    """Stores `model_dump(mode="json")`; upcasts old versions with `upcast_vN_vN+1`. A chained
    event is stored with `chain_mac`, its link sealed under `chain_key` (set by the composition
    root): the application computes it as it records the event."""

    chain_key: bytes | None = None

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        state = cast(BaseModel, domain_event).model_dump(
            mode="json", exclude={"originator_id", "originator_version"}
        )
        version = class_version(type(domain_event))
        if version > 1:
            state["class_version"] = version
        event_hash = state.get("event_hash")
        if event_hash and self.chain_key is not None:
            state[MAC_FIELD] = link_mac(self.chain_key, event_hash)
        stored = self.transcoder.encode(state)
        if self.compressor:
            stored = self.compressor.compress(stored)
        if self.cipher:
            stored = self.cipher.encrypt(stored)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=stored,
        )

    def to_state(self, stored_event: StoredEvent) -> StoredState:
        """(event class, stored fields upcast to the class's version, whether any upcaster ran).
        Without upcasting the fields are exactly `model_dump(mode="json")` of the event."""
        stored = stored_event.state
        if self.cipher:
            stored = self.cipher.decrypt(stored)
        if self.compressor:
            stored = self.compressor.decompress(stored)
        state: dict[str, Any] = self.transcoder.decode(stored)
        cls = resolve_topic(stored_event.topic)
        version = stored_version = state.pop("class_version", 1)
        while version < class_version(cls):
            getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
            version += 1
        return cls, state, version != stored_version

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[Any]:
        cls, state, _ = self.to_state(stored_event)
        state.pop(MAC_FIELD, None)
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        return cast(DomainEventProtocol[Any], cls(**state))


def class_version(cls: type[Any]) -> int:
    """An event class's current version (1 unless it declares `class_version: ClassVar[int]`),
    looked up once per class: pydantic answers a missing class attribute slowly."""
    version = _VERSIONS.get(cls)
    if version is None:
        version = _VERSIONS[cls] = getattr(cls, "class_version", 1)
    return version


_VERSIONS: dict[type[Any], int] = {}
