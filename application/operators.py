"""Operators as principals (R21): the register, their keys, and what each role may do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from application.apikeys import ApiKeys
from application.cards import GiftCards
from application.unit_of_work import UnitOfWork
from domain.apikeys import ApiKey
from domain.errors import refuse
from domain.operators import REGISTER, ROLES, OperatorRegister

Json = dict[str, Any]
KEY_DAYS = 90  # an operator's key expires: re-keyed at least this often
# The HTTP scopes an operator's key carries, by role: what the service-to-service endpoints
# (cancellations, the finance views) let them do; personal data needs the table below too.
ROLE_SCOPES = {"support": ["support"], "dpo": ["support"], "auditor": ["audit"],
               "admin": ["audit", "support"]}
BREAK_GLASS = "break-glass:"

ALL = ROLES
# Clear personal data (names, e-mails, messages) and acting for a subject: never `auditor`.
PERSONAL = ("support", "dpo", "admin")
RIGHTS = ("dpo", "admin")  # erasure, objection, restriction: the data protection officer
# Least privilege, one table: every operator command and endpoint, and the roles allowed it.
# `docs/reference/roles.md` is generated from it; tests/e2e/test_role_matrix.py walks it.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "history": ALL,
    "audit export CARD_ID": ALL,
    "audit export --period": ("auditor", "admin"),
    "fraud alerts": ALL,
    "gdpr access-log": ("dpo", "auditor", "admin"),
    "gdpr request list": ALL,
    "gdpr request close": PERSONAL,
    "gdpr subject": PERSONAL,
    "gdpr pseudonym": PERSONAL,
    "gdpr export": PERSONAL,
    "gdpr rectify": PERSONAL,
    "deliveries retry": PERSONAL,
    "gdpr erase": RIGHTS,
    "gdpr object": RIGHTS,
    "gdpr restrict": RIGHTS,
    "gdpr unrestrict": RIGHTS,
    "gdpr operator add": ("admin",),
    "gdpr operator role": ("admin",),
    "gdpr operator disable": ("admin",),
    "gdpr operator rekey": ("admin",),
    "gdpr operator list": ("admin",),
    "GET /v1/cards/{card_id}/history": ALL,
    "GET /v1/fraud/alerts": ALL,
}


@dataclass(frozen=True)
class Actor:
    """Who acts: an operator whose key was verified, or the holder of the service's secret
    (`break-glass:<unix user>`, every right, logged as such)."""

    name: str
    role: str

    @property
    def break_glass(self) -> bool:
        return self.name.startswith(BREAK_GLASS)


def break_glass(unix_user: str) -> Actor:
    return Actor(f"{BREAK_GLASS}{unix_user}", "admin")


def check_allowed(actor: Actor, action: str) -> Actor:
    """Least privilege: the role may do this, or it is refused (403, exit 1)."""
    if actor.role not in PERMISSIONS[action]:
        raise refuse("operator_forbidden", f"the role {actor.role} may not use {action}")
    return actor


class Operators:
    """The register on its own stream; each operator's credential is an API key of theirs."""

    def __init__(self, cards: GiftCards, keys: ApiKeys | None = None) -> None:
        self.cards = cards
        self.keys = keys or ApiKeys(cards)

    def register_of(self, uow: UnitOfWork | None = None) -> OperatorRegister | None:
        return (uow or UnitOfWork(self.cards)).get(REGISTER, OperatorRegister)

    def authenticate(self, key: str) -> Actor:
        """The operator whose live key this is, in the register and not disabled."""
        return self.actor_of(self.keys.authenticate(key.strip()))

    def actor_of(self, api_key: ApiKey | None) -> Actor:
        """The operator of a key already authenticated (live), checked against the register:
        an operator's current key, not disabled; a service's key is no operator."""
        register = self.register_of()
        entry = None
        if api_key is not None and api_key.operator is not None and register is not None:
            entry = register.operators.get(api_key.operator)
        if api_key is None or entry is None or entry.disabled or entry.key_id != api_key.key_id:
            raise refuse("invalid_operator_key",
                         "this operator key is unknown, revoked, expired or disabled")
        assert api_key.operator is not None
        return Actor(api_key.operator, entry.role)

    def is_registered(self, name: str) -> bool:
        register = self.register_of()
        return register is not None and name in register.operators

    def add(self, name: str, role: str, actor: Actor | None) -> Json:
        """Registers an operator with a new key (shown once). `actor` None: the bootstrap admin,
        created with the service's secret on an empty register."""
        def command(uow: UnitOfWork) -> Json:
            register = self.register_of(uow) or OperatorRegister.found()
            if actor is None:
                register.check_bootstrap(role)
            by = actor or Actor("bootstrap", "admin")
            key = self._key(uow, name, role)
            register.register(name=name, role=role, key_id=UUID(key["key_id"]), by=by.name,
                              by_role=by.role, at=self.cards.now())
            uow.add(register)
            return {"operator": name, "role": role, "by": by.name, **self._shown(key)}

        return self.cards.run(command)

    def change_role(self, name: str, role: str, actor: Actor) -> Json:
        def command(uow: UnitOfWork) -> Json:
            register = self._existing(uow)
            changed = register.change_role(name=name, role=role, by=actor.name,
                                           by_role=actor.role, at=self.cards.now())
            # The key's scopes follow the role: a new key, the old one revoked.
            shown = self._rekey(uow, register, name, actor) if changed else {}
            uow.add(register)
            return {"operator": name, "role": role, "by": actor.name, "changed": changed,
                    **shown}

        return self.cards.run(command)

    def disable(self, name: str, actor: Actor) -> Json:
        def command(uow: UnitOfWork) -> Json:
            register = self._existing(uow)
            entry = register.entry(name)
            done = register.disable(name=name, by=actor.name, by_role=actor.role,
                                    at=self.cards.now())
            if done:
                self.keys.revoke_in(uow, entry.key_id)
            uow.add(register)
            return {"operator": name, "disabled": True, "by": actor.name, "replayed": not done}

        return self.cards.run(command)

    def rekey(self, name: str, actor: Actor) -> Json:
        def command(uow: UnitOfWork) -> Json:
            register = self._existing(uow)
            shown = self._rekey(uow, register, name, actor)
            uow.add(register)
            return {"operator": name, "role": register.entry(name).role, "by": actor.name,
                    **shown}

        return self.cards.run(command)

    def list(self) -> Json:
        register = self.register_of()
        found = register.operators.items() if register is not None else ()
        return {"operators": [
            {"operator": name, "role": e.role, "key_id": str(e.key_id), "disabled": e.disabled}
            for name, e in sorted(found)
        ]}

    def _existing(self, uow: UnitOfWork) -> OperatorRegister:
        register = self.register_of(uow)
        if register is None:
            raise refuse("unknown_operator", "the register of operators is empty")
        return register

    def _rekey(self, uow: UnitOfWork, register: OperatorRegister, name: str,
               actor: Actor) -> Json:
        entry = register.entry(name)
        role = entry.role
        self.keys.revoke_in(uow, entry.key_id)
        key = self._key(uow, name, role)
        register.rekey(name=name, key_id=UUID(key["key_id"]), by=actor.name, by_role=actor.role,
                       at=self.cards.now())
        return self._shown(key)

    def _key(self, uow: UnitOfWork, name: str, role: str) -> Json:
        expires = self.cards.now() + timedelta(days=KEY_DAYS)
        key = self.keys.issue(uow, name=f"operator {name}"[:100], scopes=ROLE_SCOPES[role],
                              operator=name, expires_at=expires)
        return key

    @staticmethod
    def _shown(key: Json) -> Json:
        return {"key_id": key["key_id"], "key": key["key"], "expires_at": key["expires_at"],
                "note": "the key is shown this once: give it to the operator"}


__all__ = ["ROLES", "Actor", "Operators", "check_allowed"]
