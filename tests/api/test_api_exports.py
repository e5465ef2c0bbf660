"""Asset packs through the API: ask for one (campaign, batch, selection), follow it, download it
by token and by signed URL, cancel; roles, refusals, tenancy and the export.ready webhook."""

from __future__ import annotations

import io
import zipfile
from unittest import mock

from django.test import Client, override_settings

from api.models import WebhookDelivery
from api.webhooks_out import subscription_create
from exports import services as export_services
from exports.models import ExportPack
from tests.api.test_api import ApiTestCase
from tests.exports.helpers import approved_asset


class ExportTests(ApiTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.approved = [approved_asset(cls.campaign, size=(640, 800)) for _ in range(2)]
        cls.pending = approved_asset(cls.campaign, review_status="pending")

    def test_a_campaign_pack_is_built_followed_and_downloaded(self) -> None:
        body = {"campaign": str(self.campaign.code), "presets": ["square", "300x250"],
                "formats": ["jpeg", "png"]}  # fmt: skip
        response = self.editor.post("/exports", body)
        self.assertEqual(response.status_code, 201, response.content)
        created = response.json()
        self.assertEqual(created["state"], "queued")
        self.assertFalse(created["terminal"])
        self.assertEqual(created["assets"], 2)  # approved only
        self.assertEqual(created["progress"]["total"], 2 * 2 * 2)
        self.assertEqual(
            [p["key"] for p in created["presets"]], ["instagram-square", "300x250"]
        )
        self.assertIsNone(created["download_url"])
        self.assertProblem(
            self.editor.get(f"/exports/{created['id']}/file"), 404, "not_found"
        )

        export_services.export_pack_build(
            pack_id=ExportPack.objects.get(code=created["id"]).pk
        )
        ready = self.viewer.get(f"/exports/{created['id']}").json()
        self.assertEqual((ready["state"], ready["terminal"]), ("succeeded", True))
        self.assertEqual(ready["progress"]["percent"], 100)
        self.assertGreater(ready["byte_size"], 0)

        by_token = self.viewer.get(f"/exports/{created['id']}/file")
        self.assertEqual(by_token.status_code, 200)
        names = zipfile.ZipFile(
            io.BytesIO(b"".join(by_token.streaming_content))
        ).namelist()
        self.assertEqual(len([n for n in names if n.endswith((".jpg", ".png"))]), 8)
        # The signed URL needs no token.
        path = ready["download_url"].split("/api/v1", 1)[1]
        signed = Client().get("/api/v1" + path)
        self.assertEqual(signed.status_code, 200)
        self.assertEqual(signed["Content-Type"], "application/zip")
        self.assertProblem(
            Client().get("/api/v1" + path[:-3] + "xyz"), 404, "not_found"
        )
        listed = self.viewer.get("/exports").json()
        self.assertEqual([p["id"] for p in listed["items"]], [created["id"]])

    def test_batch_and_selection_packs_and_cancel(self) -> None:
        selection = self.editor.post(
            "/exports",
            {
                "assets": [str(self.pending.code)],
                "all_statuses": True,
                "formats": ["webp"],
            },
        )
        self.assertEqual(selection.status_code, 201, selection.content)
        self.assertEqual(selection.json()["assets"], 1)
        canceled = self.editor.post(f"/exports/{selection.json()['id']}/cancel").json()
        self.assertTrue(canceled["canceled"])
        self.assertEqual(canceled["export"]["state"], "canceled")
        again = self.editor.post(f"/exports/{selection.json()['id']}/cancel").json()
        self.assertFalse(again["canceled"])
        batch = self.editor.post("/batches", self.batch_body()).json()
        # The batch has no approved image yet: the service's refusal is a 422.
        body = self.assertProblem(
            self.editor.post("/exports", {"batch": batch["id"]}), 422, "validation"
        )
        self.assertIn("Nothing to export", body["detail"])

    def batch_body(self) -> dict:
        from tests.api.test_api import BatchAndAssetTests

        return BatchAndAssetTests.batch_body(self)

    def test_roles_refusals_and_tenancy(self) -> None:
        body = {"campaign": str(self.campaign.code)}
        self.assertProblem(self.viewer.post("/exports", body), 403, "permission")
        for bad in (
            {},
            {"campaign": str(self.campaign.code), "assets": [str(self.pending.code)]},
            {"campaign": "nope"},
            {"campaign": str(self.campaign.code), "formats": ["gif"]},
            {"campaign": str(self.campaign.code), "formats": []},
            {"campaign": str(self.campaign.code), "presets": [""]},
            {"campaign": str(self.campaign.code), "extra": 1},
            {"assets": []},
        ):
            self.assertProblem(self.editor.post("/exports", bad), 422, "validation")
        self.assertProblem(
            self.editor.post("/exports", {**body, "presets": ["billboard"]}),
            422,
            "validation",
        )
        with mock.patch("exports.tasks.export_pack_build_task.delay"):
            created = self.editor.post("/exports", body).json()
        self.assertEqual(ExportPack.objects.count(), 1)
        for path in (f"/exports/{created['id']}", f"/exports/{created['id']}/file"):
            self.assertProblem(self.outsider.get(path), 404, "not_found")
        self.assertProblem(
            self.outsider.post(f"/exports/{created['id']}/cancel"), 404, "not_found"
        )
        for other in (
            {"campaign": str(self.campaign.code)},
            {"assets": [str(self.approved[0].code)]},
        ):
            self.assertProblem(self.outsider.post("/exports", other), 404, "not_found")
        self.assertEqual(self.outsider.get("/exports").json()["items"], [])
        self.assertEqual(ExportPack.objects.count(), 1)

    @override_settings(API_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
    def test_idempotent_create_and_the_export_ready_webhook(self) -> None:
        subscription_create(
            workspace=self.workspace,
            url="http://127.0.0.1:9/x",
            events=["export.ready"],
        )
        body = {"campaign": str(self.campaign.code), "presets": ["square"]}
        key = {"Idempotency-Key": "pack-1"}
        first = self.editor.post("/exports", body, headers=key)
        second = self.editor.post("/exports", body, headers=key)
        self.assertEqual(second["Idempotent-Replayed"], "true")
        self.assertEqual(first.json()["id"], second.json()["id"])
        self.assertEqual(ExportPack.objects.count(), 1)
        with (
            mock.patch("api.tasks.webhook_deliver.delay"),
            self.captureOnCommitCallbacks(execute=True),
        ):
            export_services.export_pack_build(pack_id=ExportPack.objects.get().pk)
        delivery = WebhookDelivery.objects.get()
        self.assertEqual(delivery.event, "export.ready")
        self.assertEqual(delivery.payload["data"]["id"], first.json()["id"])
        self.assertEqual(delivery.payload["data"]["state"], "succeeded")
        self.assertTrue(delivery.payload["data"]["download_url"])
