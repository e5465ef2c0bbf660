from django.urls import path

from campaigns.views import brands, campaign_pages, prompt_templates, references

app_name = "campaigns"

urlpatterns = [
    # Brand kits
    path("brands/", brands.brand_list, name="brand-list"),
    path("brands/new/", brands.brand_create, name="brand-create"),
    path("brands/<uuid:code>/", brands.brand_detail, name="brand-detail"),
    path("brands/<uuid:code>/edit/", brands.brand_edit, name="brand-edit"),
    path("brands/<uuid:code>/delete/", brands.brand_delete, name="brand-delete"),
    path("brands/palette-row/", brands.brand_palette_row, name="brand-palette-row"),
    path("palette.css", brands.palette_css, name="palette-css"),
    # Campaigns
    path("campaigns/", campaign_pages.campaign_list, name="campaign-list"),
    path(
        "campaigns/new/",
        campaign_pages.campaign_create_with_brand_choice,
        name="campaign-new",
    ),
    path(
        "brands/<uuid:code>/campaigns/new/",
        campaign_pages.campaign_create,
        name="campaign-create",
    ),
    path(
        "campaigns/<uuid:code>/", campaign_pages.campaign_detail, name="campaign-detail"
    ),
    path(
        "campaigns/<uuid:code>/edit/",
        campaign_pages.campaign_edit,
        name="campaign-edit",
    ),
    path(
        "campaigns/<uuid:code>/status/",
        campaign_pages.campaign_status,
        name="campaign-status",
    ),
    # Prompt templates
    path("templates/", prompt_templates.template_list, name="template-list"),
    path("templates/new/", prompt_templates.template_create, name="template-create"),
    path(
        "templates/<uuid:code>/",
        prompt_templates.template_detail,
        name="template-detail",
    ),
    path(
        "templates/<uuid:code>/versions/",
        prompt_templates.template_versions,
        name="template-versions",
    ),
    path(
        "templates/<uuid:code>/versions/new/",
        prompt_templates.template_version_create,
        name="template-version-create",
    ),
    path(
        "templates/<uuid:code>/versions/<int:number>/",
        prompt_templates.template_version,
        name="template-version",
    ),
    path(
        "templates/<uuid:code>/diff/",
        prompt_templates.template_diff,
        name="template-diff",
    ),
    path(
        "templates/<uuid:code>/preview/",
        prompt_templates.template_preview,
        name="template-preview",
    ),
    # Reference library
    path(
        "brands/<uuid:code>/references/",
        references.reference_list,
        name="reference-list",
    ),
    path(
        "brands/<uuid:code>/references/upload/",
        references.reference_upload,
        name="reference-upload",
    ),
    path(
        "references/<uuid:code>/", references.reference_detail, name="reference-detail"
    ),
    path(
        "references/<uuid:code>/delete/",
        references.reference_delete,
        name="reference-delete",
    ),
    path(
        "references/<uuid:code>/image",
        references.reference_image,
        name="reference-image",
    ),
    path(
        "references/<uuid:code>/thumbnail",
        references.reference_thumbnail,
        name="reference-thumbnail",
    ),
]
