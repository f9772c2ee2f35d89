"""The compatibility gate: schemas/ keeps every promise of schemas/released/ (the last release)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import create_model

from dev import schema_gate
from domain.giftcard import CardEvent, GiftCard
from infra import schemas


def test_published_schemas_keep_every_released_promise() -> None:
    """Fails on a change to an event that breaks its consumers: bump its schema_version, add
    an upcaster, run `python -m infra.schemas`. After a release: `python -m infra.schemas
    --release`."""
    released = schemas.read(schemas.RELEASED_DIR)
    assert released, "schemas/released/ is empty: nothing is held to its promises"
    assert schema_gate.problems(released, schemas.read(schemas.SCHEMA_DIR)) == []
    assert schema_gate.missing_upcasters() == []


def redeemed_without(field: str, version: int = 1) -> type[Any]:
    """GiftCard.Redeemed as a developer might change it: one field removed."""
    fields = {
        name: (info.annotation, info)
        for name, info in GiftCard.Redeemed.model_fields.items()
        if name not in CardEvent.model_fields and name != field
    }
    model = create_model("Redeemed", __base__=CardEvent, **fields)  # type: ignore[call-overload]
    model.class_version = version  # type: ignore[attr-defined]
    return model  # type: ignore[no-any-return]


@pytest.fixture
def copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of schemas/ and of its release, to break on purpose."""
    published, released = tmp_path / "schemas", tmp_path / "schemas" / "released"
    shutil.copytree(schemas.SCHEMA_DIR, published)
    return published, released


def regenerate(published: Path, released: Path, event_class: type[Any]) -> dict[str, str]:
    """What `python -m infra.schemas` would write with GiftCard.Redeemed replaced."""
    version = event_class.class_version
    schema = schemas.event_schema("GiftCardRedeemed", event_class, is_card=True)
    (published / schemas.file_name("GiftCardRedeemed", 1)).unlink()
    (published / schemas.file_name("GiftCardRedeemed", version)).write_text(
        json.dumps(schema, indent=2) + "\n", encoding="utf-8"
    )
    # The release keeps the versions the code moved on from published (generate does this).
    for name, text in schemas.read(released).items():
        if not (published / name).exists():
            (published / name).write_text(text, encoding="utf-8")
    return schemas.read(published)


def test_the_gate_passes_on_an_unchanged_copy(copy: tuple[Path, Path]) -> None:
    published, released = copy
    assert schema_gate.problems(schemas.read(released), schemas.read(published)) == []


def test_a_deliberately_removed_field_fails_the_gate(copy: tuple[Path, Path]) -> None:
    published, released = copy
    changed = regenerate(published, released, redeemed_without("forfeited"))
    found = schema_gate.problems(schemas.read(released), changed)
    assert len(found) == 1
    assert found[0].startswith("GiftCardRedeemed.v1.json: not compatible")
    assert "data.forfeited removed" in found[0]


def test_the_same_removal_under_a_new_schema_version_passes(copy: tuple[Path, Path]) -> None:
    """The way through: v2 is a new file, v1 stays published for the records written under it."""
    published, released = copy
    changed = regenerate(published, released, redeemed_without("forfeited", version=2))
    assert "GiftCardRedeemed.v2.json" in changed
    assert changed["GiftCardRedeemed.v1.json"] == schemas.read(released)["GiftCardRedeemed.v1.json"]
    assert schema_gate.problems(schemas.read(released), changed) == []


def test_a_new_version_needs_its_upcaster() -> None:
    bumped = redeemed_without("forfeited", version=2)
    assert schema_gate.missing_upcasters([("GiftCardRedeemed", bumped)]) == [
        "GiftCardRedeemed: no upcast_v1_v2"
    ]

    class Upcast(bumped):  # type: ignore[misc, valid-type]
        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.pop("forfeited")

    assert schema_gate.missing_upcasters([("GiftCardRedeemed", Upcast)]) == []


def released_schema(name: str) -> dict[str, Any]:
    return json.loads(schemas.read(schemas.RELEASED_DIR)[name])


def gate(name: str, changed: dict[str, Any]) -> list[str]:
    published = schemas.read(schemas.SCHEMA_DIR) | {name: json.dumps(changed)}
    return schema_gate.problems(schemas.read(schemas.RELEASED_DIR), published)


def test_a_narrowed_type_fails() -> None:
    schema = released_schema("GiftCardRedeemed.v1.json")
    schema["properties"]["data"]["properties"]["customer_id"] = {"type": "string"}  # was |null
    (problem,) = gate("GiftCardRedeemed.v1.json", schema)
    assert "data.customer_id changed" in problem


def test_a_widened_type_fails() -> None:
    """Consumers that validate with the released schema would refuse the new records."""
    schema = released_schema("GiftCardExpired.v1.json")
    schema["properties"]["data"]["properties"]["forfeited"] = {"type": ["integer", "null"]}
    (problem,) = gate("GiftCardExpired.v1.json", schema)
    assert "data.forfeited changed" in problem


def test_a_new_required_field_without_a_version_bump_fails() -> None:
    schema = released_schema("GiftCardCancelled.v1.json")
    data = schema["properties"]["data"]
    data["properties"]["reason"] = {"type": "string"}
    data["required"].append("reason")
    (problem,) = gate("GiftCardCancelled.v1.json", schema)
    assert "data.reason added" in problem


def test_a_renamed_field_fails() -> None:
    schema = released_schema("GiftCardRefunded.v1.json")
    data = schema["properties"]["data"]
    data["properties"]["returned"] = data["properties"].pop("returned_amount")
    data["required"] = [f if f != "returned_amount" else "returned" for f in data["required"]]
    (problem,) = gate("GiftCardRefunded.v1.json", schema)
    assert "data.returned_amount removed" in problem and "data.returned added" in problem


def test_a_released_schema_no_longer_published_fails() -> None:
    published = schemas.read(schemas.SCHEMA_DIR)
    del published["SubjectErased.v1.json"]
    assert schema_gate.problems(schemas.read(schemas.RELEASED_DIR), published) == [
        "SubjectErased.v1.json: released, no longer published (old records still need it)"
    ]


def test_a_new_event_type_and_a_changed_title_are_compatible() -> None:
    schema = released_schema("GiftCardActivated.v1.json")
    schema["properties"]["market"]["title"] = "Market (ISO 3166-1 alpha-2)"
    new_type = released_schema("GiftCardActivated.v1.json")
    new_type["properties"]["event_type"]["const"] = "GiftCardHeld"
    published = schemas.read(schemas.SCHEMA_DIR) | {
        "GiftCardActivated.v1.json": json.dumps(schema),
        "GiftCardHeld.v1.json": json.dumps(new_type),
    }
    assert schema_gate.problems(schemas.read(schemas.RELEASED_DIR), published) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda s: s["properties"]["message_id"]["anyOf"][0].update(pattern="^.*$"),
         "message_id.anyOf[0].pattern"),
        (lambda s: s["properties"]["reason"].update(pattern="^[a-z]+$"), "reason.pattern"),
        (lambda s: s["properties"]["reason"].pop("pattern"), "reason.pattern"),
        (lambda s: s["properties"]["reason"].update(maxLength=8), "reason.maxLength"),
    ],
    ids=["loosened", "narrowed", "dropped", "length-added"],
)
def test_p5_a_changed_string_constraint_fails(change: Any, path: str) -> None:
    """A pattern is the field's promise of minimised content (an opaque id, a reason code):
    loosened, it lets free text through to readers who rely on it; narrowed, old records fail."""
    schema = released_schema("dead-letter.v2.json")
    change(schema)
    (problem,) = gate("dead-letter.v2.json", schema)
    assert problem.startswith("dead-letter.v2.json: not compatible") and path in problem
