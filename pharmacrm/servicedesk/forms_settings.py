"""Forms of the service-desk settings pages: the ticket category tree, the SLA policies and the escalation
ladder. What is stored is validated by the services (policies.py, escalation.py); these forms only turn the
posted text into values and carry the record's `version` (optimistic locking)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import builtin, wording
from pharmacrm.core.forms import TypedWholeNumberField
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.forms import ANY, OnceTokenForm

from .choices import Complexity, EscalationNotify, LowScore, Priority
from .forms_routing import FieldErrorsMixin
from .models import BusinessCalendar, SlaPolicy, TicketCategory


def category_tree(qs=None) -> list[tuple[TicketCategory, int]]:
    """Every category (active or not) in tree order — each parent followed by its children, siblings by
    position then code — with its depth (0 for a top-level category)."""
    rows = list(qs if qs is not None else TicketCategory.objects.order_by("position", "code"))
    children: dict[int | None, list[TicketCategory]] = {}
    known = {c.pk for c in rows}
    for c in rows:
        children.setdefault(c.parent_id if c.parent_id in known else None, []).append(c)
    out: list[tuple[TicketCategory, int]] = []
    seen: set[int] = set()

    def walk(parent_id, depth):
        for c in children.get(parent_id, []):
            if c.pk in seen:
                continue
            seen.add(c.pk)
            out.append((c, depth))
            walk(c.pk, depth + 1)

    walk(None, 0)
    out += [(c, 0) for c in rows if c.pk not in seen]  # unreachable (a cycle): listed anyway
    return out


class TreeChoiceField(forms.ModelChoiceField):
    """A category choice whose labels are indented by depth."""

    def __init__(self, *args, **kwargs):
        self.depths: dict[int, int] = {}
        super().__init__(*args, **kwargs)

    def label_from_instance(self, obj):
        label = "\u3000" * self.depths.get(obj.pk, 0) + f"{obj.label}{wording.aside(obj.code)}"
        return label if obj.active else _("%(label)s — inactive") % {"label": label}


def _tree_choices(field: TreeChoiceField, exclude: set[int] = frozenset()) -> None:
    tree = [(c, d) for c, d in category_tree() if c.pk not in exclude]
    field.depths = {c.pk: d for c, d in tree}
    order = [c.pk for c, _d in tree]
    field.queryset = TicketCategory.objects.filter(pk__in=order)
    # keep the tree's order in the select
    field.choices = [("", field.empty_label)] + [(c.pk, field.label_from_instance(c)) for c, _d in tree]


class VersionedForm(FieldErrorsMixin, OnceTokenForm):
    """A setting's form: its `version` when it edits one, its one-time token when it creates one (the form sent
    twice creates one record)."""

    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=0)


class CategoryForm(VersionedForm):
    code = forms.SlugField(
        label=_("Code"), max_length=40,
        help_text=_("Letters, digits, hyphens and underscores; tickets, rules and integrations use it. It cannot "
                    "change later."),
    )  # fmt: skip
    name = forms.CharField(label=_("Name"), max_length=100)
    parent = TreeChoiceField(
        label=_("Parent category"), queryset=TicketCategory.objects.none(), required=False,
        empty_label=_("None (top level)"),
    )  # fmt: skip
    default_priority = forms.ChoiceField(
        label=_("Default priority"), choices=Priority.choices, initial=Priority.NORMAL,
        help_text=_("The priority a new ticket of this kind gets; existing tickets keep theirs."),
    )  # fmt: skip
    default_complexity = forms.ChoiceField(
        label=_("Default complexity"), choices=Complexity.choices, initial=Complexity.GENERAL
    )
    safety_relevant = forms.BooleanField(
        label=_("Safety-relevant"), required=False,
        help_text=_("Tickets of this kind are handed to pharmacovigilance."),
    )  # fmt: skip
    complaint = forms.BooleanField(
        label=_("Complaint"), required=False,
        help_text=_("Tickets of this kind are complaints: resolving one needs an assessment of its impact on the "
                    "customer and on the company, and key-account reviews count them."),
    )  # fmt: skip
    low_score_action = forms.ChoiceField(
        label=_("After a poor revisit"), choices=LowScore.choices, initial=LowScore.ACTION,
        help_text=_("What a satisfaction score of 2 or less, or “not solved”, does to a ticket of this kind."),
    )  # fmt: skip
    position = TypedWholeNumberField(
        label=_("Position"), min_value=0, max_value=32767, initial=0,
        help_text=_("Order among the categories with the same parent."),
    )  # fmt: skip
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), required=False, initial=True)

    def __init__(self, *args, category: TicketCategory | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        builtin.note_on_form(self)
        self.category = category
        _tree_choices(self.fields["parent"], {category.pk} if category is not None else set())
        if category is not None:  # the code never changes
            self.fields["code"].disabled = True
            self.fields["code"].help_text = _("The code cannot change; create a new category instead.")

    def service_data(self) -> dict:
        d = {k: v for k, v in self.cleaned_data.items() if k not in ("version", "form_token")}
        if self.category is not None:
            d.pop("code", None)
        return d

    @staticmethod
    def initial_for(c: TicketCategory) -> dict:
        return {
            "code": c.code, "name": c.name, "parent": c.parent_id, "default_priority": c.default_priority,
            "default_complexity": c.default_complexity, "safety_relevant": c.safety_relevant,
            "complaint": c.complaint, "low_score_action": c.low_score_action, "position": c.position, "active": c.active,
            "version": c.version,
        }  # fmt: skip


class PolicyForm(VersionedForm):
    name = forms.CharField(label=_("Name"), max_length=100)
    priority = forms.ChoiceField(label=_("Priority"), choices=ANY + Priority.choices, required=False)
    complexity = forms.ChoiceField(label=_("Complexity"), choices=ANY + Complexity.choices, required=False)
    category = TreeChoiceField(
        label=_("Category"), queryset=TicketCategory.objects.none(), required=False, empty_label=_("Any")
    )
    customer_tier = forms.ChoiceField(label=_("Customer tier"), choices=ANY + Tier.choices, required=False)
    calendar = forms.ModelChoiceField(
        label=_("Calendar"), queryset=BusinessCalendar.objects.none(), empty_label="—",
        help_text=_("The working time the targets are counted in."),
    )  # fmt: skip
    first_response = TypedWholeNumberField(label=_("First response target"), min_value=1)
    first_response_unit = forms.ChoiceField(
        label=_("Unit"), choices=SlaPolicy.Unit.choices, initial=SlaPolicy.Unit.HOURS
    )
    resolution = TypedWholeNumberField(label=_("Resolution target"), min_value=1)
    resolution_unit = forms.ChoiceField(
        label=_("Unit"), choices=SlaPolicy.Unit.choices, initial=SlaPolicy.Unit.DAYS
    )
    position = TypedWholeNumberField(
        label=_("Position"), min_value=0, max_value=32767, initial=100,
        help_text=_("Among equally specific policies, the lowest position wins."),
    )  # fmt: skip
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), required=False, initial=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        builtin.note_on_form(self)
        _tree_choices(self.fields["category"])
        self.fields["calendar"].queryset = BusinessCalendar.objects.order_by("name")

    def service_data(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k not in ("version", "form_token")}

    @staticmethod
    def initial_for(p: SlaPolicy) -> dict:
        return {
            "name": p.name, "priority": p.priority, "complexity": p.complexity, "category": p.category_id,
            "customer_tier": p.customer_tier, "calendar": p.calendar_id, "first_response": p.first_response,
            "first_response_unit": p.first_response_unit, "resolution": p.resolution,
            "resolution_unit": p.resolution_unit, "position": p.position, "active": p.active, "version": p.version,
        }  # fmt: skip


class EscalationRuleForm(VersionedForm):
    level = TypedWholeNumberField(label=_("Level"), min_value=1, max_value=9)
    after_minutes = TypedWholeNumberField(
        label=_("Minutes after the breach"), min_value=0, initial=0,
        help_text=_("Working minutes on the clock's calendar after the deadline was missed."),
    )  # fmt: skip
    notify = forms.ChoiceField(label=_("Notify"), choices=EscalationNotify.choices)
    reassign = forms.BooleanField(
        label=_("Reassign when nobody acted"), required=False,
        help_text=_("Hand the ticket to another agent of its team when the assignee did nothing since the last level."),
    )  # fmt: skip
    cooldown_minutes = TypedWholeNumberField(
        label=_("Cooldown (minutes)"), min_value=0, initial=30,
        help_text=_("A ticket escalates at most once in this time, whichever of its clocks triggers it."),
    )  # fmt: skip
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), required=False, initial=True)

    def service_data(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k not in ("version", "form_token")}

    @staticmethod
    def initial_for(r) -> dict:
        return {
            "level": r.level, "after_minutes": r.after_minutes, "notify": r.notify, "reassign": r.reassign,
            "cooldown_minutes": r.cooldown_minutes, "active": r.active, "version": r.version,
        }  # fmt: skip
