"""The reference library: pages, uploads, edits, deletes, file serving, and the services behind them."""

from __future__ import annotations

import io
import shutil
import tempfile
from itertools import count
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image

from campaigns.models import (
    Brand,
    ReferenceImage,
    ReferenceImageQuerySet,
    ReferenceRole,
    Tag,
)
from campaigns.references import (
    MAX_TAGS_PER_REFERENCE,
    DuplicateReference,
    ImageRejected,
    normalise_tags,
    reference_create,
    reference_delete,
    reference_update,
    tags_for_workspace,
)
from studio.models import Membership, Role
from tests.base import StudioTestCase
from tests.factories import make_brand, make_member, make_workspace

_colours = count(1)
XHR = {"X-Requested-With": "XMLHttpRequest"}
HTMX = {"HX-Request": "true"}


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    """A small PNG with a colour no other call gives, so its sha256 is unique."""
    n = next(_colours)
    buffer = io.BytesIO()
    Image.new("RGB", size, (n % 256, (n // 256) % 256, 77)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(
    name: str = "packshot.png", content: bytes | None = None
) -> SimpleUploadedFile:
    return SimpleUploadedFile(
        name, png_bytes() if content is None else content, content_type="image/png"
    )


def stored_files(folder: str = "") -> set[str]:
    """Every file in the default storage (through the storage API, so it holds for S3 too)."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return set()
    found = {f"{folder}/{name}".lstrip("/") for name in files}
    for sub in folders:
        found |= stored_files(f"{folder}/{sub}".lstrip("/"))
    return found


class ReferenceTestCase(StudioTestCase):
    def setUp(self) -> None:
        super().setUp()
        media = tempfile.mkdtemp(prefix="studio-refs-")
        self.addCleanup(shutil.rmtree, media, ignore_errors=True)
        self.enterContext(override_settings(MEDIA_ROOT=media))

    def make_reference(
        self,
        *,
        brand: Brand | None = None,
        role: str = ReferenceRole.PRODUCT,
        tags: list[str] | None = None,
        **kw: Any,
    ) -> ReferenceImage:
        return reference_create(
            brand=brand or self.brand,
            uploaded_file=kw.pop("uploaded_file", None) or upload(),
            user=self.eddie,
            role=role,
            tags=tags or [],
            **kw,
        )

    def list_url(self, brand: Brand | None = None) -> str:
        return reverse("campaigns:reference-list", args=[(brand or self.brand).code])

    def upload_url(self, brand: Brand | None = None) -> str:
        return reverse("campaigns:reference-upload", args=[(brand or self.brand).code])


def url(name: str, reference: ReferenceImage) -> str:
    return reverse(f"campaigns:reference-{name}", args=[reference.code])


class ReferenceListTests(ReferenceTestCase):
    def test_a_viewer_sees_the_library_but_no_upload_or_delete(self) -> None:
        reference = self.make_reference(title="Front packshot")
        self.client.force_login(self.bob)
        r = self.client.get(self.list_url())
        self.assertContains(r, f'id="reference-{reference.code}"')
        self.assertContains(r, "Front packshot")
        self.assertContains(r, url("thumbnail", reference))
        self.assertNotContains(r, "data-uploader")
        self.assertNotContains(r, "uploader.js")
        self.assertNotContains(r, url("delete", reference))

    def test_an_editor_gets_the_upload_form_and_its_script(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get(self.list_url())
        self.assertContains(r, "data-uploader")
        self.assertContains(r, 'enctype="multipart/form-data"')
        self.assertContains(r, f'action="{self.upload_url()}"')
        self.assertContains(
            r, '<script src="/static/js/uploader.js" defer></script>', html=False
        )
        self.assertNotContains(r, "<script>")  # CSP: nothing inline
        self.assertNotContains(r, "style=")

    def test_it_filters_by_role_and_by_tag(self) -> None:
        logo = self.make_reference(
            role=ReferenceRole.LOGO, tags=["Brand"], title="The logo"
        )
        summer = self.make_reference(
            role=ReferenceRole.PRODUCT, tags=["summer", "brand"], title="Summer can"
        )
        winter = self.make_reference(
            role=ReferenceRole.PRODUCT, tags=["winter"], title="Winter can"
        )
        self.client.force_login(self.bob)

        r = self.client.get(self.list_url(), {"role": "logo"})
        self.assertContains(r, f'id="reference-{logo.code}"')
        self.assertNotContains(r, f'id="reference-{summer.code}"')
        self.assertContains(r, '<option value="logo" selected>', html=False)

        r = self.client.get(
            self.list_url(), {"tag": "Brand"}
        )  # tags are matched lower-case
        self.assertContains(r, f'id="reference-{logo.code}"')
        self.assertContains(r, f'id="reference-{summer.code}"')
        self.assertNotContains(r, f'id="reference-{winter.code}"')
        self.assertContains(r, '<option value="brand" selected>', html=False)

        r = self.client.get(self.list_url(), {"role": "product", "tag": "brand"})
        self.assertEqual([ref.code for ref in r.context["page"]], [summer.code])
        self.assertContains(r, "1 of 3 images")

    def test_an_unknown_role_shows_everything(self) -> None:
        self.make_reference()
        self.client.force_login(self.bob)
        r = self.client.get(self.list_url(), {"role": "nonsense"})
        self.assertEqual(len(r.context["page"].object_list), 1)

    def test_htmx_gets_only_the_library_partial(self) -> None:
        self.make_reference()
        self.client.force_login(self.bob)
        r = self.client.get(self.list_url(), {"role": "product"}, headers=HTMX)
        self.assertContains(r, 'id="reference-library"')
        self.assertNotContains(r, "<html")
        self.assertNotContains(r, "Add images")
        self.assertIn("HX-Request", r["Vary"])

    def test_a_history_restore_gets_the_full_page(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(
            self.list_url(), headers={**HTMX, "HX-History-Restore-Request": "true"}
        )
        self.assertContains(r, "<html")

    def test_pages_keep_the_filters_in_the_query_string(self) -> None:
        for n in range(50):  # rows only: the list never opens the files
            ReferenceImage.objects.create(
                workspace=self.workspace,
                brand=self.brand,
                role=ReferenceRole.PRODUCT,
                file=f"references/x/{n}.png",
                content_type="image/png",
                width=1,
                height=1,
                byte_size=1,
                sha256=f"{n:064d}",
            )
        self.client.force_login(self.bob)
        r = self.client.get(self.list_url(), {"role": "product"})
        self.assertContains(r, 'href="?role=product&amp;page=2"')
        r = self.client.get(self.list_url(), {"role": "product", "page": 2})
        self.assertEqual(len(r.context["page"].object_list), 2)
        self.assertContains(r, 'href="?role=product&amp;page=1"')

    def test_the_query_count_does_not_grow_with_the_page(self) -> None:
        self.client.force_login(self.bob)
        self.make_reference(tags=["a"])
        self.client.get(self.list_url())  # the session settles
        with CaptureQueriesContext(connection) as one:
            self.client.get(self.list_url())
        for n in range(5):
            self.make_reference(tags=[f"t{n}", "shared"])
        with CaptureQueriesContext(connection) as six:
            self.client.get(self.list_url())
        self.assertEqual(len(six), len(one))

    def test_it_requires_login(self) -> None:
        r = self.client.get(self.list_url())
        self.assertRedirects(
            r, f"/login/?next={self.list_url()}", fetch_redirect_response=False
        )

    def test_an_outsider_gets_404(self) -> None:
        self.client.force_login(self.carol)
        self.assertEqual(self.client.get(self.list_url()).status_code, 404)


class ReferenceUploadTests(ReferenceTestCase):
    def post(
        self, user: User, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        self.client.force_login(user)
        return self.client.post(self.upload_url(), data, headers=headers or XHR)

    def test_the_script_uploads_one_file_and_gets_its_card(self) -> None:
        content = png_bytes((300, 200))
        r = self.post(
            self.eddie,
            {
                "role": "style",
                "tags": " Summer,  Packshot ,summer",
                "file": upload("Moodboard.png", content),
            },
        )
        self.assertEqual(r.status_code, 201)
        reference = ReferenceImage.objects.get(brand=self.brand)
        self.assertContains(r, f'id="reference-{reference.code}"', status_code=201)
        self.assertNotContains(r, "<html", status_code=201)
        self.assertEqual(reference.role, ReferenceRole.STYLE)
        self.assertEqual(
            sorted(t.name for t in reference.tags.all()), ["packshot", "summer"]
        )
        self.assertEqual((reference.width, reference.height), (300, 200))
        self.assertEqual(reference.original_name, "Moodboard.png")
        self.assertEqual(reference.uploaded_by, self.eddie)
        self.assertEqual(reference.workspace, self.workspace)
        self.assertEqual(len(reference.sha256), 64)
        self.assertTrue(default_storage.exists(reference.file.name))
        self.assertTrue(default_storage.exists(reference.thumbnail.name))
        self.assertTrue(
            reference.file.name.startswith(
                f"references/{self.workspace.code}/{self.brand.code}/{reference.code}/"
            )
        )
        self.assertEqual(reference.byte_size, default_storage.size(reference.file.name))

    def test_an_approver_and_an_admin_can_upload_too(self) -> None:
        self.assertEqual(
            self.post(self.alex, {"role": "logo", "file": upload()}).status_code, 201
        )
        self.assertEqual(
            self.post(self.alice, {"role": "pose", "file": upload()}).status_code, 201
        )

    def test_the_same_file_twice_is_recognised_and_not_stored_again(self) -> None:
        content = png_bytes()
        first = self.post(
            self.eddie, {"role": "product", "file": upload("a.png", content)}
        )
        self.assertEqual(first.status_code, 201)
        existing = ReferenceImage.objects.get()
        files = stored_files()

        r = self.post(
            self.eddie, {"role": "logo", "file": upload("renamed-copy.png", content)}
        )
        self.assertContains(r, "Already in the library", status_code=409)
        self.assertContains(r, url("detail", existing), status_code=409)
        self.assertEqual(ReferenceImage.objects.count(), 1)
        self.assertEqual(stored_files(), files)

    def test_the_same_file_in_another_brand_is_fine(self) -> None:
        content = png_bytes()
        other = make_brand(self.workspace, name="Acme Tea")
        self.make_reference(uploaded_file=upload("a.png", content))
        self.make_reference(brand=other, uploaded_file=upload("a.png", content))
        self.assertEqual(ReferenceImage.objects.count(), 2)

    def test_a_bad_file_gets_a_message_and_nothing_is_stored(self) -> None:
        bad_files = {
            "notes.png": b"Not an image at all.",
            "empty.png": b"",
            "cut.png": png_bytes((200, 200))[:60],
            "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
        }
        for name, content in bad_files.items():
            with self.subTest(name):
                r = self.post(
                    self.eddie, {"role": "product", "file": upload(name, content)}
                )
                self.assertContains(r, name, status_code=400)
                self.assertContains(r, 'role="alert"', status_code=400)
                self.assertNotContains(r, "<html", status_code=400)
        self.assertFalse(ReferenceImage.objects.exists())
        self.assertFalse(Tag.objects.exists())
        self.assertEqual(stored_files(), set())

    @override_settings(STUDIO_UPLOAD_MAX_BYTES=1024)
    def test_an_oversize_file_is_refused(self) -> None:
        r = self.post(
            self.eddie,
            {
                "role": "product",
                "file": upload("big.png", png_bytes((300, 300)) + b"\0" * 2048),
            },
        )
        # Stopped while the part arrives (studio/uploads.py), answered 413 with the file's name.
        self.assertContains(r, "“big.png” is over the 1.0\xa0KB limit", status_code=413)
        self.assertEqual(stored_files(), set())

    def test_the_script_sends_one_file_per_request(self) -> None:
        r = self.post(
            self.eddie, {"role": "product", "file": [upload("a.png"), upload("b.png")]}
        )
        self.assertContains(r, "one file per request", status_code=400)
        self.assertFalse(ReferenceImage.objects.exists())

    def test_no_file_or_a_bad_role_is_explained(self) -> None:
        r = self.post(self.eddie, {"role": "product"})
        self.assertContains(r, "Choose at least one image", status_code=400)
        r = self.post(self.eddie, {"role": "hero", "file": upload()})
        self.assertContains(r, "not one of the available choices", status_code=400)
        self.assertEqual(stored_files(), set())

    def test_without_javascript_several_files_post_at_once_and_each_gets_a_message(
        self,
    ) -> None:
        duplicate = png_bytes()
        self.make_reference(
            uploaded_file=upload("earlier.png", duplicate), title="Earlier"
        )
        files = [
            upload("one.png"),
            upload("two.png"),
            upload("notes.png", b"text"),
            upload("again.png", duplicate),
        ]
        self.client.force_login(self.eddie)
        r = self.client.post(
            self.upload_url(),
            {"role": "background", "tags": "studio", "file": files},
            follow=True,
        )
        self.assertRedirects(r, self.list_url())
        self.assertEqual(ReferenceImage.objects.filter(role="background").count(), 2)
        self.assertContains(r, "Added 2 images to the library.")
        self.assertContains(r, "“notes.png” is not an image we can read")
        self.assertContains(r, "“again.png” is already in the library as “Earlier”.")

    def test_without_javascript_a_missing_file_is_a_message(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(self.upload_url(), {"role": "product"}, follow=True)
        self.assertRedirects(r, self.list_url())
        self.assertContains(r, "Choose at least one image")

    def test_without_javascript_refused_tags_are_marked_on_the_field(self) -> None:
        self.client.force_login(self.eddie)
        too_many = ", ".join(f"tag{n}" for n in range(40))
        r = self.client.post(
            self.upload_url(), {"role": "product", "tags": too_many, "file": upload()}
        )
        self.assertEqual(r.status_code, 200)
        html = r.content.decode()
        self.assertRegex(
            html, r'<input type="text" name="tags"[^>]*aria-invalid="true"'
        )
        self.assertRegex(html, r'<select name="role"(?![^>]*aria-invalid)[^>]*>')
        self.assertInHTML(
            '<ul class="errorlist" id="id_tags_error">'
            f"<li>At most {MAX_TAGS_PER_REFERENCE} tags per image.</li></ul>",
            html,
        )
        self.assertContains(r, f'value="{too_many}"')  # what was typed stays
        self.assertFalse(ReferenceImage.objects.exists())

    def test_a_viewer_gets_403_and_nothing_is_stored(self) -> None:
        for headers in (XHR, {}):
            r = self.post(
                self.bob, {"role": "product", "file": upload()}, headers=headers
            )
            self.assertEqual(r.status_code, 403)
        self.assertFalse(ReferenceImage.objects.exists())
        self.assertEqual(stored_files(), set())

    def test_an_outsider_gets_404_and_nothing_is_stored(self) -> None:
        r = self.post(self.carol, {"role": "product", "file": upload()})
        self.assertEqual(r.status_code, 404)
        self.assertEqual(stored_files(), set())

    def test_get_is_not_allowed(self) -> None:
        self.client.force_login(self.eddie)
        self.assertEqual(self.client.get(self.upload_url()).status_code, 405)


class ReferenceDetailTests(ReferenceTestCase):
    def test_a_viewer_sees_the_facts_but_no_edit_form(self) -> None:
        reference = self.make_reference(
            tags=["summer"], uploaded_file=upload("front.png", png_bytes((120, 80)))
        )
        self.client.force_login(self.bob)
        r = self.client.get(url("detail", reference))
        self.assertContains(r, "120 × 80 px")
        self.assertContains(r, reference.sha256)
        self.assertContains(r, "eddie")
        self.assertContains(r, "front.png")
        self.assertContains(r, "summer")
        self.assertContains(r, url("image", reference))
        self.assertNotContains(
            r, '<form method="post" action="' + url("detail", reference)
        )
        self.assertNotContains(r, url("delete", reference))

    def test_an_editor_changes_role_tags_and_title(self) -> None:
        reference = self.make_reference(tags=["old"])
        self.client.force_login(self.eddie)
        r = self.client.post(
            url("detail", reference),
            {"title": " Hero can ", "role": "character", "tags": "New, Shiny"},
        )
        self.assertRedirects(r, url("detail", reference), fetch_redirect_response=False)
        reference.refresh_from_db()
        self.assertEqual(reference.title, "Hero can")
        self.assertEqual(reference.role, ReferenceRole.CHARACTER)
        self.assertEqual(sorted(t.name for t in reference.tags.all()), ["new", "shiny"])

    def test_htmx_gets_the_panel_back_with_the_new_title(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.eddie)
        r = self.client.post(
            url("detail", reference),
            {"title": "Renamed", "role": "pose", "tags": ""},
            headers=HTMX,
        )
        self.assertContains(r, 'id="reference-panel"')
        self.assertContains(r, "Saved.")
        self.assertContains(
            r, '<h1 id="reference-title" hx-swap-oob="true">Renamed</h1>', html=True
        )
        self.assertNotContains(r, "<html")

    def test_an_invalid_edit_is_shown_with_status_200_for_htmx(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.eddie)
        r = self.client.post(
            url("detail", reference),
            {"title": "x", "role": "hero", "tags": ""},
            headers=HTMX,
        )
        self.assertContains(r, "not one of the available choices")
        reference.refresh_from_db()
        self.assertEqual(reference.role, ReferenceRole.PRODUCT)

    def test_a_viewer_cannot_edit(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.bob)
        r = self.client.post(
            url("detail", reference), {"title": "Mine", "role": "logo", "tags": ""}
        )
        self.assertEqual(r.status_code, 403)
        reference.refresh_from_db()
        self.assertEqual(reference.title, "")


class ReferenceDeleteTests(ReferenceTestCase):
    def test_an_editor_deletes_it_and_its_files(self) -> None:
        reference = self.make_reference()
        names = {reference.file.name, reference.thumbnail.name}
        self.assertLessEqual(names, stored_files())
        self.client.force_login(self.eddie)
        with self.captureOnCommitCallbacks(execute=True):
            r = self.client.post(url("delete", reference))
        self.assertRedirects(r, self.list_url(), fetch_redirect_response=False)
        self.assertFalse(ReferenceImage.objects.exists())
        self.assertEqual(stored_files() & names, set())

    def test_deleting_the_brand_logo_clears_it(self) -> None:
        reference = self.make_reference(role=ReferenceRole.LOGO)
        Brand.objects.filter(pk=self.brand.pk).update(logo=reference)
        self.client.force_login(self.eddie)
        self.client.post(url("delete", reference))
        self.brand.refresh_from_db()
        self.assertIsNone(self.brand.logo)

    def test_a_card_deleted_with_htmx_is_swapped_out(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.eddie)
        r = self.client.post(
            url("delete", reference),
            headers={**HTMX, "HX-Target": f"reference-{reference.code}"},
        )
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content, b"")

    def test_htmx_from_the_detail_page_goes_back_to_the_library(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.eddie)
        r = self.client.post(url("delete", reference), headers=HTMX)
        self.assertEqual(r["HX-Redirect"], self.list_url())

    def test_a_viewer_gets_403_and_the_reference_stays(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.bob)
        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(
                self.client.post(url("delete", reference)).status_code, 403
            )
        self.assertTrue(ReferenceImage.objects.filter(pk=reference.pk).exists())
        self.assertTrue(default_storage.exists(reference.file.name))


class ReferenceFileTests(ReferenceTestCase):
    def test_a_member_gets_the_image_streamed_privately(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.bob)
        r = self.client.get(url("image", reference))
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r["Content-Type"], "image/png")
        self.assertIn("private", r["Cache-Control"])
        self.assertEqual(r["X-Content-Type-Options"], "nosniff")
        with default_storage.open(reference.file.name, "rb") as stored:
            self.assertEqual(b"".join(r.streaming_content), stored.read())

    def test_the_thumbnail_is_webp(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.bob)
        r = self.client.get(url("thumbnail", reference))
        self.assertEqual(r["Content-Type"], "image/webp")
        self.assertEqual(
            Image.open(io.BytesIO(b"".join(r.streaming_content))).format, "WEBP"
        )

    def test_download_is_an_attachment_named_after_the_upload(self) -> None:
        reference = self.make_reference(uploaded_file=upload("Front shot.jpeg"))
        self.client.force_login(self.bob)
        r = self.client.get(url("image", reference), {"download": "1"})
        self.assertIn("attachment", r["Content-Disposition"])
        self.assertIn(
            "Front shot.png", r["Content-Disposition"]
        )  # the stored format's extension

    def test_media_urls_are_not_served(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.alice)
        self.assertEqual(self.client.get(reference.file.url).status_code, 404)

    def test_storage_with_signed_urls_gets_a_redirect(self) -> None:
        reference = self.make_reference()
        signed = (
            "https://bucket.s3.example.com/references/image.png?X-Amz-Signature=abc"
        )
        self.client.force_login(self.bob)
        with mock.patch.object(FileSystemStorage, "url", return_value=signed):
            r = self.client.get(url("image", reference))
            self.assertRedirects(r, signed, fetch_redirect_response=False)
            self.assertIn("private", r["Cache-Control"])
            # A download keeps its file name, so it is streamed.
            self.assertEqual(
                self.client.get(url("image", reference), {"download": "1"}).status_code,
                200,
            )

    def test_a_missing_file_is_404(self) -> None:
        reference = self.make_reference()
        default_storage.delete(reference.file.name)
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(url("image", reference)).status_code, 404)

    def test_login_is_required(self) -> None:
        reference = self.make_reference()
        for name in ("image", "thumbnail", "detail"):
            r = self.client.get(url(name, reference))
            self.assertEqual(r.status_code, 302, name)
            self.assertTrue(r["Location"].startswith("/login/"), name)


class OutsiderTests(ReferenceTestCase):
    def test_an_outsider_gets_404_on_every_reference_url(self) -> None:
        reference = self.make_reference()
        self.client.force_login(self.carol)
        for name in ("detail", "delete", "image", "thumbnail"):
            target = url(name, reference)
            with self.subTest(name):
                get, post = (
                    self.client.get(target).status_code,
                    self.client.post(target).status_code,
                )
                self.assertIn(404, {get, post})
                self.assertLessEqual({get, post}, {404, 405})
        for target in (self.list_url(), self.upload_url()):
            with self.subTest(target):
                get, post = (
                    self.client.get(target).status_code,
                    self.client.post(target).status_code,
                )
                self.assertIn(404, {get, post})
                self.assertLessEqual({get, post}, {404, 405})
        self.assertTrue(ReferenceImage.objects.filter(pk=reference.pk).exists())

    def test_a_member_of_both_workspaces_sees_only_the_current_ones(self) -> None:
        # Carol joins Acme as well: she belongs to both workspaces, and what she sees follows the
        # workspace she is in, not every workspace she could see.
        Membership.objects.create(
            workspace=self.workspace, user=self.carol, role=Role.EDITOR
        )
        ours = self.make_reference(title="Acme mug")
        other_brand = make_brand(self.other_workspace, name="Globex Cola")
        theirs = self.make_reference(brand=other_brand, title="Globex can")
        self.client.force_login(self.carol)

        def switch(workspace: Any) -> None:
            r = self.client.post(
                reverse("workspace-switch"), {"workspace": str(workspace.code)}
            )
            self.assertEqual(r.status_code, 302)

        switch(self.workspace)
        r = self.client.get(self.list_url())
        self.assertContains(r, str(ours.code))
        self.assertNotContains(r, str(theirs.code))
        self.assertEqual(self.client.get(url("image", ours)).status_code, 200)
        self.assertEqual(self.client.get(url("image", theirs)).status_code, 404)
        self.assertEqual(self.client.get(self.list_url(other_brand)).status_code, 404)

        switch(self.other_workspace)
        r = self.client.get(self.list_url(other_brand))
        self.assertContains(r, str(theirs.code))
        self.assertNotContains(r, str(ours.code))
        self.assertEqual(self.client.get(url("image", theirs)).status_code, 200)
        self.assertEqual(self.client.get(url("image", ours)).status_code, 404)
        self.assertEqual(self.client.get(self.list_url()).status_code, 404)


class ReferenceServiceTests(ReferenceTestCase):
    def test_the_demo_data_signature_works(self) -> None:
        reference = reference_create(
            brand=self.brand,
            uploaded_file=SimpleUploadedFile(
                "mascot.png", png_bytes(), content_type="image/png"
            ),
            user=self.alice,
            role="character",
            tags=["Mascot"],
        )
        self.assertEqual(reference.title, "")
        self.assertEqual(reference.original_name, "mascot.png")
        self.assertEqual([t.name for t in reference.tags.all()], ["mascot"])

    def test_tags_are_normalised(self) -> None:
        self.assertEqual(
            normalise_tags(
                ["  Summer ", "SUMMER", "", "   ", "two \t words", "x" * 50, "Ünïcode"]
            ),
            ["summer", "two words", "x" * 40, "ünïcode"],
        )

    def test_tags_are_rows_per_workspace(self) -> None:
        ours = tags_for_workspace(workspace=self.workspace, names=["Summer", "new"])
        again = tags_for_workspace(workspace=self.workspace, names=["summer"])
        theirs = tags_for_workspace(workspace=self.other_workspace, names=["summer"])
        self.assertEqual(ours[0], again[0])
        self.assertNotEqual(ours[0].pk, theirs[0].pk)
        self.assertEqual(Tag.objects.filter(name="summer").count(), 2)

    def test_a_duplicate_carries_the_existing_reference(self) -> None:
        content = png_bytes()
        existing = self.make_reference(uploaded_file=upload("a.png", content))
        files = stored_files()
        with self.assertRaises(DuplicateReference) as caught:
            self.make_reference(uploaded_file=upload("b.png", content))
        self.assertEqual(caught.exception.existing, existing)
        self.assertEqual(stored_files(), files)

    def test_a_duplicate_that_wins_a_race_is_still_recognised(self) -> None:
        content = png_bytes()
        existing = self.make_reference(uploaded_file=upload("a.png", content))
        files = stored_files()
        # The other upload's row appears between our check and our insert.
        with (
            mock.patch.object(
                ReferenceImageQuerySet, "first", side_effect=[None, existing]
            ),
            self.assertRaises(DuplicateReference) as caught,
        ):
            self.make_reference(uploaded_file=upload("b.png", content))
        self.assertEqual(caught.exception.existing, existing)
        self.assertEqual(stored_files(), files)

    def test_a_failed_insert_removes_the_stored_files(self) -> None:
        with (
            mock.patch.object(
                ReferenceImage, "save", side_effect=IntegrityError("boom")
            ),
            self.assertRaises(IntegrityError),
        ):
            self.make_reference()
        with (
            mock.patch.object(
                ReferenceImage, "save", side_effect=RuntimeError("database went away")
            ),
            self.assertRaises(RuntimeError),
        ):
            self.make_reference()
        self.assertEqual(stored_files(), set())
        self.assertFalse(ReferenceImage.objects.exists())

    def test_a_rejected_image_stores_nothing(self) -> None:
        with self.assertRaises(ImageRejected):
            self.make_reference(uploaded_file=upload("x.png", b"GIF89a-not-really"))
        self.assertEqual(stored_files(), set())

    def test_an_unknown_role_is_a_programming_error(self) -> None:
        with self.assertRaises(ValueError):
            self.make_reference(role="hero")
        reference = self.make_reference()
        with self.assertRaises(ValueError):
            reference_update(reference=reference, role="hero", tags=[], title="")

    def test_update_and_delete(self) -> None:
        reference = self.make_reference(tags=["a"])
        reference_update(
            reference=reference,
            role=ReferenceRole.LOGO,
            tags=["B", "c"],
            title="  Logo  ",
        )
        reference.refresh_from_db()
        self.assertEqual((reference.role, reference.title), ("logo", "Logo"))
        self.assertEqual(sorted(t.name for t in reference.tags.all()), ["b", "c"])

        self.brand.logo = reference
        self.brand.save()
        reference = ReferenceImage.objects.select_related("brand").get(pk=reference.pk)
        names = {reference.file.name, reference.thumbnail.name}
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            reference_delete(reference=reference)
        self.assertIsNone(reference.brand.logo)
        self.assertLessEqual(names, stored_files())  # files wait for the commit
        for callback in callbacks:
            callback()
        self.assertEqual(stored_files() & names, set())
        self.brand.refresh_from_db()
        self.assertIsNone(self.brand.logo_id)


# -- in a real browser: the uploader script under the strict CSP ------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_uploader_reports_each_file_and_adds_cards(
    live_server: Any, page: Any, settings: Any, tmp_path: Any
) -> None:
    import base64

    from playwright.sync_api import expect

    settings.MEDIA_ROOT = str(tmp_path)
    workspace = make_workspace("Acme")
    make_member(workspace, Role.EDITOR, "eddie")
    brand = make_brand(workspace, name="Acme Coffee")
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "eddie")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.click("form button[type=submit]")
    page.goto(
        f"{live_server.url}{reverse('campaigns:reference-list', args=[brand.code])}"
    )
    expect(
        page.locator(".upload-submit")
    ).to_be_hidden()  # the script took over the form

    page.select_option("select[name=role]", "logo")
    page.fill("input[name=tags]", "Launch, Hero")
    good = png_bytes((200, 100))
    page.set_input_files(
        "#reference-files",
        files=[
            {"name": "good.png", "mimeType": "image/png", "buffer": good},
            {"name": "notes.png", "mimeType": "image/png", "buffer": b"just text"},
        ],
    )
    expect(page.locator(".uploads li.done")).to_have_count(1)
    expect(page.locator(".uploads li.failed")).to_contain_text(
        "not an image we can read"
    )
    expect(page.locator("#reference-cards .reference-card")).to_have_count(1)

    # Dropping a file on the zone; the same bytes again are recognised as a duplicate.
    stored = ReferenceImage.objects.get()
    fresh = base64.b64encode(png_bytes((10, 10))).decode()
    for name, data in (
        ("dropped.png", fresh),
        ("again.png", base64.b64encode(good).decode()),
    ):
        transfer = page.evaluate_handle(
            """([name, data]) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, { type: "image/png" }));
                return transfer;
            }""",
            [name, data],
        )
        page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": transfer})
    expect(page.locator(".uploads li.done")).to_have_count(2)
    expect(page.locator(".uploads li.duplicate")).to_contain_text(
        "Already in the library as good.png"
    )
    expect(page.locator("#reference-cards .reference-card")).to_have_count(2)
    expect(page.locator("#reference-count")).to_contain_text(
        "2 images"
    )  # the library was re-rendered
    assert ReferenceImage.objects.filter(brand=brand, role="logo").count() == 2
    assert sorted(stored.tags.values_list("name", flat=True)) == ["hero", "launch"]

    # The card's htmx delete button works on a card the script inserted.
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#reference-cards .reference-card").first.get_by_role(
        "button", name="Delete"
    ).click()
    expect(page.locator("#reference-cards .reference-card")).to_have_count(1)
    assert not [
        p for p in problems if "Content Security Policy" in p or "Refused" in p
    ], problems
