# Issue 13: template versions get a public code (the API's id for them). Three steps so that
# existing rows each get their own uuid before the unique constraint applies.

import uuid

from django.db import migrations, models


def fill_codes(apps, schema_editor):
    TemplateVersion = apps.get_model("campaigns", "TemplateVersion")
    for version in TemplateVersion.objects.filter(code__isnull=True).only("pk"):
        TemplateVersion.objects.filter(pk=version.pk).update(code=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0002_review")]

    operations = [
        migrations.AddField(
            model_name="templateversion",
            name="code",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(fill_codes, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="templateversion",
            name="code",
            field=models.UUIDField(default=uuid.uuid4, unique=True, editable=False),
        ),
    ]
