"""The backend registry: names, the model vocabulary and configuration from settings/environment."""

from __future__ import annotations

import os
from unittest import mock

from django.test import SimpleTestCase, override_settings

from generation.backends import bfl, preview, registry
from generation.backends.base import BackendConfig
from generation.backends.bfl import BFLBackend
from generation.backends.preview import PreviewBackend


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
        self.assertRaises(LookupError, registry.env_config, "midjourney")

    def test_the_model_vocabulary_covers_every_backend(self) -> None:
        self.assertEqual(set(preview.MODELS), set(registry.MODELS))
        self.assertLessEqual(set(bfl.MODELS), set(registry.MODELS))

    @override_settings(
        BFL_API_KEY=None, BFL_API_URL=None
    )  # settings undefined: the environment answers
    def test_env_config_reads_the_environment(self) -> None:
        env = {
            "BFL_API_KEY": "bfl_env",
            "BFL_API_URL": "eu",
            "BFL_ALLOWED_HOSTS": "127.0.0.1",
        }
        with mock.patch.dict(os.environ, env):
            config = registry.env_config("bfl")
            backend = registry.get_backend("bfl")
        self.assertEqual((config.api_key, config.base_url), ("bfl_env", "eu"))
        self.assertEqual(config.extra, {"allowed_hosts": "127.0.0.1"})
        self.assertEqual(backend.base_url, "https://api.eu.bfl.ai")
        self.assertTrue(backend.is_configured())

    def test_settings_win_over_the_environment(self) -> None:
        with (
            mock.patch.dict(os.environ, {"BFL_API_KEY": "bfl_env", "BFL_API_URL": ""}),
            override_settings(
                BFL_API_KEY="bfl_settings", BFL_API_URL="https://api.us.bfl.ai"
            ),
        ):
            config = registry.env_config("bfl")
        self.assertEqual(
            (config.api_key, config.base_url), ("bfl_settings", "https://api.us.bfl.ai")
        )

    def test_preview_needs_no_configuration(self) -> None:
        backend = registry.get_backend("preview")
        self.assertIsInstance(backend, PreviewBackend)
        self.assertEqual(registry.env_config("preview"), BackendConfig())
