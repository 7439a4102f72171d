"""The failed sign-ins django-axes kept under a name that is no account's are kept as the keyed digest the audit trail
keeps (core.signals.unknown_name, now AXES_USERNAME_CALLABLE): such a name may be a password typed into the user-name
field, and it stayed in clear in the lockout table."""

from django.db import migrations


def digest_unknown_names(apps, schema_editor):
    from pharmacrm.core.signals import unknown_name

    User = apps.get_model("core", "User")
    accounts = set(User.objects.values_list("username", flat=True))
    for name in ("AccessAttempt", "AccessFailureLog"):
        model = apps.get_model("axes", name)
        for row in model.objects.exclude(username__isnull=True).exclude(username__startswith="?"):
            if row.username not in accounts:
                model.objects.filter(pk=row.pk).update(username=unknown_name(row.username))


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0012_idempotent_request"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(digest_unknown_names, migrations.RunPython.noop)]
