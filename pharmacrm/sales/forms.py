"""Purchases forms: the order-line list's filters (shared by the page, its CSV export and the API)."""

from __future__ import annotations

import unicodedata

from django import forms
from django.db import connection
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import access
from pharmacrm.core.ids import is_id
from pharmacrm.customers.choices import InstitutionType
from pharmacrm.customers.forms import _limit_picker
from pharmacrm.customers.models import Institution

from . import services

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class OrderLineFilterForm(forms.Form):
    customer = forms.ModelChoiceField(
        label=_("Customer"), queryset=Institution.objects.none(), required=False, empty_label=_("Any")
    )
    order = forms.CharField(
        label=_("Order number"), max_length=40, required=False,
        help_text=_("The whole number or its beginning; upper or lower case."),
    )  # fmt: skip
    product = forms.CharField(label=_("Product code"), max_length=40, required=False)
    batch = forms.CharField(label=_("Batch / lot number"), max_length=40, required=False)
    date_from = forms.DateField(label=_("Ordered from"), required=False, widget=DATE_INPUT)
    date_to = forms.DateField(label=_("Ordered until"), required=False, widget=DATE_INPUT)
    open = forms.BooleanField(label=_("Open items only"), required=False)
    key = forms.BooleanField(label=_("Key accounts only"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # the picker offers hospitals, pharmacies …; a department chosen by its id (the order lines booked to it, as
        # its Customer 360 page links them) is accepted too, offered as 医院 › 科室
        chosen = str(self.data.get("customer") or "").strip()
        offered = ~Q(kind=InstitutionType.DEPARTMENT)
        if is_id(chosen):
            offered |= Q(pk=int(chosen))
        self.fields["customer"].queryset = access.institutions_for(user, Institution.objects.filter(offered))
        _limit_picker(self.fields["customer"], [chosen])

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("This date lies before “%(field)s”.") % {"field": self.fields["date_from"].label})
        return data

    def cleaned(self) -> dict:
        """The valid filter values. An invalid one is not ignored: it stays in `errors`, shown under its field,
        and the page lists nothing until it is corrected (`has_errors`)."""
        self.is_valid()
        data = dict(getattr(self, "cleaned_data", {}) or {})
        out = {k: v.strip() if isinstance(v, str) else v for k, v in data.items() if v not in (None, "", False)}
        if (self.data.get("customer") or "").strip() and "customer" not in out:
            out["customer"] = -1  # a customer the user may not see (or none): no lines, rather than all of them
        return out

    @property
    def has_errors(self) -> bool:
        return self.is_bound and bool(self.errors)


def _starts_with(field: str, prefix: str) -> Q:
    """Values of `field` (a code column: SQLite's BINARY or PostgreSQL's COLLATE "C", see CodeCharField) that
    begin with `prefix` exactly as typed (case included), index-friendly: the prefix is also given as the
    range [prefix, prefix⁺), which walks the (order number, line) index — a LIKE 'prefix%' alone is a full
    scan on SQLite, whose LIKE ignores case. The LIKE keeps the match exact and case-sensitive."""
    cond = Q(**{f"{field}__startswith": prefix})
    if ord(prefix[-1]) < 0x10FFFF and connection.vendor in ("sqlite", "postgresql"):
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        cond &= Q(**{f"{field}__gte": prefix, f"{field}__lt": after})
    return cond


def _case_variants(value: str) -> list[str]:
    """What a typed code may be stored as: ERP numbers and codes are imported as the ERP writes them, which is
    upper case ("XS2026-0301", "YP1001"), so "xs2026-0301" is looked up as "XS2026-0301" — and as typed too,
    for the rare ERP that writes lower case. Typed in an input method's full-width mode (ＸＳ２０２６－０３), it is
    the ordinary characters the ERP wrote, as the safety batch trace takes a batch."""
    plain = unicodedata.normalize("NFKC", value)
    return list(dict.fromkeys([plain.upper(), plain, value.upper(), value]))


def apply_filters(qs, data: dict):
    """Order lines narrowed by the list's filters (`data` as OrderLineFilterForm.cleaned() gives it). The order
    number matches a prefix in any letter case ("xs2026-03" finds XS2026-0301 …); product and batch match whole
    codes in any letter case."""
    if data.get("customer") is not None:
        qs = qs.filter(institution_id=getattr(data["customer"], "pk", data["customer"]))
    if data.get("order"):
        match = Q()
        for variant in _case_variants(data["order"]):
            match |= _starts_with("order_number", variant)
        qs = qs.filter(match)
    if data.get("product"):
        qs = qs.filter(product_code__in=_case_variants(data["product"]))
    if data.get("batch"):
        qs = qs.filter(batch_number__in=_case_variants(data["batch"]))
    if data.get("date_from"):
        qs = qs.filter(order_date__gte=data["date_from"])
    if data.get("date_to"):
        qs = qs.filter(order_date__lte=data["date_to"])
    if data.get("open"):
        qs = qs.filter(outstanding_fen__gt=0)
    if data.get("key"):  # priority rights (seed 001 §4): order handling sees key accounts' orders first
        qs = qs.filter(institution_id__in=services.key_account_institutions().values("id"))
    return qs


class SplitOrderFilterForm(OrderLineFilterForm):
    """The split orders page's filters (and its API's): a customer the order names, the order number's beginning,
    an order date of its lines within a range. The order-line list's fields, less those about one line."""

    product = batch = open = key = None


class SplitRepairForm(forms.Form):
    """What the split orders page's repair sends: the order, and the customer and order date it keeps (the parts the
    page offered; by default those of the line imported last)."""

    order = forms.CharField(label=_("Order number"), max_length=40)
    customer = forms.IntegerField(label=_("Customer"), required=False, min_value=1, max_value=2**63 - 1)
    order_date = forms.DateField(label=_("Order date"), required=False)
