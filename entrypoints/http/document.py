"""The OpenAPI document: FastAPI's, with the one problem component every error refers to."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from entrypoints.http.responses import Problem


def openapi_document(api: FastAPI) -> dict[str, Any]:
    """Built once per app. Errors are declared by reference (`#/components/schemas/Problem`,
    as `application/problem+json`), so a generated client has one problem type, not one per
    operation and status."""
    if api.openapi_schema is None:
        document = get_openapi(
            title=api.title, version=api.version, openapi_version=api.openapi_version,
            description=api.description, routes=api.routes,
            # Relative: the document describes the server it is read from.
            servers=[{"url": "/", "description": "the server serving this document"}],
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
        api.openapi_schema = document
    return api.openapi_schema
