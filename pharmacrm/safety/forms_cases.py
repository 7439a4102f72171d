"""Forms of the case pages: the list's filters, a new case, the edit and follow-up forms (with formsets for
drugs and reactions), and each action on a case. The forms only shape input; the services validate."""

from __future__ import annotations

import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pharmacrm.core.api_utils import TypedDateTimeFormField
from pharmacrm.core.models import User
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.core.roles import Role
from pharmacrm.core.typed_dates import DAY_EXAMPLE
from pharmacrm.customers.forms import OnceTokenForm, OwnIdsMixin, ServiceErrorsMixin
from pharmacrm.servicedesk.models import Product

from . import partial_dates
from .choices import (
    SERIOUSNESS,
    ActionTaken,
    AgeUnit,
    CapaStatus,
    CaseKind,
    CaseStatus,
    Causality,
    Challenge,
    Channel,
    ClockKind,
    DrugRole,
    Expectedness,
    Jurisdiction,
    Outcome,
    Qualification,
    RecallDecision,
    ReportType,
    Sex,
)
from .e2b import rules

BLANK = [("", "—")]
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class PartialDateField(forms.CharField):
    """A reaction's onset or end, a drug's start or stop: a day, or only the month or the year when that is all the
    reporter knows (E2B(R3) E.i.4 / E.i.5, G.k.4.r.4 / G.k.4.r.5). A text input (a date picker takes whole days only); the service reads the precision off it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("A day (2026-03-15, 2026年3月15日), or only the month (2026-03, 2026年3月) or "
                                         "the year (2026)."))  # fmt: skip
        super().__init__(required=False, max_length=20, widget=forms.TextInput(
            attrs={"placeholder": DAY_EXAMPLE, "inputmode": "numeric", "size": 12}), **kwargs)  # fmt: skip

    def prepare_value(self, value):
        return value.isoformat() if isinstance(value, datetime.date) else value

    def to_python(self, value):
        value = super().to_python(value)
        try:
            parsed = partial_dates.parse(value)
        except ValueError:
            raise forms.ValidationError(partial_dates.INVALID, code="invalid") from None
        return partial_dates.text(*parsed) if parsed is not None else None
YES_NO = [("", _("All")), ("yes", _("Yes")), ("no", _("No"))]


def _text(label, max_length: int | None = None, *, rows: int = 0, **kwargs) -> forms.CharField:
    widget = forms.Textarea(attrs={"rows": rows}) if rows else None
    return forms.CharField(label=label, required=False, max_length=max_length, widget=widget, **kwargs)


def _choice(label, choices, **kwargs) -> forms.ChoiceField:
    return forms.ChoiceField(label=label, required=False, choices=BLANK + list(choices), **kwargs)


def _products():
    return Product.objects.filter(active=True).order_by("brand_name", "strength")


def pv_users():
    """Who may own a QA hand-off or a CAPA: the active PV / QA users."""
    return User.objects.filter(is_active=True, groups__name=Role.PV).distinct().order_by("username")


def staff_users():
    return User.objects.filter(is_active=True).order_by("username")


# --- the list -------------------------------------------------------------------------------------------


class CaseFilterForm(forms.Form):
    q = forms.CharField(label=_("Case number"), required=False, max_length=40)
    kind = _choice(_("Kind"), CaseKind.choices)
    status = _choice(_("Status"), CaseStatus.choices)
    valid = forms.ChoiceField(label=_("Valid"), required=False, choices=YES_NO)
    serious = forms.ChoiceField(label=_("Serious"), required=False, choices=YES_NO)
    overdue = forms.BooleanField(label=_("Overdue only"), required=False)
    mine = forms.BooleanField(label=_("My cases only"), required=False)

    def cleaned(self) -> dict:
        """The valid filters (an invalid one is dropped, never the others with it)."""
        self.is_valid()
        return getattr(self, "cleaned_data", {}) or {}


# --- case data ------------------------------------------------------------------------------------------


class CaseFieldsForm(ServiceErrorsMixin, forms.Form):
    """Every field of a case a PV officer edits (patient, reporter, assessment, narrative). The lengths are the
    API's (E2B's H.1 narrative takes 100,000 characters): a case imported or written through the API with a
    longer text than the page allowed could not be saved on the page at all."""

    kind = forms.ChoiceField(label=_("Kind"), choices=CaseKind.choices)
    report_type = forms.ChoiceField(label=_("Type of report"), choices=ReportType.choices)
    country = _text(_("Country where the reaction occurred"), 2, help_text=_("Two letters, e.g. CN."))
    worldwide_id = _text(_("Worldwide unique case id"), 100)
    sender_case_id = _text(_("Sender's safety report id"), 100)
    # D patient
    patient_name = _text(_("Patient (initials or name)"), 200)
    patient_sex = _choice(_("Sex"), Sex.choices)
    patient_birth_date = forms.DateField(label=_("Birth date"), required=False, widget=DATE_INPUT)
    patient_age = _text(_("Age at onset"), 10)
    patient_age_unit = _choice(_("Age unit"), AgeUnit.choices)
    patient_weight_kg = _text(_("Weight (kg)"), 10)
    patient_height_cm = _text(_("Height (cm)"), 10)
    patient_pregnancy = _text(_("Pregnancy / breast-feeding"), 500)
    patient_history = _text(_("Relevant medical history"), 20000, rows=3)
    patient_record_number = _text(_("Hospital record number"), 100)
    # C.2 reporter
    reporter_name = _text(_("Reporter name"), 200)
    reporter_contact = _text(_("Reporter phone or e-mail"), 200)
    reporter_institution = _text(_("Reporter institution"), 200)
    reporter_qualification = _choice(_("Reporter qualification"), Qualification.choices)
    reporter_country = _text(_("Reporter country"), 2)
    # assessment
    expectedness = forms.ChoiceField(label=_("Expectedness"), choices=Expectedness.choices)
    causality_reporter = _choice(_("Causality (reporter)"), Causality.choices)
    causality_company = _choice(_("Causality (company)"), Causality.choices)
    narrative = _text(_("Case narrative"), 100000, rows=6)
    reporter_comment = _text(_("Reporter's comments"), 20000, rows=3)
    sender_comment = _text(_("Sender's comments"), 20000, rows=3)
    literature = _text(_("Literature references"), 20000, rows=2,
                       help_text=_("One reference a line — authors, title, journal, year, pages (C.4.r.1, at most 500 "
                                   "characters each)."))  # fmt: skip
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    SECTIONS = {
        "case": ("kind", "report_type", "country", "worldwide_id", "sender_case_id"),
        "patient": (
            "patient_name",
            "patient_sex",
            "patient_birth_date",
            "patient_age",
            "patient_age_unit",
            "patient_weight_kg",
            "patient_height_cm",
            "patient_pregnancy",
            "patient_record_number",
            "patient_history",
        ),  # fmt: skip
        "reporter": (
            "reporter_name",
            "reporter_contact",
            "reporter_institution",
            "reporter_qualification",
            "reporter_country",
        ),  # fmt: skip
        "assessment": ("expectedness", "causality_reporter", "causality_company"),
        "narrative": ("narrative", "reporter_comment", "sender_comment", "literature"),
    }

    @classmethod
    def initial_for(cls, case) -> dict:
        names = [n for n in cls.base_fields if n != "version"]
        return {**{n: getattr(case, n) for n in names}, "version": case.version}

    @property
    def sections(self) -> dict[str, list]:
        """The bound fields by section, for the template (`form.sections.patient`)."""
        return {name: [self[f] for f in fields] for name, fields in self.SECTIONS.items()}

    def service_data(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "version"}


class DrugForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=DrugRole.choices, initial=DrugRole.SUSPECT)
    product = PinyinModelChoiceField(label=_("Product"), queryset=Product.objects.none(), required=False,
                                     empty_label="—")  # fmt: skip
    brand_name = _text(_("Brand name"), 250)
    generic_name = _text(_("Generic name"), 250)
    approval_number = _text(_("Approval number (批准文号)"), 40)
    manufacturer = _text(_("Marketing authorisation holder"), 200)
    dosage_form = _text(_("Dosage form"), 60)
    batch = _text(_("Batch / lot"), 35)
    dose = _text(_("Dose"), 20)
    dose_unit = _text(_("Dose unit"), 20)
    route = _text(_("Route"), 60)
    frequency = _text(_("Frequency"), 60)
    start_date = PartialDateField(label=_("Start"))
    stop_date = PartialDateField(label=_("Stop"))
    indication = _text(_("Indication"), 250)
    indication_meddra = _text(_("Indication MedDRA code"), 8)
    action_taken = _choice(_("Action taken"), ActionTaken.choices)
    dechallenge = _choice(_("Dechallenge"), Challenge.choices)
    rechallenge = _choice(_("Rechallenge"), Challenge.choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = _products()


class ReactionForm(forms.Form):
    verbatim = _text(_("Reaction as reported"), 250)
    language = _text(_("Language"), 3, initial="zho")
    meddra_version = _text(_("MedDRA version"), 5)
    meddra_llt = _text(_("MedDRA LLT code"), 8)
    meddra_pt = _text(_("MedDRA PT code"), 8)
    onset_date = PartialDateField(label=_("Onset"))
    end_date = PartialDateField(label=_("End"))
    outcome = _choice(_("Outcome"), Outcome.choices)
    death = forms.BooleanField(label=_("Results in death"), required=False)
    life_threatening = forms.BooleanField(label=_("Life-threatening"), required=False)
    hospitalisation = forms.BooleanField(label=_("Hospitalisation (initial or prolonged)"), required=False)
    disability = forms.BooleanField(label=_("Disability / incapacity"), required=False)
    congenital = forms.BooleanField(label=_("Congenital anomaly / birth defect"), required=False)
    other_important = forms.BooleanField(label=_("Other medically important condition"), required=False)

    def seriousness(self) -> list:
        return [self[f] for f in SERIOUSNESS]


class RowFormSet(forms.BaseFormSet):
    """Drug or reaction rows: blank extra rows are ignored, ticked "remove" rows are dropped."""

    def rows(self) -> list[dict]:
        out = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE"):
                continue
            row = {k: v for k, v in data.items() if k != "DELETE"}
            out.append(row)
        return out

    def add_service_errors(self, error, prefix: str) -> list[str]:
        """Put "drugs[0].batch" errors at that row's field; return the messages without a place."""
        rest = []
        kept = [i for i, f in enumerate(self.forms) if getattr(f, "cleaned_data", None) and not
                f.cleaned_data.get("DELETE")]  # fmt: skip
        for key, messages in getattr(error, "message_dict", {}).items():
            if not key.startswith(f"{prefix}["):
                continue
            index, _sep, field = key[len(prefix) + 1 :].partition("]")
            field = field.lstrip(".")
            try:
                form = self.forms[kept[int(index)]]
            except (ValueError, IndexError):
                rest += messages
                continue
            for message in messages:
                form.add_error(field if field in form.fields else None, message)
        return rest


DrugFormSet = forms.formset_factory(DrugForm, formset=RowFormSet, extra=1, can_delete=True)
ReactionFormSet = forms.formset_factory(ReactionForm, formset=RowFormSet, extra=1, can_delete=True)

DRUG_INITIAL_FIELDS = tuple(DrugForm.base_fields)
REACTION_INITIAL_FIELDS = tuple(ReactionForm.base_fields)


def drug_initial(case) -> list[dict]:
    return [{f: (d.product_id if f == "product" else getattr(d, f)) for f in DRUG_INITIAL_FIELDS}
            | {"start_date": d.start_text, "stop_date": d.stop_text} for d in case.drugs.all()]  # fmt: skip


def reaction_initial(case) -> list[dict]:
    return [{f: getattr(r, f) for f in REACTION_INITIAL_FIELDS} | {"onset_date": r.onset_text, "end_date": r.end_text}
            for r in case.reactions.all()]  # fmt: skip


class FollowUpFieldsForm(ServiceErrorsMixin, OnceTokenForm):
    """When the new information came and what it is; its one-time token makes the form sent twice (a double click)
    add one version, not two with their own clocks."""

    received_at = TypedDateTimeFormField(
        label=_("Follow-up received"),
        help_text=_("When the company received this new information: its reporting clock starts then."),
    )  # fmt: skip
    summary = forms.CharField(label=_("What is new"), required=False, max_length=4000,
                              widget=forms.Textarea(attrs={"rows": 3}))  # fmt: skip


# --- a new case -----------------------------------------------------------------------------------------


class NewCaseForm(ServiceErrorsMixin, OnceTokenForm):
    """A PV officer opens a case directly: the minimum criteria at a glance (patient, reporter, one suspect
    drug, one reaction) and the narrative; the rest is completed on the edit form."""

    kind = forms.ChoiceField(label=_("Kind"), choices=CaseKind.choices)
    received_at = TypedDateTimeFormField(
        label=_("First received (day 0)"),
        help_text=_("When anyone in the company first heard of it (a call, a visit, an e-mail), not when the case "
                    "is opened here: the reporting clocks count from this moment."),
    )  # fmt: skip
    reporter_name = _text(_("Reporter name"), 200)
    reporter_contact = _text(_("Reporter phone or e-mail"), 200)
    reporter_institution = _text(_("Reporter institution"), 200)
    reporter_qualification = _choice(_("Reporter qualification"), Qualification.choices)
    patient_name = _text(_("Patient (initials or name)"), 200)
    patient_sex = _choice(_("Sex"), Sex.choices)
    patient_age = _text(_("Age at onset (years)"), 10)
    patient_birth_date = forms.DateField(label=_("Birth date"), required=False, widget=DATE_INPUT)
    drug_brand_name = _text(_("Suspect drug: brand name"), 250)
    drug_generic_name = _text(_("Suspect drug: generic name"), 250)
    drug_product = PinyinModelChoiceField(label=_("Suspect drug: from the catalogue"), queryset=Product.objects.none(),
                                          required=False, empty_label="—")  # fmt: skip
    drug_batch = _text(_("Batch / lot"), 35)
    reaction_verbatim = _text(_("Reaction as reported"), 250, help_text=_("In the reporter's own words."))
    reaction_onset_date = PartialDateField(label=_("Onset"))
    reaction_outcome = _choice(_("Outcome"), Outcome.choices)
    narrative = _text(_("Case narrative"), 20000, rows=5)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["drug_product"].queryset = _products()
        if not self.is_bound:
            self.initial.setdefault("received_at", timezone.localtime().replace(second=0, microsecond=0))
        for name in SERIOUSNESS:
            self.fields[f"reaction_{name}"] = forms.BooleanField(
                label=ReactionForm.base_fields[name].label, required=False
            )

    def seriousness(self) -> list:
        return [self[f"reaction_{n}"] for n in SERIOUSNESS]

    def service_data(self) -> dict:
        d = self.cleaned_data
        data = {k: v for k, v in d.items() if not k.startswith(("drug_", "reaction_"))}
        drug = {"role": DrugRole.SUSPECT, "brand_name": d["drug_brand_name"], "generic_name": d["drug_generic_name"],
                "batch": d["drug_batch"]}  # fmt: skip
        if d.get("drug_product") is not None:
            drug["product"] = d["drug_product"]
        data["drugs"] = [drug] if drug.get("product") or drug["brand_name"] or drug["generic_name"] else []
        if d["reaction_verbatim"]:
            reaction = {"verbatim": d["reaction_verbatim"], "onset_date": d.get("reaction_onset_date"),
                        "outcome": d.get("reaction_outcome") or ""}  # fmt: skip
            reaction.update({n: d.get(f"reaction_{n}", False) for n in SERIOUSNESS})
            data["reactions"] = [reaction]
        else:
            data["reactions"] = []
        return data

    FIELD_MAP = {"drugs[0].brand_name": "drug_brand_name", "drugs[0].batch": "drug_batch",
                 "reactions[0].verbatim": "reaction_verbatim", "reactions[0].onset_date": "reaction_onset_date"}  # fmt: skip

    def add_service_errors(self, error) -> None:
        if hasattr(error, "error_dict"):
            for key, errors in error.error_dict.items():
                field = self.FIELD_MAP.get(key, key)
                for e in errors:
                    self.add_error(field if field in self.fields else None, e)
        else:
            super().add_service_errors(error)


class FromSourceForm(OnceTokenForm):
    """'Open safety case' on a ticket or interaction; its one-time token makes a double click open one case."""

    kind = forms.ChoiceField(label=_("Kind"), choices=CaseKind.choices)


# --- actions on a case ----------------------------------------------------------------------------------


class StatusForm(OwnIdsMixin, ServiceErrorsMixin, forms.Form):
    ids = "close"  # shown with the other actions on the case page
    status = forms.ChoiceField(
        label=_("New status"),
        choices=[(CaseStatus.CLOSED, _("Close")), (CaseStatus.NULLIFIED, _("Nullify")),
                 (CaseStatus.ASSESSING, _("Reopen"))],
    )  # fmt: skip
    reason = forms.CharField(label=_("Reason"), required=False, max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 2}))  # fmt: skip
    version = forms.IntegerField(widget=forms.HiddenInput)


class SignatureMixin(forms.Form):
    otp_code = forms.CharField(
        label=_("One-time code"), max_length=10,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
        help_text=_("Your electronic signature: enter the current code from your authenticator app."),
    )  # fmt: skip


class ExportForm(ServiceErrorsMixin, SignatureMixin):
    purpose = forms.ChoiceField(
        label=_("Purpose"),
        choices=[(rules.REGULATORY, _("Submission to a regulator")), (rules.PARTNER, _("Exchange with a partner"))],
    )  # fmt: skip
    # C.1.11.1: a report as the case now stands, or — of a case reported before — an amendment or a nullification
    report = forms.ChoiceField(
        label=_("Report"), required=False,
        choices=[("", _("Report (initial or follow-up)")),
                 ("amendment", _("Amendment: corrects a report sent, no new information")),
                 ("nullification", _("Nullification: the case sent is void (invalid, a duplicate, sent in error)"))],
    )  # fmt: skip
    reason = _text(_("Reason for the amendment or nullification"), 2000, rows=2,
                   help_text=_("Required for an amendment or a nullification (C.1.11.2). A nullification also "
                               "nullifies the case."))  # fmt: skip
    field_order = ["purpose", "report", "reason", "otp_code"]


class SubmissionForm(OwnIdsMixin, ServiceErrorsMixin, SignatureMixin, OnceTokenForm):
    """A submission recorded with the officer's signature; its one-time token makes the form sent twice (a double
    click: its code then used) record one submission and show it."""

    ids = "submission"  # shown with the other actions on the case page

    jurisdiction = forms.ChoiceField(label=_("Jurisdiction"), choices=Jurisdiction.choices)
    kind = forms.ChoiceField(
        label=_("Report"), choices=[c for c in ClockKind.choices if c[0] != ClockKind.HANDOFF]
    )
    channel = forms.ChoiceField(label=_("Gateway or channel"), choices=BLANK + list(Channel.choices))
    submitted_at = TypedDateTimeFormField(label=_("Submitted"))
    message_id = _text(
        _("Batch message id"), 100, help_text=_("Filled in from your last export of this case.")
    )
    reference = _text(_("Regulator's reference"), 100)
    late_reason = _text(_("Reason for the delay"), 4000, rows=2,
                        help_text=_("Required when the report is later than its deadline."))  # fmt: skip
    field_order = ["jurisdiction", "kind", "channel", "submitted_at", "message_id", "reference", "late_reason",
                   "otp_code"]  # fmt: skip

    def service_data(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k not in ("otp_code", "form_token")}


class DayZeroForm(OwnIdsMixin, ServiceErrorsMixin, SignatureMixin):
    """Day 0 typed wrong, corrected with a reason and the officer's signature (services.correct_day_0)."""

    ids = "day_zero"  # shown with the other actions on the case page

    received_at = TypedDateTimeFormField(
        label=_("Day 0 (first received)"),
        help_text=_("When the company first heard of the case (C.1.4). The initial report's clocks are counted "
                    "again from it."),
    )  # fmt: skip
    reason = _text(_("Reason for the correction"), 2000, rows=2)
    version = forms.IntegerField(widget=forms.HiddenInput)
    field_order = ["received_at", "reason", "otp_code"]


class QualityForm(ServiceErrorsMixin, forms.Form):
    product = PinyinModelChoiceField(label=_("Product"), queryset=Product.objects.none(), required=False,
                                     empty_label="—")  # fmt: skip
    batch = _text(_("Batch / lot"), 35)
    expiry_date = forms.DateField(label=_("Expiry"), required=False, widget=DATE_INPUT)
    defect = _text(_("Defect description"), 20000, rows=3)
    qa_owner = forms.ModelChoiceField(label=_("QA owner"), queryset=User.objects.none(), required=False,
                                      empty_label="—")  # fmt: skip
    investigation_outcome = _text(_("Investigation outcome"), 20000, rows=3)
    root_cause = _text(_("Root cause"), 20000, rows=2)
    recall_decision = forms.ChoiceField(
        label=_("Recall decision"), choices=RecallDecision.choices, required=False
    )
    recall_reason = _text(_("Reason for the recall decision"), 20000, rows=2)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = _products()
        self.fields["qa_owner"].queryset = pv_users()

    @classmethod
    def initial_for(cls, case, complaint) -> dict:
        out = {"version": case.version}
        if complaint is not None:
            out.update({f: getattr(complaint, f) for f in cls.base_fields if f != "version"})
            out["product"], out["qa_owner"] = complaint.product_id, complaint.qa_owner_id
        return out

    def service_data(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "version"}


class CapaForm(ServiceErrorsMixin, OnceTokenForm):
    """A new CAPA action; its one-time token makes the form sent twice (a double click, Back and send) add one."""

    action = forms.CharField(label=_("Action"), max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    preventive = forms.BooleanField(label=_("Preventive (not corrective)"), required=False)
    owner = forms.ModelChoiceField(label=_("Owner"), queryset=User.objects.none(), empty_label="—")
    due_date = forms.DateField(label=_("Due"), widget=DATE_INPUT)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = pv_users()


class CapaUpdateForm(ServiceErrorsMixin, forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=CapaStatus.choices)
    effectiveness_check = _text(_("Effectiveness check"), 4000, rows=2)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)


class FileForm(ServiceErrorsMixin, OnceTokenForm):
    """A photo or document for the case; its one-time token makes the form sent twice (a double click) keep one."""

    files = forms.FileField(label=_("Photo or document"),
                            help_text=_("A photo of the package or the defect, a hospital record (PDF, image, "
                                        "text, Word or Excel)."))  # fmt: skip


class LiteratureCopyForm(ServiceErrorsMixin, forms.Form):
    """The copy of a published article (C.4.r.2) for one of the case's literature references."""

    reference = forms.TypedChoiceField(label=_("Literature reference"), coerce=int, choices=())
    copy = forms.FileField(label=_("Copy of the article"),
                           help_text=_("The article as a PDF; it is sent inside the ICSR with its reference."))  # fmt: skip

    def __init__(self, *args, references: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reference"].choices = [
            (n, f"{n}. {text[:80]}{'…' if len(text) > 80 else ''}") for n, text in enumerate(references, start=1)
        ]
