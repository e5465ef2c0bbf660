"""Every URL that names an object is checked: another workspace's member gets 404 for it.

The test walks the whole URL configuration. A URL with parameters that is not listed in
OBJECT_URLS fails the test, so a new view cannot ship without this check.

Ids outside the path too: every parameter a view reads from the query string or the body is
found in its source (tests/id_params_scan.py) and must be listed in ID_PARAMS (with the kinds of
object it names, or none) or be one of NOT_ID_NAMES; each listed id is then sent with another
workspace's object, by a member of this one, and must be refused without leaking or touching it.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db.models import F, ForeignKey
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from studio.tenancy import SESSION_KEY
from tests.base import StudioTestCase
from tests.id_params_scan import reads, view_function

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
    "results:campaign-results": "campaign",
    "results:results-upload": "campaign",
    "results:results-confirm": "campaign",
    "exports:pack-detail": "pack",
    "exports:pack-cancel": "pack",
    "exports:pack-download": "pack",
    "exports:brand-presets": "brand",
    "exports:share-revoke": "share",
    "invitation-revoke": "invitation",
    "api-ui:token-revoke": "token",
    "api-ui:webhook-detail": "webhook",
    "api-ui:webhook-delete": "webhook",
    "api-ui:delivery-redeliver": "delivery",
    "catalog:catalog": "brand",
    "catalog:import-create": "brand",
    "catalog:coverage": "brand",
    "catalog:gap-batch": "brand",
    "catalog:export-by-product": "brand",
    "catalog:results-csv": "brand",
    "catalog:import-detail": "catalog_import",
    "catalog:import-confirm": "catalog_import",
}
# URLs with parameters that do not name a workspace object (checked elsewhere or public by design).
NOT_OBJECT_URLS: set[str] = {
    # Outside review pages: the token is the credential and grants exactly the link's assets;
    # tests/exports/test_share_links.py checks other assets, dead and wrong tokens (404).
    "exports:share-page",
    "exports:share-name",
    "exports:share-manifest",
    "exports:share-image",
    "exports:share-decide",
    "member-update",  # integer membership id; tests/studio/test_workspaces.py checks the 404
    "member-unlock",  # integer membership id; tests/studio/test_login_throttle.py checks the 404
    # The signed token names one invitation and is the whole credential; tests/studio/
    # test_invitations.py checks forged, expired, used and withdrawn ones.
    "invitation-accept",
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
            "export_detail",
            "export_cancel",
            "export_file",
            "export_signed_file",
            "product_detail",
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
        from studio.invitations import invitation_create

        invitation = invitation_create(
            workspace=self.workspace,
            email="tenancy@example.com",
            role="editor",
            invited_by=self.alice,
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
            "invitation": invitation,
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
            "pack": self._pack(),
            "share": self._share(),
            "catalog_import": self._catalog_import(),
        }

    def _catalog_import(self) -> Any:
        from django.core.files.base import ContentFile

        from catalog.models import CatalogImport

        job = CatalogImport(
            workspace=self.workspace, brand=self.brand, state="succeeded"
        )
        job.csv_file.save("tenancy.csv", ContentFile(b"sku,name\nA,B\n"), save=False)
        job.save()
        return job

    def _share(self) -> Any:
        from exports.models import ShareLink

        return ShareLink.objects.create(
            workspace=self.workspace,
            token_hash="0" * 64,
            title="Tenancy link",
            asset_ids=[],
            expires_at="2100-01-01T00:00:00Z",
        )

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


# Parameter names that never carry an object id, whatever the view (checked by their own tests).
NOT_ID_NAMES: set[str] = {
    "days",  # a share link's lifetime
    "kind",  # an outside reviewer's decision (a choice)
    "comment",  # text
    "page",  # pagination
    "after",  # gallery cursor (a position, filtered by the workspace like the rest)
    "next",  # where to go back to (same-site paths only)
    "status",  # a choice
    "month",  # spend report month
    "download",  # a flag
    "confirm_name",  # typed brand name
    "remove",  # a flag (members) or tag names (asset tags)
    "add",  # tag names
    "join",  # flags of the invitation page
    "signup",
    "starred",  # a flag
    "flag",  # a brand-check filter (a choice)
    "fix",  # axis=value narrowing a batch spec that ?from= already loaded from the workspace
    "build",  # a flag of the export form
    "name",  # API token and mapping names (text)
    "role",  # a choice
    "description",  # text
    "events",  # webhook event names (choices)
    "url",  # a webhook target (checked by the egress rules)
    "source",  # the name of a results mapping
}

# URL name -> {(method, parameter): kinds of object the id may name}. An empty tuple: the
# parameter is not a workspace object's id (say why).
ID_PARAMS: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    "workspace-switch": {("POST", "workspace"): ("workspace",)},
    "exports:pack-list": {("GET", "campaign"): ("campaign",)},
    "exports:share-create": {
        ("POST", "pack"): ("pack",),
        ("POST", "asset"): ("asset",),
    },
    # A signed token naming a pending upload of this campaign and user (results/views.py).
    "results:results-confirm": {("POST", "token"): ()},
    "campaigns:brand-create": {("POST", "logo"): ("reference",)},
    "campaigns:brand-edit": {("POST", "logo"): ("reference",)},
    "campaigns:campaign-list": {("GET", "brand"): ("brand",)},
    "campaigns:campaign-new": {("POST", "brand"): ("brand",)},
    "campaigns:template-list": {("GET", "brand"): ("brand",)},
    "campaigns:template-create": {
        ("GET", "brand"): ("brand",),
        ("GET", "campaign"): ("campaign",),
        ("POST", "brand"): ("brand",),
        ("POST", "campaign"): ("campaign",),
    },
    # Version numbers inside the template the path names (already workspace-checked).
    "campaigns:template-version-create": {("GET", "from"): ()},
    "campaigns:template-diff": {("GET", "from"): (), ("GET", "to"): ()},
    "campaigns:template-preview": {("POST", "version"): ()},
    "generation:batch-create": {
        ("GET", "campaign"): ("campaign",),
        ("GET", "template"): ("template",),
        ("GET", "from"): ("batch", "asset_generation"),
        ("GET", "version"): (),  # a number inside ?template=
        ("POST", "campaign"): ("campaign",),
        ("POST", "template"): ("template",),
        ("POST", "parent"): ("batch",),
        ("POST", "version"): (),
        ("POST", "token"): (),  # the form's one-time token, not an object
    },
    "generation:batch-preview": {
        ("POST", "campaign"): ("campaign",),
        ("POST", "template"): ("template",),
        ("POST", "parent"): ("batch",),
        ("POST", "version"): (),
        ("POST", "token"): (),
    },
    "generation:gallery": {
        ("GET", "ref"): ("reference",),
        ("GET", "template"): ("template",),
    },
    "generation:brand-gallery": {
        ("GET", "ref"): ("reference",),
        ("GET", "template"): ("template",),
    },
    "generation:campaign-gallery": {
        ("GET", "ref"): ("reference",),
        ("GET", "template"): ("template",),
    },
    "generation:batch-gallery": {
        ("GET", "ref"): ("reference",),
        ("GET", "template"): ("template",),
    },
    "generation:asset-compare": {
        ("GET", "asset"): ("asset",),
        ("POST", "asset"): ("asset",),
    },
    "generation:asset-bulk": {("POST", "asset"): ("asset",)},
    # A shot key, "key=value" and SKUs, all looked up inside the brand the path names; the gap
    # form's shot and campaign are choices of that brand's own (tests/catalog/test_views.py).
    "catalog:coverage": {
        ("GET", "missing"): (),
        ("GET", "attribute"): (),
        ("GET", "skus"): (),
    },
    "catalog:gap-batch": {("POST", "attribute"): (), ("POST", "skus"): ()},
}

MARKER = "Globex Secret"


def scanned_id_reads() -> dict[str, set[tuple[str, str]]]:
    """URL name -> the (method, parameter) pairs its view reads that may carry an id."""
    found: dict[str, set[tuple[str, str]]] = {}
    for name, pattern in _walk(get_resolver().url_patterns):
        if name.startswith("admin:"):
            continue
        view = view_function(pattern.callback)
        if view is None:
            continue
        pairs = {(m, p) for m, p in reads(view) if p not in NOT_ID_NAMES}
        if pairs:
            found[name] = pairs
    return found


class IdsOutsideThePathTests(StudioTestCase):
    def test_every_id_a_view_reads_from_the_query_or_body_is_listed(self) -> None:
        scanned = scanned_id_reads()
        missing = {
            name: sorted(pairs - set(ID_PARAMS.get(name, {})))
            for name, pairs in scanned.items()
            if pairs - set(ID_PARAMS.get(name, {}))
        }
        self.assertEqual(
            missing,
            {},
            "these views read parameters that may be ids: list them in ID_PARAMS "
            "(with the kinds of object they name) or, if no view ever reads an id under "
            "that name, in NOT_ID_NAMES",
        )
        stale = {
            name: sorted(set(params) - scanned.get(name, set()))
            for name, params in ID_PARAMS.items()
            if set(params) - scanned.get(name, set())
        }
        self.assertEqual(stale, {}, "ID_PARAMS lists reads the views no longer make")

    def test_the_scan_finds_reads_in_a_new_view_and_its_helpers(self) -> None:
        from campaigns.forms_templates import TemplateCreateForm

        def _helper(data: Any) -> Any:
            return data.get("campaign")

        def new_view(request: Any) -> Any:
            TemplateCreateForm(request.POST)
            _helper(request.GET)
            return request.GET.getlist("asset"), "batch" in request.POST

        self.assertTrue(
            {
                ("GET", "campaign"),
                ("GET", "asset"),
                ("POST", "batch"),
                ("POST", "brand"),
            }
            <= reads(new_view)
        )

    # -- sending the listed ids with another workspace's objects ---------------------------

    def _objects(
        self, workspace: Any, brand: Any, campaign: Any, user: Any, tag: str
    ) -> dict[str, Any]:
        from django.core.files.uploadedfile import SimpleUploadedFile

        from campaigns.references import reference_create
        from exports.models import ExportPack
        from tests.factories import image_bytes
        from tests.generation.batch_helpers import make_batch_with_asset, make_version

        version = make_version(brand, campaign=campaign, name=f"{tag} template")
        batch = make_batch_with_asset(campaign, version, user)
        asset = batch.generations.get(asset__isnull=False).asset
        return {
            "workspace": workspace,
            "brand": brand,
            "campaign": campaign,
            "template": version.template,
            "version": version,
            "batch": batch,
            "asset": asset,
            "asset_generation": asset.generation,
            "pack": ExportPack.objects.create(
                workspace=workspace, title=f"{tag} pack", asset_ids=[asset.pk]
            ),
            "reference": reference_create(
                brand=brand,
                uploaded_file=SimpleUploadedFile(
                    f"{tag.replace(' ', '-')}-logo.png", image_bytes(), "image/png"
                ),
                user=user,
                role="logo",
                tags=[],
            ),
        }

    def _snapshot(self, workspace: Any) -> dict[str, list[dict[str, Any]]]:
        return {
            model._meta.label: list(
                model.objects.filter(workspace=workspace).order_by("pk").values()
            )
            for model in apps.get_models()
            if any(f.name == "workspace" for f in model._meta.fields)
        }

    def _cross_workspace_rows(self) -> list[str]:
        """Rows of one workspace that point at another workspace's object."""
        bad = []
        for model in apps.get_models():
            names = {f.name for f in model._meta.fields}
            if "workspace" not in names:
                continue
            for field in model._meta.fields:
                target = field.related_model if isinstance(field, ForeignKey) else None
                if target is None or field.name == "workspace":
                    continue
                if not any(f.name == "workspace" for f in target._meta.fields):
                    continue
                n = (
                    model.objects.exclude(**{f"{field.name}__isnull": True})
                    .exclude(**{f"{field.name}__workspace": F("workspace")})
                    .count()
                )
                if n:
                    bad.append(f"{model._meta.label}.{field.name}: {n}")
        return bad

    def _request(
        self, name: str, method: str, param: str, value: str, own: dict[str, Any]
    ) -> Any:
        kwargs = {}
        if name in OBJECT_URLS:
            kwargs = {"code": own[OBJECT_URLS[name]].code}
        url = reverse(name, kwargs=kwargs)
        data: dict[str, Any] = {}
        if name in ("generation:batch-create", "generation:batch-preview"):
            data = {
                "template": str(own["template"].code),
                "version": "1",
                "campaign": str(own["campaign"].code),
                "mode": "matrix",
                "matrix_headline": "Autumn",
                "matrix_scene": "here",
                "seed_mode": "random",
                "seed_count": "1",
                "rng_seed": "1",
                "targets": ["preview:flux-2-pro"],
                "custom_sizes": "1024x1024",
                "token": "7c5b6f0e-2a43-4a57-9a5e-0d6f1f1c2b3a",
            }
            if method == "GET":
                data = {"template": str(own["template"].code)}
        elif name == "campaigns:template-create" and method == "POST":
            data = {
                "name": "Tenancy template",
                "kind": "text",
                "body": "A {product}",
                "brand": str(own["brand"].pk),
                "campaign": "",
            }
        elif name in ("campaigns:brand-create", "campaigns:brand-edit"):
            data = {"name": "Tenancy brand"}
        elif name == "campaigns:campaign-new":
            # A complete campaign: only the brand can stop it.
            data = {
                "name": "Tenancy campaign",
                "objective": "launch",
                "status": "draft",
            }
        elif name == "generation:asset-bulk":
            data = {"action": "approved"}
        if name.startswith("generation:asset-"):
            data[param] = [value, str(own["asset"].code)]
        else:
            data[param] = value
        if method == "GET":
            return self.client.get(url, data)
        return self.client.post(url, data)

    def _value(self, name: str, param: str, obj: Any) -> str:
        # Model choice fields take primary keys; everything else takes the public code.
        from campaigns.forms_templates import TemplateCreateForm

        if (
            name == "campaigns:template-create"
            and param in TemplateCreateForm.base_fields
        ):
            return str(obj.pk)
        if name in (
            "campaigns:brand-create",
            "campaigns:brand-edit",
            "campaigns:campaign-new",
        ):
            return str(obj.pk)
        return str(obj.code)

    def test_foreign_ids_in_the_query_or_body_are_refused_and_touch_nothing(
        self,
    ) -> None:
        own = self._objects(
            self.workspace, self.brand, self.campaign, self.alice, "Acme own"
        )
        from tests.factories import make_brand, make_campaign

        globex_brand = make_brand(self.other_workspace, name=f"{MARKER} brand")
        foreign = self._objects(
            self.other_workspace,
            globex_brand,
            make_campaign(globex_brand, name=f"{MARKER} campaign"),
            self.carol,
            MARKER,
        )
        self.client.force_login(self.alice)
        self.client.get("/")  # the session now holds the current workspace
        checked = 0
        for name, params in ID_PARAMS.items():
            for (method, param), kinds in params.items():
                for kind in kinds:
                    where = f"{method} {name} {param}=<Globex {kind}>"
                    before = self._snapshot(self.other_workspace)
                    session_workspace = self.client.session.get(SESSION_KEY)
                    r = self._request(
                        name,
                        method,
                        param,
                        self._value(name, param, foreign[kind]),
                        own,
                    )
                    self.assertLess(r.status_code, 500, where)
                    self.assertNotIn(MARKER, r.content.decode(), where)
                    if r.status_code in (301, 302) and r["Location"].startswith("/"):
                        # Where it leads (e.g. compare echoes the codes into its query).
                        landing = self.client.get(r["Location"])
                        self.assertLess(landing.status_code, 500, where)
                        self.assertNotIn(MARKER, landing.content.decode(), where)
                    self.assertEqual(
                        self._snapshot(self.other_workspace), before, where
                    )
                    self.assertEqual(self._cross_workspace_rows(), [], where)
                    self.assertEqual(
                        self.client.session.get(SESSION_KEY), session_workspace, where
                    )
                    # The same request with this workspace's object is served: the parameter
                    # really is read, and the refusal above is about the workspace.
                    mine = self._request(
                        name, method, param, self._value(name, param, own[kind]), own
                    )
                    self.assertNotIn(mine.status_code, (404, 500), f"{where} (own)")
                    checked += 1
        self.assertGreaterEqual(checked, 25)
