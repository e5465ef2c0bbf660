"""How long a rendered prompt may be, per backend (docs/security.md, "Prompt limits").

BFL documents "up to ~32K tokens" for FLUX.2 prompts; a token is at least one character, so
32,000 characters is a length BFL accepts whatever the tokenizer. The other providers document
no limit, so the studio's own STUDIO_PROMPT_MAX_CHARS applies to them, and to BFL too when it is
lower. A longer prompt is refused in the batch preview with the numbers, before anything is spent.
"""

from __future__ import annotations

from django.conf import settings

# Characters, from each provider's documentation (docs/security.md lists the sources).
DOCUMENTED_MAX_CHARS: dict[str, int] = {"bfl": 32_000}


def max_prompt_chars(backend: str) -> int:
    """The longest prompt `backend` is sent: its documented limit, capped by the studio's."""
    studio = int(settings.STUDIO_PROMPT_MAX_CHARS)
    return min(DOCUMENTED_MAX_CHARS.get(backend, studio), studio)


def prompt_too_long(length: int, backend: str, label: str) -> str | None:
    """The refusal for a prompt of `length` characters on `backend`, or None when it fits."""
    limit = max_prompt_chars(backend)
    if length <= limit:
        return None
    source = (
        "the provider's documented limit"
        if DOCUMENTED_MAX_CHARS.get(backend, limit + 1) <= limit
        else "the studio's limit (STUDIO_PROMPT_MAX_CHARS)"
    )
    return (
        f"the rendered prompt is {length:,} characters; {label} takes at most "
        f"{limit:,} ({source})."
    )
