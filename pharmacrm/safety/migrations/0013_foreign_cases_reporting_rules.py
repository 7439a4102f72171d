"""China's GVP (药物警戒质量管理规范, 2021) has the NMPA told individually of every case from China (serious or new in
15 days, the others in 30) and, of the cases from abroad, only the serious ones (15 days); a foreign non-serious case
goes into the periodic report. CN-NEW-SERIOUS and CN-OTHER applied to every case, wherever it occurred: a
non-serious case from abroad got the 30-day NMPA clock (and one "new" 15 days) for a report nobody owes.

CN-NEW-SERIOUS and CN-OTHER are limited to cases from China where their condition is still the one the product
shipped (a rule an administrator gave another condition keeps it: they decided), and CN-FOREIGN-SERIOUS is installed
where it is not yet. The changes are audited once `migrate` is done (pharmacrm.safety.apps). Clocks planned before
keep their deadline, as after any change of a rule."""

from django.db import migrations, models

CONDITIONS = [
    ("death", "Fatal case"), ("susar_fatal_lt", "Study: unexpected, fatal or life-threatening (SUSAR)"),
    ("new_or_serious", "New (unexpected) or serious"), ("serious_unexpected", "Serious and unexpected"),
    ("serious", "Serious"), ("non_serious", "Non-serious"), ("other", "Any other case"),
    ("new_serious_domestic", "Occurred in the jurisdiction: new (unexpected) or serious"),
    ("other_domestic", "Occurred in the jurisdiction: any other case"),
    ("serious_foreign", "Occurred abroad: serious"),
]  # fmt: skip


def limit_to_domestic(apps, schema_editor):
    from pharmacrm.safety import apps as safety_apps
    from pharmacrm.safety.setup import SHIPPED_BEFORE_0013, install_rules

    ReportingRule = apps.get_model("safety", "ReportingRule")  # noqa: N806 — a model class
    alias = schema_editor.connection.alias
    rules = ReportingRule.objects.using(alias)
    # the conditions this migration gave them (CN-NEW-SERIOUS's is limited to serious cases by safety 0017), not
    # today's DEFAULT_RULES: each migration audits its own step
    now = {"CN-NEW-SERIOUS": "new_serious_domestic", "CN-OTHER": "other_domestic"}
    changed = []
    for code, before in SHIPPED_BEFORE_0013.items():
        rule = rules.filter(code=code, condition=before).first()
        if rule is None:
            continue
        rule.condition = now[code]
        rule.version += 1
        rule.save(update_fields=["condition", "version"])
        changed.append((code, before, now[code]))
    created = not rules.filter(code="CN-FOREIGN-SERIOUS").exists()
    install_rules(ReportingRule, codes={"CN-FOREIGN-SERIOUS"})
    if changed or created:
        safety_apps.RULES_CHANGED_BY_MIGRATION[alias] = (changed, created)


class Migration(migrations.Migration):

    dependencies = [
        ("safety", "0012_susar_reporting_rule"),
    ]

    operations = [
        migrations.AlterField(
            model_name="reportingrule",
            name="condition",
            field=models.CharField(choices=CONDITIONS, max_length=20, verbose_name="applies to"),
        ),
        migrations.RunPython(limit_to_domestic, migrations.RunPython.noop),
    ]
