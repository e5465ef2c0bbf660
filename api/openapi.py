"""The OpenAPI document as the API really answers: errors are problem documents, files are bytes.

Ninja documents every response as application/json. Schemathesis (tests/api) holds the API to
its document, so the document says what the answers are: every error status an operation can
give (a malformed body 400, 401, 403, 404, 409, 413, 422, 429) as `application/problem+json`,
and the file downloads as images or zips.
"""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"
ERROR_STATUSES = {
    "400": "Malformed request (unparseable JSON)",
    "401": "No token, or an unknown or revoked one",
    "403": "The token's role may not do this",
    "404": "No such object in the token's workspace",
    "409": "Conflict (duplicate, stale version, Idempotency-Key in flight)",
    "413": "Body too large",
    "422": "The request breaks a rule",
    "429": "Over the token's rate limit (see Retry-After)",
}
FILES = {
    "/assets/{code}/file": "image/*",
    "/files/{token}": "image/*",
    "/exports/{code}/file": "application/zip",
    "/export-files/{token}": "application/zip",
}


def problem_responses(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in schema.get("paths", {}).items():
        short = path.removeprefix(prefix)
        for operation in operations.values():
            responses = {
                str(k): v for k, v in operation.setdefault("responses", {}).items()
            }
            operation["responses"] = responses
            public = not operation.get(
                "security"
            )  # the signed file links need no token
            for status, description in ERROR_STATUSES.items():
                if public and status not in ("404", "429"):
                    continue
                responses[status] = {
                    "description": description,
                    "content": {PROBLEM: {"schema": ref}},
                }
            if short in FILES:
                responses["200"] = {
                    "description": "The file",
                    "content": {
                        FILES[short]: {"schema": {"type": "string", "format": "binary"}}
                    },
                }
    return schema
