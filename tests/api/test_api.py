"""The JSON API through Django's test client: every endpoint, auth, roles, tenancy, errors.

Generations run in-process on the offline preview backend (BatchTestCase.run_generation); the
wait mode and the webhook receiver are in test_api_live.py, with committed rows.
"""

from __future__ import annotations

import uuid
from io import StringIO

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import override_settings
from openapi_spec_validator import validate

from api.models import ApiToken
from api.tokens import hash_secret
from exports.services import export_pack_build, export_pack_request
from generation.models import Asset, Batch, Generation
from studio.models import Membership, Role
from tests.api.helpers import ApiClient, make_token
from tests.factories import image_bytes
from tests.generation.batch_helpers import BatchTestCase, make_reference, make_version


class ApiTestCase(BatchTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.admin = ApiClient(make_token(self.workspace, Role.ADMIN))
        self.editor = ApiClient(make_token(self.workspace, Role.EDITOR))
        self.approver = ApiClient(make_token(self.workspace, Role.APPROVER))
        self.viewer = ApiClient(make_token(self.workspace, Role.VIEWER))
        self.outsider = ApiClient(make_token(self.other_workspace, Role.ADMIN))

    def assertProblem(self, response, status: int, code: str) -> dict:  # noqa: N802
        self.assertEqual(response.status_code, status, response.content[:500])
        self.assertEqual(response["Content-Type"], "application/problem+json")
        body = response.json()
        self.assertEqual(body["code"], code, body)
        self.assertEqual(body["status"], status)
        self.assertTrue(body["detail"])
        return body

    def create_generation(self, client: ApiClient | None = None, **fields) -> dict:
        body = {"prompt": "A red mug", "backend": "preview", "model": "flux-2-pro",
                "width": 512, "height": 512, "seed": 7, **fields}  # fmt: skip
        response = (client or self.editor).post("/generations", body)
        self.assertEqual(response.status_code, 201, response.content)
        return response.json()

    def run_to_end(self, code: str) -> Generation:
        return self.run_generation(Generation.objects.get(code=code))


class AuthTests(ApiTestCase):
    def test_no_token_a_wrong_token_and_a_revoked_token_are_401(self) -> None:
        self.assertProblem(ApiClient(None).get("/brands"), 401, "auth")
        self.assertProblem(ApiClient("fs_nope").get("/brands"), 401, "auth")
        response = self.viewer.client.get(
            "/api/v1/brands", headers={"Authorization": "Basic eDp5"}
        )
        self.assertProblem(response, 401, "auth")
        token = ApiToken.objects.get(prefix=self.viewer.secret[:10])
        from api.tokens import token_revoke

        token_revoke(token=token)
        self.assertProblem(self.viewer.get("/brands"), 401, "auth")

    def test_the_token_is_stored_hashed_and_last_use_is_recorded(self) -> None:
        token = ApiToken.objects.get(prefix=self.viewer.secret[:10])
        self.assertEqual(token.secret_hash, hash_secret(self.viewer.secret))
        self.assertNotIn(
            self.viewer.secret, str(ApiToken.objects.filter(pk=token.pk).values())
        )
        self.assertIsNone(token.last_used_at)
        self.assertEqual(self.viewer.get("/brands").status_code, 200)
        token.refresh_from_db()
        self.assertIsNotNone(token.last_used_at)

    def test_the_api_token_command_prints_a_working_token_once(self) -> None:
        out, err = StringIO(), StringIO()
        call_command("api_token", "--workspace", self.workspace.slug, "--role", "approver",
                     "--name", "shop", stdout=out, stderr=err)  # fmt: skip
        secret = out.getvalue().strip()
        self.assertTrue(secret.startswith("fs_"))
        self.assertIn("not shown again", err.getvalue())
        token = ApiToken.objects.get(secret_hash=hash_secret(secret))
        self.assertEqual((token.name, token.role), ("shop", "approver"))
        self.assertEqual(ApiClient(secret).get("/brands").status_code, 200)
        from django.core.management.base import CommandError

        with self.assertRaises(CommandError):
            call_command(
                "api_token", "--workspace", "nope", "--role", "viewer", "--name", "x"
            )

    @override_settings(API_RATE_LIMIT=3, API_RATE_WINDOW=60)
    def test_over_the_rate_limit_is_429_with_retry_after(self) -> None:
        client = ApiClient(make_token(self.workspace, Role.VIEWER, "rate"))
        for _ in range(3):
            self.assertEqual(client.get("/brands").status_code, 200)
        response = client.get("/brands")
        self.assertProblem(response, 429, "rate_limited")
        self.assertGreaterEqual(int(response["Retry-After"]), 1)

    @override_settings(API_MAX_BODY_BYTES=200)
    def test_a_body_over_the_limit_is_413(self) -> None:
        response = self.editor.post(
            "/generations",
            {"prompt": "x" * 500, "backend": "preview", "model": "flux-2-pro"},
        )
        self.assertProblem(response, 413, "too_large")


class DocumentTests(ApiTestCase):
    def test_the_openapi_document_validates_and_names_every_path(self) -> None:
        response = self.client.get("/api/v1/openapi.json")
        self.assertEqual(response.status_code, 200)
        document = response.json()
        validate(document)
        paths = set(document["paths"])
        for path in ("/api/v1/generations", "/api/v1/generations/{code}", "/api/v1/batches",
                     "/api/v1/batches/{code}/cancel", "/api/v1/assets/{code}/approve",
                     "/api/v1/references", "/api/v1/templates/{code}/versions"):  # fmt: skip
            self.assertIn(path, paths)
        self.assertEqual(
            document["components"]["securitySchemes"]["BearerToken"]["scheme"], "bearer"
        )

    def test_the_docs_page_renders(self) -> None:
        response = self.client.get("/api/v1/docs")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "swagger-ui")


class CatalogTests(ApiTestCase):
    def test_brands_campaigns_templates_and_versions(self) -> None:
        body = self.viewer.get("/brands").json()
        self.assertEqual([b["id"] for b in body["items"]], [str(self.brand.code)])
        self.assertEqual(
            self.viewer.get(f"/brands/{self.brand.code}").json()["name"], "Acme Coffee"
        )
        campaigns = self.viewer.get("/campaigns", brand=str(self.brand.code)).json()[
            "items"
        ]
        self.assertEqual([c["id"] for c in campaigns], [str(self.campaign.code)])
        self.assertEqual(
            self.viewer.get(f"/campaigns/{self.campaign.code}").json()["name"],
            "Autumn launch",
        )
        template = self.version.template
        listed = self.viewer.get("/templates").json()["items"]
        self.assertIn(str(template.code), [t["id"] for t in listed])
        detail = self.viewer.get(f"/templates/{template.code}").json()
        self.assertEqual(detail["latest_version"]["id"], str(self.version.code))
        self.assertEqual(
            self.viewer.get(f"/template-versions/{self.version.code}").json()["number"],
            1,
        )

    def test_creating_a_version_needs_an_editor_and_refuses_a_stale_one(self) -> None:
        template = self.version.template
        body = {
            "body": "A {headline} poster {scene}",
            "change_note": "shorter",
            "based_on": 1,
        }
        self.assertProblem(
            self.viewer.post(f"/templates/{template.code}/versions", body),
            403,
            "permission",
        )
        response = self.editor.post(f"/templates/{template.code}/versions", body)
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["number"], 2)
        self.assertEqual(response.json()["variables"], ["headline", "scene"])
        stale = self.editor.post(
            f"/templates/{template.code}/versions", {**body, "body": "Other {x}"}
        )
        self.assertProblem(stale, 409, "conflict")
        unchanged = self.editor.post(
            f"/templates/{template.code}/versions",
            {"body": "A {headline} poster {scene}"},
        )
        self.assertProblem(unchanged, 422, "validation")
        versions = self.viewer.get(f"/templates/{template.code}/versions").json()[
            "items"
        ]
        self.assertEqual([v["number"] for v in versions], [2, 1])

    def test_reference_upload_uses_the_library_checks(self) -> None:
        data = {"brand": str(self.brand.code), "role": "product", "tags": "Bag, hero",
                "file": SimpleUploadedFile("bag.png", image_bytes(size=(300, 200)), "image/png")}  # fmt: skip
        self.assertProblem(
            self.viewer.upload("/references", dict(data)), 403, "permission"
        )
        data["file"] = SimpleUploadedFile(
            "bag.png", image_bytes(size=(300, 200)), "image/png"
        )
        response = self.editor.upload("/references", data)
        self.assertEqual(response.status_code, 201, response.content)
        ref = response.json()
        self.assertEqual(
            (ref["role"], ref["tags"], ref["width"]), ("product", ["bag", "hero"], 300)
        )
        data["file"] = SimpleUploadedFile(
            "bag.png", image_bytes(size=(300, 200)), "image/png"
        )
        dup = self.assertProblem(
            self.editor.upload("/references", data), 409, "conflict"
        )
        self.assertEqual(dup["existing"], ref["id"])
        data["file"] = SimpleUploadedFile("x.png", b"not an image", "image/png")
        self.assertProblem(self.editor.upload("/references", data), 422, "validation")
        data["file"] = SimpleUploadedFile(
            "y.png", image_bytes(color=(1, 2, 3)), "image/png"
        )
        self.assertProblem(
            self.editor.upload("/references", {**data, "role": "boss"}),
            422,
            "validation",
        )
        self.assertProblem(
            self.editor.upload(
                "/references", {k: v for k, v in data.items() if k != "file"}
            ),
            422,
            "validation",
        )
        listed = self.viewer.get("/references", brand=str(self.brand.code)).json()[
            "items"
        ]
        self.assertEqual([r["id"] for r in listed], [ref["id"]])
        self.assertEqual(
            self.viewer.get(f"/references/{ref['id']}").json()["sha256"], ref["sha256"]
        )


class GenerationTests(ApiTestCase):
    def test_create_read_and_download(self) -> None:
        created = self.create_generation()
        self.assertEqual(created["state"], "queued")
        self.assertFalse(created["terminal"])
        self.assertEqual(created["cost"]["currency"], "USD")
        self.run_to_end(created["id"])
        body = self.viewer.get(f"/generations/{created['id']}").json()
        self.assertEqual(body["state"], "succeeded", body)
        self.assertTrue(body["terminal"])
        self.assertIsNotNone(body["timings"]["finished_at"])
        asset = body["asset"]
        self.assertEqual((asset["width"], asset["height"]), (512, 512))
        signed = self.client.get(asset["download_url"])  # no token: the URL is signed
        self.assertEqual(signed.status_code, 200)
        content = b"".join(signed.streaming_content)
        self.assertEqual(len(content), asset["byte_size"])
        import hashlib

        self.assertEqual(hashlib.sha256(content).hexdigest(), asset["sha256"])
        self.assertEqual(self.client.get(asset["download_url"] + "x").status_code, 404)
        self.assertEqual(
            self.viewer.get(f"/assets/{asset['id']}/file").status_code, 200
        )
        self.assertEqual(
            ApiClient(None).get(f"/assets/{asset['id']}/file").status_code, 401
        )
        listed = self.viewer.get("/generations", state="succeeded").json()["items"]
        self.assertEqual([g["id"] for g in listed], [created["id"]])

    def test_with_a_template_version_and_references(self) -> None:
        ref = make_reference(self.brand)
        version = make_version(self.brand, body="{ref:bag} with {headline}",
                               reference_slots=[{"name": "bag", "role": "product", "required": True}])  # fmt: skip
        created = self.create_generation(
            prompt=None, template_version=str(version.code), variables={"headline": "Hot"},
            reference_slots={"bag": str(ref.code)}, campaign=str(self.campaign.code),
        )  # fmt: skip
        generation = Generation.objects.get(code=created["id"])
        self.assertIn("Hot", generation.prompt)
        self.assertEqual(generation.template_version, version)
        self.assertEqual([r["code"] for r in generation.references], [str(ref.code)])
        self.assertEqual(created["references"], [str(ref.code)])

    def test_route_cheapest_with_fallbacks_is_planned_by_the_router(self) -> None:
        response = self.editor.post("/generations", {"prompt": "A mug", "route": "cheapest",
                                                     "fallbacks": ["bfl"], "model": "flux-2-pro"})  # fmt: skip
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["requested_backend"], "cheapest")

    def test_inputs_are_validated_strictly(self) -> None:
        bad = [
            {"backend": "preview", "model": "flux-2-pro"},  # no prompt
            {
                "prompt": "x",
                "template_version": str(self.version.code),
                "backend": "preview",
                "model": "flux-2-pro",
            },
            {"prompt": "x", "model": "flux-2-pro"},  # no backend or route
            {
                "prompt": "x",
                "backend": "preview",
                "route": "cheapest",
                "model": "flux-2-pro",
            },
            {"prompt": "x", "backend": "preview", "model": "flux-2-pro", "width": 10},
            {"prompt": "x", "backend": "preview", "model": "flux-2-pro", "seed": -1},
            {
                "prompt": "x",
                "backend": "preview",
                "model": "flux-2-pro",
                "colour": "red",
            },
            {
                "prompt": "x",
                "backend": "preview",
                "model": "flux-2-pro",
                "references": ["nope"],
            },
            {"prompt": "x", "backend": "nope", "model": "flux-2-pro"},
            {"prompt": "x", "backend": "preview", "model": "no-such-model"},
            {"prompt": "x", "route": "slowest", "model": "flux-2-pro"},
            {"prompt": "", "backend": "preview", "model": "flux-2-pro"},
            [],
            "text",
        ]
        for body in bad:
            response = self.editor.post("/generations", body)
            self.assertProblem(response, 422, "validation")
        raw = self.editor.client.post("/api/v1/generations", "{not json", content_type="application/json",
                                      headers={"Authorization": f"Bearer {self.editor.secret}"})  # fmt: skip
        self.assertProblem(raw, 400, "validation")
        self.assertEqual(Generation.objects.count(), 0)
        self.assertProblem(
            self.viewer.get("/generations/not-a-uuid"), 422, "validation"
        )
        self.assertProblem(
            self.viewer.get(f"/generations/{uuid.uuid4()}"), 404, "not_found"
        )
        self.assertProblem(
            self.viewer.get("/generations", cursor="garbage"), 422, "validation"
        )
        self.assertProblem(self.viewer.get("/generations", limit=0), 422, "validation")
        self.assertProblem(
            self.viewer.get("/generations", state="lost"), 422, "validation"
        )

    def test_a_viewer_may_not_create(self) -> None:
        response = self.viewer.post(
            "/generations", {"prompt": "x", "backend": "preview", "model": "flux-2-pro"}
        )
        self.assertProblem(response, 403, "permission")
        self.assertEqual(Generation.objects.count(), 0)

    def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(
        self,
    ) -> None:
        body = {
            "prompt": "A red mug",
            "backend": "preview",
            "model": "flux-2-pro",
            "seed": 3,
        }
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        first = self.editor.post("/generations", body, headers=key)
        second = self.editor.post("/generations", body, headers=key)
        self.assertEqual(first.status_code, 201)
        self.assertEqual(second.status_code, 201)
        self.assertEqual(second.json(), first.json())
        self.assertEqual(second["Idempotent-Replayed"], "true")
        self.assertEqual(Generation.objects.count(), 1)
        other = self.editor.post("/generations", {**body, "seed": 4}, headers=key)
        self.assertProblem(other, 422, "conflict")
        self.assertEqual(Generation.objects.count(), 1)
        # Another token's same key is another key.
        self.assertEqual(
            self.admin.post("/generations", body, headers=key).status_code, 201
        )
        self.assertEqual(Generation.objects.count(), 2)
        self.assertProblem(
            self.editor.post(
                "/generations", body, headers={"Idempotency-Key": "é" * 3}
            ),
            422,
            "validation",
        )

    def test_pagination_walks_every_row_once(self) -> None:
        codes = {self.create_generation(seed=i)["id"] for i in range(5)}
        seen, cursor = [], None
        while True:
            query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            body = self.viewer.get("/generations", **query).json()
            seen += [g["id"] for g in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        self.assertEqual(len(seen), 5)
        self.assertEqual(set(seen), codes)


class BatchAndAssetTests(ApiTestCase):
    def batch_body(self, **fields) -> dict:
        return {"campaign": str(self.campaign.code), "template_version": str(self.version.code),
                "matrix": {"headline": ["A", "B"], "scene": ["here"]},
                "targets": ["preview:flux-2-pro"], "sizes": [{"width": 512, "height": 512}],
                "seeds": {"values": [1]}, **fields}  # fmt: skip

    def test_batch_create_progress_cancel_and_review(self) -> None:
        self.assertProblem(
            self.viewer.post("/batches", self.batch_body()), 403, "permission"
        )
        response = self.editor.post("/batches", self.batch_body())
        self.assertEqual(response.status_code, 201, response.content)
        batch = response.json()
        self.assertEqual((batch["size"], batch["progress"]["total"]), (2, 2))
        generations = list(Generation.objects.filter(batch__code=batch["id"]))
        self.run_generation(generations[0])
        detail = self.viewer.get(f"/batches/{batch['id']}").json()
        self.assertEqual(detail["progress"]["succeeded"], 1)
        self.assertEqual(detail["state"], "running")
        self.assertIn(
            batch["id"], [b["id"] for b in self.viewer.get("/batches").json()["items"]]
        )
        listed = self.viewer.get("/generations", batch=batch["id"]).json()["items"]
        self.assertEqual(len(listed), 2)
        self.assertProblem(
            self.viewer.post(f"/batches/{batch['id']}/cancel"), 403, "permission"
        )
        canceled = self.editor.post(f"/batches/{batch['id']}/cancel").json()
        self.assertEqual(canceled["canceled"], 1)
        self.assertEqual(canceled["batch"]["state"], "canceled")

        assets = self.viewer.get("/assets", batch=batch["id"]).json()["items"]
        self.assertEqual(len(assets), 1)
        code = assets[0]["id"]
        self.assertProblem(
            self.editor.post(f"/assets/{code}/approve"), 403, "permission"
        )
        approved = self.approver.post(
            f"/assets/{code}/approve", {"comment": "ship it"}
        ).json()
        self.assertEqual(approved["review_status"], "approved")
        self.assertEqual(
            self.viewer.get("/assets", status="approved").json()["items"][0]["id"], code
        )
        self.assertEqual(
            self.viewer.get("/assets", status="rejected").json()["items"], []
        )
        rejected = self.admin.post(f"/assets/{code}/reject").json()
        self.assertEqual(rejected["review_status"], "rejected")
        changes = self.editor.post(
            f"/assets/{code}/review", {"status": "changes_requested"}
        )
        self.assertEqual(changes.json()["review_status"], "changes_requested")
        self.assertProblem(
            self.viewer.post(f"/assets/{code}/comments", {"body": "hm"}),
            403,
            "permission",
        )
        comment = self.editor.post(
            f"/assets/{code}/comments", {"body": "Warmer light?"}
        )
        self.assertEqual(comment.status_code, 201)
        self.assertEqual(comment.json()["body"], "Warmer light?")
        self.assertProblem(
            self.editor.post(f"/assets/{code}/comments", {"body": ""}),
            422,
            "validation",
        )
        self.assertEqual(
            self.viewer.get(f"/assets/{code}").json()["generation"],
            str(generations[0].code),
        )
        self.assertProblem(self.viewer.get("/assets", status="lost"), 422, "validation")
        self.assertProblem(self.viewer.get("/assets", cursor="@@"), 422, "validation")
        self.assertProblem(
            self.approver.post(f"/assets/{code}/review", {"status": "gone"}),
            422,
            "validation",
        )

    def test_a_batch_the_builder_would_refuse_is_refused_with_its_reasons(self) -> None:
        body = self.batch_body(matrix={"headline": ["A"]})  # scene missing
        self.assertProblem(self.editor.post("/batches", body), 422, "validation")
        self.assertProblem(
            self.editor.post("/batches", self.batch_body(targets=["preview"])),
            422,
            "validation",
        )
        self.assertProblem(
            self.editor.post("/batches", self.batch_body(rows=[{"headline": "A"}])),
            422,
            "validation",
        )
        self.campaign.budget_cap = "0.0001"
        self.campaign.save()
        refused = self.editor.post(
            "/batches", self.batch_body(targets=["bfl:flux-2-pro"])
        )
        self.assertProblem(refused, 422, "budget")
        self.assertEqual(Batch.objects.count(), 0)

    def test_batches_from_rows(self) -> None:
        body = self.batch_body(
            matrix=None,
            rows=[{"headline": "A", "scene": "x"}, {"headline": "B", "scene": "y"}],
        )
        del body["matrix"]
        response = self.editor.post("/batches", body)
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["size"], 2)


class TenancyTests(ApiTestCase):
    """A token of one workspace reaches nothing of another: every path that names an object."""

    def test_every_object_path_is_404_for_another_workspace(self) -> None:
        created = self.create_generation()
        self.run_to_end(created["id"])
        asset = Asset.objects.get(generation__code=created["id"])
        batch = self.editor.post("/batches", BatchAndAssetTests.batch_body(self)).json()
        ref = make_reference(self.brand)
        template = self.version.template
        pack = export_pack_request(
            workspace=self.workspace, assets=[asset], all_statuses=True, dispatch=False
        )
        from catalog.models import Product

        product = Product.objects.create(
            workspace=self.workspace, brand=self.brand, sku="SKU-1", name="Mug"
        )
        get_paths = [
            f"/products/{product.code}",
            f"/brands/{self.brand.code}", f"/campaigns/{self.campaign.code}",
            f"/references/{ref.code}", f"/templates/{template.code}",
            f"/templates/{template.code}/versions", f"/template-versions/{self.version.code}",
            f"/generations/{created['id']}", f"/batches/{batch['id']}", f"/assets/{asset.code}",
            f"/assets/{asset.code}/file", f"/exports/{pack.code}", f"/exports/{pack.code}/file",
        ]  # fmt: skip
        post_paths = [
            (f"/templates/{template.code}/versions", {"body": "x {y}"}),
            (f"/batches/{batch['id']}/cancel", {}),
            (f"/assets/{asset.code}/approve", {}), (f"/assets/{asset.code}/reject", {}),
            (f"/assets/{asset.code}/review", {"status": "approved"}),
            (f"/assets/{asset.code}/comments", {"body": "hi"}),
            ("/generations", {"prompt": "x", "backend": "preview", "model": "flux-2-pro", "references": [str(ref.code)]}),
            ("/generations", {"prompt": "x", "backend": "preview", "model": "flux-2-pro", "campaign": str(self.campaign.code)}),
            ("/batches", BatchAndAssetTests.batch_body(self)),
            (f"/exports/{pack.code}/cancel", {}),
            ("/exports", {"assets": [str(asset.code)], "all_statuses": True}),
            ("/exports", {"campaign": str(self.campaign.code)}),
            ("/exports", {"batch": batch["id"]}),
        ]  # fmt: skip
        # Every parametrised path of the OpenAPI document is among those checked here.
        document = self.client.get("/api/v1/openapi.json").json()
        templated = {p.removeprefix("/api/v1") for p in document["paths"] if "{" in p}
        checked = {_template_of(p) for p in [*get_paths, *(p for p, _ in post_paths)]}
        self.assertEqual(
            templated - checked, {"/files/{token}", "/export-files/{token}"}
        )
        export_pack_build(pack_id=pack.pk)
        for path in get_paths:
            self.assertProblem(self.outsider.get(path), 404, "not_found")
            self.assertEqual(self.admin.get(path).status_code, 200, path)
        for path, body in post_paths:
            self.assertProblem(self.outsider.post(path, body), 404, "not_found")
        for path, query in (("/references", {"brand": self.brand.code}), ("/campaigns", {"brand": self.brand.code}),
                            ("/generations", {"batch": batch["id"]}), ("/assets", {"batch": batch["id"]}),
                            ("/assets", {"campaign": self.campaign.code}), ("/assets", {"brand": self.brand.code}),
                            ("/products", {"brand": self.brand.code})):  # fmt: skip
            self.assertProblem(self.outsider.get(path, **query), 404, "not_found")
        upload = {"brand": str(self.brand.code), "role": "product",
                  "file": SimpleUploadedFile("b.png", image_bytes(color=(9, 9, 9)), "image/png")}  # fmt: skip
        self.assertProblem(
            self.outsider.upload("/references", upload), 404, "not_found"
        )
        for path in (
            "/brands",
            "/campaigns",
            "/templates",
            "/references",
            "/generations",
            "/batches",
            "/assets",
            "/exports",
            "/products",
        ):
            self.assertEqual(self.outsider.get(path).json()["items"], [], path)
        self.assertEqual(
            asset.review_status, Asset.objects.get(pk=asset.pk).review_status
        )


class AdminPageTests(ApiTestCase):
    def test_admins_create_and_revoke_tokens_others_get_403(self) -> None:
        self.client.force_login(self.eddie)
        self.assertEqual(self.client.get("/api-access/").status_code, 403)
        self.client.force_login(self.alice)
        self.assertEqual(self.client.get("/api-access/").status_code, 200)
        response = self.client.post(
            "/api-access/tokens/", {"name": "CMS", "role": "editor"}
        )
        self.assertEqual(response.status_code, 200)
        secret = response.context["new_secret"]
        self.assertContains(response, secret)
        token = ApiToken.objects.get(secret_hash=hash_secret(secret))
        self.assertEqual(ApiClient(secret).get("/brands").status_code, 200)
        page = self.client.get("/api-access/")
        self.assertNotContains(page, secret)
        self.assertContains(page, token.prefix)
        self.client.post(f"/api-access/tokens/{token.code}/revoke/")
        self.assertEqual(ApiClient(secret).get("/brands").status_code, 401)
        self.assertFalse(Membership.objects.filter(user=token.user).exists())
        self.client.force_login(self.carol)
        self.assertEqual(
            self.client.post(f"/api-access/tokens/{token.code}/revoke/").status_code,
            404,
        )

    def test_webhook_targets_follow_the_public_address_rule(self) -> None:
        self.client.force_login(self.alice)
        for url in (
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://10.0.0.1/x",
            "ftp://x/y",
        ):
            self.client.post(
                "/api-access/webhooks/", {"url": url, "events": ["batch.finished"]}
            )
        from api.models import WebhookSubscription

        self.assertEqual(WebhookSubscription.objects.count(), 0)
        with override_settings(API_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
            response = self.client.post(
                "/api-access/webhooks/",
                {"url": "http://127.0.0.1:9/h", "events": ["batch.finished"]},
            )
        sub = WebhookSubscription.objects.get()
        self.assertRedirects(response, f"/api-access/webhooks/{sub.code}/")
        self.assertTrue(sub.secret.startswith("whsec_"))
        self.assertContains(
            self.client.get(f"/api-access/webhooks/{sub.code}/"), sub.secret
        )
        self.client.force_login(self.carol)
        self.assertEqual(
            self.client.get(f"/api-access/webhooks/{sub.code}/").status_code, 404
        )


def _template_of(path: str) -> str:
    """/assets/<uuid>/file -> /assets/{code}/file, as the OpenAPI document names it."""
    import re

    return re.sub(r"/[0-9a-f-]{36}", "/{code}", path)
