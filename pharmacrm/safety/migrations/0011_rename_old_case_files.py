"""Case files uploaded before 0010 keep the uploader's file name on disk (var/files/safety/2026/11/王小明病历.pdf):
the patient's name in directory listings and backups. They are moved to random names once by `pharmacrm safety
rename-files` — the command an operator can run by hand at any time (a file already moved is left as it is).

Moving files is not something a migration can undo with its transaction (a file removed inside it stays removed
if the transaction rolls back), and the command works with today's models. This migration only notes that there is
work to do; the safety app's post_migrate handler runs the command once `migrate` has applied everything
(pharmacrm.safety.apps), as 0008 does."""

from django.db import migrations


def note_rename(apps, schema_editor):
    # the historical model only asks whether there is anything to do (the pattern of models.case_file_path)
    CaseFile = apps.get_model("safety", "CaseFile")
    stored = CaseFile.objects.using(schema_editor.connection.alias)
    if stored.exclude(file__regex=r"^safety/[0-9]{4}/[0-9]{2}/[0-9a-f]{32}$").exists():
        from pharmacrm.safety import apps as safety_apps

        safety_apps.RENAME_FILES_AFTER_MIGRATE.add(schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("safety", "0010_case_files_random_names")]

    operations = [migrations.RunPython(note_rename, migrations.RunPython.noop, elidable=True)]
