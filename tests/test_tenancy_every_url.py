"""Every URL that names an object is checked: another workspace's member gets 404 for it.

The test walks the whole URL configuration. A URL with parameters that is not listed in
OBJECT_URLS fails the test, so a new view cannot ship without this check.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.base import StudioTestCase

# URL name -> the kind of Acme object its `code` names (see _objects below).
OBJECT_URLS: dict[str, str] = {
    "generation:operator-account-disable": "account",
    "campaigns:brand-detail": "brand",
    "campaigns:brand-edit": "brand",
    "campaigns:brand-delete": "brand",
    "campaigns:campaign-create": "brand",
    "campaigns:campaign-detail": "campaign",
    "campaigns:campaign-edit": "campaign",
    "campaigns:campaign-status": "campaign",
    "campaigns:template-detail": "template",
    "campaigns:template-versions": "template",
    "campaigns:template-version-create": "template",
    "campaigns:template-version": "template",
    "campaigns:template-diff": "template",
    "campaigns:template-preview": "template",
    "campaigns:reference-list": "brand",
    "campaigns:reference-upload": "brand",
    "campaigns:reference-detail": "reference",
    "campaigns:reference-delete": "reference",
    "campaigns:reference-image": "reference",
    "campaigns:reference-thumbnail": "reference",
    "generation:batch-detail": "batch",
    "generation:batch-progress": "batch",
    "generation:batch-dispatch": "batch",
    "generation:batch-cancel": "batch",
    "generation:batch-retry": "batch",
    "generation:batch-rerun": "batch",
    "generation:asset-variant": "asset",
    "generation:campaign-spend": "campaign",
    "generation:brand-gallery": "brand",
    "generation:campaign-gallery": "campaign",
    "generation:batch-gallery": "batch",
    "generation:asset-detail": "asset",
    "generation:asset-image": "asset",
    "generation:asset-thumbnail": "asset",
    "generation:asset-review": "asset",
    "generation:asset-star": "asset",
    "generation:asset-tags": "asset",
    "generation:asset-comment": "asset",
    "generation:asset-focal-point": "asset",
    "exports:pack-detail": "pack",
    "exports:pack-cancel": "pack",
    "exports:pack-download": "pack",
    "exports:brand-presets": "brand",
}
# URLs with parameters that do not name a workspace object (checked elsewhere or public by design).
NOT_OBJECT_URLS: set[str] = {
    "member-update",  # integer membership id; tests/studio/test_workspaces.py checks the 404
    # Provider callbacks: public by design (no login); a per-generation token and the provider's
    # signature guard them (tests/generation/test_webhooks.py).
    "generation:webhook",
}


def _walk(
    patterns: list[Any], namespace: str = "", prefix: str = ""
) -> list[tuple[str, Any]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += _walk(pattern.url_patterns, ns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            found.append((namespace + pattern.name, pattern))
    return found


class EveryUrlTenancyTests(StudioTestCase):
    def _objects(self) -> dict[str, Any]:
        from django.core.files.uploadedfile import SimpleUploadedFile

        from campaigns.references import reference_create
        from generation.models import ProviderAccount
        from tests.factories import image_bytes, make_template

        reference = reference_create(
            brand=self.brand,
            uploaded_file=SimpleUploadedFile("pack.png", image_bytes(), "image/png"),
            user=self.alice,
            role="product",
            tags=["tenancy"],
        )
        template = make_template(self.brand, campaign=self.campaign)
        from tests.generation.batch_helpers import make_batch_with_asset, make_version

        batch = make_batch_with_asset(
            self.campaign, make_version(self.brand), self.alice
        )
        account = ProviderAccount.objects.create(
            workspace=self.workspace, backend="fal", label="tenancy"
        )
        return {
            "account": account,
            "brand": self.brand,
            "campaign": self.campaign,
            "reference": reference,
            "template": template,
            "batch": batch,
            "asset": batch.generations.get(asset__isnull=False).asset,
            "pack": self._pack(),
        }

    def _pack(self) -> Any:
        from django.core.files.base import ContentFile

        from exports.models import ExportPack

        pack = ExportPack.objects.create(
            workspace=self.workspace, title="Tenancy pack", state="succeeded"
        )
        pack.file.save("tenancy.zip", ContentFile(b"PK\x05\x06" + bytes(18)))
        return pack

    def test_every_parametrised_url_is_covered(self) -> None:
        missing = []
        for name, pattern in _walk(get_resolver().url_patterns):
            if name.startswith("admin:") or not pattern.pattern.converters:
                continue
            if name not in OBJECT_URLS and name not in NOT_OBJECT_URLS:
                missing.append(name)
        self.assertEqual(
            missing,
            [],
            "add these URLs to OBJECT_URLS with the kind of object they name",
        )

    def test_an_outsider_gets_404_everywhere_and_a_member_does_not(self) -> None:
        objects = self._objects()
        for name, kind in OBJECT_URLS.items():
            url = reverse(
                name, kwargs={"code": objects[kind].code, **self._extra_kwargs(name)}
            )
            self.client.force_login(self.carol)
            statuses = {
                self.client.get(url).status_code,
                self.client.post(url).status_code,
            }
            self.assertIn(
                404, statuses, f"{name} {url} answered {statuses} to an outsider"
            )
            self.assertTrue(
                statuses <= {404, 405},
                f"{name} {url} answered {statuses} to an outsider",
            )
            self.client.force_login(self.alice)
            self.assertNotEqual(
                self.client.get(url).status_code,
                404,
                f"{name} {url} is 404 for its own admin",
            )

    def _extra_kwargs(self, name: str) -> dict[str, Any]:
        return {"number": 1} if name == "campaigns:template-version" else {}
