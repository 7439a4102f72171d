"""Forms of the public pages (web form, survey) and of the revisit: phone revisit, improvement actions."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import wording
from pharmacrm.core.addresses import validate_address
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.customers import normalise
from pharmacrm.customers.forms import OnceTokenForm, ServiceErrorsMixin

from . import public, revisit, services
from .choices import ActionStatus
from .models import Product, TicketCategory

SCORES = [(5, _("5 — very satisfied")), (4, _("4 — satisfied")), (3, _("3 — neither")),
          (2, _("2 — dissatisfied")), (1, _("1 — very dissatisfied"))]  # fmt: skip
SOLVED = [("yes", _("Yes")), ("no", _("No"))]
# the net promoter question (NPS), optional: 10 first, as the scores above
RECOMMEND = [("", "—")] + [(n, str(n)) for n in range(10, -1, -1)]
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


# --- the public web form ---------------------------------------------------------------------------


class PublicTicketForm(ServiceErrorsMixin, forms.Form):
    name = forms.CharField(label=_("Your name"), error_messages={"required": _("Enter your name.")})
    phone = forms.CharField(
        label=_("Phone"), required=False, max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
        help_text=_("A mobile number, or a landline with its area code; from outside the mainland, with the country "
                    "code: +852 9123 4567."),
    )  # fmt: skip
    email = forms.CharField(
        label=_("E-mail"), required=False, max_length=254,
        # not type=email: browsers refuse an address such as 张三@公司.cn (RFC 6531), which the desk can answer
        widget=forms.TextInput(attrs={"inputmode": "email", "autocomplete": "email"}),
        help_text=_("We send the link to follow your request here."),
    )  # fmt: skip
    institution = forms.CharField(label=_("Hospital, pharmacy or company"), required=False, max_length=200)
    category = forms.ModelChoiceField(
        label=_("What is it about?"),
        queryset=TicketCategory.objects.none(),
        empty_label="—",
        to_field_name="code",
    )
    product = PinyinModelChoiceField(label=_("Product"), queryset=Product.objects.none(), required=False,
                                     empty_label="—")  # fmt: skip
    batch_number = forms.CharField(label=_("Batch / lot number"), required=False, max_length=40)
    subject = forms.CharField(label=_("Subject"), max_length=200)
    description = forms.CharField(
        label=_("Your request"), max_length=20000, widget=forms.Textarea(attrs={"rows": 6})
    )
    attachment = forms.FileField(
        label=_("Attachment"), required=False,
        help_text=_("Optional: a photo of the package, a document (PDF, image, text, Word or Excel)."),
    )  # fmt: skip
    # PIPL art. 17 and 29: the notice before the data is given, and a separate consent for the health
    # information a request about a medicine may hold (sensitive personal information)
    privacy = forms.BooleanField(
        label=_("I have read the personal information notice and agree that my details, including any health "
                "information I describe, are processed to handle this request."),
        error_messages={"required": _("Please read the personal information notice and tick the box: without "
                                      "your consent we cannot take in your request.")},
    )  # fmt: skip
    # spam resistance: a field people never see, and when the form was shown (signed)
    website = forms.CharField(required=False, label=_("Leave this field empty"))
    stamp = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].queryset = TicketCategory.objects.filter(active=True).order_by(
            "position", "name"
        )
        self.fields["product"].queryset = Product.objects.filter(active=True).order_by(
            "brand_name", "strength"
        )
        self.fields["website"].widget.attrs.update({"tabindex": "-1", "autocomplete": "off"})
        if not self.is_bound:
            self.initial["stamp"] = public.form_stamp()

    def clean_name(self) -> str:
        value = self.cleaned_data.get("name", "").strip()
        if len(value) > services.CALLER_NAME_MAX:  # the caller's name of the ticket: its limit, in the form's words
            raise ValidationError(_("Your name is too long: at most %(max)s characters (it has %(n)s).")
                                  % {"max": services.CALLER_NAME_MAX, "n": len(value)})  # fmt: skip
        return value

    def clean_phone(self) -> str:
        value = self.cleaned_data.get("phone", "").strip()
        if not value:
            return ""
        digits = normalise.validate_any_phone(value)
        ext = normalise.extension(value)  # a hospital's switchboard is no use without the caller's extension
        return f"{normalise.format_phone(digits)} 转{ext}" if ext else normalise.format_phone(digits)

    def clean_email(self) -> str:
        value = self.cleaned_data.get("email", "").strip()
        if not value:
            return ""
        value = normalise.email(value)
        validate_address(value)
        return value

    def clean(self):
        data = super().clean()
        if (
            not data.get("phone")
            and not data.get("email")
            and "phone" not in self.errors
            and "email" not in self.errors
        ):
            self.add_error("phone", _("Give a phone number or an e-mail address so that we can reach you."))
        return data

    def service_data(self) -> dict:
        d = self.cleaned_data
        description = d["description"].strip()
        if d.get("institution"):
            description = f"{description}\n\n{_('Institution')}{wording.colon()}{d['institution'].strip()}"
        return {
            "subject": d["subject"], "description": description, "category": d["category"],
            "caller_name": d["name"].strip(), "caller_phone": d.get("phone") or "", "reply_email": d.get("email") or "",
            "product": d.get("product"), "batch_number": d.get("batch_number") or "",
            "privacy_notice": public.PRIVACY_NOTICE_VERSION,
        }  # fmt: skip


# --- the survey ------------------------------------------------------------------------------------


class SurveyAnswerForm(ServiceErrorsMixin, forms.Form):
    score = forms.TypedChoiceField(label=_("How satisfied are you with how we handled your request?"),
                                   choices=SCORES, coerce=int, widget=forms.RadioSelect)  # fmt: skip
    solved = forms.ChoiceField(label=_("Was your request solved?"), choices=SOLVED, widget=forms.RadioSelect)
    recommend = forms.TypedChoiceField(
        label=_("How likely are you to recommend us to a colleague or a friend?"), choices=RECOMMEND, coerce=int,
        required=False, empty_value=None,
        help_text=_("0 = not at all likely, 10 = extremely likely. Optional."),
    )  # fmt: skip
    comment = forms.CharField(label=_("Anything you would like to tell us?"), required=False,
                              max_length=revisit.MAX_COMMENT, widget=forms.Textarea(attrs={"rows": 4}))  # fmt: skip

    def __init__(self, *args, campaign: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if campaign:  # a periodic survey asks about the service as a whole, not about one request
            del self.fields["solved"]
            self.fields["score"].label = _("How satisfied are you with our products and service?")

    def answers(self) -> tuple[int, bool | None, str, int | None]:
        d = self.cleaned_data
        solved = (d["solved"] == "yes") if "solved" in self.fields else None
        return d["score"], solved, d.get("comment") or "", d.get("recommend")


class PhoneRevisitForm(SurveyAnswerForm, OnceTokenForm):  # its one-time token: sent twice, recorded once
    score = forms.TypedChoiceField(label=_("Satisfaction (1–5)"), choices=SCORES, coerce=int)
    solved = forms.ChoiceField(label=_("Solved?"), choices=SOLVED)
    recommend = forms.TypedChoiceField(
        label=_("Would recommend us (0–10)"), choices=RECOMMEND, coerce=int, required=False, empty_value=None,
        help_text=_("Ask: how likely are you to recommend us to a colleague or a friend? Leave empty if not asked."),
    )  # fmt: skip
    comment = forms.CharField(label=_("What the customer said"), required=False, max_length=revisit.MAX_COMMENT,
                              widget=forms.Textarea(attrs={"rows": 3}))  # fmt: skip


# --- improvement actions ---------------------------------------------------------------------------


# an action's title (标题), not a person's professional title (职称), which the bare "Title" is
ACTION_TITLE = pgettext_lazy("record title", "Title")


class ActionForm(ServiceErrorsMixin, OnceTokenForm):
    """An improvement action: opened (with its one-time token, so that the form sent twice opens one action) or
    edited (guarded by its version instead)."""

    title = forms.CharField(label=ACTION_TITLE, max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    owner = forms.ModelChoiceField(label=_("Owner"), queryset=revisit.owners().none(), empty_label="—")
    due_date = forms.DateField(label=_("Due date"), widget=DATE_INPUT)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, may_assign: bool = True, creating: bool = False, action=None, **kwargs):
        super().__init__(*args, **kwargs)
        shown = action.shown_title if action is not None else ""
        if len(shown) > self.fields["title"].max_length:
            # the evaluation's title in the reader's language may run longer than the stored one: sent back
            # unchanged it is no rewording (the service keeps the stored title), so the form takes it
            self.fields["title"] = forms.CharField(label=ACTION_TITLE, max_length=len(shown))
            self._shown_title = shown
        if not creating:
            del self.fields["form_token"]
        self.fields["owner"].queryset = revisit.owners()
        if not may_assign:
            self.fields["owner"].required = False
            self.fields["owner"].disabled = True


    def clean_title(self):
        title = self.cleaned_data["title"]
        if title.strip() != getattr(self, "_shown_title", title).strip():
            MaxLengthValidator(200)(title)  # a rewording is stored: at most 200 characters, as ever
        return title


class ActionTransitionForm(ServiceErrorsMixin, forms.Form):
    to_status = forms.ChoiceField(choices=ActionStatus.choices, widget=forms.HiddenInput)
    version = forms.IntegerField(widget=forms.HiddenInput)
    outcome = forms.CharField(label=_("Outcome"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text=_("What was done (required to close the action as done)."))  # fmt: skip
    reason = forms.CharField(label=_("Reason"), required=False, max_length=2000,
                             help_text=_("Why the action is cancelled (required to cancel)."))  # fmt: skip


class ActionFilterForm(forms.Form):
    show = forms.ChoiceField(
        label=_("Show"), required=False,
        choices=[("", _("All I may see")), ("mine", _("Mine")), ("open", _("Open")), ("overdue", _("Overdue"))],
    )  # fmt: skip

    def value(self) -> str:
        return self.cleaned_data.get("show", "") if self.is_valid() else ""


# --- satisfaction survey campaigns ------------------------------------------------------------------


def _province_choices():
    from pharmacrm.core.models import Region

    provinces = Region.objects.filter(level=Region.Level.PROVINCE).order_by("code")
    return [("", "—")] + [(r.code, r.display_name) for r in provinces]  # in the reader's language


class CampaignForm(ServiceErrorsMixin, OnceTokenForm):
    """A campaign's name, period and target criteria (blank criteria: every customer); its one-time token: the
    form sent twice prepares one campaign."""

    name = forms.CharField(label=_("Name"), required=False, max_length=120,
                           help_text=_("Empty: named after the period (2026年第4季度客户满意度调查)."))  # fmt: skip
    period = forms.CharField(label=_("Period"), max_length=12, required=False,
                             help_text=_("2026Q4 (a quarter), 2026H2 (a half-year) or 2026 (a year). Empty: this quarter."))  # fmt: skip
    klass = forms.ChoiceField(label=_("Customer class"), required=False,
                              choices=[("", "—")] + [(k, k) for k in ("A", "B", "C", "D")],
                              help_text=_("The class of the customer evaluation in force."))  # fmt: skip
    tier = forms.ChoiceField(label=_("Tier"), required=False)
    institution_kind = forms.ChoiceField(label=_("Institution type"), required=False)
    province = forms.ChoiceField(label=_("Province"), required=False)
    owner = forms.ModelChoiceField(label=_("Owner"), required=False, queryset=revisit.owners().none(), empty_label="—")
    team = forms.ModelChoiceField(label=_("Team"), required=False, queryset=revisit.owners().none(), empty_label="—")

    def __init__(self, *args, **kwargs):
        from pharmacrm.core.models import Team, User
        from pharmacrm.customers.choices import InstitutionType, Tier

        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = [("", "—"), *Tier.choices]
        self.fields["institution_kind"].choices = [("", "—")] + [
            c for c in InstitutionType.choices if c[0] != InstitutionType.DEPARTMENT]  # fmt: skip
        self.fields["province"].choices = _province_choices()
        self.fields["owner"].queryset = User.objects.filter(is_active=True).order_by("username")
        self.fields["team"].queryset = Team.objects.order_by("name")

    def data_for_service(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "form_token"}


class CampaignPhoneForm(ServiceErrorsMixin, forms.Form):
    score = forms.TypedChoiceField(label=_("Satisfaction (1–5)"), choices=SCORES, coerce=int)
    recommend = forms.TypedChoiceField(
        label=_("Would recommend us (0–10)"), choices=RECOMMEND, coerce=int, required=False, empty_value=None,
        help_text=_("Ask: how likely are you to recommend us to a colleague or a friend? Leave empty if not asked."),
    )  # fmt: skip
    comment = forms.CharField(label=_("What the customer said"), required=False, max_length=revisit.MAX_COMMENT,
                              widget=forms.Textarea(attrs={"rows": 3}))  # fmt: skip
