"""A campaign's ad results: upload an export, map its columns, read the statistics, start the next round."""

from __future__ import annotations

from urllib.parse import urlencode
from uuid import UUID, uuid4

from django.contrib import messages
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from campaigns.models import Campaign
from results import charts, platforms, services
from results.forms import MappingForm, UploadForm
from results.models import ResultImport
from studio.http import MemberRequest
from studio.models import Role
from studio.tenancy import get_in_workspace, member_required

PENDING_MAX_AGE = 3600  # seconds an uploaded file waits for its mapping to be confirmed
_SALT = "results.pending"


def _campaign(request: MemberRequest, code: UUID) -> Campaign:
    return get_in_workspace(
        request, Campaign.objects.select_related("brand"), code=code
    )


def _next_round_url(result: services.BatchResult) -> str | None:
    """The batch builder, from this batch, with each decided axis fixed at its best value."""
    if result.batch is None:
        return None
    fixes = [
        f"{axis.axis}={axis.best}" for axis in result.analysis.axes if axis.decided
    ]
    if not fixes:
        return None
    query = urlencode([("from", str(result.batch.code)), *(("fix", f) for f in fixes)])
    return f"{reverse('generation:batch-create')}?{query}"


@require_GET
@member_required()
def campaign_results(request: MemberRequest, code: UUID) -> HttpResponse:
    campaign = _campaign(request, code)
    results = services.campaign_results(campaign)
    batches = [
        {
            "result": r,
            "chart": charts.interval_chart(
                [
                    charts.Bar(
                        label=str(v.asset.code)[:8],
                        mean=v.ctr.mean,
                        low=v.ctr.low,
                        high=v.ctr.high,
                        highlight=v.ctr.key == r.analysis.winner,
                    )
                    for v in r.variants
                ]
            ),
            "axes": [
                {
                    "axis": axis,
                    "label": services.axis_label(axis.axis),
                    "chart": charts.interval_chart(
                        [
                            charts.Bar(
                                label=value.value,
                                mean=value.mean,
                                low=value.low,
                                high=value.high,
                                highlight=axis.decided and value.value == axis.best,
                            )
                            for value in axis.values
                        ]
                    ),
                }
                for axis in r.analysis.axes
            ],
            "interactions": [
                {
                    "labels": [services.axis_label(a) for a in i.axes],
                    "interaction": i,
                }
                for i in r.analysis.interactions[:5]
            ],
            "next_round": _next_round_url(r),
        }
        for r in results
    ]
    context = {
        "campaign": campaign,
        "batches": batches,
        "imports": ResultImport.objects.filter(campaign=campaign)[:20],
        "form": UploadForm(workspace=request.workspace),
        "can_import": request.membership.can_edit,
        "min_impressions": services.min_impressions(),
        "threshold": round(services.win_threshold() * 100),
    }
    return render(request, "results/campaign_results.html", context)


def _pending_token(
    request: MemberRequest, campaign: Campaign, path: str, name: str
) -> str:
    return signing.dumps(
        {"c": str(campaign.code), "u": request.user.pk, "p": path, "n": name},
        salt=_SALT,
    )


def _pending(
    request: MemberRequest, campaign: Campaign, token: str
) -> tuple[str, str] | None:
    try:
        data = signing.loads(token, salt=_SALT, max_age=PENDING_MAX_AGE)
    except signing.BadSignature:
        return None
    if data.get("c") != str(campaign.code) or data.get("u") != request.user.pk:
        return None
    return data["p"], data["n"]


@require_POST
@member_required(Role.EDITOR)
def results_upload(request: MemberRequest, code: UUID) -> HttpResponse:
    """Step 1: the file. Its columns are guessed (or read through the chosen mapping) and shown."""
    campaign = _campaign(request, code)
    form = UploadForm(request.POST, request.FILES, workspace=request.workspace)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("results:campaign-results", code=campaign.code)
    upload = form.cleaned_data["file"]
    data = upload.read()
    try:
        table = services.preview(data)
        source, columns = services.columns_for(
            workspace=request.workspace,
            name=form.cleaned_data.get("mapping") or None,
            header=table.header,
        )
    except services.ImportRefused as exc:
        messages.error(request, f"{upload.name}: {exc}")
        return redirect("results:campaign-results", code=campaign.code)
    path = default_storage.save(f"results/pending/{uuid4()}.csv", ContentFile(data))
    mapping_form = MappingForm(
        header=table.header,
        initial={
            **columns,
            "token": _pending_token(request, campaign, path, upload.name),
            "source": source,
        },
    )
    return _mapping_page(request, campaign, mapping_form, table, upload.name, source)


def _mapping_page(
    request: MemberRequest,
    campaign: Campaign,
    form: MappingForm,
    table: platforms.Table,
    file_name: str,
    source: str,
) -> HttpResponse:
    return render(
        request,
        "results/mapping.html",
        {
            "campaign": campaign,
            "form": form,
            "header": table.header,
            "sample": [cells for _, cells in table.rows[:5]],
            "row_count": len(table.rows),
            "file_name": file_name,
            "source": source,
        },
    )


@require_POST
@member_required(Role.EDITOR)
def results_confirm(request: MemberRequest, code: UUID) -> HttpResponse:
    """Step 2: the confirmed mapping (optionally saved by name); the rows are matched and stored."""
    campaign = _campaign(request, code)
    pending = _pending(request, campaign, request.POST.get("token", ""))
    if pending is None:
        messages.error(
            request,
            "That upload has expired or belongs to someone else: upload the file again.",
        )
        return redirect("results:campaign-results", code=campaign.code)
    path, file_name = pending
    try:
        with default_storage.open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        messages.error(request, "That upload is gone: upload the file again.")
        return redirect("results:campaign-results", code=campaign.code)
    table = services.preview(data)
    form = MappingForm(request.POST, header=table.header)
    if not form.is_valid():
        return _mapping_page(
            request, campaign, form, table, file_name, request.POST.get("source", "")
        )
    columns = form.columns()
    source = form.cleaned_data.get("source") or "Custom mapping"
    try:
        if form.cleaned_data.get("save_as"):
            source = services.save_mapping(
                workspace=request.workspace,
                name=form.cleaned_data["save_as"],
                columns=columns,
            ).name
        outcome = services.import_results(
            campaign=campaign,
            user=request.user,
            file_name=file_name,
            data=data,
            mapping=source,
            columns=columns,
        )
    except services.ImportRefused as exc:
        form.add_error(None, str(exc))
        return _mapping_page(request, campaign, form, table, file_name, source)
    default_storage.delete(path)
    imported = outcome.result_import
    text = f"Imported {imported.rows} rows from {file_name}: {imported.matched} matched to images"
    if imported.unmatched:
        text += f", {len(imported.unmatched)} matched no image (listed below)"
    if imported.replaced:
        text += f"; {imported.replaced} rows of an earlier export of the same period replaced"
    messages.success(request, text + ".")
    return redirect("results:campaign-results", code=campaign.code)
