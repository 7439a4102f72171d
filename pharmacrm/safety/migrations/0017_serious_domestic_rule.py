"""CN-NEW-SERIOUS gave 15 days to a case from China that was new (unexpected) or serious: 药品不良反应报告和监测管理办法
art. 20's "新的、严重的" read as either. For a marketing authorisation holder — the companies this product serves —
China's GVP (药物警戒质量管理规范, 2021, art. 135; 个例药品不良反应收集和报告指导原则) says otherwise: 境内严重不良反应 in
15 days (a death at once), 其他个例不良反应 in 30. A new but non-serious reaction from China is due in 30 days (CN-OTHER),
not 15; a serious one, new or expected, stays due in 15.

CN-NEW-SERIOUS is limited to serious cases from China where its condition is still the one the product shipped (a rule
an administrator gave another condition keeps it, its name and its legal basis: they decided); its name and legal basis
follow where they are still the shipped ones. The changes are audited once `migrate` is done (pharmacrm.safety.apps).
Clocks planned before keep their deadline, as after any change of a rule (a new non-serious case already due in 15 days
is due then, earlier than it need be, until its assessment changes and its clocks are planned again)."""

from django.db import migrations, models

CONDITIONS = [
    ("death", "Fatal case"), ("susar_fatal_lt", "Study: unexpected, fatal or life-threatening (SUSAR)"),
    ("new_or_serious", "New (unexpected) or serious"), ("serious_unexpected", "Serious and unexpected"),
    ("serious", "Serious"), ("non_serious", "Non-serious"), ("other", "Any other case"),
    ("serious_domestic", "Occurred in the jurisdiction: serious (new or expected)"),
    ("new_serious_domestic", "Occurred in the jurisdiction: new (unexpected) or serious"),
    ("other_domestic", "Occurred in the jurisdiction: any other case"),
    ("serious_foreign", "Occurred abroad: serious"),
    ("death_domestic", "Occurred in the jurisdiction: fatal case"),
]  # fmt: skip

FIELDS = ("condition", "name", "legal_basis")


def limit_to_serious(apps, schema_editor):
    from pharmacrm.safety import apps as safety_apps
    from pharmacrm.safety.setup import DEFAULT_RULES, SHIPPED_BEFORE_0017

    ReportingRule = apps.get_model("safety", "ReportingRule")  # noqa: N806 — a model class
    alias = schema_editor.connection.alias
    rules = ReportingRule.objects.using(alias)
    now = {code: {"name": name, "condition": condition, "legal_basis": basis}
           for code, _j, name, condition, _k, _w, _u, _p, _a, basis in DEFAULT_RULES}  # fmt: skip
    changed = []
    for code, before in SHIPPED_BEFORE_0017.items():
        rule = rules.filter(code=code, condition=before["condition"]).first()
        if rule is None:
            continue
        changes = {}
        for field in FIELDS:
            if getattr(rule, field) == before[field]:  # an administrator's own name or basis stays
                changes[field] = [before[field], now[code][field]]
                setattr(rule, field, now[code][field])
        rule.version += 1
        rule.save(update_fields=[*changes, "version"])
        changed.append((code, changes))
    if changed:
        safety_apps.SERIOUS_RULE_CHANGED_BY_MIGRATION[alias] = changed


class Migration(migrations.Migration):

    dependencies = [
        ("safety", "0016_drug_date_precision"),
    ]

    operations = [
        migrations.AlterField(
            model_name="reportingrule",
            name="condition",
            field=models.CharField(choices=CONDITIONS, max_length=20, verbose_name="applies to"),
        ),
        migrations.RunPython(limit_to_serious, migrations.RunPython.noop),
    ]
