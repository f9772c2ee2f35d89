"""The register of operators (R21): who may read personal data, in which role, under which key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate
from domain.errors import refuse
from domain.stored_names import stored_as
from domain.streams import stream_id

ROLES = ("support", "dpo", "auditor", "admin")
# Nobody grants a role above their own: support and auditor are peers, below dpo, below admin.
RANK = {"support": 1, "auditor": 1, "dpo": 2, "admin": 3}
REGISTER = stream_id("operator-register", "main")


@dataclass
class Entry:
    """One operator as the register knows them: the key id is their current credential."""

    role: str
    key_id: UUID
    disabled: bool = False


def check_role(role: str) -> None:
    if role not in ROLES:
        raise refuse("invalid_input", f"role must be one of {', '.join(ROLES)}")


def check_admin(actor_role: str) -> None:
    """Only an admin changes the register."""
    if actor_role != "admin":
        raise refuse("operator_forbidden", "only an admin manages the register of operators")


def check_grant(actor_role: str, role: str) -> None:
    if RANK[role] > RANK[actor_role]:
        raise refuse("role_above_own", f"a {actor_role} cannot grant the role {role}")


@stored_as("domain.operators:OperatorRegister")
class OperatorRegister(Aggregate):
    """One stream: every registration, role change, disabling and new key, with who did it."""

    class Founded(Aggregate.Created):  # stored topic `domain.operators:OperatorRegister.Founded`
        pass

    class Registered(Aggregate.Event):
        name: str
        role: str
        key_id: UUID
        by: str
        at: datetime

    class RoleChanged(Aggregate.Event):
        name: str
        role: str
        by: str
        at: datetime

    class Disabled(Aggregate.Event):
        name: str
        by: str
        at: datetime

    class Rekeyed(Aggregate.Event):
        name: str
        key_id: UUID
        by: str
        at: datetime

    @event(Founded)
    def __init__(self) -> None:
        self.operators: dict[str, Entry] = {}

    @classmethod
    def found(cls) -> OperatorRegister:
        return cls._create(cls.Founded, id=REGISTER)

    def entry(self, name: str) -> Entry:
        found = self.operators.get(name)
        if found is None:
            raise refuse("unknown_operator", "this operator is not in the register of operators")
        return found

    def check_bootstrap(self, role: str) -> None:
        """The first operator, created with the service's secret alone, is an admin."""
        if self.operators:
            raise refuse("operator_required", "the register exists: an admin's key adds operators")
        if role != "admin":
            raise refuse("invalid_input", "the first operator of the register is an admin")

    def register(self, *, name: str, role: str, key_id: UUID, by: str, by_role: str,
                 at: datetime) -> None:
        check_role(role)
        check_admin(by_role)
        check_grant(by_role, role)
        if not name or len(name) > 100 or not name.isprintable() or name != name.strip():
            raise refuse("invalid_input", "an operator's name is 1 to 100 printable characters")
        if ":" in name:  # `process:` and `break-glass:` name actors that are not operators
            raise refuse("invalid_input", "an operator's name has no ':'")
        if name in self.operators:
            raise refuse("operator_conflict", "this operator is already in the register")
        self._registered(name=name, role=role, key_id=key_id, by=by, at=at)

    def change_role(self, *, name: str, role: str, by: str, by_role: str, at: datetime) -> bool:
        check_role(role)
        check_admin(by_role)
        check_grant(by_role, role)
        if self.entry(name).role == role:
            return False
        self._role_changed(name=name, role=role, by=by, at=at)
        return True

    def disable(self, *, name: str, by: str, by_role: str, at: datetime) -> bool:
        check_admin(by_role)
        if self.entry(name).disabled:
            return False
        self._disabled(name=name, by=by, at=at)
        return True

    def rekey(self, *, name: str, key_id: UUID, by: str, by_role: str, at: datetime) -> None:
        """A new key for the operator (the old one revoked); re-enables a disabled operator."""
        check_admin(by_role)
        self.entry(name)
        self._rekeyed(name=name, key_id=key_id, by=by, at=at)

    @event(Registered)
    def _registered(self, *, name: str, role: str, key_id: UUID, by: str, at: datetime) -> None:
        self.operators[name] = Entry(role, key_id)

    @event(RoleChanged)
    def _role_changed(self, *, name: str, role: str, by: str, at: datetime) -> None:
        self.operators[name].role = role

    @event(Disabled)
    def _disabled(self, *, name: str, by: str, at: datetime) -> None:
        self.operators[name].disabled = True

    @event(Rekeyed)
    def _rekeyed(self, *, name: str, key_id: UUID, by: str, at: datetime) -> None:
        entry = self.operators[name]
        entry.key_id, entry.disabled = key_id, False
