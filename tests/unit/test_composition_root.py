"""The composition root sits above the adapters: nothing below imports it, entry points build
through it, and the adapters below never reach up into consumers or projections."""

from __future__ import annotations

from pathlib import Path

import grimp

PACKAGES = ("domain", "application", "infra", "consumers", "projections", "composition",
            "entrypoints")


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


def test_infra_never_imports_consumers_or_projections() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert imports_between(graph, "infra", "consumers") == set()
    assert imports_between(graph, "infra", "projections") == set()


def test_consumers_and_projections_never_import_each_other() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert imports_between(graph, "consumers", "projections") == set()
    assert imports_between(graph, "projections", "consumers") == set()


def test_the_wire_formats_consumers_and_http_share_live_below_both() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert ("consumers.checkout_processor", "infra.wire.messages") in imports_between(
        graph, "consumers", "infra.wire")
    assert ("entrypoints.http.middleware", "infra.wire.scan") in imports_between(
        graph, "entrypoints", "infra.wire")


def test_the_import_contract_has_no_exceptions() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert "ignore_imports" not in text


def test_entry_points_build_through_the_composition_root() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert imports_between(graph, "entrypoints", "infra.bootstrap") == set()
    assert imports_between(graph, "entrypoints", "composition") != set()
