"""The API object: /api/v1/, its OpenAPI document and its docs page.

Django Ninja (see docs/api.md for why): async operations for `Prefer: wait`, pydantic request
validation and the OpenAPI 3.1 document generated from the same type hints.
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI

from api import openapi, problems
from api.auth import BearerToken
from api.routes_catalog import router as catalog
from api.routes_exports import router as exports
from api.routes_generation import router as generation
from api.routes_products import router as products


class StudioAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(**kwargs)
        return openapi.problem_responses(schema, self.get_root_path({}).rstrip("/"))


api = StudioAPI(
    title="Flux Studio API",
    version="1",
    description=(
        "Generate, follow and review FLUX.2 images. Authenticate with "
        "`Authorization: Bearer <token>`; errors are `application/problem+json` with a "
        "stable `code`. See docs/api.md."
    ),
    urls_namespace="api",
    auth=BearerToken(),
    openapi_url="/openapi.json",
    docs_url="/docs",
)
problems.install(api)
api.add_router("", catalog)
api.add_router("", generation)
api.add_router("", exports)
api.add_router("", products)
