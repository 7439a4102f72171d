"""Sales pipeline forms: the list's filters (shared by the board, the list, its export and the API), an opportunity's
details and its move to another stage. The rules are pipeline.py's; the forms read what is typed."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import access
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import Team
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.core.typed_dates import MONTH_EXAMPLE
from pharmacrm.customers.choices import Source
from pharmacrm.customers.forms import OnceTokenForm, _limit_picker, region_children
from pharmacrm.customers.models import Institution, Person
from pharmacrm.servicedesk.models import Product

from . import pipeline
from .forms import DATE_INPUT
from .models import Opportunity

ANY = [("", _("Any"))]
MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def month_range(raw: str):
    """(first day, first day of the next month) of 2026-11; ValidationError otherwise."""
    import datetime as dt

    m = MONTH.match((raw or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or not 2000 <= int(m.group(1)) <= 2999:
        raise ValidationError(_("Give a month as 2026-11."))
    y, mo = int(m.group(1)), int(m.group(2))
    return dt.date(y, mo, 1), dt.date(y + mo // 12, mo % 12 + 1, 1)


class PipelineFilterForm(forms.Form):
    mine = forms.BooleanField(label=_("Only mine"), required=False)
    owner = forms.ModelChoiceField(label=_("Owner"), queryset=None, required=False, empty_label=_("Any"))
    team = PinyinModelChoiceField(
        label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("Any")
    )
    stage = forms.ChoiceField(label=_("Stage"), choices=ANY + Opportunity.Stage.choices, required=False)
    close_month = forms.CharField(label=_("Close month"), max_length=7, required=False,
                                  widget=forms.TextInput(attrs={"placeholder": MONTH_EXAMPLE, "inputmode": "numeric"}))  # fmt: skip
    product = PinyinModelChoiceField(label=_("Product"), queryset=Product.objects.all(), required=False,
                                     empty_label=_("Any"))  # fmt: skip
    province = forms.ChoiceField(label=_("Province"), choices=(), required=False)
    stale = forms.BooleanField(label=_("Stale only"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        scope = pipeline.scope_for(user)
        self.fields["owner"].queryset = pipeline.owners_offered(user)
        self.fields["team"].queryset = (
            Team.objects.all() if scope.everything else Team.objects.filter(pk__in=scope.team_ids)
        )
        self.fields["province"].choices = ANY + region_children("")

    def clean_close_month(self):
        raw = (self.cleaned_data.get("close_month") or "").strip()
        if raw:
            month_range(raw)
        return raw

    def cleaned(self) -> dict:
        self.is_valid()
        data = dict(getattr(self, "cleaned_data", {}) or {})
        return {k: v for k, v in data.items() if v not in (None, "", False)}

    @property
    def has_errors(self) -> bool:
        return self.is_bound and bool(self.errors)


def apply_filters(qs, data: dict, user, today=None):
    if data.get("mine"):
        qs = qs.filter(owner_id=user.pk)
    if data.get("owner"):
        qs = qs.filter(owner_id=data["owner"].pk)
    if data.get("team"):
        qs = qs.filter(team_id=data["team"].pk)
    if data.get("stage"):
        qs = qs.filter(stage=data["stage"])
    if data.get("close_month"):
        first, after = month_range(data["close_month"])
        qs = qs.filter(close_date__gte=first, close_date__lt=after)
    if data.get("product"):
        qs = qs.filter(product_id=data["product"].pk)
    if data.get("province"):
        qs = qs.filter(institution__province=data["province"])
    if data.get("stale"):
        qs = qs.filter(pipeline.stale_q(today or pipeline.beijing_today()))
    return qs


class AmountField(forms.CharField):
    """Yuan as typed (120000, 120,000.00, ¥120000, full-width digits) → fen."""

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        if len(value) > 40:
            raise ValidationError(_("not a number"))
        return pipeline.amount_fen(value)

    def run_validators(self, value):  # the text's length is checked above; the value is fen
        return None

    def prepare_value(self, value):
        if isinstance(value, int):
            from .models import yuan

            return f"{yuan(value)}"
        return value


class OpportunityForm(OnceTokenForm):
    institution = forms.ModelChoiceField(label=_("Customer"), queryset=Institution.objects.none())
    contact = forms.ModelChoiceField(label=_("Contact person"), queryset=Person.objects.none(), required=False,
                                     empty_label="—")  # fmt: skip
    title = forms.CharField(label=pgettext_lazy("record title", "Title"), max_length=200)
    product = PinyinModelChoiceField(label=_("Product"), queryset=Product.objects.filter(active=True), required=False,
                                     empty_label="—")  # fmt: skip
    amount_fen = AmountField(label=_("Expected amount (¥)"),
                             widget=forms.TextInput(attrs={"inputmode": "decimal"}))  # fmt: skip
    close_date = forms.DateField(label=_("Expected close date"), widget=DATE_INPUT)
    stage = forms.ChoiceField(
        label=_("Stage"), choices=[(s.value, s.label) for s in pipeline.OPEN], required=False
    )
    owner = forms.ModelChoiceField(label=_("Owner"), queryset=None, required=False,
                                   help_text=_("The customer's owner by default."))  # fmt: skip
    team = PinyinModelChoiceField(label=_("Team"), queryset=Team.objects.all(), required=False,
                                  help_text=_("The customer's team by default."))  # fmt: skip
    source = forms.ChoiceField(
        label=_("Information source"), choices=[("", "—")] + Source.choices, required=False
    )
    competitor = forms.CharField(label=_("Competitor"), max_length=100, required=False)
    next_step = forms.CharField(label=_("Next step"), max_length=200, required=False)
    next_step_date = forms.DateField(label=_("Next step date"), required=False, widget=DATE_INPUT)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, user, instance: Opportunity | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.instance = user, instance
        chosen = str(self.data.get("institution") or self.initial.get("institution") or "").strip()
        self.fields["institution"].queryset = access.institutions_for(user, Institution.objects.active())
        _limit_picker(self.fields["institution"], [chosen, str(instance.institution_id) if instance else ""])
        self.fields["institution"].picker = True
        inst_id = chosen if is_id(chosen) else (instance.institution_id if instance else None)
        if inst_id:
            self.fields["contact"].queryset = access.people_for(
                user, Person.objects.active().filter(Q(institution_id=inst_id) | Q(department_id=inst_id))
            )
        self.fields["owner"].queryset = pipeline.owners_offered(user)
        if instance is not None:
            del self.fields["stage"]  # moved on the opportunity's page, with its history
            self.fields["institution"].disabled = True  # an opportunity stays with its customer
            self.initial["institution"] = instance.institution_id

    def save(self) -> Opportunity:
        data = {k: v for k, v in self.cleaned_data.items() if k in pipeline.FIELDS}
        if self.instance is None:
            for key in ("owner", "team", "source"):
                if not data.get(key):
                    data.pop(key, None)
            return pipeline.create(self.user, data, stage=self.cleaned_data.get("stage") or pipeline.S.LEAD)
        data.pop("institution", None)
        return pipeline.update(self.user, self.instance, data, self.cleaned_data.get("version"))


class MoveForm(forms.Form):
    stage = forms.ChoiceField(label=_("Move to"), choices=Opportunity.Stage.choices)
    lost_reason = forms.ChoiceField(label=_("Lost reason"), choices=[("", "—")] + Opportunity.LostReason.choices,
                                    required=False, help_text=_("Required when the opportunity is lost."))  # fmt: skip
    lost_note = forms.CharField(
        label=_("Lost reason details"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    won_on = forms.DateField(
        label=_("Won on"), required=False, widget=DATE_INPUT, help_text=_("Today by default.")
    )
    next_step = forms.CharField(label=_("Next step"), max_length=200, required=False)
    next_step_date = forms.DateField(label=_("Next step date"), required=False, widget=DATE_INPUT)
    version = forms.IntegerField(widget=forms.HiddenInput)
