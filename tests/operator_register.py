"""Operators enrolled in-process for tests that act as one: the register's first admin, founded
with the service's secret, adds each of them."""

from __future__ import annotations

from application.operators import Actor, Operators
from infra.bootstrap import Service

FOUNDER = Actor("root", "admin")


def enrol(service: Service, name: str, role: str) -> Actor:
    operators = Operators(service.app)
    if operators.register_of() is None:
        operators.add(FOUNDER.name, FOUNDER.role, None)
    if name != FOUNDER.name and name not in operators.register_of().operators:
        operators.add(name, role, FOUNDER)
    return Actor(name, role)
