"""Forms of the evaluation pages: the filters of the results and the candidate list, market influence,
the KOL import and the scoring-model editor (whose rules are checked by evaluation.save_model)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import builtin
from pharmacrm.core.forms import TypedNumberField, TypedWholeNumberField
from pharmacrm.core.numbers import AMOUNT_MARKS, PERCENT_MARKS
from pharmacrm.customers.choices import InstitutionType, Tier
from pharmacrm.customers.forms import ANY, OnceTokenForm, ServiceErrorsMixin, region_children

from . import evaluation, scoring
from .choices import Component, Klass, ModelKind

KOL_FILE_MAX_BYTES = 2 * 1024 * 1024

# The measures each kind of model may weigh (scoring.validate_model refuses the others).
KIND_COMPONENTS = {
    ModelKind.EVALUATION: [Component.AMOUNT, Component.FREQUENCY, Component.SATISFACTION, Component.CREDIT],
    ModelKind.CANDIDATE: [Component.AMOUNT, Component.FREQUENCY, Component.COOPERATION, Component.INFLUENCE,
                          Component.GROWTH],
}  # fmt: skip

# Reference values (scoring.DEFAULT_PARAMS) shown on each kind's form: (key, label, help, integer?)
PARAMS = {
    "window_months": (_("Window (months)"), _("The months of purchases each score looks at."), True),
    "amount_reference": (_("Amount reference (yuan)"), _("Purchases in the window that score 100."), False),
    "orders_reference": (_("Orders reference"), _("Orders in the window that score 100."), False),
    "default_satisfaction": (_("Satisfaction without surveys"), _("The score when nobody answered a survey."),
                             False),
    "default_credit": (_("Credit without payment history"), _("The score when nothing was due yet."), False),
    "cooperation_reference_months": (_("Cooperation reference (months)"),
                                     _("Months since the first order that score 100."), False),
    "growth_full_percent": (_("Growth for 100 (%)"), _("Growth over the window before that scores 100; no "
                                                       "growth scores 50."), False),
    "beds_reference": (_("Beds reference"), _("Beds that score 100."), False),
    "specialties_reference": (_("Specialties reference"), _("Key specialties that score 100."), False),
    "kol_reference": (_("KOL reference"), _("Key opinion leaders that score 100."), False),
    # the credit gate (scoring.gated_klass)
    "gate_class": (_("Credit gate: best class"), _("The best class a customer with bad credit may have; off leaves "
                                                   "the class as the score gives it."), False),
    "gate_days": (_("Credit gate: days overdue"), _("Debts overdue more than this many days count."), True),
    "gate_amount": (_("Credit gate: amount (yuan)"), _("The gate applies when such debts are above this amount…"),
                    False),
    "gate_share": (_("Credit gate: share of purchases (%)"),
                   _("…or above this share of the customer's purchases in the window."), False),
}  # fmt: skip
GATE_CHOICES = [("", _("Off")), ("B", "B"), ("C", "C"), ("D", "D")]
KIND_PARAMS = {
    ModelKind.EVALUATION: ["window_months", "amount_reference", "orders_reference", "default_satisfaction",
                           "default_credit", *scoring.GATE_PARAMS],
    ModelKind.CANDIDATE: ["window_months", "amount_reference", "orders_reference", "cooperation_reference_months",
                          "growth_full_percent", "beds_reference", "specialties_reference", "kol_reference"],
}  # fmt: skip
# the unit marks a reference value is typed with (¥1,000,000, 100%), on the page and in the API
PARAM_MARKS = {"amount_reference": AMOUNT_MARKS, "growth_full_percent": PERCENT_MARKS, "gate_amount": AMOUNT_MARKS,
               "gate_share": PERCENT_MARKS}  # fmt: skip
CLASSES = [k.value for k in Klass]
TIER_CHOICES = [("", _("Leave unchanged")), (Tier.NEW, Tier.NEW.label), (Tier.REGULAR, Tier.REGULAR.label),
                (Tier.VIP, Tier.VIP.label)]  # fmt: skip


def json_number(value):
    """A form's Decimal as a JSON number (an int when it is whole)."""
    if value is None:
        return None
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() else float(value)


def _provinces() -> list[tuple[str, str]]:
    return region_children("")


class _Filters(forms.Form):
    def cleaned(self) -> dict:
        """Valid filter values; an invalid one is not applied (rather than failing the list) and its message
        is shown at its field (the page says that it is not applied)."""
        self.is_valid()
        return {k: v for k, v in (getattr(self, "cleaned_data", {}) or {}).items() if k not in self.errors}


class PeriodField(forms.ChoiceField):
    """A period among those with results, read as the API reads it (evaluation.period_of): ?period=2026h2 or
    ２０２６Ｈ２ is 2026H2 — the page refused what the API took ("Select a valid choice") and showed another period.
    What is no period at all is named as the API names it."""

    def to_python(self, value):
        value = super().to_python(value)
        return (evaluation.period_of(value) or value) if value else value

    def validate(self, value):
        if value and evaluation.period_of(value) is None:
            raise forms.ValidationError(evaluation.period_wrong_message(), code="invalid_choice")
        super().validate(value)


class EvaluationFilterForm(_Filters):
    period = PeriodField(label=_("Period"), required=False)
    klass = forms.ChoiceField(label=_("Class"), required=False, choices=ANY + Klass.choices)

    def __init__(self, *args, periods: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["period"].choices = [(p, p) for p in periods]


class CandidateFilterForm(_Filters):
    period = PeriodField(label=_("Period"), required=False)
    province = forms.ChoiceField(label=_("Province"), required=False)
    kind = forms.ChoiceField(label=_("Type"), required=False, choices=ANY + InstitutionType.choices)
    min_score = TypedNumberField(label=_("Minimum score"), required=False, min_value=0, max_value=100,
                                 max_digits=5, decimal_places=2)  # fmt: skip
    only = forms.BooleanField(label=_("Only candidates (scoring at least the threshold)"), required=False)

    def __init__(self, *args, periods: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["period"].choices = [(p, p) for p in periods]
        self.fields["province"].choices = ANY + _provinces()
        score = self.fields["min_score"]
        message = _("%(name)s must be a score from 0 to 100.") % {"name": score.label}
        score.error_messages.update({"invalid": message, "min_value": message, "max_value": message})


class InfluenceForm(ServiceErrorsMixin, forms.Form):
    kol_count = TypedWholeNumberField(label=_("Key opinion leaders"), required=False, min_value=0,
                                      max_value=evaluation.KOL_MAX,
                                   help_text=_("At least as many as the names listed; leave empty to count the "
                                               "names."))  # fmt: skip
    kol_names = forms.CharField(label=_("Key opinion leaders (names)"), required=False, max_length=2000,
                                widget=forms.Textarea(attrs={"rows": 2}),
                                help_text=_("Names separated by commas."))  # fmt: skip
    assessment = TypedWholeNumberField(
        label=_("Marketing's assessment (0–100)"), required=False, min_value=0, max_value=100,
        help_text=_("Leave empty to score influence from grade, beds, specialties and KOLs only."),
    )  # fmt: skip
    notes = forms.CharField(label=_("Notes"), required=False, max_length=5000,
                            widget=forms.Textarea(attrs={"rows": 2}))  # fmt: skip
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        message = evaluation.kol_count_message()
        self.fields["kol_count"].error_messages.update({"invalid": message, "min_value": message, "max_value": message})

    def clean(self):
        """The number of KOLs at least the names listed, or counted from them when left empty (the rule of
        evaluation.check_kols, which the KOL import applies too)."""
        data = super().clean()
        if "kol_count" in self.errors or "kol_names" in self.errors:
            return data
        data["kol_count"], errors = evaluation.check_kols(data.get("kol_count"), data.get("kol_names"))
        for name, messages in errors.items():
            for m in messages:
                self.add_error(name, m)
        return data


class KolImportForm(forms.Form):
    file = forms.FileField(
        label=_("KOL file (CSV)"),
        help_text=_("Columns 统一社会信用代码 or 客户外部编号, KOL人数, KOL姓名, 市场影响力评分, 备注; at most 2 MB."),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > KOL_FILE_MAX_BYTES:
            raise forms.ValidationError(
                _("The file is larger than 2 MB: split it, or import it in several parts."), code="too_large"
            )
        return upload


class RunForm(forms.Form):
    kind = forms.ChoiceField(choices=ModelKind.choices)


class ScoringModelForm(OnceTokenForm):  # its one-time token: saved twice, one new version
    """One kind's model: a weight per measure, the reference values, the thresholds and (evaluation) the
    result of each class. Rules across fields are the service's (errors come back per group)."""

    GROUPS = ("weights", "params", "thresholds", "benefits")

    name = forms.CharField(label=_("Name"), max_length=100)
    version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.group_errors: dict[str, list[str]] = {}
        for c in KIND_COMPONENTS[kind]:
            # shares of 100 %: 35% is a weight of 35
            self.fields[f"weight_{c.value}"] = TypedNumberField(label=c.label, max_digits=8, decimal_places=2,
                                                                marks=PERCENT_MARKS)  # fmt: skip
        for key in KIND_PARAMS[kind]:
            label, help_text, whole = PARAMS[key]
            if key == "gate_class":
                self.fields["param_gate_class"] = forms.ChoiceField(label=label, help_text=help_text,
                                                                    choices=GATE_CHOICES, required=False)  # fmt: skip
                continue
            field_class = TypedWholeNumberField if whole else TypedNumberField
            extra = {"min_value": 1, "max_value": 120} if whole else {"max_digits": 14, "decimal_places": 2}
            if key == "gate_days":
                extra = {"min_value": 1, "max_value": 3650}
            if key in scoring.GATE_PARAMS:  # left empty (or not sent): as it is
                extra["required"] = False
            self.fields[f"param_{key}"] = field_class(label=label, help_text=help_text,
                                                      marks=PARAM_MARKS.get(key, ()), **extra)  # fmt: skip
        if "param_gate_days" in self.fields:
            days = self.fields["param_gate_days"]
            message = _("%(name)s must be a whole number of days from 1 to 3650.") % {"name": days.label}
            days.error_messages.update({"min_value": message, "max_value": message})
        if kind == ModelKind.EVALUATION:
            for k in ("A", "B", "C"):
                self.fields[f"threshold_{k}"] = TypedNumberField(
                    label=_("Lowest score of class %(klass)s") % {"klass": k}, max_digits=6, decimal_places=2
                )
            for k in CLASSES:
                self.fields[f"tier_{k}"] = forms.ChoiceField(label=_("Tier"), choices=TIER_CHOICES, required=False)
                self.fields[f"discount_{k}"] = TypedNumberField(
                    label=_("Discount level (%)"), required=False, max_digits=5, decimal_places=2, marks=PERCENT_MARKS
                )
                self.fields[f"programme_{k}"] = forms.CharField(label=_("Reward programme"), required=False,
                                                                max_length=100)  # fmt: skip
                self.fields[f"action_{k}"] = forms.BooleanField(label=_("Open an improvement action"),
                                                                required=False)  # fmt: skip
            self.fields["apply_tiers"] = forms.BooleanField(label=_("Change tiers from the class"), required=False)
        else:
            self.fields["threshold_candidate"] = TypedNumberField(
                label=_("Lowest score of a candidate"), max_digits=6, decimal_places=2
            )
        builtin.note_on_form(self)  # a default model's name is read in each reader's language

    def clean(self):
        """Reference values checked at their fields, named by their labels (the service's messages name the
        JSON keys: "amount_reference must be a number above zero")."""
        data = super().clean()
        gate = {key: data[f"param_{key}"] for key in scoring.GATE_PARAMS
                if f"param_{key}" in data and data[f"param_{key}"] is not None}  # fmt: skip
        if gate:
            for key, messages in scoring.gate_errors(gate).items():
                if key != "gate_days" and f"param_{key}" not in self.errors:  # days: the field's own min and max
                    for m in messages:
                        self.add_error(f"param_{key}", m)
        for key in KIND_PARAMS[self.kind]:
            name, value = f"param_{key}", data.get(f"param_{key}")
            if value is None or key == "window_months" or key in scoring.GATE_PARAMS:
                continue
            label = PARAMS[key][0]
            if key in ("default_satisfaction", "default_credit"):
                if not 0 <= value <= 100:
                    self.add_error(name, _("%(name)s must be a score from 0 to 100.") % {"name": label})
            elif value <= 0:
                self.add_error(name, _("%(name)s must be a number above zero.") % {"name": label})
        return data

    @staticmethod
    def initial_from(model) -> dict:
        initial = {"name": model.name, "version": model.version, "apply_tiers": model.apply_tiers}
        params = {**scoring.DEFAULT_PARAMS, **scoring.GATE_OFF, **(model.params or {})}
        for c in Component:
            initial[f"weight_{c.value}"] = model.weights.get(c.value, 0)
        for key in PARAMS:
            initial[f"param_{key}"] = params.get(key)
        for k, v in (model.thresholds or {}).items():
            initial[f"threshold_{k}"] = v
        for k in CLASSES:
            benefit = (model.benefits or {}).get(k) or {}
            initial[f"tier_{k}"] = benefit.get("tier") or ""
            initial[f"discount_{k}"] = benefit.get("discount")
            initial[f"programme_{k}"] = benefit.get("programme") or ""
            initial[f"action_{k}"] = bool(benefit.get("action"))
        return initial

    def weight_fields(self):
        return [self[f"weight_{c.value}"] for c in KIND_COMPONENTS[self.kind]]

    def param_fields(self):
        return [self[f"param_{key}"] for key in KIND_PARAMS[self.kind] if key not in scoring.GATE_PARAMS]

    def gate_fields(self):
        """The credit gate's settings (the customer evaluation's only), in a group of their own."""
        return [self[f"param_{key}"] for key in scoring.GATE_PARAMS if f"param_{key}" in self.fields]

    def threshold_fields(self):
        keys = ("A", "B", "C") if self.kind == ModelKind.EVALUATION else ("candidate",)
        return [self[f"threshold_{k}"] for k in keys]

    def benefit_rows(self):
        if self.kind != ModelKind.EVALUATION:
            return []
        return [(k, self[f"tier_{k}"], self[f"discount_{k}"], self[f"programme_{k}"], self[f"action_{k}"])
                for k in CLASSES]  # fmt: skip

    def service_data(self) -> dict:
        d = self.cleaned_data
        data = {
            "name": d["name"],
            "weights": {c.value: json_number(d[f"weight_{c.value}"]) for c in KIND_COMPONENTS[self.kind]},
            "params": {key: json_number(d[f"param_{key}"]) for key in KIND_PARAMS[self.kind]
                       if key not in scoring.GATE_PARAMS},
        }
        if self.kind == ModelKind.EVALUATION:
            # the credit gate: what was sent (a gate setting left empty, or a form without them, keeps it as it is)
            for key in scoring.GATE_PARAMS:
                if f"param_{key}" in self.data and d.get(f"param_{key}") is not None:
                    value = d[f"param_{key}"]
                    data["params"][key] = value if key == "gate_class" else json_number(value)
            data["thresholds"] = {k: json_number(d[f"threshold_{k}"]) for k in ("A", "B", "C")}
            data["benefits"] = {
                k: {"tier": d[f"tier_{k}"], "discount": json_number(d[f"discount_{k}"]) or 0,
                    "programme": d[f"programme_{k}"].strip(), "action": bool(d[f"action_{k}"])}
                for k in CLASSES
            }  # fmt: skip
            data["apply_tiers"] = bool(d.get("apply_tiers"))
        else:
            data["thresholds"] = {"candidate": json_number(d["threshold_candidate"])}
        return data

    def add_service_errors(self, error) -> None:
        """The service names a group (weights, params, thresholds, benefits): shown above that group."""
        if hasattr(error, "error_dict"):
            for key, errors in error.error_dict.items():
                messages = [m for e in errors for m in e.messages]
                if key in self.GROUPS:
                    self.group_errors.setdefault(key, []).extend(messages)
                else:
                    for m in messages:
                        self.add_error(None, m)
        else:
            for m in error.messages:
                self.add_error(None, m)
