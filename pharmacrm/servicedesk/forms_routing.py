"""Forms of the assignment settings (rules, agent profiles), the on-duty switch and the supervisor board's
team filter. Validation of what is stored stays in routing.py (the services)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.forms import IdsChoiceField, PinyinIdsChoiceField, TypedWholeNumberField
from pharmacrm.core.models import Region, Team
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.forms import ANY, OnceTokenForm, ServiceErrorsMixin

from .choices import AssignMethod
from .forms import categories
from .models import Product


class FieldErrorsMixin(ServiceErrorsMixin):
    """A service's errors under the fields this form has (the customers' mixin moves `region` elsewhere)."""

    def add_service_errors(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            return super().add_service_errors(error)
        for field, errors in error.error_dict.items():
            for e in errors:
                self.add_error(field if field in self.fields else None, e)


class RuleForm(FieldErrorsMixin, OnceTokenForm):  # its one-time token: the new form sent twice creates one rule
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)  # the one loaded: a stale save is refused
    name = forms.CharField(label=_("Name"), max_length=100)
    team = PinyinModelChoiceField(label=_("Team"), queryset=Team.objects.none(), empty_label="—")
    method = forms.ChoiceField(
        label=_("Method"), choices=AssignMethod.choices, initial=AssignMethod.LEAST_LOADED,
        help_text=_("How an agent of the team is chosen: in turn, the one with the fewest open tickets, or nobody "
                    "(the ticket waits in the team queue)."),
    )  # fmt: skip
    category = forms.ModelChoiceField(
        label=_("Category"), queryset=categories(), required=False, empty_label=_("Any"),
        help_text=_("A parent category also covers its sub-categories."),
    )  # fmt: skip
    product = PinyinModelChoiceField(
        label=_("Product"), queryset=Product.objects.none(), required=False, empty_label=_("Any")
    )
    customer_tier = forms.ChoiceField(
        label=_("Customer tier"), choices=ANY + Tier.choices, required=False,
        help_text=_("Matches when the person or their institution has this tier."),
    )  # fmt: skip
    region = forms.CharField(
        label=_("Region code"), required=False, max_length=6,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "pattern": "[0-9]{6}", "placeholder": "110000"}),
        help_text=_("A province, city or district code (GB/T 2260), e.g. 110000 for Beijing; the customer must lie "
                    "inside it. Empty for anywhere."),
    )  # fmt: skip
    position = TypedWholeNumberField(
        label=_("Position"), min_value=0, max_value=32767, required=False,
        help_text=_("Rules are tried in this order; the first that matches wins."),
    )  # fmt: skip
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), required=False, initial=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.order_by("name")
        self.fields["category"].queryset = categories()
        self.fields["product"].queryset = Product.objects.filter(active=True).order_by(
            "brand_name", "strength"
        )

    def clean_region(self):
        code = (self.cleaned_data.get("region") or "").strip()
        if not code:
            return None
        region = Region.objects.filter(code=code).first() if code.isdecimal() and len(code) == 6 else None
        if region is None:
            raise ValidationError(_("“%(code)s” is not a known region code."), params={"code": code[:6]})
        return region

    def service_data(self) -> dict:
        d = dict(self.cleaned_data)
        d.pop("form_token", None)
        if d.get("position") is None:
            d.pop("position", None)
        return d

    @staticmethod
    def initial_for(rule) -> dict:
        return {
            "name": rule.name, "team": rule.team_id, "method": rule.method, "category": rule.category_id,
            "product": rule.product_id, "customer_tier": rule.customer_tier, "region": rule.region_id or "",
            "position": rule.position, "active": rule.active, "version": rule.version,
        }  # fmt: skip


class ProfileForm(FieldErrorsMixin, forms.Form):
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    on_duty = forms.BooleanField(label=_("On duty"), required=False, initial=True)
    max_open = TypedWholeNumberField(
        label=_("Most open tickets"), min_value=1, max_value=32767, initial=40,
        help_text=_("No new tickets are assigned above this load."),
    )  # fmt: skip
    skills = IdsChoiceField(
        label=_("Skills"), queryset=categories(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("Categories this person handles; none means every category."),
    )  # fmt: skip
    products = PinyinIdsChoiceField(
        label=_("Products"), queryset=Product.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("Products this person knows; none means every product."),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["skills"].queryset = categories()
        self.fields["products"].queryset = Product.objects.filter(active=True).order_by(
            "brand_name", "strength"
        )


class OnDutyForm(forms.Form):
    on_duty = forms.BooleanField(required=False)
    next = forms.CharField(required=False, max_length=500)


class BoardFilterForm(forms.Form):
    team = PinyinModelChoiceField(
        label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("All")
    )

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
