"""The reference library: a brand's images with filters and uploads, one reference's page, and
the image files themselves.

Media is never public (settings.MEDIA_URL is not served): every image and thumbnail goes through
`reference_image` / `reference_thumbnail`, which check the workspace like every other view.
Viewers see everything here; editors and up upload, edit and delete (403 otherwise); another
workspace's objects answer 404.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.db.models.fields.files import FieldFile
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from campaigns import references as services
from campaigns.images import ACCEPT_ATTRIBUTE, ACCEPTED_LABEL
from campaigns.models import Brand, ReferenceImage, ReferenceRole, Tag
from studio import permissions
from studio.http import StudioRequest, wants_partial
from studio.input_rules import refuse_nul
from studio.private_files import serve_private_file
from studio.tenancy import get_in_workspace, member_required

PAGE_SIZE = 48
# The form without JavaScript may carry several files; the uploader script sends one per request.
MAX_FILES_PER_POST = 20
# The stored files of a reference never change (an edit changes only role, tags and title), so a
# browser may keep them a while; "private" keeps them out of shared caches.
FILE_MAX_AGE = 3600


class TagsField(forms.Field):
    """Comma-separated tags in, a normalised list out (see services.normalise_tags)."""

    widget = forms.TextInput
    max_text = 1000

    def to_python(self, value: object) -> list[str]:
        text = str(value or "")
        refuse_nul(text, "The tags")
        if len(text) > self.max_text:
            raise forms.ValidationError(
                f"Keep the tags under {self.max_text} characters in all.",
                code="too_long",
            )
        return services.normalise_tags(text.split(","))

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > services.MAX_TAGS_PER_REFERENCE:
            raise forms.ValidationError(
                f"At most {services.MAX_TAGS_PER_REFERENCE} tags per image.",
                code="too_many",
            )

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, list | tuple) else value


class ReferenceFilterForm(forms.Form):
    role = forms.ChoiceField(
        choices=[("", "All roles"), *ReferenceRole.choices], required=False
    )
    tag = forms.CharField(required=False, max_length=200)


class ReferenceUploadForm(forms.Form):
    role = forms.ChoiceField(
        choices=ReferenceRole.choices, initial=ReferenceRole.PRODUCT
    )
    tags = TagsField(
        required=False,
        help_text="Comma-separated, for example: packshot, summer.",
        widget=forms.TextInput(attrs={"placeholder": "packshot, summer"}),
    )


class ReferenceEditForm(forms.Form):
    title = forms.CharField(
        required=False,
        max_length=200,
        help_text="Shown instead of the file name when set.",
    )
    role = forms.ChoiceField(choices=ReferenceRole.choices)
    tags = TagsField(required=False, help_text="Comma-separated.")


def _brand_for_user(request: StudioRequest, code: UUID) -> Brand:
    return get_in_workspace(
        request, Brand.objects.select_related("workspace"), code=code
    )


def _reference_for_user(request: StudioRequest, code: UUID) -> ReferenceImage:
    queryset = ReferenceImage.objects.select_related(
        "brand", "workspace", "uploaded_by"
    )
    return get_in_workspace(request, queryset.prefetch_related("tags"), code=code)


def _wants_fragment(request: StudioRequest) -> bool:
    # The uploader script marks its requests the way XHR libraries do; htmx requests count too.
    return (
        wants_partial(request)
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
    )


def _library_context(
    request: StudioRequest, brand: Brand, upload_form: ReferenceUploadForm
) -> dict[str, Any]:
    filters = ReferenceFilterForm(request.GET)
    role = tag = ""
    if filters.is_valid():
        role = filters.cleaned_data["role"]
        tag = next(iter(services.normalise_tags([filters.cleaned_data["tag"]])), "")
    references = (
        ReferenceImage.objects.filter(brand=brand)
        .with_role(role)
        .with_tag(tag)
        .select_related("uploaded_by")
        .prefetch_related("tags")
    )
    page = Paginator(references, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = dict(
        ReferenceImage.objects.filter(brand=brand)
        .order_by()
        .values_list("role")
        .annotate(n=Count("id"))
        .values_list("role", "n")
    )
    tag_names = list(
        Tag.objects.filter(references__brand=brand)
        .values_list("name", flat=True)
        .distinct()
        .order_by("name")
    )
    if tag and tag not in tag_names:
        tag_names.append(tag)  # keep a filter from an old link visible (and clearable)
    return {
        "brand": brand,
        "page": page,
        "role": role,
        "tag": tag,
        "roles": [
            (value, label, counts.get(value, 0))
            for value, label in ReferenceRole.choices
        ],
        "total": sum(counts.values()),
        "tags": tag_names,
        "upload_form": upload_form,
        "accept": ACCEPT_ATTRIBUTE,
        "accepted_label": ACCEPTED_LABEL,
        "max_bytes": settings.STUDIO_UPLOAD_MAX_BYTES,
        "max_megapixels": settings.STUDIO_UPLOAD_MAX_PIXELS // 1_000_000,
    }


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def reference_list(request: StudioRequest, code: UUID) -> HttpResponse:
    brand = _brand_for_user(request, code)
    context = _library_context(request, brand, ReferenceUploadForm())
    template = "campaigns/references/list.html"
    if wants_partial(request):
        template += "#reference_library"
    return render(request, template, context)


@require_POST
@member_required()
def reference_upload(request: StudioRequest, code: UUID) -> HttpResponse:
    """Add uploaded images to a brand's library.

    From the uploader script (X-Requested-With: XMLHttpRequest, or htmx): exactly one file per
    request, and the status says what happened so the script can report each file on its own:
    201 with the new card, 409 with a note linking to the image already in the library, 400 with
    the reason the file was refused. Without JavaScript the plain form may carry several files;
    the answer is a redirect to the library with one message per file.
    """
    brand = _brand_for_user(request, code)
    permissions.require(request, "reference.upload")  # the rule the drop zone reads
    form = ReferenceUploadForm(request.POST)
    files = request.FILES.getlist("file")
    list_url = reverse("campaigns:reference-list", args=[brand.code])

    problem = ""
    if not form.is_valid():
        problem = " ".join(
            str(error) for errors in form.errors.values() for error in errors
        )
    elif not files:
        problem = "Choose at least one image to upload."
    elif _wants_fragment(request) and len(files) > 1:
        problem = "Send one file per request."

    if _wants_fragment(request):
        if problem:
            return _upload_error(request, problem)
        try:
            reference = services.reference_create(
                brand=brand,
                uploaded_file=files[0],
                user=request.user,
                role=form.cleaned_data["role"],
                tags=form.cleaned_data["tags"],
            )
        except services.ImageRejected as exc:
            return _upload_error(request, exc.message)
        except services.DuplicateReference as exc:
            context: dict[str, Any] = {
                "reference": exc.existing,
                "name": files[0].name,
            }
            return render(
                request,
                "campaigns/references/list.html#upload_duplicate",
                context,
                status=409,
            )
        context = {"reference": reference, "brand": brand}
        return render(
            request,
            "campaigns/references/list.html#reference_card",
            context,
            status=201,
        )

    if form.errors:
        # The page again with the bound form, so the refused field is marked where it is.
        context = _library_context(request, brand, form)
        return render(request, "campaigns/references/list.html", context)
    if problem:
        messages.error(request, problem)
        return redirect(list_url)
    added = 0
    for uploaded in files[:MAX_FILES_PER_POST]:
        try:
            services.reference_create(
                brand=brand,
                uploaded_file=uploaded,
                user=request.user,
                role=form.cleaned_data["role"],
                tags=form.cleaned_data["tags"],
            )
            added += 1
        except services.ImageRejected as exc:
            messages.error(request, exc.message)
        except services.DuplicateReference as exc:
            messages.warning(
                request,
                f"“{uploaded.name}” is already in the library as “{exc.existing}”.",
            )
    if len(files) > MAX_FILES_PER_POST:
        skipped = len(files) - MAX_FILES_PER_POST
        messages.warning(
            request,
            f"{skipped} more file{'s' if skipped != 1 else ''} not uploaded: at most "
            f"{MAX_FILES_PER_POST} at a time. Upload the rest in another round.",
        )
    if added:
        messages.success(
            request, f"Added {added} image{'s' if added != 1 else ''} to the library."
        )
    return redirect(list_url)


def _upload_error(request: StudioRequest, message: str) -> HttpResponse:
    return render(
        request,
        "campaigns/references/list.html#upload_error",
        {"message": message},
        status=400,
    )


@require_http_methods(["GET", "POST"])
@member_required()
@vary_on_headers("HX-Request")
def reference_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    reference = _reference_for_user(request, code)
    saved = False
    form: ReferenceEditForm | None = None
    if request.method == "POST":
        permissions.require(request, "reference.edit")  # the rule the edit form reads
        form = ReferenceEditForm(request.POST)
        if form.is_valid():
            services.reference_update(
                reference=reference,
                role=form.cleaned_data["role"],
                tags=form.cleaned_data["tags"],
                title=form.cleaned_data["title"],
            )
            if not wants_partial(request):
                messages.success(request, "Saved.")
                return redirect("campaigns:reference-detail", code=reference.code)
            # View restart: render what is stored now.
            reference = _reference_for_user(request, code)
            form, saved = None, True
    if form is None and permissions.can(request.membership, "reference.edit"):
        form = ReferenceEditForm(
            initial={
                "title": reference.title,
                "role": reference.role,
                "tags": [tag.name for tag in reference.tags.all()],
            }
        )
    context = {
        "reference": reference,
        "brand": reference.brand,
        "form": form,
        "saved": saved,
        "is_logo": reference.brand.logo_id == reference.pk,
    }
    template = "campaigns/references/detail.html"
    if wants_partial(request) and request.method == "POST":
        template += "#reference_panel"
    return render(request, template, context)


@require_POST
@member_required()
def reference_delete(request: StudioRequest, code: UUID) -> HttpResponse:
    reference = _reference_for_user(request, code)
    permissions.require(request, "reference.edit")  # the rule the Delete buttons read
    brand = reference.brand
    label = str(reference)
    services.reference_delete(reference=reference)
    list_url = reverse("campaigns:reference-list", args=[brand.code])
    if wants_partial(request):
        if request.htmx.target == f"reference-{code}":
            return HttpResponse("")  # a card in the grid: it swaps itself out
        messages.success(request, f"Deleted “{label}”.")
        return HttpResponseClientRedirect(list_url)
    messages.success(request, f"Deleted “{label}”.")
    return redirect(list_url)


@require_GET
@member_required()
def reference_image(request: StudioRequest, code: UUID) -> HttpResponseBase:
    """The cleaned image; `?download=1` sends it as an attachment named after the upload."""
    reference = _reference_for_user(request, code)
    return _serve(
        reference.file,
        content_type=reference.content_type,
        filename=_download_name(reference),
        as_attachment=request.GET.get("download") == "1",
    )


@require_GET
@member_required()
def reference_thumbnail(request: StudioRequest, code: UUID) -> HttpResponseBase:
    reference = _reference_for_user(request, code)
    if not reference.thumbnail:
        # Rows made outside the upload service may lack one: the image itself still shows.
        return _serve(reference.file, content_type=reference.content_type, filename="")
    return _serve(reference.thumbnail, content_type="image/webp", filename="")


def _download_name(reference: ReferenceImage) -> str:
    stem = PurePosixPath(reference.original_name).stem or reference.title or "reference"
    return f"{stem}{PurePosixPath(reference.file.name or '').suffix}"


def _serve(
    file: FieldFile, *, content_type: str, filename: str, as_attachment: bool = False
) -> HttpResponseBase:
    return serve_private_file(
        file,
        content_type=content_type,
        filename=filename,
        max_age=FILE_MAX_AGE,
        as_attachment=as_attachment,
    )
