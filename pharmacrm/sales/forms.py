"""Purchases forms: the order-line list's filters (shared by the page, its CSV export and the API)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import access
from pharmacrm.customers.choices import InstitutionType, Tier
from pharmacrm.customers.forms import _limit_picker
from pharmacrm.customers.models import Institution

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class OrderLineFilterForm(forms.Form):
    customer = forms.ModelChoiceField(
        label=_("Customer"), queryset=Institution.objects.none(), required=False, empty_label=_("Any")
    )
    order = forms.CharField(label=_("Order number"), max_length=40, required=False)
    product = forms.CharField(label=_("Product code"), max_length=40, required=False)
    batch = forms.CharField(label=_("Batch / lot number"), max_length=40, required=False)
    date_from = forms.DateField(label=_("Ordered from"), required=False, widget=DATE_INPUT)
    date_to = forms.DateField(label=_("Ordered until"), required=False, widget=DATE_INPUT)
    open = forms.BooleanField(label=_("Open items only"), required=False)
    key = forms.BooleanField(label=_("Key accounts only"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = access.institutions_for(
            user, Institution.objects.exclude(kind=InstitutionType.DEPARTMENT)
        )
        _limit_picker(self.fields["customer"], [self.data.get("customer")])

    def cleaned(self) -> dict:
        """Valid filter values; an invalid one is ignored rather than failing the list."""
        self.is_valid()
        data = dict(getattr(self, "cleaned_data", {}) or {})
        out = {k: v.strip() if isinstance(v, str) else v for k, v in data.items() if v not in (None, "", False)}
        if (self.data.get("customer") or "").strip() and "customer" not in out:
            out["customer"] = -1  # a customer the user may not see (or none): no lines, rather than all of them
        return out


def apply_filters(qs, data: dict):
    """Order lines narrowed by the list's filters (`data` as OrderLineFilterForm.cleaned() gives it)."""
    if data.get("customer") is not None:
        qs = qs.filter(institution_id=getattr(data["customer"], "pk", data["customer"]))
    if data.get("order"):
        qs = qs.filter(order_number=data["order"])
    if data.get("product"):
        qs = qs.filter(product_code=data["product"])
    if data.get("batch"):
        qs = qs.filter(batch_number=data["batch"])
    if data.get("date_from"):
        qs = qs.filter(order_date__gte=data["date_from"])
    if data.get("date_to"):
        qs = qs.filter(order_date__lte=data["date_to"])
    if data.get("open"):
        qs = qs.filter(outstanding_fen__gt=0)
    if data.get("key"):  # priority rights (seed 001 §4): order handling sees key accounts' orders first
        qs = qs.filter(institution__tier=Tier.KEY)
    return qs
