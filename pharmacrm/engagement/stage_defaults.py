"""The default stage playbook (seed 000 §6.4, 客户生命周期管理): what to do when a customer enters each lifecycle stage.
Kept light (no models imported) for the data migration that loads it into a new database; managers change it on
/interactions/playbook/. A default's title is translated (its `preset` key); a manager's own title is kept as
written."""

from django.utils.translation import gettext_lazy as _

# preset key → title (msgid in English; zh-Hans and zh-Hant in the catalogues)
PRESET_TITLES = {
    "potential.introduce": _("Introduce the company and its products"),
    "potential.offers": _("Send the current offers and product leaflets"),
    "intent.material": _("Send product material and usage guides"),
    "intent.aftersales": _("Explain the after-sales service"),
    "decision.dedicated": _("Dedicated visit: answer the open questions"),
    "decision.demo": _("Arrange a product demonstration or trial"),
    "active.consult": _("Regular consultation call"),
    "active.guidance": _("Usage guidance visit"),
    "active.aftersales": _("After-sales follow-up"),
    "churned.revisit": _("Revisit: learn why the customer stopped"),
    "churned.survey": _("Satisfaction survey"),
    "churned.winback": _("Win-back visit with an offer"),
}

# (stage, position, kind, preset, working days, who)
DEFAULT_PLAYBOOK = [
    ("potential", 1, "call", "potential.introduce", 3, "owner"),
    ("potential", 2, "material", "potential.offers", 5, "owner"),
    ("intent", 1, "material", "intent.material", 2, "owner"),
    ("intent", 2, "call", "intent.aftersales", 5, "owner"),
    ("decision", 1, "visit", "decision.dedicated", 3, "owner"),
    ("decision", 2, "demo", "decision.demo", 10, "owner"),
    ("active", 1, "call", "active.consult", 10, "owner"),
    ("active", 2, "visit", "active.guidance", 20, "owner"),
    ("active", 3, "call", "active.aftersales", 30, "owner"),
    ("churned", 1, "revisit", "churned.revisit", 3, "owner"),
    ("churned", 2, "survey", "churned.survey", 5, "owner"),
    ("churned", 3, "visit", "churned.winback", 10, "lead"),
]


def ensure_playbook(StageAction) -> int:  # noqa: N803 (a model class, historical or current)
    """The default playbook, in a database that has none."""
    if StageAction.objects.exists():
        return 0
    StageAction.objects.bulk_create([
        StageAction(stage=stage, position=pos, kind=kind, preset=preset, due_days=days, assignee=who)
        for stage, pos, kind, preset, days, who in DEFAULT_PLAYBOOK
    ])  # fmt: skip
    return len(DEFAULT_PLAYBOOK)
