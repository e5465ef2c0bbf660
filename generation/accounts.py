"""Which credentials a generation uses: the workspace's provider account, else the environment.

`backend_for(workspace_id=..., backend="bfl")` answers the Backend to talk to and the account it
came from (None: the operator's settings, BFL_API_KEY / BFL_API_URL, via settings_config). A
generation remembers its account (Generation.provider_account), and every later step rebuilds the
backend from that with `backend_for_generation`, so one generation never switches accounts half way.

Backend instances are cached per process, keyed by their full configuration: building one is
cheap, but the cache lets a backend keep per-instance state (host policy, timeouts) warm across
the many short tasks of a worker. A changed key or URL is a different cache entry.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings

from generation.backends import registry
from generation.backends.base import Backend, BackendConfig
from generation.models import Generation, ProviderAccount

UnknownBackend = registry.UnknownBackend


def known_backends() -> list[str]:
    return sorted(registry.BACKENDS)


def _backend_class(name: str) -> type[Backend]:
    try:
        return registry.BACKENDS[name]
    except KeyError:
        raise UnknownBackend(name) from None


def _setting(name: str) -> str:
    value = getattr(settings, name, None)
    return "" if value is None else str(value)


def settings_config(name: str) -> BackendConfig:
    """Backend `name`'s configuration from the operator's settings (studio/settings.py reads them
    from the environment): the fallback where a workspace has no enabled account."""
    return registry.config_from(name, _setting)


def config_for_account(account: ProviderAccount) -> BackendConfig:
    env = settings_config(account.backend)
    extra = dict(env.extra)
    if account.region:
        extra["region"] = account.region
    return BackendConfig(
        api_key=account.api_key,
        # An account without its own URL inherits the environment's (e.g. a regional endpoint).
        base_url=account.base_url or account.region or env.base_url,
        extra=extra,
    )


@lru_cache(maxsize=64)
def _instance(
    cls: type[Backend], api_key: str, base_url: str, extra: tuple[tuple[str, str], ...]
) -> Backend:
    return cls(BackendConfig(api_key=api_key, base_url=base_url, extra=dict(extra)))


def build(name: str, config: BackendConfig) -> Backend:
    return _instance(
        # A class is hashable; mypy checks type[Backend] against Hashable through the unbound
        # __hash__ and says no (python/mypy#11470).
        _backend_class(name),  # type: ignore[arg-type]
        config.api_key,
        config.base_url,
        tuple(sorted(config.extra.items())),
    )


def enabled_account(*, workspace_id: int, backend: str) -> ProviderAccount | None:
    return ProviderAccount.objects.filter(
        workspace_id=workspace_id, backend=backend, enabled=True
    ).first()


def backend_for(
    *, workspace_id: int, backend: str
) -> tuple[Backend, ProviderAccount | None]:
    """The Backend for (workspace, backend name): its enabled account, else the environment."""
    _backend_class(backend)
    account = enabled_account(workspace_id=workspace_id, backend=backend)
    config = (
        config_for_account(account) if account is not None else settings_config(backend)
    )
    return build(backend, config), account


def backend_for_generation(generation: Generation) -> Backend:
    account = generation.provider_account
    config = (
        config_for_account(account)
        if account is not None
        else settings_config(generation.backend)
    )
    return build(generation.backend, config)


# --- provider accounts: add and disable (the operator page) --------------------------------------


def provider_account_add(
    *,
    workspace: Any,
    backend: str,
    api_key: str,
    label: str = "",
    base_url: str = "",
    region: str = "",
    max_concurrency: int | None = None,
) -> ProviderAccount:
    """Store a workspace's credentials for `backend`, the key encrypted (never shown again).

    A workspace has at most one enabled account per backend: the one it replaces is disabled
    (kept, so past generations still name their account) in the same transaction."""
    from django.db import transaction
    from django.utils import timezone

    _backend_class(backend)
    with transaction.atomic():
        ProviderAccount.objects.filter(
            workspace=workspace, backend=backend, enabled=True
        ).update(enabled=False, updated_at=timezone.now())
        account = ProviderAccount(
            workspace=workspace,
            backend=backend,
            label=label.strip(),
            base_url=base_url.strip(),
            region=region.strip(),
            max_concurrency=max_concurrency or None,
            enabled=True,
        )
        account.set_api_key(api_key)
        account.save()
    return account


def provider_account_disable(*, account: ProviderAccount) -> bool:
    """Stop using an account for new generations (the environment's key takes over, if any).
    Generations already made with it keep it until they finish. True if it was enabled."""
    from django.utils import timezone

    return bool(
        ProviderAccount.objects.filter(pk=account.pk, enabled=True).update(
            enabled=False, updated_at=timezone.now()
        )
    )
