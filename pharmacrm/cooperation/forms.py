"""The cooperation pages' forms: they only render and carry the input; services.py checks it and its errors are put
under the fields they name (ServiceErrorsMixin)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import access
from pharmacrm.core.forms import TypedWholeNumberField
from pharmacrm.core.models import Team, User
from pharmacrm.core.ordering import pinyin_sorted
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import BLANK, OnceTokenForm, ServiceErrorsMixin, _limit_picker
from pharmacrm.customers.models import Institution

from .models import AcceptanceResult, AgreementStatus, AgreementType, TaskStatus

DATE = forms.DateInput(attrs={"type": "date"})
AMOUNT = forms.TextInput(attrs={"inputmode": "decimal"})
TEXT = forms.Textarea(attrs={"rows": 3})


class Base(ServiceErrorsMixin, forms.Form):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False  # the service says what is missing, in the same words on the page and the API

    def values(self) -> dict:
        self.is_valid()
        return {k: self.data.get(self.add_prefix(k), "") for k in self.fields if k != "form_token"}


def _people(user) -> list[tuple[str, str]]:
    people = User.objects.filter(is_active=True).order_by("display_name", "username")
    return BLANK + [(str(u.pk), str(u)) for u in people if access.can(u, Cap.MANAGE_COOPERATION)]


class AgreementForm(Base, OnceTokenForm):
    """An agreement: recorded (its one-time token: the form sent twice records one) or edited (its version)."""

    institution = forms.ModelChoiceField(Institution.objects.none(), label=_("Customer"))
    kind = forms.ChoiceField(label=_("Type"), choices=BLANK + AgreementType.choices)
    title = forms.CharField(label=pgettext_lazy("record title", "Title"), max_length=200)
    company_signer = forms.CharField(label=_("Signer for the company"), max_length=100)
    customer_signer = forms.CharField(label=_("Signer for the customer"), max_length=100)
    start_date = forms.CharField(label=_("Start"), widget=DATE)
    end_date = forms.CharField(label=_("End"), widget=DATE)
    amount = forms.CharField(label=_("Amount (yuan)"), widget=AMOUNT, help_text=_("Optional."))
    terms = forms.CharField(label=_("Rights and obligations"), widget=forms.Textarea(attrs={"rows": 5}))
    payment_terms = forms.CharField(label=_("Payment terms"), widget=TEXT)
    owner = forms.ChoiceField(label=_("Responsible person"))
    team = forms.ChoiceField(label=_("Team"))

    def __init__(self, user, *args, signed: bool = False, creating: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["form_token"]
        self.fields["institution"].queryset = access.institutions_for(user, Institution.objects.active())
        chosen = self.data.get("institution") if self.is_bound else self.initial.get("institution")
        _limit_picker(self.fields["institution"], [chosen])
        self.fields["owner"].choices = _people(user)
        self.fields["team"].choices = BLANK + [(str(t.pk), t.shown_name) for t in pinyin_sorted(Team.objects.all())]
        if signed:  # a signed agreement's terms are fixed; only who looks after it may change
            for name in list(self.fields):
                if name not in ("owner", "team"):
                    del self.fields[name]


class SignForm(Base):
    signed_date = forms.CharField(label=_("Signed on"), widget=DATE)
    signed_copy = forms.FileField(label=_("Signed copy"), help_text=_("PDF, PNG or JPEG, at most 20 MB."))


class AmendmentForm(Base, OnceTokenForm):
    """An amendment of a signed agreement's term (补充协议): its one-time token, sent twice it records one; the page's
    `version` of the agreement, a page opened before someone else's change is refused (services.amend_term)."""

    start_date = forms.CharField(label=_("New start date"), widget=DATE)
    end_date = forms.CharField(label=_("New end date"), widget=DATE)
    effective_date = forms.CharField(label=_("Effective from"), widget=DATE,
                                     help_text=_("The day the signed amendment takes effect: today, a day past, or a day ahead while the agreement runs."))  # fmt: skip
    reason = forms.CharField(label=_("Reason for the change"), widget=forms.Textarea(attrs={"rows": 2}))
    signed_copy = forms.FileField(label=_("Signed amendment"),
                                  help_text=_("Optional: the scanned signed amendment, PDF, PNG or JPEG, at most 20 MB."))  # fmt: skip

    def values(self) -> dict:
        return {**{k: v for k, v in super().values().items() if k != "signed_copy"},
                "signed_copy": self.files.get(self.add_prefix("signed_copy"))}  # fmt: skip


class ProjectForm(Base, OnceTokenForm):
    """A project: added on its agreement's page (its one-time token: the form sent twice adds one) or edited (its
    version)."""

    title = forms.CharField(label=pgettext_lazy("record title", "Title"), max_length=200)
    goal = forms.CharField(label=pgettext_lazy("cooperation project", "Goal"), widget=TEXT)
    responsible = forms.ChoiceField(label=_("Responsible person"))
    start_date = forms.CharField(label=_("Start"), widget=DATE)
    end_date = forms.CharField(label=_("End"), widget=DATE)
    budget = forms.CharField(label=_("Budget (yuan)"), widget=AMOUNT, help_text=_("Optional."))

    def __init__(self, user, *args, creating: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["form_token"]
        self.fields["responsible"].choices = _people(user)


class TaskForm(Base, OnceTokenForm):  # its one-time token: sent twice, added once
    title = forms.CharField(label=_("Task"), max_length=200)
    owner = forms.ChoiceField(label=_("Owner"))
    deadline = forms.CharField(label=_("Deadline"), widget=DATE)

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = _people(user)


class CheckForm(Base, OnceTokenForm):  # its one-time token: sent twice, added once
    checked_on = forms.CharField(label=_("Date"), widget=DATE)
    progress = forms.CharField(label=_("Progress (%)"), widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    problems = forms.CharField(label=_("Problems"), widget=TEXT)
    measures = forms.CharField(label=_("Measures"), widget=TEXT)


class AcceptanceForm(Base, OnceTokenForm):  # its one-time token: sent twice, added once
    accepted_on = forms.CharField(label=_("Date"), widget=DATE)
    result = forms.ChoiceField(label=_("Result"), choices=BLANK + AcceptanceResult.choices)
    standards = forms.CharField(label=_("Standards checked"), widget=TEXT,
                                help_text=_("The agreement's acceptance standards and what was found against each."))
    remarks = forms.CharField(label=_("Remarks"), widget=TEXT)
    accepted_by = forms.CharField(label=_("Accepted by"), max_length=100)
    attachment = forms.FileField(label=_("Attachment"), help_text=_("PDF, PNG or JPEG, at most 20 MB; optional."))


class DueForm(Base):
    amount_due = forms.CharField(label=_("Amount due (yuan)"), widget=AMOUNT)
    settlement_due_date = forms.CharField(label=_("Payment due"), widget=DATE)


class PaymentForm(Base, OnceTokenForm):  # its one-time token: sent twice, added once
    paid_on = forms.CharField(label=_("Paid on"), widget=DATE)
    amount = forms.CharField(label=_("Amount (yuan)"), widget=AMOUNT)
    invoice_number = forms.CharField(label=_("Invoice number"), max_length=50)


class FilterForm(forms.Form):
    q = forms.CharField(label=_("Number or title"), required=False)
    customer = forms.CharField(label=_("Customer"), required=False)
    kind = forms.ChoiceField(label=_("Type"), choices=[("", _("Any"))] + AgreementType.choices, required=False)
    status = forms.ChoiceField(label=_("Status"), choices=[("", _("Any"))] + AgreementStatus.choices, required=False)
    owner = forms.ChoiceField(label=_("Responsible person"), required=False)
    expiring = TypedWholeNumberField(label=_("Ending within (days)"), min_value=0, max_value=3650, required=False)

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", _("Anyone"))] + _people(user)[1:]


TASK_STATUS_CHOICES = TaskStatus.choices
