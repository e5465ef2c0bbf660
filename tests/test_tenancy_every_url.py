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
    "api-ui:token-revoke": "token",
    "api-ui:webhook-detail": "webhook",
    "api-ui:webhook-delete": "webhook",
    "api-ui:delivery-redeliver": "delivery",
}
# URLs with parameters that do not name a workspace object (checked elsewhere or public by design).
NOT_OBJECT_URLS: set[str] = {
    "member-update",  # integer membership id; tests/studio/test_workspaces.py checks the 404
    # Provider callbacks: public by design (no login); a per-generation token and the provider's
    # signature guard them (tests/generation/test_webhooks.py).
    "generation:webhook",
    # The JSON API authenticates by bearer token, not session: tests/api/test_api.py
    # (TenancyTests) walks every parametrised path of its OpenAPI document with another
    # workspace's token. The signed file URL is public by design (an expiring signature).
    *(
        f"api:{name}"
        for name in (
            "brand_detail",
            "reference_detail",
            "campaign_detail",
            "template_detail",
            "version_list",
            "version_create",
            "version_detail",
            "generation_detail",
            "batch_detail",
            "batch_cancel",
            "asset_detail",
            "asset_approve",
            "asset_reject",
            "asset_review",
            "asset_comment",
            "asset_file",
            "asset_signed_file",
        )
    ),  # fmt: skip
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
        from api.models import WebhookDelivery
        from api.tokens import token_create
        from api.webhooks_out import subscription_create

        with self.settings(API_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
            webhook = subscription_create(
                workspace=self.workspace,
                url="http://127.0.0.1:9/hook",
                events=["batch.finished"],
            )
        delivery = WebhookDelivery.objects.create(
            subscription=webhook, message_id="msg_t", event="batch.finished", payload={}
        )
        token = token_create(
            workspace=self.workspace, name="t", role="viewer", created_by=None
        ).token
        return {
            "token": token,
            "webhook": webhook,
            "delivery": delivery,
            "account": account,
            "brand": self.brand,
            "campaign": self.campaign,
            "reference": reference,
            "template": template,
            "batch": batch,
            "asset": batch.generations.get(asset__isnull=False).asset,
        }

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
