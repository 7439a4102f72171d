"""Forms of the triage queue, the reconciliation report, the batch trace, the E2B imports and the reporting
rules. They only turn posted text into values; the services validate what is stored."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import builtin
from pharmacrm.core.forms import TypedWholeNumberField
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.servicedesk.forms_routing import FieldErrorsMixin
from pharmacrm.servicedesk.models import Product

from .choices import CaseKind, RuleCondition
from .e2b import schema
from .models import ReportingRule


class ConfirmFlagForm(FieldErrorsMixin, forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind of case"), choices=CaseKind.choices,
        help_text=_("Day 0 is when the company received the ticket or interaction, not today."),
    )  # fmt: skip


class DismissFlagForm(FieldErrorsMixin, forms.Form):
    reason = forms.CharField(
        label=_("Why is this not a safety case?"), max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Required and kept in the audit trail, e.g. “a question about side effects, no patient”."),
    )  # fmt: skip

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("Say why this is not a safety case."))
        return reason


class PeriodForm(forms.Form):
    since = forms.DateField(label=_("Received from"), widget=forms.DateInput(attrs={"type": "date"}))
    # "To" as the other date filters' end (截止日期): the lower-case "to" is a mail's recipient (收件人)
    until = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    MAX_DAYS = 3 * 366

    EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2999, 12, 31)

    def clean(self):
        data = super().clean()
        for name in ("since", "until"):
            if data.get(name) and not self.EARLIEST <= data[name] <= self.LATEST:
                self.add_error(name, _("Enter a date between 2000 and 2999."))
                return data
        since, until = data.get("since"), data.get("until")
        if since and until:
            if until < since:
                self.add_error("until", _("The end of the period is before its start."))
            elif until - since > dt.timedelta(days=self.MAX_DAYS):
                self.add_error("since", _("Choose a period of at most three years."))
        return data


class BatchTraceForm(forms.Form):
    batch = forms.CharField(label=_("Batch / lot"), max_length=40)
    product = PinyinModelChoiceField(
        label=_("Product"), queryset=Product.objects.order_by("brand_name", "strength"), required=False,
        empty_label=_("Any product"),
    )  # fmt: skip

    def clean_batch(self) -> str:
        batch = self.cleaned_data["batch"].strip()
        if not batch:
            raise forms.ValidationError(_("Enter the batch or lot number."))
        return batch


class UploadForm(forms.Form):
    """One E2B(R3) file: an ICSR batch or an acknowledgement."""

    file = forms.FileField(label=_("File"))
    extensions: tuple[str, ...] = (".xml",)

    def __init__(self, *args, accept: str, help_text: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs["accept"] = accept
        self.fields["file"].help_text = help_text

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = (upload.name or "").lower()
        if not name.endswith(self.extensions):
            raise forms.ValidationError(
                _("Choose an E2B(R3) XML file (%(types)s).") % {"types": ", ".join(self.extensions)}
            )
        head = upload.read(512)
        upload.seek(0)
        if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            raise forms.ValidationError(_("This is not an XML file."))
        return upload


class IcsrUploadForm(UploadForm):
    extensions = (".xml",)

    def __init__(self, *args, **kwargs):
        super().__init__(
            *args, accept=".xml,application/xml,text/xml", prefix="icsr",
            help_text=_("An MCCI_IN200100UV01 batch from a licensing partner or distributor, at most %(size)s MB.")
            % {"size": schema.max_mb()}, **kwargs,
        )  # fmt: skip


class AckUploadForm(UploadForm):
    extensions = (".xml", ".ack")

    def __init__(self, *args, **kwargs):
        super().__init__(
            *args, accept=".xml,.ack,application/xml,text/xml", prefix="ack",
            help_text=_("An MCCI_IN200101UV01 acknowledgement from the regulator's gateway, at most %(size)s MB.")
            % {"size": schema.max_mb()}, **kwargs,
        )  # fmt: skip


class RuleForm(FieldErrorsMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    condition = forms.ChoiceField(label=_("Applies to"), choices=RuleCondition.choices)
    within = TypedWholeNumberField(
        label=_("Within"), min_value=1, help_text=_("At most 720 hours or 365 calendar days.")
    )
    unit = forms.ChoiceField(label=_("Unit"), choices=ReportingRule.Unit.choices)
    position = TypedWholeNumberField(
        label=_("Order"), min_value=0, max_value=32767,
        help_text=_("Of a jurisdiction's report rules, the first that applies sets the clock."),
    )  # fmt: skip
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), required=False)
    legal_basis = forms.CharField(label=_("Legal basis"), max_length=200, required=False)
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0, max_value=2**31 - 1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        builtin.note_on_form(self)

    @staticmethod
    def initial_for(rule: ReportingRule) -> dict:
        return {
            "name": rule.name, "condition": rule.condition, "within": rule.within, "unit": rule.unit,
            "position": rule.position, "active": rule.active, "legal_basis": rule.legal_basis,
            "version": rule.version,
        }  # fmt: skip

    def service_data(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "version"}
