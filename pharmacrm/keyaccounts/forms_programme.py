"""Forms of the key-account programme pages: proposals, opinions, signed decisions, the service team, plan
items, agreements, meetings, evaluations, measures and trials. They only parse input; the services decide."""

from __future__ import annotations

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.forms import TypedWholeNumberField
from pharmacrm.core.models import User
from pharmacrm.core.numbers import PERCENT_MARKS
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.customers.forms import OnceTokenForm

from .choices import Department, ItemStatus, MeetingCadence, Opinion, PlanArea, TeamRole, TrialStatus
from .models import TeamMember
from .services import TEAM_ROLE_NEEDS, StaleVersion

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
MEETING_ACTIONS = 3  # empty action rows on the meeting form


class ServiceErrorsMixin:
    conflict = False  # the service refused a stale version (services.StaleVersion): the page answers 409

    def add_service_errors(self, error) -> None:
        """Put a service's ValidationError under the visible fields it names; the rest (a stale version, a
        rule about the whole record) above the form."""
        self.conflict = self.conflict or isinstance(error, StaleVersion)
        if hasattr(error, "error_dict"):
            for field, errors in error.error_dict.items():
                visible = field in self.fields and not self.fields[field].widget.is_hidden
                for e in errors:
                    self.add_error(field if visible else None, e)
        else:
            for e in error.error_list:
                self.add_error(None, e)


def _text(label, max_length: int = 20000, rows: int = 3, required: bool = True) -> forms.CharField:
    return forms.CharField(label=label, max_length=max_length, required=required,
                           widget=forms.Textarea(attrs={"rows": rows}))  # fmt: skip


class VersionMixin(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)


class SignatureMixin(forms.Form):
    otp_code = forms.CharField(
        label=_("One-time code"), max_length=10,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
        help_text=_("Your electronic signature: enter the current code from your authenticator app."),
    )  # fmt: skip


class ProposalForm(ServiceErrorsMixin, OnceTokenForm):  # its one-time token: the form sent twice proposes once
    reason = _text(_("Reason"), rows=5)


class OpinionForm(ServiceErrorsMixin, forms.Form):
    department = forms.ChoiceField(label=pgettext_lazy("company", "Department"), choices=Department.choices)
    opinion = forms.ChoiceField(label=_("Opinion"), choices=Opinion.choices, widget=forms.RadioSelect)
    comment = _text(_("Comment"), required=False)

    def __init__(self, *args, departments: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [
            (v, label) for v, label in Department.choices if v in departments
        ]


class SubmitForm(ServiceErrorsMixin, VersionMixin):
    pass


class DecisionForm(ServiceErrorsMixin, VersionMixin, SignatureMixin):
    decision = forms.ChoiceField(
        label=pgettext_lazy("approval", "Decision"), widget=forms.RadioSelect,
        choices=[("approve", _("Approve")), ("reject", _("Reject"))],
    )  # fmt: skip
    comment = _text(_("Comment"), required=False)
    field_order = ["decision", "comment", "otp_code", "version"]

    @property
    def approve(self) -> bool:
        return self.cleaned_data.get("decision") == "approve"


def eligible_users(role: str | None = None):
    """Active users holding a system role some team role needs (or the one `role` needs)."""
    needs = TEAM_ROLE_NEEDS[TeamRole(role)] if role else set().union(*TEAM_ROLE_NEEDS.values())
    return (
        User.objects.filter(is_active=True, groups__name__in=[r.value for r in needs])
        .distinct()
        .order_by("display_name", "username")
    )


class MemberForm(ServiceErrorsMixin, OnceTokenForm):  # its one-time token: the form sent twice adds once
    role = forms.ChoiceField(label=_("Team role"), choices=TeamRole.choices)
    user = forms.ModelChoiceField(label=_("User"), queryset=User.objects.none(), empty_label="—")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = eligible_users()
        self.fields["user"].help_text = _(
            "Project manager: a key-account manager or manager; product expert: a product expert; technical "
            "support: technical support; after-sales: after-sales staff."
        )


class PlanStartForm(ServiceErrorsMixin, forms.Form):
    goals = _text(_("Customer's needs and goals"), required=False)
    valid_from = forms.DateField(label=_("Valid from"), required=False, widget=DATE_INPUT)
    valid_to = forms.DateField(label=_("Valid to"), required=False, widget=DATE_INPUT)


class PlanEditForm(ServiceErrorsMixin, VersionMixin):
    """A draft's needs and goals and its validity (empty dates mean none)."""

    goals = _text(_("Customer's needs and goals"), required=False)
    valid_from = forms.DateField(label=_("Valid from"), required=False, widget=DATE_INPUT)
    valid_to = forms.DateField(label=_("Valid to"), required=False, widget=DATE_INPUT)


def team_users(account):
    return User.objects.filter(pk__in=TeamMember.objects.filter(account=account).values("user_id")).order_by(
        "display_name", "username"
    )


class ItemForm(ServiceErrorsMixin, VersionMixin, OnceTokenForm):  # a new one: its one-time token, the form sent twice records one
    area = forms.ChoiceField(label=_("Area"), choices=PlanArea.choices)
    title = forms.CharField(label=_("Service item"), max_length=200)
    standard = _text(_("Standard"), rows=2)
    owner = forms.ModelChoiceField(label=_("Owner"), queryset=User.objects.none(), empty_label="—")
    deadline = forms.DateField(label=_("Deadline"), widget=DATE_INPUT)

    def __init__(self, *args, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        if account is not None:
            self.fields["owner"].queryset = team_users(account)

    def service_data(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k not in ("version", "form_token")}


class ProgressForm(ServiceErrorsMixin, VersionMixin):
    status = forms.ChoiceField(label=_("Status"), choices=ItemStatus.choices)
    progress = TypedWholeNumberField(label=_("Progress (%)"), min_value=0, max_value=100, required=False,
                                     marks=PERCENT_MARKS)  # fmt: skip
    note = _text(_("Progress note"), rows=2, required=False)

    def __init__(self, *args, may_cancel: bool = True, current: str = "", **kwargs):
        """`may_cancel`: whether "cancelled" is offered (the account's leaders; an item cancelled already keeps it)."""
        super().__init__(*args, **kwargs)
        if not may_cancel and current != ItemStatus.CANCELLED:
            self.fields["status"].choices = [c for c in ItemStatus.choices if c[0] != ItemStatus.CANCELLED]


class AgreementForm(ServiceErrorsMixin, OnceTokenForm):  # a new one: its one-time token, the form sent twice records one
    start_date = forms.DateField(label=_("Start date"), widget=DATE_INPUT)
    end_date = forms.DateField(label=_("End date"), widget=DATE_INPUT)
    renewal_notice_days = TypedWholeNumberField(label=_("Renewal reminder (days before end)"), initial=60,
                                                min_value=0, max_value=365)  # fmt: skip

    def __init__(self, *args, account=None, **kwargs):
        """With `account`, the proposed term follows its approved plan's validity (or, after an agreement of
        that plan, its renewal: services.default_agreement_term)."""
        super().__init__(*args, **kwargs)
        if account is not None and not self.is_bound:
            from .services import default_agreement_term

            self.initial["start_date"], self.initial["end_date"] = default_agreement_term(account)


class TermForm(ServiceErrorsMixin, VersionMixin):
    """The term of an agreement not signed yet, corrected on the account's page (services.change_term)."""

    start_date = forms.DateField(label=_("Start date"), widget=DATE_INPUT)
    end_date = forms.DateField(label=_("End date"), widget=DATE_INPUT)


class AmendmentForm(ServiceErrorsMixin, VersionMixin, OnceTokenForm):
    """An amendment of a signed agreement's term (补充协议): its one-time token, the form sent twice records one; the
    agreement's version, a page opened before someone else's change is refused (services.amend_term)."""

    start_date = forms.DateField(label=_("New start date"), widget=DATE_INPUT)
    end_date = forms.DateField(label=_("New end date"), widget=DATE_INPUT)
    effective_date = forms.DateField(label=_("Effective from"), widget=DATE_INPUT,
                                     help_text=_("The day the signed amendment takes effect: today, a day past, or a day ahead while the agreement runs."))  # fmt: skip
    reason = _text(_("Reason for the change"), max_length=2000, rows=2, required=False)  # the service says why it is needed
    signed_copy = forms.FileField(
        label=_("Signed amendment"), required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg"}),
        help_text=_("Optional: the scanned signed amendment, PDF, PNG or JPEG, at most 20 MB."),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        from django.utils import timezone

        super().__init__(*args, **kwargs)
        self.fields["effective_date"].widget.attrs["max"] = timezone.localdate().isoformat()


class SignedForm(ServiceErrorsMixin, VersionMixin):
    signed_date = forms.DateField(label=_("Signed on"), widget=DATE_INPUT)
    signed_copy = forms.FileField(
        label=_("Signed copy"), required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg"}),
        help_text=_("The scanned signed agreement: PDF, PNG or JPEG, at most 20 MB."),
    )  # fmt: skip

    def __init__(self, *args, agreement=None, **kwargs):
        """The date picker offers the days from the agreement's issue (when given) to today; the service
        checks both ends whatever is sent."""
        from django.utils import timezone

        super().__init__(*args, **kwargs)
        attrs = self.fields["signed_date"].widget.attrs
        attrs["max"] = timezone.localdate().isoformat()
        if agreement is not None:
            from .services import issued_on

            attrs["min"] = issued_on(agreement).isoformat()

    def clean_signed_date(self):
        from django.utils import timezone

        day = self.cleaned_data.get("signed_date")
        if day is not None and day > timezone.localdate():
            raise forms.ValidationError(_("The signing date cannot be in the future."), code="future")
        return day


class MeetingForm(ServiceErrorsMixin, OnceTokenForm):  # a new one: its one-time token, the form sent twice records one
    held_at = forms.DateTimeField(label=_("Held"), widget=DATETIME_INPUT,
                                  input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"])  # fmt: skip
    title = forms.CharField(label=pgettext_lazy("meeting", "Title"), max_length=200)
    attendees = forms.CharField(label=_("Attendees"), max_length=2000, required=False)
    minutes = _text(_("Minutes"), max_length=50000, rows=5)

    def __init__(self, *args, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        owners = team_users(account) if account is not None else User.objects.none()
        for i in range(1, MEETING_ACTIONS + 1):
            self.fields[f"action_{i}_title"] = forms.CharField(label=_("Action %(n)s") % {"n": i}, max_length=200,
                                                               required=False)  # fmt: skip
            self.fields[f"action_{i}_owner"] = forms.ModelChoiceField(label=_("Owner"), queryset=owners,
                                                                      required=False, empty_label="—")  # fmt: skip
            self.fields[f"action_{i}_due"] = forms.DateField(
                label=_("Due date"), required=False, widget=DATE_INPUT
            )

    def action_rows(self):
        return [(self[f"action_{i}_title"], self[f"action_{i}_owner"], self[f"action_{i}_due"])
                for i in range(1, MEETING_ACTIONS + 1)]  # fmt: skip

    def service_data(self) -> tuple[dict, list[dict]]:
        d = self.cleaned_data
        data = {k: d.get(k) for k in ("held_at", "title", "attendees", "minutes")}
        actions = [
            {
                "title": d.get(f"action_{i}_title"),
                "owner": d.get(f"action_{i}_owner"),
                "due_date": d.get(f"action_{i}_due"),
            }
            for i in range(1, MEETING_ACTIONS + 1)
        ]
        return data, actions


class ActionEditForm(ServiceErrorsMixin, VersionMixin):
    """An open action item corrected on the account's page: its text, owner (from the team) and due date."""

    title = forms.CharField(label=_("Action item"), max_length=200)
    owner = forms.ModelChoiceField(label=_("Owner"), queryset=User.objects.none(), empty_label="—")
    due_date = forms.DateField(label=_("Due date"), widget=DATE_INPUT)

    def __init__(self, *args, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        if account is not None:
            self.fields["owner"].queryset = team_users(account)


class PeriodForm(forms.Form):
    period = forms.CharField(
        label=_("Period"), max_length=6, help_text=_("A quarter (2026Q3) or a year (2026).")
    )


class MeasureForm(ServiceErrorsMixin, forms.Form):
    title = forms.CharField(label=_("Improvement measure"), max_length=200)
    owner = forms.ModelChoiceField(label=_("Owner"), queryset=User.objects.none(), empty_label="—")
    due_date = forms.DateField(label=_("Due date"), widget=DATE_INPUT)
    description = _text(_("Description"), rows=2, required=False)

    def __init__(self, *args, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        if account is not None:
            self.fields["owner"].queryset = User.objects.filter(
                Q(pk__in=TeamMember.objects.filter(account=account).values("user_id")) | Q(groups__name="manager"),
                is_active=True,
            ).distinct().order_by("display_name", "username")  # fmt: skip


class TrialForm(ServiceErrorsMixin, OnceTokenForm):  # a new one: its one-time token, the form sent twice records one
    product = PinyinModelChoiceField(label=_("Product"), queryset=None, empty_label="—")
    offered_on = forms.DateField(label=_("Offered on"), required=False, widget=DATE_INPUT)
    notes = _text(_("Notes"), rows=2, required=False)

    def __init__(self, *args, **kwargs):
        from pharmacrm.servicedesk.models import Product

        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = Product.objects.filter(active=True).order_by("brand_name", "pk")


class TrialUpdateForm(ServiceErrorsMixin, VersionMixin):
    status = forms.ChoiceField(label=_("Status"), choices=TrialStatus.choices)
    notes = _text(_("Notes"), rows=2, required=False)


class CadenceForm(ServiceErrorsMixin, VersionMixin):
    meeting_cadence = forms.ChoiceField(
        label=_("Meeting cadence"), choices=MeetingCadence.choices,
        help_text=_("How often a service meeting with the customer is due: the next one falls due this long after "
                    "the last (after the listing, before the first)."),
    )  # fmt: skip


class ArchiveFilterForm(forms.Form):
    q = forms.CharField(label=_("Number or customer"), max_length=100, required=False)
    status = forms.ChoiceField(label=_("Status"), required=False)

    def __init__(self, *args, **kwargs):
        from .choices import AgreementStatus

        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", _("All"))] + list(AgreementStatus.choices)
