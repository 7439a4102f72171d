"""The default stage playbook (seed 000 §6.4), and every existing customer's stage as its open time in that stage —
entered when it was last updated, the best the database knows — so that the first night's sweep does not take every
customer for one that just entered its stage (and give them all the stage's tasks)."""

from django.db import migrations

from pharmacrm.engagement.stage_defaults import ensure_playbook


def forwards(apps, schema_editor):
    ensure_playbook(apps.get_model("engagement", "StageAction"))
    Spell = apps.get_model("engagement", "StageSpell")
    table = schema_editor.quote_name(Spell._meta.db_table)
    for model, column in (("Institution", "institution_id"), ("Person", "person_id")):
        source = schema_editor.quote_name(apps.get_model("customers", model)._meta.db_table)
        schema_editor.execute(
            f"INSERT INTO {table} ({column}, stage, entered_at) "
            f"SELECT id, stage, updated_at FROM {source} WHERE merged_into_id IS NULL"
        )


class Migration(migrations.Migration):
    dependencies = [("engagement", "0003_stage_playbook_and_tasks"), ("customers", "0002_region_columns")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
