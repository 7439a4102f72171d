"""Reporting rules the product ships: China's (active), the FDA's and the EU's (available, switched on by
an administrator where the company reports there)."""

# (code, jurisdiction, name, condition, clock kind, within, unit, position, active, legal basis)
DEFAULT_RULES = [
    ("CN-DEATH", "CN", "死亡病例：立即报告（24 小时内）", "death_domestic", "report", 24, "hours", 0, True,
     "《药品不良反应报告和监测管理办法》第二十条"),
    # after the death rule (same position, a later id: a fatal case is still due in 24 hours), before the 15 days
    ("CN-SUSAR-7", "CN", "致死或危及生命的可疑且非预期严重不良反应（临床研究）：7 日内", "susar_fatal_lt", "report", 7, "days",
     0, True, "《药物临床试验质量管理规范》第四十八条；《药物临床试验期间安全性数据快速报告标准和程序》"),
    # China's GVP (药物警戒质量管理规范, 2021, art. 135): every case from China, the serious ones in 15 days and the others
    # — a new (unexpected) non-serious one too — in 30; of the cases from abroad only the serious ones, in 15 days (a
    # foreign non-serious case goes into the periodic report). The code stays CN-NEW-SERIOUS: it names the rule in
    # clocks, submissions and audit entries since the first release (safety 0017)
    ("CN-NEW-SERIOUS", "CN", "境内严重不良反应：15 日内", "serious_domestic", "report", 15, "days", 1, True,
     "《药物警戒质量管理规范》（2021）第一百三十五条"),
    ("CN-FOREIGN-SERIOUS", "CN", "境外发生的严重不良反应：15 日内", "serious_foreign", "report", 15, "days", 1, True,
     "《药物警戒质量管理规范》（2021）；《个例药品不良反应收集和报告指导原则》"),
    ("CN-OTHER", "CN", "其他不良反应：30 日内", "other_domestic", "report", 30, "days", 2, True,
     "《药品不良反应报告和监测管理办法》第二十条"),
    ("CN-DEATH-INVESTIGATION", "CN", "死亡病例调查报告：15 日内", "death_domestic", "investigation", 15, "days", 0, True,
     "《药品不良反应报告和监测管理办法》第二十一条"),
    ("US-15DAY", "US", "FDA 15-day alert report (serious and unexpected)", "serious_unexpected", "report", 15,
     "days", 0, False, "21 CFR 314.80(c)(1)"),
    ("EU-SERIOUS", "EU", "EU serious ICSR: 15 days", "serious", "report", 15, "days", 0, False,
     "Directive 2001/83/EC Art. 107(3); GVP Module VI"),
    ("EU-NON-SERIOUS", "EU", "EU non-serious ICSR: 90 days", "non_serious", "report", 90, "days", 1, False,
     "Directive 2001/83/EC Art. 107(3); GVP Module VI"),
]  # fmt: skip


def shipped_names() -> tuple[dict, dict]:
    """The rules' names above, translatable (core.builtin): the Chinese ones, and the English ones."""
    from django.utils.translation import gettext_lazy as _

    chinese = {
        "死亡病例：立即报告（24 小时内）": _("Death: report immediately (within 24 hours)"),
        "境内严重不良反应：15 日内": _("Serious reactions in China: within 15 days"),
        # CN-NEW-SERIOUS as shipped before safety 0017, kept where an administrator kept its condition
        "新的、严重的不良反应：15 日内": _("New or serious reactions: within 15 days"),
        "其他不良反应：30 日内": _("Other reactions: within 30 days"),
        "境外发生的严重不良反应：15 日内": _("Serious reactions abroad: within 15 days"),
        "死亡病例调查报告：15 日内": _("Death investigation report: within 15 days"),
        "致死或危及生命的可疑且非预期严重不良反应（临床研究）：7 日内": _(
            "Fatal or life-threatening unexpected serious reactions (clinical study): within 7 days"
        ),
    }
    english = {
        "FDA 15-day alert report (serious and unexpected)": _("FDA 15-day alert report (serious and unexpected)"),
        "EU serious ICSR: 15 days": _("EU serious ICSR: 15 days"),
        "EU non-serious ICSR: 90 days": _("EU non-serious ICSR: 90 days"),
    }
    return chinese, english


def install_rules(ReportingRule, codes=None) -> None:  # noqa: N803 — a model class, historical in migrations
    """The shipped rules not installed yet (`codes`: only those), as shipped; a rule installed before keeps what
    an administrator made of it."""
    for code, jurisdiction, name, condition, kind, within, unit, position, active, basis in DEFAULT_RULES:
        if codes is not None and code not in codes:
            continue
        ReportingRule.objects.get_or_create(
            code=code,
            defaults={"jurisdiction": jurisdiction, "name": name, "condition": condition, "clock_kind": kind,
                      "within": within, "unit": unit, "position": position, "active": active,
                      "legal_basis": basis},
        )  # fmt: skip


# safety 0013: the conditions CN-NEW-SERIOUS and CN-OTHER had before they were limited to cases from China
SHIPPED_BEFORE_0013 = {"CN-NEW-SERIOUS": "new_or_serious", "CN-OTHER": "other"}

# safety 0014: the condition the two death rules had before they were limited to deaths in China
SHIPPED_BEFORE_0014 = {"CN-DEATH": "death", "CN-DEATH-INVESTIGATION": "death"}

# safety 0017: CN-NEW-SERIOUS as shipped before, new (unexpected) or serious in 15 days, and as it is now, serious only
# (GVP 2021 art. 135: a new non-serious case from China is due in 30 days, under CN-OTHER)
SHIPPED_BEFORE_0017 = {
    "CN-NEW-SERIOUS": {"condition": "new_serious_domestic", "name": "新的、严重的不良反应：15 日内",
                       "legal_basis": "《药品不良反应报告和监测管理办法》第二十条"},
}  # fmt: skip
