"""Customer forms: institution and person editors (validation delegated to services), consents, reveal,
merge, and the list filters. Selects offer only what the user may see."""

from __future__ import annotations

import json
import re
import secrets

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import access
from pharmacrm.core.forms import TypedWholeNumberField
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import Region, Team, User, region_label
from pharmacrm.core.numbers import typed_code
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.core.personal import FREE_TEXT_FIELDS, free_text, masks_free_text

from . import normalise, search, services
from .choices import (
    Channel,
    ConsentPurpose,
    ConsentStatus,
    Gender,
    HospitalGrade,
    InstitutionType,
    PersonRole,
    PreferredLanguage,
    Source,
    Stage,
    Tier,
)
from .models import Consent, Institution, Person

BLANK = [("", "—")]
ANY = [("", _("Any"))]
PICKER_LIMIT = 300  # options rendered in an institution select; the search box above it finds the rest


def _split_tags(text: str) -> list[str]:
    for sep in ("，", "、", ";", "；"):
        text = text.replace(sep, ",")
    return [t.strip() for t in text.split(",") if t.strip()]


# --- regions: province → city → district ------------------------------------------------------


def region_children(code: str | None) -> list[tuple[str, str]]:
    """(code, name) of the regions directly below `code`; the provinces when code is empty. Names in the
    page's script (Traditional characters on zh-Hant pages), as the region column shows them."""
    qs = (
        Region.objects.filter(level=Region.Level.PROVINCE)
        if not code
        else Region.objects.filter(parent_id=code)
    )
    return [(c, region_label(c, name)) for c, name in qs.order_by("code").values_list("code", "name")]


def region_path(region: Region | None) -> tuple[str, str, str]:
    """(province, city, district) codes of a region, '' where it stops."""
    if region is None:
        return "", "", ""
    province = region.province_code
    city = region.code[:4] + "00" if region.level >= Region.Level.CITY else ""
    district = region.code if region.level == Region.Level.DISTRICT else ""
    return province, city, district


class RegionFieldsMixin:
    """Three cascading selects whose choices follow what is chosen above them."""

    region_levels = ("province", "city", "district")

    def _setup_regions(self, region: Region | None, blank_label=BLANK) -> None:
        initial = dict(zip(("province", "city", "district"), region_path(region), strict=True))
        chosen = {}
        for name in self.region_levels:
            value = self.data.get(self.add_prefix(name)) if self.is_bound else initial.get(name, "")
            chosen[name] = value or ""
            if not self.is_bound:
                self.initial[name] = value
        parents = {"province": "", "city": chosen["province"], "district": chosen.get("city", "")}
        url = reverse("customers:region-options")
        for name in self.region_levels:
            attrs = self.fields[name].widget.attrs
            if "hx-target" in attrs:
                attrs["hx-get"] = url
                if blank_label is ANY:
                    attrs["hx-vals"] = json.dumps({**json.loads(attrs.get("hx-vals", "{}")), "blank": "any"})
            parent = parents[name]
            options = region_children(parent) if (name == "province" or parent) else []
            self.fields[name].choices = list(blank_label) + options

    def chosen_region(self) -> Region | None:
        code = ""
        for name in self.region_levels:
            code = self.cleaned_data.get(name) or code
        return Region.objects.filter(code=code).first() if code else None


def _region_field(label, level: str, target: str = "", reset: str = "") -> forms.ChoiceField:
    """A region select; with a target, choosing a value loads the level below into it (htmx)."""
    attrs = {"data-region-level": level}
    if target:
        attrs.update({"hx-target": f"#{target}", "hx-trigger": "change", "hx-swap": "innerHTML"})
        if reset:
            attrs["hx-vals"] = json.dumps({"reset": reset})
    return forms.ChoiceField(label=label, required=False, choices=BLANK, widget=forms.Select(attrs=attrs))


# --- institution pickers -----------------------------------------------------------------------


def _limit_picker(field: forms.ModelChoiceField, selected_ids) -> None:
    """Render only the first options (by name) plus the selected ones; validation keeps the full queryset."""
    qs = field.queryset.select_related("parent")
    shown = list(qs.order_by("name_key", "id")[:PICKER_LIMIT])
    ids = {o.pk for o in shown}
    missing = [i for i in selected_ids if i and is_id(i) and int(i) not in ids]
    if missing:
        shown = list(qs.filter(pk__in=missing)) + shown
    field.widget.choices = BLANK + [(o.pk, picker_label(o)) for o in shown]


def picker_label(institution: Institution) -> str:
    """An institution as a picker offers it: a department with its hospital (eleven hospitals have a 产科)."""
    if institution.kind == InstitutionType.DEPARTMENT and institution.parent_id:
        return f"{institution.parent.name} › {institution.name}"
    return institution.name


# what an API's `customer_name` is (picker_label), for its OpenAPI description
CUSTOMER_NAME_HELP = (
    "The customer's name as the pages show it: a department with its hospital (北京协和医院 › 心内科), since many "
    "hospitals have a 心内科."
)


class ServiceErrorsMixin:
    def add_service_errors(self, error: ValidationError) -> None:
        """Put a service's ValidationError under the fields it names (the rest above the form)."""
        if hasattr(error, "error_dict"):
            for field, errors in error.error_dict.items():
                target = field if field in self.fields else None
                if field == "region":
                    target = "province"
                for e in errors:
                    self.add_error(target, e)
        else:
            for e in error.error_list:
                self.add_error(None, e)

    def add_format_errors(self, clean, fields) -> None:
        """With another field in error the service's whole check does not run: still show what is wrong with
        each of these fields on its own (a bad phone, a bad credit code), so that one round shows it all."""
        for field in fields:
            if field not in self.errors:
                for e in services.field_errors(clean, field, self.cleaned_data.get(field), self.instance):
                    self.add_error(field, e)


# --- one-time form tokens: a create form is acted on once ------------------------------------------

ONCE_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
ONCE_DAYS = 7  # a create form's claim is kept this long: a form sent again later creates a new record


def new_once_token() -> str:
    """A random token that begins with the day it was made (YYYYMMDD): claims are forgotten by that day
    (views.forget_form_claims)."""
    from django.utils import timezone

    return f"{timezone.localdate():%Y%m%d}{secrets.token_urlsafe(16)}"


def once_token(value) -> str:
    """A form's one-time token as sent; "" when there is none or it is not one we make."""
    value = str(value or "").strip()
    return value if ONCE_TOKEN.fullmatch(value) else ""


class OwnIdsMixin:
    """For a form shown with others on one page (a case's export, close and day-0 forms; a ticket's resolve, reply and
    assign forms): its ids carry `ids` (id_close-reason), so that no id is repeated and each label points at its own
    input. The posted names stay as they are (reason, otp_code, version), so the views read them unchanged."""

    ids = ""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", f"id_{self.ids}-%s")
        super().__init__(*args, **kwargs)


class OnceTokenForm(forms.Form):
    """A create form carries a random token, rendered with it as a hidden field: the view acts on each token
    once (views._create_once), so that the form sent twice — a replay after a slow answer, a double click,
    two requests in parallel — creates one record. A form shown again with errors keeps its token."""

    form_token = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.fields["form_token"].initial = new_once_token()

    def clean_form_token(self) -> str:
        return once_token(self.cleaned_data.get("form_token"))


class CustomerForm(ServiceErrorsMixin, OnceTokenForm):
    """The fields every customer has: tier, stage, owner, team, source, needs, notes, tags, version; the create
    forms also their one-time token."""

    # no max_length on the free-text fields, the tag and specialty lists and the phones: the browser would cut a
    # longer value pasted in without a word (a list mid-tag, a number mid-digit); the services refuse it, counted
    # as stored, in the words the import and the API use (normalise.check_length, the phone rules)
    external_id = forms.CharField(label=_("External id"), required=False)
    tier = forms.ChoiceField(label=_("Tier"), choices=Tier.choices, initial=Tier.NEW)
    stage = forms.ChoiceField(label=_("Lifecycle stage"), choices=Stage.choices, initial=Stage.POTENTIAL)
    owner = forms.ModelChoiceField(
        label=_("Owner"), queryset=User.objects.none(), required=False, empty_label="—"
    )
    team = PinyinModelChoiceField(
        label=_("Team"), queryset=Team.objects.none(), required=False, empty_label="—"
    )
    source = forms.ChoiceField(label=_("Information source"), choices=BLANK + Source.choices, required=False)
    needs = forms.CharField(label=_("Needs"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    tags = forms.CharField(
        label=_("Tags"), required=False, help_text=_("Separate tags with commas.")
    )
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def _setup_common(self):
        if getattr(self, "instance", None) is not None:  # an edit form is guarded by the version instead
            del self.fields["form_token"]
        owners = User.objects.filter(is_active=True)
        current = getattr(getattr(self, "instance", None), "owner_id", None)
        if current is not None:
            # a departed owner (deactivated) stays choosable until someone hands the customer over: the select
            # offered active users only, so any save of the form, of a note, took the owner away unasked
            owners = User.objects.filter(Q(is_active=True) | Q(pk=current))
        self.fields["owner"].queryset = owners.order_by("username")
        self.fields["team"].queryset = Team.objects.order_by("name")
        self._setup_tier()

    def _setup_tier(self):
        """"Key account" is granted and withdrawn by the key-account programme only: the select offers it
        only to a customer that has it, and a listed customer keeps it (clean_tier checks what is sent)."""
        from pharmacrm.keyaccounts.services import is_listed, key_tier_message

        instance = getattr(self, "instance", None)
        current = instance.tier if instance is not None else None
        field = self.fields["tier"]
        if current == Tier.KEY and is_listed(instance):
            field.widget.choices = [(v, label) for v, label in Tier.choices if v == Tier.KEY]
            field.help_text = key_tier_message()
        elif current != Tier.KEY:
            field.widget.choices = [(v, label) for v, label in Tier.choices if v != Tier.KEY]

    def clean_tier(self):
        from pharmacrm.keyaccounts.services import tier_change_error

        tier = self.cleaned_data.get("tier")
        error = tier_change_error(getattr(self, "instance", None), tier)
        if error:
            raise ValidationError(error, code="key_tier")
        return tier

    def common_data(self) -> dict:
        d = self.cleaned_data
        return {
            "external_id": d.get("external_id") or None,
            "tier": d["tier"],
            "stage": d["stage"],
            "owner": d.get("owner"),
            "team": d.get("team"),
            "source": d.get("source") or "",
            "needs": d.get("needs") or "",
            "notes": d.get("notes") or "",
            "tags": _split_tags(d.get("tags") or ""),
        }


# --- institution -------------------------------------------------------------------------------


class InstitutionForm(RegionFieldsMixin, CustomerForm):
    name = forms.CharField(label=_("Name"))  # its length, as every free-text field's: the services'
    short_name = forms.CharField(label=_("Short name"), required=False)
    kind = forms.ChoiceField(label=_("Type"), choices=BLANK + InstitutionType.choices)
    grade = forms.ChoiceField(
        label=_("Hospital grade"), choices=BLANK + HospitalGrade.choices, required=False,
        help_text=_("Only for hospitals."),
    )  # fmt: skip
    parent = forms.ModelChoiceField(
        label=_("Parent institution"), queryset=Institution.objects.none(), required=False,
        help_text=_("A department belongs to a hospital."),
    )  # fmt: skip
    specialties = forms.CharField(
        label=_("Specialties"),
        required=False,
        help_text=_("Separate specialties with commas."),
    )
    beds = TypedWholeNumberField(label=_("Beds"), required=False, min_value=0, max_value=100000)  # 1,200 as typed
    province = _region_field(_("Province"), "province", target="id_city", reset="id_district")
    city = _region_field(_("City"), "city", target="id_district")
    district = _region_field(_("District / county"), "district")
    credit_code = forms.CharField(
        label=_("Unified social credit code"), required=False, max_length=30,
        help_text=_("18 characters; the last one is a check character."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono"}),
    )  # fmt: skip
    legal_representative = forms.CharField(label=_("Legal representative"), required=False)
    address = forms.CharField(label=_("Address"), required=False)
    phone = forms.CharField(
        label=_("Phone"), required=False, widget=forms.TextInput(attrs={"inputmode": "tel"})
    )

    LIVE_FIELDS = ("credit_code", "phone")

    def __init__(self, *args, user, instance: Institution | None = None, **kwargs):
        self.user, self.instance = user, instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = institution_initial(instance)
            if masks_free_text(user):  # contact details typed into the notes: masked, put back on saving
                kwargs["initial"].update({f: free_text(getattr(instance, f), True) for f in FREE_TEXT_FIELDS})
        super().__init__(*args, **kwargs)
        self._setup_common()
        hospitals = access.institutions_for(
            user, Institution.objects.active().filter(kind=InstitutionType.HOSPITAL)
        )
        if instance is not None:
            # keep the current parent choosable even if it is not (or no longer) a visible hospital
            hospitals = Institution.objects.filter(
                Q(pk__in=hospitals.values("pk")) | Q(pk=instance.parent_id)
            )
            hospitals = hospitals.exclude(pk=instance.pk)
        self.fields["parent"].queryset = hospitals
        selected = [self.data.get("parent")] if self.is_bound else [self.initial.get("parent")]
        _limit_picker(self.fields["parent"], selected)
        self._setup_regions(instance.region if instance else self.initial.get("region"))

    def clean(self):
        data = super().clean()
        if self.errors:
            self.add_format_errors(services.clean_institution, services.INSTITUTION_FORMAT_FIELDS)
            return data
        values = {
            "name": data["name"],
            "short_name": data.get("short_name") or "",
            "kind": data["kind"],
            "grade": data.get("grade") or "",
            "parent": data.get("parent"),
            "specialties": data.get("specialties") or "",
            "beds": data.get("beds"),
            "region": self.chosen_region(),
            "credit_code": data.get("credit_code") or "",
            "legal_representative": data.get("legal_representative") or "",
            "address": data.get("address") or "",
            "phone": data.get("phone") or "",
            **self.common_data(),
        }
        try:
            self.service_data = services.clean_institution(values, instance=self.instance)
        except ValidationError as e:
            self.add_service_errors(e)
        return data


def institution_initial(obj: Institution) -> dict:
    return {
        "name": obj.name, "short_name": obj.short_name, "kind": obj.kind, "grade": obj.grade,
        "parent": obj.parent_id, "specialties": ", ".join(obj.specialties or []), "beds": obj.beds,
        "credit_code": obj.credit_code or "", "legal_representative": obj.legal_representative,
        "address": obj.address, "phone": obj.phone, "external_id": obj.external_id or "", "tier": obj.tier,
        "stage": obj.stage, "owner": obj.owner_id, "team": obj.team_id, "source": obj.source, "needs": obj.needs,
        "notes": obj.notes, "tags": ", ".join(t.name for t in obj.tags.all()), "version": obj.version,
    }  # fmt: skip


# --- person ------------------------------------------------------------------------------------


class PersonForm(CustomerForm):
    name = forms.CharField(label=pgettext_lazy("person", "Name"))  # its length: the services' (as the address's)
    gender = forms.ChoiceField(label=_("Gender"), choices=BLANK + Gender.choices, required=False)
    role = forms.ChoiceField(label=_("Role"), choices=PersonRole.choices, initial=PersonRole.DOCTOR)
    title = forms.CharField(label=_("Title"), required=False)
    institution = forms.ModelChoiceField(
        label=_("Institution"), queryset=Institution.objects.none(), required=False
    )
    department = forms.ModelChoiceField(
        label=_("Department"), queryset=Institution.objects.none(), required=False, empty_label="—",
        help_text=_("Departments of the chosen institution."),
    )  # fmt: skip
    mobile = forms.CharField(
        label=_("Mobile phone"),
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "tel"}),
    )
    landline = forms.CharField(
        label=_("Landline"), required=False, widget=forms.TextInput(attrs={"inputmode": "tel"})
    )
    email = forms.CharField(  # no type=email, as the desk's: Chromium marks 张三@公司.cn invalid (RFC 6531)
        label=_("E-mail"), required=False, max_length=254,
        widget=forms.TextInput(attrs={"inputmode": "email", "autocomplete": "off"}),
    )  # fmt: skip
    birthday = forms.DateField(  # ISO, as a date input takes it: 1975/03/15 (zh-Hans) showed empty, and saving cleared it
        label=_("Birthday"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    home_address = forms.CharField(label=_("Home address"), required=False)  # its length: as the address's
    id_number = forms.CharField(label=_("ID card number"), required=False, max_length=30)
    preferred_language = forms.ChoiceField(
        label=_("Preferred language"), required=False,
        choices=[("", _("As their mail is written"))] + PreferredLanguage.choices,
        help_text=_("The service desk's acknowledgements and survey mails to this person are written in it. A mail "
                    "that names its own language is still answered in that language."),
    )  # fmt: skip

    LIVE_FIELDS = ("mobile", "landline", "email", "id_number")

    def __init__(self, *args, user, instance: Person | None = None, **kwargs):
        self.user, self.instance = user, instance
        # Roles that may not read personal data in clear edit it blind: empty means "keep".
        self.blind = instance is not None and access.personal_data_mode(user, instance) != "plain"
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = person_initial(instance, with_personal=not self.blind)
            if self.blind:  # contact details typed into the notes: masked, put back on saving
                kwargs["initial"].update({f: free_text(getattr(instance, f), True) for f in FREE_TEXT_FIELDS})
        super().__init__(*args, **kwargs)
        self._setup_common()
        # the institutions the user may see, and the hospital of a department they may see (a rep's own department
        # of a hospital outside the territory: "Add a person" on its page opened a form that offered neither)
        institutions = access.workplaces_for(
            user, Institution.objects.active().exclude(kind=InstitutionType.DEPARTMENT)
        )
        if instance is not None and instance.institution_id:
            institutions = Institution.objects.filter(
                Q(pk__in=institutions.values("pk")) | Q(pk=instance.institution_id)
            )
        self.fields["institution"].queryset = institutions
        inst_id = self.data.get("institution") if self.is_bound else self.initial.get("institution")
        _limit_picker(self.fields["institution"], [inst_id])
        # Any department of an institution the user may pick validates here, so that one of another
        # institution gets the services' specific message; the select offers the chosen institution's only.
        self.fields["department"].queryset = person_departments(user, instance)
        # those of an institution the user may pick only: a form sent back with one outside their territory (and
        # refused for it) listed that hospital's departments
        offered = departments_of(inst_id).filter(pk__in=self.fields["department"].queryset.values("pk"))
        self.fields["department"].widget.choices = BLANK + [(d.pk, d.name) for d in offered]
        # choosing an institution reloads the department select with its departments
        here = (
            reverse("customers:person-edit", args=[instance.pk])
            if instance
            else reverse("customers:person-create")
        )
        self.fields["institution"].widget.attrs.update(
            {"hx-get": here, "hx-vals": json.dumps({"_options": "department"}), "hx-target": "#id_department",
             "hx-trigger": "change", "hx-swap": "innerHTML"}
        )  # fmt: skip
        self.clear_names: list[str] = []
        if self.blind:
            for f in Person.PERSONAL_FIELDS:
                shown = _masked(instance, f)
                self.fields[f].help_text = _("Leave empty to keep the current value.")
                if shown:
                    self.fields[f].widget.attrs["placeholder"] = shown
                    # a wrong value the editor cannot see can still be taken out (empty means "keep")
                    self.fields[f"clear_{f}"] = forms.BooleanField(
                        label=_("Remove the current %(field)s") % {"field": str(self.fields[f].label).lower()},
                        required=False,
                    )  # fmt: skip
                    self.clear_names.append(f"clear_{f}")

    @property
    def clear_fields(self):
        return [self[name] for name in self.clear_names]

    def clean(self):
        data = super().clean()
        if self.errors:
            self.add_format_errors(services.clean_person, services.PERSON_FORMAT_FIELDS)
            if not {"birthday", "id_number"} & set(self.errors):  # and the birthday against the ID number, in one round
                pair = {k: v for k, v in self._personal_values(data).items() if k in ("birthday", "id_number")}
                if "id_number" in pair:
                    pair["id_number"] = normalise.credit_code(pair["id_number"])
                mismatch = services.birthday_id_error(pair, self.instance, stored_hidden=self.blind)
                if mismatch is not None:
                    self.add_error("birthday", mismatch)
            return data
        values = {
            "name": data["name"],
            "gender": data.get("gender") or "",
            "role": data["role"],
            "title": data.get("title") or "",
            "preferred_language": data.get("preferred_language") or "",
            "institution": data.get("institution"),
            "department": data.get("department"),
            **self.common_data(),
            **self._personal_values(data),
        }
        try:
            self.service_data = services.clean_person(values, instance=self.instance, stored_hidden=self.blind)
        except ValidationError as e:
            self.add_service_errors(e)
        return data

    def _personal_values(self, data: dict) -> dict:
        """The personal fields to save: those a blind editor left empty are kept (not given), unless ticked off."""
        values = {}
        for f in Person.PERSONAL_FIELDS:
            value = data.get(f)
            if self.blind and value in (None, ""):
                if not data.get(f"clear_{f}"):
                    continue  # unchanged
                value = None  # removed: the editor ticked "remove the current value"
            values[f] = value if f == "birthday" else (value or "")
        return values


def _masked(person: Person, field: str) -> str:
    from pharmacrm.core.personal import MASKERS

    value = getattr(person, field)
    return MASKERS[field](value) if value else ""


def person_departments(user, instance: Person | None = None):
    """The departments a person's form takes: those of the institutions the user may see (and of the person's own
    institution), and the departments the user may see of any other hospital — a rep's own department there, not
    its neighbours."""
    departments = Institution.objects.active().filter(kind=InstitutionType.DEPARTMENT)
    if access.institution_scope_q(user) is None:
        return departments
    seen = access.institutions_for(user, Institution.objects.active())
    place = Q(parent__in=seen.exclude(kind=InstitutionType.DEPARTMENT).values("pk")) | Q(pk__in=seen.values("pk"))
    if instance is not None and instance.institution_id:
        place |= Q(parent_id=instance.institution_id)
    return departments.filter(place)


def departments_of(institution_id):
    """The departments of one institution (none when no institution is chosen)."""
    if not institution_id or not is_id(institution_id):
        return Institution.objects.none()
    return (
        Institution.objects.active()
        .filter(parent_id=int(institution_id), kind=InstitutionType.DEPARTMENT)
        .order_by("name_key", "id")
    )


def person_initial(obj: Person, with_personal: bool) -> dict:
    initial = {
        "name": obj.name, "gender": obj.gender, "role": obj.role, "title": obj.title,
        "preferred_language": obj.preferred_language, "institution": obj.institution_id,
        "department": obj.department_id, "external_id": obj.external_id or "",
        "tier": obj.tier, "stage": obj.stage, "owner": obj.owner_id, "team": obj.team_id, "source": obj.source,
        "needs": obj.needs, "notes": obj.notes, "tags": ", ".join(t.name for t in obj.tags.all()),
        "version": obj.version,
    }  # fmt: skip
    if with_personal:
        for f in Person.PERSONAL_FIELDS:
            initial[f] = getattr(obj, f)
    return initial


# --- consents, reveal, merge ---------------------------------------------------------------------


class ConsentForm(ServiceErrorsMixin, OnceTokenForm):
    purpose = forms.ChoiceField(label=_("Purpose"), choices=BLANK + ConsentPurpose.choices)
    channel = forms.ChoiceField(label=_("Channel"), choices=BLANK + Channel.choices)
    status = forms.ChoiceField(label=_("Status"), choices=ConsentStatus.choices, initial=ConsentStatus.GIVEN)
    at = forms.DateTimeField(
        label=_("When"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("Leave empty for now."),
    )  # fmt: skip
    evidence = forms.CharField(
        label=_("Evidence"), required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Where the consent is documented: form number, recording, message."),
    )  # fmt: skip

    def clean_evidence(self) -> str:
        """At most Consent.EVIDENCE_MAX_LENGTH characters, as the API takes it: said with the other fields' errors
        (no maxlength on the textarea, which would cut a longer paste without a word)."""
        return normalise.check_length("evidence", self.cleaned_data.get("evidence") or "", Consent.EVIDENCE_MAX_LENGTH)


class RevealForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for viewing"), max_length=500, min_length=4,
        widget=forms.TextInput(attrs={"placeholder": _("e.g. returning the doctor's call about case TK-2026-000123")}),
        error_messages={"required": _("State why you need to see this person's contact details.")},
    )  # fmt: skip


# --- list filters ------------------------------------------------------------------------------


class _FilterBase(RegionFieldsMixin, forms.Form):
    region_levels = ("province", "city")

    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    province = _region_field(_("Province"), "province", target="id_city")
    city = _region_field(_("City"), "city")
    tier = forms.ChoiceField(label=_("Tier"), choices=ANY + Tier.choices, required=False)
    stage = forms.ChoiceField(label=_("Lifecycle stage"), choices=ANY + Stage.choices, required=False)
    owner = forms.ModelChoiceField(
        label=_("Owner"), queryset=User.objects.none(), required=False, empty_label=_("Any")
    )
    tag = forms.CharField(label=_("Tag"), required=False, max_length=50)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = User.objects.filter(is_active=True).order_by("username")
        # a region code as typed (１１００００ from an input method's full-width mode, in a link or a bookmark) is
        # the ASCII one: it was an unknown choice, ignored, and the list showed every region
        if self.is_bound and any(self.data.get(name) for name in self.region_levels):
            self.data = self.data.copy()
            for name in self.region_levels:
                if self.data.get(name):
                    self.data[name] = typed_code(self.data[name])
        self._setup_regions(None, blank_label=ANY)

    def cleaned(self) -> dict:
        """Valid filter values; an invalid one is ignored rather than failing the list."""
        self.is_valid()
        return getattr(self, "cleaned_data", {}) or {}

    def search_filters(self) -> search.Filters:
        d = self.cleaned()
        region = d.get("city") or d.get("province") or ""
        owner = d.get("owner")
        return search.Filters(
            type=d.get("type") or "", region=region, tier=d.get("tier") or "", owner=owner.pk if owner else None,
            stage=d.get("stage") or "",
        )  # fmt: skip


class InstitutionFilterForm(_FilterBase):
    type = forms.ChoiceField(label=_("Type"), choices=ANY + InstitutionType.choices, required=False)
    field_order = ["q", "type", "province", "city", "tier", "stage", "owner", "tag"]


class PersonFilterForm(_FilterBase):
    role = forms.ChoiceField(label=_("Role"), choices=ANY + PersonRole.choices, required=False)
    # an id: bounded, so that a crafted number is refused instead of overflowing the database's integers
    institution = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1, max_value=2**63 - 1)
    field_order = ["q", "role", "province", "city", "tier", "stage", "owner", "tag"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        message = _("No such customer, or you may not see it.")
        self.fields["institution"].error_messages.update({"invalid": message, "min_value": message,
                                                          "max_value": message})  # fmt: skip

    def clean(self):
        data = super().clean()
        if "institution" in self.errors:  # a hidden field: its refusal is shown above the filters
            self.add_error(None, self.errors["institution"][0])
            self.add_error(None, _("A filter with an error was not applied: correct it or clear it."))
        return data


class SearchFilterForm(_FilterBase):
    KIND_CHOICES = [
        ("", _("Institutions and people")),
        ("institution", _("Institutions")),
        ("person", _("People")),
    ]
    kind = forms.ChoiceField(label=_("Look for"), choices=KIND_CHOICES, required=False)
    type = forms.ChoiceField(
        label=_("Institution type"), choices=ANY + InstitutionType.choices, required=False
    )
    field_order = ["q", "kind", "type", "province", "city", "tier", "stage", "owner"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["tag"]
