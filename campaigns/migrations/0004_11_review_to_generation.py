# Review (statuses, events, comments) moved to generation, next to the asset (issue 11). Only the
# migration state changes here: the tables keep their names (db_table on the generation models), so no
# row is copied and no table rebuilt. generation/migrations/0008_11_review_from_campaigns.py adds them
# to generation's state first, and exports/migrations/0004_11_review_fks.py points ShareFeedback's
# foreign keys at them, so nothing refers to the models deleted here.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0003_13_templateversion_code"),
        ("generation", "0008_11_review_from_campaigns"),
        ("exports", "0004_11_review_fks"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Comment"),
                migrations.DeleteModel(name="ReviewEvent"),
            ],
            database_operations=[],
        ),
    ]
