# The review models moved from campaigns to generation (issue 11) on the same tables, so only the
# migration state of ShareFeedback's foreign keys changes: the database constraints already point
# at campaigns_reviewevent and campaigns_comment, which generation.ReviewEvent/Comment use.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0003_14_pack_names"),
        ("generation", "0008_11_review_from_campaigns"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="sharefeedback",
                    name="review_event",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="generation.reviewevent",
                    ),
                ),
                migrations.AlterField(
                    model_name="sharefeedback",
                    name="review_comment",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="generation.comment",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
