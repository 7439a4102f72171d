"""Reference data the service desk needs in every database: the default calendars (seed 000 §5.1) — the
business calendar, Monday to Friday 08:30–12:00 and 13:30–17:30 Asia/Shanghai with China's official
holidays and 调休, and 24×7 for urgent tickets such as medication errors. Used by the data migration
(with the historical model) and by tests that empty the database."""

DEFAULT_CALENDARS = [
    {
        "code": "business", "name": "工作日历（中国大陆）", "time_zone": "Asia/Shanghai",
        "windows": [["08:30", "12:00"], ["13:30", "17:30"]], "workdays": [0, 1, 2, 3, 4],
        "official_holidays": True, "always_on": False,
    },
    {
        "code": "always", "name": "全天候（7×24 小时）", "time_zone": "Asia/Shanghai",
        "windows": [], "workdays": [0, 1, 2, 3, 4, 5, 6], "official_holidays": False, "always_on": True,
    },
]  # fmt: skip


# Seed 000 §5.1 (用药错误 high, 药品不良反应 and 产品使用问题 medium, 服务流程 and 客户关系 low) and §3.4. The seed's three
# levels are this desk's urgent, high and low; the questions the seed does not rank (药品信息, 用药指导 …) are normal.
# (code, name, default priority, default complexity, safety-relevant)
DEFAULT_CATEGORIES = [
    ("medication_error", "用药错误", "urgent", "complex", True),
    ("adverse_reaction", "药品不良反应", "high", "complex", True),
    ("product_use", "产品使用问题", "high", "general", False),
    ("service_process", "服务流程问题", "low", "general", False),
    ("relationship", "客户关系问题", "low", "general", False),
    ("drug_info", "药品信息咨询", "normal", "general", False),
    ("usage_guidance", "用药指导", "normal", "general", False),
    ("order_delivery", "订单与配送", "normal", "general", False),
    ("service_attitude", "服务态度", "low", "general", False),
    ("other", "其他", "normal", "general", False),
]

# Issue 3 / seed 000 §3.2 and §5.2: urgent on a 24×7 clock (first response 2 h, resolution 24 h); everything
# else on the business calendar (first response 1 working day; resolution 2 working days, 3 if complex).
# (name, condition field, value, calendar, first response, unit, resolution, unit, position)
DEFAULT_POLICIES = [
    ("紧急（7×24 小时）", "priority", "urgent", "always", 2, "hours", 24, "hours", 10),
    ("复杂问题（工作日）", "complexity", "complex", "business", 1, "days", 3, "days", 20),
    ("一般问题（工作日）", "", "", "business", 1, "days", 2, "days", 100),
]


def shipped_names() -> dict:
    """The names above, translatable (core.builtin): each reader sees them in their language until an
    administrator renames them."""
    from django.utils.translation import gettext_lazy as _
    from django.utils.translation import pgettext_lazy

    return {
        "工作日历（中国大陆）": _("Business calendar (Mainland China)"),
        "全天候（7×24 小时）": _("Around the clock (24×7)"),
        "用药错误": _("Medication error"),
        "药品不良反应": _("Adverse drug reaction"),
        "产品使用问题": _("Product use question"),
        "服务流程问题": _("Service process issue"),
        "客户关系问题": _("Customer relationship issue"),
        "药品信息咨询": _("Drug information enquiry"),
        "用药指导": _("Medication guidance"),
        "订单与配送": _("Orders and delivery"),
        "服务态度": _("Service attitude"),
        "其他": pgettext_lazy("ticket category", "Other"),
        "紧急（7×24 小时）": _("Urgent (24×7)"),
        "复杂问题（工作日）": _("Complex issues (working days)"),
        "一般问题（工作日）": _("General issues (working days)"),
    }


def ensure_calendars(BusinessCalendar) -> None:  # noqa: N803 (a model class, historical or current)
    for values in DEFAULT_CALENDARS:
        BusinessCalendar.objects.get_or_create(code=values["code"], defaults=values)


def ensure_service_defaults(BusinessCalendar, TicketCategory, SlaPolicy) -> None:  # noqa: N803
    """Calendars, the category tree and the default SLA policies, where missing (never overwritten:
    administrators may have changed them)."""
    ensure_calendars(BusinessCalendar)
    for position, (code, name, priority, complexity, safety) in enumerate(DEFAULT_CATEGORIES):
        TicketCategory.objects.get_or_create(
            code=code,
            defaults={"name": name, "default_priority": priority, "default_complexity": complexity,
                      "safety_relevant": safety, "position": position},
        )  # fmt: skip
    for name, field, value, calendar, first, first_unit, resolution, resolution_unit, position in DEFAULT_POLICIES:
        if SlaPolicy.objects.filter(name=name).exists():
            continue
        SlaPolicy.objects.create(
            name=name, calendar=BusinessCalendar.objects.get(code=calendar), first_response=first,
            first_response_unit=first_unit, resolution=resolution, resolution_unit=resolution_unit,
            position=position, **({field: value} if field else {}),
        )  # fmt: skip


# The escalation ladder after a missed deadline (levels after the breach, in working minutes on the
# clock's calendar): the assignee at once; the team lead two working hours later, with a hand-over to
# another agent when nobody acted; the managers a working day later (seed 000 ch.3: 逐级上报).
# (level, after minutes, notify, reassign, cooldown minutes)
DEFAULT_ESCALATION = [
    (1, 0, "assignee", False, 30),
    (2, 120, "team_lead", True, 30),
    (3, 480, "manager", False, 30),
]


def ensure_escalation_rules(EscalationRule) -> None:  # noqa: N803
    """The default ladder, only when no ladder exists (administrators may have changed it)."""
    if EscalationRule.objects.exists():
        return
    for level, after, notify, reassign, cooldown in DEFAULT_ESCALATION:
        EscalationRule.objects.create(level=level, after_minutes=after, notify=notify, reassign=reassign,
                                      cooldown_minutes=cooldown)  # fmt: skip
