from django.urls import path

from campaigns.views import brands, campaign_pages

app_name = "campaigns"

urlpatterns = [
    path("brands/", brands.brand_list, name="brand-list"),
    path("brands/new/", brands.brand_create, name="brand-create"),
    path("brands/<uuid:code>/", brands.brand_detail, name="brand-detail"),
    path("brands/<uuid:code>/edit/", brands.brand_edit, name="brand-edit"),
    path("brands/<uuid:code>/delete/", brands.brand_delete, name="brand-delete"),
    path("brands/palette-row/", brands.brand_palette_row, name="brand-palette-row"),
    path("palette.css", brands.palette_css, name="palette-css"),
    path("campaigns/", campaign_pages.campaign_list, name="campaign-list"),
    path("brands/<uuid:code>/campaigns/new/", campaign_pages.campaign_create, name="campaign-create"),
    path("campaigns/<uuid:code>/", campaign_pages.campaign_detail, name="campaign-detail"),
    path("campaigns/<uuid:code>/edit/", campaign_pages.campaign_edit, name="campaign-edit"),
    path("campaigns/<uuid:code>/status/", campaign_pages.campaign_status, name="campaign-status"),
    # Reference library: campaigns/views_references.py
    # Prompt templates: campaigns/views_templates.py
]

# The reference library and prompt templates have their own view modules.
from campaigns.views import prompt_templates, references  # noqa: E402

urlpatterns += [
    path("templates/", prompt_templates.template_list, name="template-list"),
    path("templates/<uuid:code>/", prompt_templates.template_detail, name="template-detail"),
]
