# Review models now live in generation (issue 11), on the tables campaigns created
# (campaigns_reviewevent, campaigns_comment): state only, no table is rebuilt and no row copied. The
# content types follow the models, so permissions and admin log entries keep pointing at them.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

REVIEW_CHOICES = [
    ("pending", "Pending"),
    ("approved", "Approved"),
    ("rejected", "Rejected"),
    ("changes_requested", "Changes requested"),
]
MOVED = ["reviewevent", "comment"]


def move_content_types(apps, schema_editor, old="campaigns", new="generation"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if ContentType.objects.filter(app_label=new, model=model).exists():
            continue
        ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, old="generation", new="campaigns")


class Migration(migrations.Migration):
    dependencies = [
        # Created here before campaigns forgets them (campaigns/0004_11 runs after this and after
        # exports/0004_11 re-points ShareFeedback's foreign keys), so no state has a dangling one.
        ("campaigns", "0003_13_templateversion_code"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("generation", "0007_17_asset_cost_review_tally"),
        ("studio", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Comment",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("body", models.TextField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("asset", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="comments", to="generation.asset")),
                        ("author", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="studio.workspace")),
                    ],
                    options={
                        "db_table": "campaigns_comment",
                        "ordering": ["created_at", "id"],
                        "indexes": [models.Index(fields=["asset", "created_at"], name="comment_asset")],
                    },
                ),
                migrations.CreateModel(
                    name="ReviewEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("from_status", models.CharField(choices=REVIEW_CHOICES, max_length=20)),
                        ("to_status", models.CharField(choices=REVIEW_CHOICES, max_length=20)),
                        ("comment", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("actor", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("asset", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="review_events", to="generation.asset")),
                        ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="studio.workspace")),
                    ],
                    options={
                        "db_table": "campaigns_reviewevent",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [models.Index(fields=["asset", "-created_at"], name="review_event_asset")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
