"""The composition root sits above the adapters: nothing below imports it, entry points build
through it, and the adapters below never reach up into consumers or projections."""

from __future__ import annotations

import grimp

PACKAGES = ("domain", "application", "infra", "consumers", "projections", "composition",
            "entrypoints")
# Still in consumers/: the wire schemas of the checkout consumer's input, replies and dead
# letters, which infra's JSON Schemas and AsyncAPI document publish (listed in the contract).
WIRE_SCHEMAS = {
    ("infra.schemas", "consumers.dead_letters"),
    ("infra.schemas", "consumers.replies"),
    ("infra.asyncapi", "consumers.messages"),
}


def imports_between(graph: grimp.ImportGraph, low: str, high: str) -> set[tuple[str, str]]:
    return {
        (found["importer"], found["imported"])
        for found in graph.find_matching_direct_imports(import_expression=f"{low}.** -> {high}.**")
    } | {
        (found["importer"], found["imported"])
        for found in graph.find_matching_direct_imports(import_expression=f"{low}.** -> {high}")
    }


def test_nothing_below_the_composition_root_imports_it() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    for below in ("domain", "application", "infra", "consumers", "projections"):
        assert imports_between(graph, below, "composition") == set(), below


def test_infra_reaches_consumers_only_for_their_wire_schemas_and_never_projections() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert imports_between(graph, "infra", "consumers") == WIRE_SCHEMAS
    assert imports_between(graph, "infra", "projections") == set()


def test_consumers_and_projections_never_import_each_other() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert imports_between(graph, "consumers", "projections") == set()
    assert imports_between(graph, "projections", "consumers") == set()


def test_entry_points_build_through_the_composition_root() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert imports_between(graph, "entrypoints", "infra.bootstrap") == set()
    assert imports_between(graph, "entrypoints", "composition") != set()
