"""Purchases forms: the order-line list's filters (shared by the page, its CSV export and the API)."""

from __future__ import annotations

import json

from django import forms
from django.db import connection
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import access
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
        self.fields["customer"].queryset = access.institutions_for(
            user, Institution.objects.exclude(kind=InstitutionType.DEPARTMENT)
        )
        _limit_picker(self.fields["customer"], [self.data.get("customer")])

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


_BYTE_ORDER: dict[str, bool] = {}  # database → whether it compares text by code point
_CODE_POINT_COLLATIONS = {"C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"}


def _byte_ordered() -> bool:
    """Whether the database sorts text by code point, so that "begins with P" is the index range [P, P⁺):
    SQLite's BINARY collation always; PostgreSQL when the database's collation is C, POSIX or C.UTF-8 (asked
    once per process). Under a language's collation a range is not a prefix, and LIKE alone is used."""
    if connection.vendor == "sqlite":
        return True
    if connection.vendor != "postgresql":
        return False
    key = f"{connection.alias}:{connection.settings_dict.get('NAME')}"
    if key not in _BYTE_ORDER:
        with connection.cursor() as cursor:  # every column of pg_database, whatever the server's version
            cursor.execute("SELECT to_jsonb(d) FROM pg_database d WHERE d.datname = current_database()")
            row = cursor.fetchone()
        info = row[0] if row else {}
        info = json.loads(info) if isinstance(info, str) else (info or {})
        provider = info.get("datlocprovider", "c")  # c: libc, b: builtin (PostgreSQL 17), i: ICU
        _BYTE_ORDER[key] = provider in ("c", "b") and info.get("datcollate") in _CODE_POINT_COLLATIONS
    return _BYTE_ORDER[key]


def _starts_with(field: str, prefix: str) -> Q:
    """Values of `field` that begin with `prefix` exactly as typed (case included), index-friendly: where the
    database sorts by code point (SQLite; PostgreSQL with a C collation, as ours are) the prefix is also
    given as a range, which walks the (order number, line) index — a LIKE 'prefix%' alone is a full scan
    there (SQLite's LIKE ignores case, PostgreSQL's uses no index under C.UTF-8). The LIKE keeps the match
    exact and case-sensitive."""
    cond = Q(**{f"{field}__startswith": prefix})
    if ord(prefix[-1]) < 0x10FFFF and _byte_ordered():
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        cond &= Q(**{f"{field}__gte": prefix, f"{field}__lt": after})
    return cond


def _case_variants(value: str) -> list[str]:
    """What a typed code may be stored as: ERP numbers and codes are imported as the ERP writes them, which is
    upper case ("XS2026-0301", "YP1001"), so "xs2026-0301" is looked up as "XS2026-0301" — and as typed too,
    for the rare ERP that writes lower case."""
    return list(dict.fromkeys([value.upper(), value]))


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
