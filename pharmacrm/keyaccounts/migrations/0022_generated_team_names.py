"""Key accounts' service teams were named in Chinese only (重点客户服务组·协和医院) and read so on English and
Traditional-Chinese pages. A team the product names now keeps what it named it from (core 0014) and reads in the
reader's language (core.models.Team.shown_name).

The service teams named before are recognised here: a key account's team whose name has the product's form — the
prefix, the customer, and possibly the file's number (·KA-2026-0001) or, from before session 41, the moment of the
approval (·20261205155641) — gets the parameters; its name is left as stored. A team renamed since has another form
and keeps its name as typed."""

import re

from django.db import migrations

PREFIX = "重点客户服务组·"
NAMED = re.compile(r"^重点客户服务组·(?P<customer>.+?)(?:·(?P<suffix>KA-\d{4}-\d+|\d{14}))?$", re.S)


def recognise(name: str) -> dict | None:
    found = NAMED.match(name or "")
    if not found or not found["customer"].strip():
        return None
    params = {"customer": found["customer"]}
    if found["suffix"]:
        params["suffix"] = found["suffix"]
    return params


def fill_generated(apps, schema_editor):
    Team = apps.get_model("core", "Team")
    KeyAccount = apps.get_model("keyaccounts", "KeyAccount")
    alias = schema_editor.connection.alias
    teams = KeyAccount.objects.using(alias).filter(team__isnull=False).values_list("team_id", flat=True)
    candidates = Team.objects.using(alias).filter(pk__in=teams, name__startswith=PREFIX, generated="")
    for pk, name in candidates.values_list("id", "name"):
        params = recognise(name)
        if params is not None:
            Team.objects.using(alias).filter(pk=pk).update(generated="key_account", generated_params=params)


class Migration(migrations.Migration):
    dependencies = [
        ("keyaccounts", "0021_plan_editors"),
        ("core", "0014_generated_team_names"),
    ]

    operations = [migrations.RunPython(fill_generated, migrations.RunPython.noop)]
