"""The licence form: it only renders and carries the input; services.clean checks it and its errors go under the
fields they name, in the same words as the API's."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from pharmacrm.customers.forms import BLANK, OnceTokenForm, ServiceErrorsMixin

from .models import LicenceKind, Scope

DATE = forms.DateInput(attrs={"type": "date"})


class LicenceForm(ServiceErrorsMixin, OnceTokenForm):  # its one-time token: the new form sent twice records one
    kind = forms.ChoiceField(label=_("Type"), choices=BLANK + LicenceKind.choices)
    number = forms.CharField(label=_("Licence number"),
                             help_text=_("A business licence: the unified social credit code. A drug trading licence: "
                                         "e.g. 京AA1234567."))  # fmt: skip
    scope = forms.MultipleChoiceField(label=_("Business scope"), choices=Scope.choices,
                                      widget=forms.CheckboxSelectMultiple,
                                      help_text=_("The categories the licence lists (经营范围)."))  # fmt: skip
    scope_note = forms.CharField(label=_("Business scope, as printed"), widget=forms.Textarea(attrs={"rows": 2}))
    issuer = forms.CharField(label=_("Issued by"))
    issued_on = forms.CharField(label=_("Issued on"), widget=DATE)
    valid_until = forms.CharField(label=_("Valid until"), widget=DATE,
                                  help_text=_("Leave empty for a long-term business licence (长期)."))  # fmt: skip
    scan = forms.FileField(label=_("Scanned copy"), widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg"}),
                           help_text=_("The stamped copy of the licence (加盖公章的复印件): PDF, PNG or JPEG, at most 20 MB. "
                                       "A new one replaces the copy kept."))  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False  # services.clean says what is missing

    def values(self) -> dict:
        self.is_valid()
        data = {k: self.data.get(k, "") for k in self.fields if k not in ("scope", "scan", "form_token")}
        data["scope"] = self.data.getlist("scope") if hasattr(self.data, "getlist") else self.data.get("scope", [])
        return data

    def scan_upload(self):
        """The uploaded scanned copy, or None (services.keep_scan checks it)."""
        return self.files.get("scan") if self.files else None


class FilterForm(forms.Form):
    STATUS = [("", _("All")), ("attention", _("Needs attention")), ("expired", _("Expired")),
              ("expiring", _("Expiring soon")), ("unverified", _("Not verified yet"))]  # fmt: skip
    q = forms.CharField(label=_("Customer or number"), required=False)
    kind = forms.ChoiceField(label=_("Type"), choices=[("", _("All"))] + LicenceKind.choices, required=False)
    status = forms.ChoiceField(label=_("Status"), choices=STATUS, required=False)
    mine = forms.BooleanField(label=_("My customers only"), required=False)


class SalesWindowForm(ServiceErrorsMixin, forms.Form):
    """The period of the sales-while-unqualified review; services.clean_sales_window checks it."""

    start = forms.CharField(label=_("From"), required=False, widget=DATE)
    end = forms.CharField(label=_("To"), required=False, widget=DATE)
    mine = forms.BooleanField(label=_("My customers only"), required=False)
