"""A death abroad got China's "report a death at once" clock (CN-DEATH, 24 hours) and the 15-day death investigation
report (CN-DEATH-INVESTIGATION). Both are rules for a death in China: 药品不良反应报告和监测管理办法 puts them in the
chapter on individual reports from China (arts. 20-21); a serious case from abroad, a death included, is told to the
NMPA in 15 days (药物警戒质量管理规范 2021, 个例药品不良反应收集和报告指导原则: CN-FOREIGN-SERIOUS) and the company does not
investigate a death in another country's hospitals.

CN-DEATH and CN-DEATH-INVESTIGATION are limited to deaths in China where their condition is still the one the product
shipped (a rule an administrator gave another condition keeps it: they decided). Once `migrate` is done
(pharmacrm.safety.apps), the changes are audited and the open cases from abroad still showing a death clock nobody
owes are planned again under the rules as they are now (CN-FOREIGN-SERIOUS, from the same receipt), case by case,
audited; a clock already met stays, as a report already sent."""

from django.db import migrations, models

CONDITIONS = [
    ("death", "Fatal case"), ("susar_fatal_lt", "Study: unexpected, fatal or life-threatening (SUSAR)"),
    ("new_or_serious", "New (unexpected) or serious"), ("serious_unexpected", "Serious and unexpected"),
    ("serious", "Serious"), ("non_serious", "Non-serious"), ("other", "Any other case"),
    ("new_serious_domestic", "Occurred in the jurisdiction: new (unexpected) or serious"),
    ("other_domestic", "Occurred in the jurisdiction: any other case"),
    ("serious_foreign", "Occurred abroad: serious"),
    ("death_domestic", "Occurred in the jurisdiction: fatal case"),
]  # fmt: skip


def limit_to_deaths_in_china(apps, schema_editor):
    from pharmacrm.safety import apps as safety_apps
    from pharmacrm.safety.setup import DEFAULT_RULES, SHIPPED_BEFORE_0014

    ReportingRule = apps.get_model("safety", "ReportingRule")  # noqa: N806 — a model class
    alias = schema_editor.connection.alias
    rules = ReportingRule.objects.using(alias)
    now = {code: condition for code, _j, _n, condition, *_rest in DEFAULT_RULES}
    changed = []
    for code, before in SHIPPED_BEFORE_0014.items():
        rule = rules.filter(code=code, condition=before).first()
        if rule is None:
            continue
        rule.condition = now[code]
        rule.version += 1
        rule.save(update_fields=["condition", "version"])
        changed.append((code, before, now[code]))
    if changed:
        safety_apps.DEATH_RULES_CHANGED_BY_MIGRATION[alias] = changed


class Migration(migrations.Migration):

    dependencies = [
        ("safety", "0013_foreign_cases_reporting_rules"),
    ]

    operations = [
        migrations.AlterField(
            model_name="reportingrule",
            name="condition",
            field=models.CharField(choices=CONDITIONS, max_length=20, verbose_name="applies to"),
        ),
        migrations.RunPython(limit_to_deaths_in_china, migrations.RunPython.noop),
    ]
