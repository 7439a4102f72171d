"""Forms of the core pages: sign-in, one-time code, enrolment code, and the audit-trail filters."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django import forms
from django.core import validators
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import audit
from .ids import is_id
from .models import AuditEntry
from .numbers import AMOUNT_MARKS, PERCENT_MARKS, typed_decimal, typed_share
from .ordering import PinyinChoiceIterator
from .signatures import one_time_code


class IdsChoiceField(forms.ModelMultipleChoiceField):
    """A multiple choice of records by id: a value that is no database integer ("²", twenty nines) is refused as any
    unknown value is, before the query it failed (500)."""

    def _check_values(self, value):
        for pk in value:
            if not is_id(pk):
                raise ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": pk})
        return super()._check_values(value)


class PinyinIdsChoiceField(IdsChoiceField):
    """A multiple choice of records by id (products, teams) offered in pinyin order (core.ordering)."""

    iterator = PinyinChoiceIterator


class TypedNumberField(forms.DecimalField):
    """A number typed on a page, read as the API reads one (core.numbers.typed_decimal): thousands separators and
    spaces (1,000, 1 000), full-width digits and points (８７．５, an input method's full-width mode), −20 as typeset,
    and the marks of the field's unit (`marks`: % of a figure in percent, ¥ / 元 of an amount); a share
    (`share=True`: a coefficient of 1.2) also as a percentage of it (120%). Anything else (1.2万, 1e3, 1_000, Arabic-
    Indic digits) is refused naming the field. A text input: a number input sends nothing at all for 1,000 or 30%,
    and the page said "This field is required." of what was typed."""

    widget = forms.TextInput
    default_error_messages = {"invalid": _("%(name)s: enter a number, such as 1234.5 or 1,234.50.")}
    MAX_TEXT = 100

    def __init__(self, *, marks: tuple[str, ...] = (), share: bool = False, **kwargs):
        self.marks, self.share = marks, share
        super().__init__(**kwargs)
        if "invalid" not in kwargs.get("error_messages", {}):
            if share:
                self.error_messages["invalid"] = _("%(name)s: enter a number such as 1.2, or a percentage such as "
                                                   "120%%.")  # fmt: skip
            elif PERCENT_MARKS[0] in marks:
                self.error_messages["invalid"] = _("%(name)s: enter a percentage, such as 30, 12.5 or 30%%.")
            elif AMOUNT_MARKS[0] in marks:
                self.error_messages["invalid"] = _("%(name)s: enter an amount in yuan, such as 1234.50 or "
                                                   "¥1,234.50.")  # fmt: skip

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        attrs.setdefault("inputmode", "decimal")
        return attrs

    def _invalid(self) -> ValidationError:
        return ValidationError(self.error_messages["invalid"], code="invalid", params={"name": self.label or ""})

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, bool):
            raise self._invalid()
        if isinstance(value, (int, Decimal)):
            number = Decimal(value)
        else:
            text = str(value).strip()
            if len(text) > self.MAX_TEXT:
                raise self._invalid()
            number = typed_share(text) if self.share else typed_decimal(text, *self.marks)
            if number is None:
                raise self._invalid()
        if not number.is_finite():
            raise self._invalid()
        return number + 0  # −0 is 0


class TypedWholeNumberField(TypedNumberField):
    """A whole number typed on a page (a count, months, days), read as TypedNumberField reads one: 1,200, １２,
    30% of a figure in percent; 12.5 is refused naming the field."""

    default_error_messages = {"invalid": _("%(name)s: enter a whole number, such as 12 or 1,200.")}

    def __init__(self, **kwargs):
        kwargs.setdefault("error_messages", {})
        super().__init__(**kwargs)
        # DecimalField's check of digits and places: the value is an int here
        self.validators = [v for v in self.validators if not isinstance(v, validators.DecimalValidator)]
        if PERCENT_MARKS[0] in self.marks and "invalid" not in kwargs["error_messages"]:
            self.error_messages["invalid"] = _("%(name)s: enter a whole percentage, such as 30 or 30%%.")

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        attrs["inputmode"] = "numeric"
        return attrs

    def to_python(self, value):
        number = super().to_python(value)
        if number is None:
            return None
        if number != number.to_integral_value():
            raise self._invalid()
        return int(number)

    def validate(self, value):
        forms.Field.validate(self, value)  # DecimalField's asks an int whether it is finite


class LoginForm(forms.Form):
    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        # no capital first letter from a phone's keyboard, no spelling correction of a pinyin name
        widget=forms.TextInput(
            attrs={
                "autocomplete": "username",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class OtpForm(forms.Form):
    code = forms.CharField(
        label=_("Six-digit code"),
        # room for "123 456" as authenticator apps show it (no pattern either: the browser refused to send it)
        max_length=20,
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "one-time-code",
                "autofocus": True,
            }
        ),
        error_messages={
            "required": _("Enter the six-digit code from your authenticator app."),
            "max_length": _("The code has six digits."),
        },
    )

    def clean_code(self) -> str:
        code = one_time_code(self.cleaned_data["code"])
        if not code:
            raise forms.ValidationError(_("The code has six digits."), code="digits")
        return code


class EnrolmentCodeForm(forms.Form):
    """Step 1 of setting up the second factor: the one-time code an administrator issued."""

    enrolment_code = forms.CharField(
        label=_("Enrolment code"),
        max_length=64,
        help_text=_(
            "The twelve-character code an administrator gave you for setting up your authenticator app. "
            "If you do not have one, or it has expired, ask an administrator for a new one."
        ),
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
        error_messages={"required": _("Enter the enrolment code an administrator gave you.")},
    )


def object_types() -> list[tuple[str, str]]:
    """Every kind of record the application audits (tickets, cases, key-account files…), by its name in the
    reader's language, grouped by area: the list once held five customer kinds, and a ticket could not be
    chosen."""
    from django.apps import apps
    from django.utils.functional import Promise
    from django.utils.text import capfirst

    # those with a name of their own (translated); bookkeeping tables (counters, search terms) are never audited
    ours = [
        m
        for m in apps.get_models()
        if m.__module__.startswith("pharmacrm.") and isinstance(m._meta.verbose_name, Promise)
    ]
    # and what is audited without a model: backups and restores, key rotations, refused API calls and page requests
    without_model = [
        ("core.backup", _("Backup")),
        ("core.keyring", _("Encryption key ring")),
        ("api", _("API request")),
        ("web", _("Web request")),
    ]
    return [("", _("Any")), *without_model] + [
        (m._meta.label_lower, capfirst(m._meta.verbose_name))
        for m in sorted(ours, key=lambda m: m._meta.label_lower)
    ]


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label=_("User"), required=False, max_length=150)
    action = forms.ChoiceField(
        label=_("Action"), required=False, choices=[("", _("Any"))] + AuditEntry.Action.choices
    )
    object_type = forms.ChoiceField(label=_("Object type"), required=False, choices=object_types)
    object_id = forms.CharField(label=_("Object id"), required=False, max_length=64)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    request_id = forms.CharField(label=_("Request id"), required=False, max_length=64)

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("The end date is before the start date."))
        return data

    def filter(self, qs):
        """Apply the valid filters to an AuditEntry queryset."""
        data = self.cleaned_data
        if data.get("actor"):
            qs = qs.filter(actor_name=data["actor"].strip())
        if data.get("action"):
            qs = qs.filter(action=data["action"])
        if data.get("object_type"):
            qs = qs.filter(object_type=data["object_type"])
        if data.get("object_id"):
            qs = audit.about_object(qs, data.get("object_type") or "", data["object_id"])
        if data.get("request_id"):
            qs = qs.filter(request_id=data["request_id"].strip())
        start = _day_start(data["date_from"]) if data.get("date_from") else None
        if start is not None:
            qs = qs.filter(at__gte=start)
        end = _day_start(data["date_to"], days_after=1) if data.get("date_to") else None
        if end is not None:
            qs = qs.filter(at__lt=end)
        return qs


def _day_start(day: datetime.date, days_after: int = 0) -> datetime.datetime | None:
    """The start of the day (`days_after` days later) in the reader's time zone; None beyond what a time can hold
    — the first day of the calendar starts in year 0 in UTC, the last has no day after it — which is no bound."""
    try:
        day += datetime.timedelta(days=days_after)
        moment = datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_current_timezone())
        moment.astimezone(datetime.UTC)
    except OverflowError:
        return None
    return moment
