# Routing fields on Generation (generation/routing.py): the policy asked for, the fallback chain
# in reserve and the route taken; an index for routing's measured speed per backend and model.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0002_asset_review"),
    ]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="requested_backend",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="generation",
            name="fallbacks",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="generation",
            name="route",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(("state", "succeeded")),
                fields=["backend", "model", "-finished_at"],
                name="generation_backend_speed",
            ),
        ),
    ]
