"""The backend registry: names, the model vocabulary and configuration from settings only."""

from __future__ import annotations

import os
from unittest import mock

from django.conf import settings
from django.test import SimpleTestCase, override_settings

from generation import accounts
from generation.backends import bfl, registry
from generation.backends.base import BackendConfig
from generation.backends.bfl import BFLBackend
from generation.backends.preview import spec as preview_spec
from generation.backends.preview.backend import PreviewBackend


def setting_names(name: str) -> list[str]:
    """Every setting config_from asks about for backend `name`."""
    asked: list[str] = []

    def lookup(variable: str) -> str:
        asked.append(variable)
        return ""

    registry.config_from(name, lookup)
    return asked


class RegistryTests(SimpleTestCase):
    def test_backends(self) -> None:
        self.assertEqual(registry.BACKENDS["bfl"], BFLBackend)
        self.assertEqual(registry.BACKENDS["preview"], PreviewBackend)
        for name, cls in registry.BACKENDS.items():
            self.assertEqual(cls.name, name)

    def test_unknown_backend_is_a_clear_error(self) -> None:
        with self.assertRaises(registry.UnknownBackend) as ctx:
            registry.get_backend("midjourney", BackendConfig())
        self.assertIn("midjourney", str(ctx.exception))
        self.assertIn("bfl", str(ctx.exception))
        self.assertRaises(LookupError, registry.config_from, "midjourney", str)

    def test_the_model_vocabulary_covers_every_backend(self) -> None:
        self.assertEqual(set(preview_spec.MODELS), set(registry.MODELS))
        self.assertLessEqual(set(bfl.MODELS), set(registry.MODELS))

    @override_settings(
        BFL_API_KEY="bfl_settings", BFL_API_URL="eu", BFL_ALLOWED_HOSTS="127.0.0.1"
    )
    def test_settings_config_reads_the_settings(self) -> None:
        config = accounts.settings_config("bfl")
        backend = registry.get_backend("bfl", config)
        self.assertEqual((config.api_key, config.base_url), ("bfl_settings", "eu"))
        self.assertEqual(config.extra, {"allowed_hosts": "127.0.0.1"})
        self.assertEqual(backend.base_url, "https://api.eu.bfl.ai")
        self.assertTrue(backend.is_configured())

    def test_every_setting_a_backend_is_configured_by_is_declared(self) -> None:
        # studio/settings_parts/providers.py reads each from the environment, once.
        for name in registry.BACKENDS:
            for variable in setting_names(name):
                with self.subTest(backend=name, setting=variable):
                    self.assertTrue(hasattr(settings, variable))

    def test_backends_never_read_the_environment(self) -> None:
        # Every variable the settings read for the providers, set in the environment only: a
        # backend built from an empty config sees none of them.
        env = {
            v: "from-the-environment"
            for n in registry.BACKENDS
            for v in setting_names(n)
        }
        self.assertIn("FAL_KEY", env)
        with mock.patch.dict(os.environ, env):
            for name, cls in registry.BACKENDS.items():
                with self.subTest(backend=name):
                    backend = cls(BackendConfig())
                    found = [
                        attr
                        for attr, value in vars(backend).items()
                        if isinstance(value, str) and "from-the-environment" in value
                    ]
                    self.assertEqual(found, [])
                    if name != "preview":
                        self.assertFalse(backend.is_configured())

    def test_preview_needs_no_configuration(self) -> None:
        backend = registry.get_backend("preview", BackendConfig())
        self.assertIsInstance(backend, PreviewBackend)
        self.assertEqual(accounts.settings_config("preview"), BackendConfig())
