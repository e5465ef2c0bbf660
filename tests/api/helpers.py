"""Tokens and a client that speaks to /api/v1/ with one, for the API tests."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from api.tokens import token_create

API = "/api/v1"


def make_token(workspace: Any, role: str, name: str = "test") -> str:
    return token_create(
        workspace=workspace, name=f"{name}-{role}", role=role, created_by=None
    ).secret


class ApiClient:
    def __init__(self, secret: str | None) -> None:
        self.client = Client()
        self.secret = secret

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.secret is not None:
            headers.setdefault("Authorization", f"Bearer {self.secret}")
        return headers

    def get(
        self, path: str, headers: dict[str, str] | None = None, **query: Any
    ) -> Any:
        return self.client.get(API + path, query, headers=self._headers(headers))

    def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        return self.client.post(
            API + path,
            json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers=self._headers(headers),
        )

    def upload(
        self, path: str, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        return self.client.post(API + path, data, headers=self._headers(headers))
