"""Improvement actions the customer evaluation opened were stored as Chinese text only (改善与 协和医院 的客户关系（D 类）
[2026H1]) and read in Chinese on English and Traditional-Chinese pages. The product now stores what it wrote — the
kind and its parameters — and writes it in the reader's language (ImprovementAction.shown_title).

The actions stored before are recognised by their title as the evaluation wrote it (in Simplified or Traditional
Chinese or in English, whichever the installation's language was): their kind and parameters are filled in, the
title and description left as stored. A title a user changed since no longer has that form and stays as typed; so
does a description changed since (the action reads its stored description when it is not the one the evaluation
wrote from those parameters)."""

import re

from django.db import migrations, models

# the evaluation's title in each language it was ever stored in (keyaccounts.evaluation.action_text)
PATTERNS = [
    re.compile(r"^改善与 (?P<name>.+) 的客户关系（(?P<klass>[A-D]) 类）\[(?P<period>[^\[\]]+)\]$", re.S),
    re.compile(r"^改善與 (?P<name>.+) 的客戶關係（(?P<klass>[A-D]) 類）\[(?P<period>[^\[\]]+)\]$", re.S),
    re.compile(r"^Improve the relationship with (?P<name>.+) \(class (?P<klass>[A-D])\) \[(?P<period>[^\[\]]+)\]$", re.S),
]


def recognise(title: str) -> dict | None:
    """The parameters of a title the evaluation wrote, None for any other."""
    for pattern in PATTERNS:
        found = pattern.match(title or "")
        if found:
            return {"name": found["name"], "klass": found["klass"], "period": found["period"]}
    return None


def fill_generated(apps, schema_editor):
    ImprovementAction = apps.get_model("servicedesk", "ImprovementAction")
    stored = ImprovementAction.objects.using(schema_editor.connection.alias)
    candidates = stored.filter(institution__isnull=False, ticket__isnull=True, generated="").filter(
        models.Q(title__startswith="改善") | models.Q(title__startswith="Improve the relationship with ")
    )
    for pk, title in candidates.values_list("id", "title").iterator(chunk_size=2000):
        params = recognise(title)
        if params is not None:
            stored.filter(pk=pk).update(generated="evaluation", generated_params=params)


class Migration(migrations.Migration):
    dependencies = [
        ("servicedesk", "0026_quality_review"),
    ]

    operations = [
        migrations.AddField(
            model_name="improvementaction",
            name="generated",
            field=models.CharField(blank=True, default="", editable=False, max_length=20),
        ),
        migrations.AddField(
            model_name="improvementaction",
            name="generated_params",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
        migrations.RunPython(fill_generated, migrations.RunPython.noop),
    ]
