"""Users and roles in the web UI (administrators): the list, create and edit forms, unlocking a locked
account and issuing a second-factor enrolment code. Every change goes through core.services (validated,
in one transaction, audited), as the /api/v1/users/ endpoints do."""

from __future__ import annotations

import datetime

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm.customers.forms import OnceTokenForm
from pharmacrm.customers.views import AlreadyCreated, _created_with

from . import access, services, signatures
from .form_saves import create_once, sent_again
from .forms import PinyinIdsChoiceField
from .middleware import needs_second_factor
from .models import Region, Team, User
from .roles import Cap, Role
from .setup import SKIP_IN_FULL_NAME
from .wording import aside

PAGE_SIZE = 50
ROLE_CHOICES = [(r.value, r.label) for r in Role]


def _lockout_cutoff() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(hours=settings.AXES_COOLOFF_TIME)


def locked_usernames(usernames) -> set[str]:
    """Which of these accounts django-axes is refusing now (too many failed sign-ins, cool-off running).
    Axes keeps one row per user name, address and browser, and locks the account on the sum of the rows still
    in their cool-off: three wrong passwords on the office PC and two on the phone lock it, with no row at 5."""
    from axes.models import AccessAttempt
    from django.db.models import Sum

    return set(
        AccessAttempt.objects.filter(username__in=list(usernames), attempt_time__gte=_lockout_cutoff())
        .values("username").annotate(failures=Sum("failures_since_start"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT).values_list("username", flat=True)
    )  # fmt: skip


def with_role(role: str) -> Q:
    """The users holding a role: its group, and for the administrator role the superusers too."""
    found = Q(groups__name=role)
    return found | Q(is_superuser=True) if role == Role.ADMIN.value else found


class UserFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("Name or username"), required=False, max_length=64)
    role = forms.ChoiceField(label=gettext_lazy("Role"), required=False,
                             choices=[("", gettext_lazy("All"))] + ROLE_CHOICES)  # fmt: skip
    active = forms.ChoiceField(
        label=gettext_lazy("Status"), required=False,
        choices=[("", gettext_lazy("All")), ("1", pgettext_lazy("user account", "Active")), ("0", gettext_lazy("Deactivated"))],
    )  # fmt: skip

    def filter(self, qs):
        d = self.cleaned_data
        if d.get("q"):
            # the name the pages write for a user without a display name (王芳, Fang Wang) finds them too
            from django.db.models import Value
            from django.db.models.functions import Concat

            qs = qs.annotate(
                surname_first=Concat("last_name", "first_name"), given_first=Concat("first_name", Value(" "), "last_name")
            ).filter(
                Q(username__icontains=d["q"]) | Q(display_name__icontains=d["q"]) | Q(surname_first__icontains=d["q"])
                | Q(given_first__icontains=d["q"])
            )  # fmt: skip
        if d.get("role"):
            qs = qs.filter(with_role(d["role"]))
        if d.get("active"):
            qs = qs.filter(is_active=d["active"] == "1")
        return qs


class RegionChoiceField(forms.ModelMultipleChoiceField):
    """Regions by their full name in the page's script. A municipality's city level (市辖区, and 重庆's 县)
    has the municipality's full name: it gets its own name beside it, 北京市（市辖区）, so that it does not
    read like the province-level 北京市 above it."""

    def label_from_instance(self, obj: Region) -> str:
        if obj.level != Region.Level.PROVINCE and obj.name in SKIP_IN_FULL_NAME:
            return f"{obj.display_full_name}{aside(obj.display_name)}"  # Beijing (Municipal districts) in English
        return obj.display_full_name


class UserForm(OnceTokenForm):  # its one-time token: the new-user form sent twice creates one user
    # Django's username rule, as the API applies it (letters, digits and @ . + - _): a space or an invisible
    # character made a name that reads like another in the audit trail
    username = forms.CharField(
        label=gettext_lazy("Username"), max_length=150, validators=[User.username_validator]
    )
    display_name = forms.CharField(label=gettext_lazy("Display name"), max_length=64, required=False)
    email = forms.EmailField(label=gettext_lazy("E-mail"), required=False)
    language = forms.ChoiceField(
        label=gettext_lazy("Language"), required=False,
        choices=[("", gettext_lazy("The product's default (简体中文)")), *settings.LANGUAGES],
        help_text=gettext_lazy("Their pages after sign-in, their notifications and e-mails. Users change it "
                               "themselves with the language menu."),
    )  # fmt: skip
    roles = forms.MultipleChoiceField(label=gettext_lazy("Roles"), choices=ROLE_CHOICES, required=False,
                                      widget=forms.CheckboxSelectMultiple)  # fmt: skip
    teams = PinyinIdsChoiceField(label=gettext_lazy("Teams"), queryset=Team.objects.order_by("name"),
                                 required=False, widget=forms.SelectMultiple(attrs={"size": 6}))  # fmt: skip
    territory = RegionChoiceField(
        label=gettext_lazy("Personal territory"), queryset=Region.objects.none(), required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text=gettext_lazy("Provinces and cities whose customers this user sees besides their teams'."),
    )  # fmt: skip
    is_active = forms.BooleanField(label=pgettext_lazy("user account", "Active"), required=False, initial=True)
    password = forms.CharField(label=gettext_lazy("Password"), required=False, strip=False, max_length=4096,
                               widget=forms.PasswordInput(render_value=False))  # fmt: skip
    password2 = forms.CharField(label=gettext_lazy("Password again"), required=False, strip=False, max_length=4096,
                                widget=forms.PasswordInput(render_value=False))  # fmt: skip
    # the version of the user this page was loaded with (optimistic locking): editing only
    version = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, user: User | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        wanted = Q(level__lte=Region.Level.CITY)
        if user is not None:
            wanted |= Q(code__in=user.territory.values("code"))
        self.fields["territory"].queryset = Region.objects.filter(wanted).order_by("code")
        if user is None:
            self.fields["password"].required = True
            self.fields["password"].help_text = gettext_lazy("The user changes it after signing in.")
        else:
            self.fields["password"].help_text = gettext_lazy("Leave empty to keep the current password.")

    def clean_username(self):
        # full-width letters (ｋａｍ, typed in a Chinese input method's full-width mode) are the ordinary ones:
        # sign-in reads them so, and an account of that name beside kam could never be told apart from it
        name = User.normalize_username(self.cleaned_data["username"]).strip()
        clash = User.objects.filter(username__iexact=name)
        if self.user is not None:
            clash = clash.exclude(pk=self.user.pk)
        if clash.exists():
            raise ValidationError(_("A user with this username already exists."))
        return name

    def clean(self):
        data = super().clean()
        if (data.get("password") or data.get("password2")) and data.get("password") != data.get("password2"):
            self.add_error("password2", _("The two passwords differ."))
        if self.user is not None and data.get("version") is None:
            # a page without the version it was loaded with could overwrite someone else's changes
            self.add_error(None, _("Your request could not be accepted. Please reload the page and send it again."))
        return data

    def service_data(self) -> dict:
        d = dict(self.cleaned_data)
        d.pop("password2", None)
        d.pop("version", None)
        d.pop("form_token", None)
        if not d.get("password"):
            d.pop("password", None)
        return d


def _initial(user: User) -> dict:
    return {
        "username": user.username, "display_name": user.display_name, "email": user.email,
        "language": user.language, "roles": sorted(r.value for r in user.roles), "teams": list(user.teams.all()),
        "territory": list(user.territory.all()), "is_active": user.is_active, "version": user.version,
    }  # fmt: skip


def _shown(field: forms.Field, value) -> str:
    """A form value as the page shows it: choice labels, joined by commas for several."""
    if value in (None, "", [], ()):
        return ""
    if isinstance(field, forms.BooleanField):
        return str(_("Yes") if value else _("No"))
    if isinstance(field, forms.ModelMultipleChoiceField):
        return ", ".join(sorted(field.label_from_instance(o) for o in value))
    if isinstance(field, forms.MultipleChoiceField):
        labels = dict(field.choices)
        return ", ".join(sorted(str(labels.get(v, v)) for v in value))
    if isinstance(field, forms.ChoiceField):
        return str(dict(field.choices).get(value, value))
    return str(value)


def _conflict(request, current: User, error: services.UserConflictError):
    """The form again with the administrator's input and the version saved now, and which fields someone else
    changed meanwhile: (label, saved now, your input) for each field where the two differ."""
    data = request.POST.copy()
    data["version"] = str(error.current_version)
    form = UserForm(data, user=current, initial=_initial(current))
    form.is_valid()
    changed = []
    for name, theirs in _initial(current).items():
        field = form.fields[name]
        if name == "version" or name not in form.cleaned_data:
            continue
        mine = _shown(field, form.cleaned_data[name])
        saved = _shown(field, theirs)
        if mine != saved:
            changed.append((field.label, saved or "—", mine or "—"))
    return form, changed


def _apply_errors(form: forms.Form, error: ValidationError) -> None:
    """A service's ValidationError on the form: per field where it names one, else for the whole form."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


@login_required
def user_list(request):
    """Administrators manage users here; the auditor reads the same list (no links to change anything)."""
    access.require(request.user, Cap.VIEW_USERS)
    form = UserFilterForm(request.GET or None)
    qs = User.objects.prefetch_related("groups", "teams", "territory").order_by("username")
    if form.is_bound and form.is_valid():
        qs = form.filter(qs).distinct()
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    users = list(page.object_list)
    locked = locked_usernames(u.username for u in users)
    with_factor = set(
        TOTPDevice.objects.filter(user__in=users, confirmed=True).values_list("user_id", flat=True)
    )
    rows = [{"user": u, "locked": u.username in locked, "second_factor": u.pk in with_factor} for u in users]
    context = {"form": form, "page": page, "rows": rows, "may_manage": access.can(request.user, Cap.MANAGE_USERS)}
    return render(request, "core/users_list.html", context)


@login_required
@sensitive_post_parameters("password", "password2")
def user_create(request):
    access.require(request.user, Cap.MANAGE_USERS)
    form = UserForm(request.POST or None)
    try:  # once per form: sent again (a double click), it leads to the user the first one created, before the
        # form finds the username taken
        if request.method == "POST" and (done := _created_with(request.user, request.POST.get("form_token"))):
            raise AlreadyCreated(done)
        if request.method == "POST" and form.is_valid():
            user = create_once(request.user, form.cleaned_data.get("form_token"),
                               lambda: services.create_user(request.user, form.service_data()))  # fmt: skip
            messages.success(request, _("The user %(name)s was created.") % {"name": user})
            return redirect("users-edit", pk=user.pk)
    except AlreadyCreated as e:
        return sent_again(request, User, e.pk, reverse("users"), page_of=lambda u: reverse("users-edit", args=[u.pk]))
    except ValidationError as e:
        _apply_errors(form, e)
    return render(request, "core/user_form.html", {"form": form, "subject": None})


@login_required
@sensitive_post_parameters("password", "password2")
def user_edit(request, pk: int):
    access.require(request.user, Cap.MANAGE_USERS)
    subject = get_object_or_404(User, pk=pk)
    form = UserForm(request.POST or None, user=subject, initial=_initial(subject))
    conflict = None
    if request.method == "POST" and form.is_valid():
        try:
            services.update_user(request.user, subject, form.service_data(), version=form.cleaned_data["version"])
            if subject.pk == request.user.pk and form.cleaned_data.get("password"):
                # their own new password: this session stays signed in (the others end), as on the password page
                update_session_auth_hash(request, subject)
        except ValidationError as e:
            _apply_errors(form, e)
        except services.UserConflictError as e:
            subject = User.objects.get(pk=subject.pk)
            form, conflict = _conflict(request, subject, e)
        else:
            messages.success(request, _("The user %(name)s was saved.") % {"name": subject})
            return redirect("users-edit", pk=subject.pk)
    context = {
        "form": form, "subject": subject, "locked": subject.username in locked_usernames([subject.username]),
        "second_factor": TOTPDevice.objects.filter(user=subject, confirmed=True).exists(),
        "needs_second_factor": needs_second_factor(subject) or signatures.signs(subject), "conflict": conflict,
    }  # fmt: skip
    return render(request, "core/user_form.html", context, status=409 if conflict is not None else 200)


@login_required
@require_POST
def user_unlock(request, pk: int):
    access.require(request.user, Cap.MANAGE_USERS)
    subject = get_object_or_404(User, pk=pk)
    if services.unlock_user(request.user, subject):
        messages.success(request, _("%(name)s can sign in again.") % {"name": subject})
    else:
        messages.info(request, _("%(name)s was not locked out.") % {"name": subject})
    return redirect("users-edit", pk=subject.pk)


@login_required
@require_POST
def user_second_factor(request, pk: int):
    """Reset the user's second factor and show the one-time enrolment code, once, on this answer only."""
    access.require(request.user, Cap.MANAGE_USERS)
    subject = get_object_or_404(User, pk=pk)
    enrolment, code = services.issue_second_factor_enrolment(request.user, subject)
    response = render(request, "core/user_enrolment_code.html",
                      {"subject": subject, "code": code, "expires_at": enrolment.expires_at})  # fmt: skip
    response["Cache-Control"] = "no-store"
    return response
