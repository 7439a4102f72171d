"""A safety case as China's 药品不良反应/事件报告表 (《药品不良反应报告和监测管理办法》 附表 1) in PDF: the paper
form a PV officer signs, files or sends where the direct reporting system is not used.

What the case does not record (民族, 对原患疾病的影响, the signatures …) is printed empty, to be filled in by
hand. Always rendered in Simplified Chinese, whatever language the user reads the site in: it is a
regulator's form. Reading the case is the caller's to audit (it shows patient identity)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from pharmacrm.core import pdf as pdfdoc

from . import conf
from .choices import (
    SERIOUSNESS,
    AgeUnit,
    CaseKind,
    Causality,
    Challenge,
    DrugRole,
    Expectedness,
    Outcome,
    Qualification,
    ReportType,
    Sex,
    dose_unit_label,
)
from .models import Drug, Reaction, SafetyCase

LANGUAGE = "zh-hans"
COLUMNS = 6  # the form's grid: every row's cells add up to six columns
BLANK = "＿＿＿＿＿＿"  # a line to write on
# the worst outcome among the reactions is the case's outcome on the form
OUTCOME_SEVERITY = (
    Outcome.FATAL, Outcome.SEQUELAE, Outcome.NOT_RECOVERED, Outcome.RECOVERING, Outcome.RECOVERED, Outcome.UNKNOWN,
)  # fmt: skip
HEALTH_PROFESSIONALS = frozenset({Qualification.PHYSICIAN, Qualification.PHARMACIST, Qualification.OTHER_HCP})
Cells = Sequence[tuple[str, int]]  # (text, columns spanned)


def render(case: SafetyCase) -> bytes:
    """The 报告表 of the case as it stands now (its latest follow-up included)."""
    with translation.override(LANGUAGE):
        return _Form(case).render()


def _date(value: datetime.date | None) -> str:
    return formats.date_format(value, "DATE_FORMAT") if value else ""


def _short_date(value: datetime.date | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def _label(choices, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


class _Form:
    def __init__(self, case: SafetyCase) -> None:
        self.case = case
        self.drugs: list[Drug] = list(case.drugs.select_related("product"))
        self.reactions: list[Reaction] = list(case.reactions.all())
        self.versions = list(case.versions.all())
        self.pdf = pdfdoc.document(_("Adverse drug reaction / event report form"))

    # layout helpers

    def grid(self, rows: Iterable[Cells]) -> None:
        """Rows of bordered cells on the six-column grid; for short values only (a table row must fit on one
        page): free text goes through block()."""
        pdf = self.pdf
        pdf.set_font(pdfdoc.FAMILY, size=9)
        with pdf.table(
            width=pdf.epw,
            col_widths=(1,) * COLUMNS,
            first_row_as_headings=False,
            line_height=4.6,
            text_align="LEFT",
            v_align="MIDDLE",
            padding=(1.2, 1.5),
        ) as table:
            for cells in rows:
                row = table.row()
                for text, span in cells:
                    row.cell(text, colspan=span)
        pdf.set_font(pdfdoc.FAMILY, size=10)

    def block(self, label: str, text: str, *, min_lines: int = 1) -> None:
        """A labelled box of free text that flows across pages; empty lines left for handwriting."""
        pdf = self.pdf
        pdf.set_font(pdfdoc.FAMILY, size=9)
        pdf.multi_cell(0, 5, label, border="LTR", new_x="LMARGIN", new_y="NEXT", padding=(1.2, 1.5, 0, 1.5))
        body = text.strip() or "\n" * (min_lines - 1)
        pdf.multi_cell(0, 5, body, border="LBR", new_x="LMARGIN", new_y="NEXT", padding=(0.5, 1.5, 1.2, 1.5))
        pdf.set_font(pdfdoc.FAMILY, size=10)

    def line(self, text: str, *, bold: bool = False) -> None:
        self.pdf.set_font(pdfdoc.FAMILY, "B" if bold else "", 9.5)
        self.pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_font(pdfdoc.FAMILY, size=10)

    # the form, top to bottom

    def render(self) -> bytes:
        self.header()
        self.patient()
        self.drug_table()
        self.reaction()
        self.assessment()
        self.reporter()
        self.remarks()
        return pdfdoc.to_bytes(self.pdf)

    def header(self) -> None:
        case = self.case
        box = pdfdoc.checkboxes
        follow_up = any(version.sequence > 0 for version in self.versions)
        serious = case.serious or any(reaction.serious for reaction in self.reactions)
        new = case.expectedness == Expectedness.UNEXPECTED
        initial = box(
            [(pgettext("ADR form", "Initial report"), not follow_up), (_("Follow-up report"), follow_up)]
        )
        code = _("Code: %(number)s") % {"number": case.number}
        self.line(f"{initial}        {code}")
        report_type = [
            (pgettext("ADR report type", "New"), new),
            (pgettext("ADR report type", "Serious"), serious),
            (pgettext("ADR report type", "General"), not new and not serious),
        ]
        self.line(_("Type of report: %(boxes)s") % {"boxes": box(report_type)})
        criteria = [
            (str(Reaction._meta.get_field(name).verbose_name), any(getattr(r, name) for r in self.reactions))
            for name in SERIOUSNESS
        ]
        self.line(_("Seriousness criteria: %(boxes)s") % {"boxes": box(criteria)})
        unit = [
            (_("Medical institution"), False),
            (_("Distributor"), False),
            (
                _("Manufacturer"),
                True,
            ),  # this CRM is the manufacturer's (the marketing authorisation holder's)
            (pgettext("ADR reporting unit", "Individual"), False),
            (pgettext("ADR form", "Other"), False),
        ]
        self.line(_("Category of reporting unit: %(boxes)s") % {"boxes": box(unit)})
        if case.kind != CaseKind.ADVERSE_REACTION:
            self.line(_("Kind of case: %(kind)s") % {"kind": _label(CaseKind, case.kind)})

    def patient(self) -> None:
        case = self.case
        box = pdfdoc.checkboxes
        unknown = pgettext("ADR form", "Unknown")
        history = box([(_("Yes (describe)"), False), (pgettext("ADR form", "None"), False), (unknown, False)])
        sex = box([(_label(Sex, s), case.patient_sex == s) for s in (Sex.MALE, Sex.FEMALE)])
        age = ""
        if case.patient_age:
            age = f"{case.patient_age}{_label(AgeUnit, case.patient_age_unit or AgeUnit.YEARS)}"
        born = _("Birth date: %(date)s  or age: %(age)s") % {
            "date": _date(case.patient_birth_date),
            "age": age,
        }
        # the hospital where the patient was seen: the reporter's, when a health professional reported
        hospital = case.reporter_institution if case.reporter_qualification in HEALTH_PROFESSIONALS else ""
        record = _("Medical record / outpatient number: %(value)s") % {"value": case.patient_record_number}
        self.line(_("Patient"), bold=True)
        self.grid(
            [
                [
                    (_("Patient name: %(value)s") % {"value": case.patient_name}, 2),
                    (_("Sex: %(boxes)s") % {"boxes": sex}, 1),
                    (born, 3),
                ],
                [
                    (_("Ethnic group: %(value)s") % {"value": ""}, 2),
                    (_("Weight (kg): %(value)s") % {"value": case.patient_weight_kg}, 2),
                    (_("Contact: %(value)s") % {"value": ""}, 2),
                ],
                [(_("Hospital: %(value)s") % {"value": hospital}, 3), (record, 3)],
                [(_("Previous adverse drug reactions / events: %(boxes)s") % {"boxes": history}, 6)],
                [(_("Adverse drug reactions / events in the family: %(boxes)s") % {"boxes": history}, 6)],
            ]
        )
        self.block(_("Underlying disease / relevant medical history:"), case.patient_history)
        pregnancy = case.patient_pregnancy.strip()
        important = [
            (_("Smoking"), False),
            (_("Drinking"), False),
            (_("Pregnancy") + (f"（{pregnancy}）" if pregnancy else ""), bool(pregnancy)),
            (_("Liver disease"), False),
            (_("Kidney disease"), False),
            (_("Allergies"), False),
            (pgettext("ADR form", "Other"), False),
        ]
        self.grid([[(_("Relevant important information: %(boxes)s") % {"boxes": box(important)}, 6)]])

    def drug_table(self) -> None:
        self.line(_("Drugs"), bold=True)
        suspect = [d for d in self.drugs if d.role in (DrugRole.SUSPECT, DrugRole.INTERACTING)]
        concomitant = [d for d in self.drugs if d.role == DrugRole.CONCOMITANT]
        rows: list[list[str]] = []
        for label, drugs in ((_("Suspect drug"), suspect), (_("Concomitant drug"), concomitant)):
            group = [self.drug_row(drug) for drug in drugs]
            group += [[""] * 8 for _n in range(max(0, 2 - len(group)))]  # lines to write on
            rows += [[label, *row] for row in group]
        pdfdoc.table(
            self.pdf,
            [
                pgettext("ADR form", "Drug"),
                _("Approval number"),
                _("Brand name"),
                _("Generic name (with dosage form)"),
                _("Manufacturer"),
                _("Batch number"),
                _("Dosage and usage (dose, route, times a day)"),
                _("Start and stop of use"),
                _("Reason for use"),
            ],
            rows,
            (0.9, 1.6, 1.4, 1.6, 1.5, 1.2, 1.6, 1.4, 1.3),
            font_size=7.5,
            min_row_height=7,
        )

    @staticmethod
    def drug_row(drug: Drug) -> list[str]:
        product = drug.product
        brand = drug.brand_name or (product.brand_name if product else "")
        generic = drug.generic_name or (product.generic_name if product else "")
        form = drug.dosage_form or (product.dosage_form if product else "")
        if form and form not in generic:
            generic = f"{generic}（{form}）" if generic else form
        dose = f"{drug.dose}{dose_unit_label(drug.dose_unit)}"
        usage = "，".join(part for part in (dose, drug.route, drug.frequency) if part)
        period = ""
        if drug.start_date or drug.stop_date:
            period = f"{drug.start_text} ~ {drug.stop_text}"  # as far as known: 2026-03 ~ 2026-04-10
        approval = drug.approval_number or (product.approval_number if product else "")
        return [approval, brand, generic, drug.manufacturer, drug.batch, usage, period, drug.indication]

    def reaction(self) -> None:
        reactions = self.reactions
        onsets = sorted((r for r in reactions if r.onset_date), key=lambda r: r.onset_date)
        first = onsets[0] if onsets else None
        # as far as it is known: a reaction "in March 2026" occurred on 2026-03, not on 1 March
        occurred = "" if first is None else _date(first.onset_date) if first.onset_precision == "day" else first.onset_text
        self.line(_("Adverse reaction / event"), bold=True)
        self.block(_("Name of the adverse reaction / event:"), "；".join(r.verbatim for r in reactions))
        self.grid([[(_("Occurred on: %(date)s") % {"date": occurred}, 6)]])
        self.block(
            _(
                "Course of the adverse reaction / event (symptoms, signs, clinical tests etc.) and its treatment "
                "(continue on a separate sheet if needed):"
            ),
            self.case.narrative,
            min_lines=6,
        )
        outcomes = {r.outcome for r in reactions if r.outcome}
        worst = next((o for o in OUTCOME_SEVERITY if o in outcomes), None)
        box = pdfdoc.checkboxes
        plain = (Outcome.RECOVERED, Outcome.RECOVERING, Outcome.NOT_RECOVERED, Outcome.UNKNOWN)
        outcome = box([(_label(Outcome, o), o == worst) for o in plain])
        sequelae = _("%(box)s  manifestation: %(blank)s") % {
            "box": pdfdoc.checkbox(_label(Outcome, Outcome.SEQUELAE), worst == Outcome.SEQUELAE),
            "blank": BLANK,
        }
        fatal = _("%(box)s  direct cause of death: %(blank)s  time of death: %(blank)s") % {
            "box": pdfdoc.checkbox(_label(Outcome, Outcome.FATAL), worst == Outcome.FATAL),
            "blank": BLANK,
        }
        suspect = [d for d in self.drugs if d.role in (DrugRole.SUSPECT, DrugRole.INTERACTING)]
        dechallenge = next((d.dechallenge for d in suspect if d.dechallenge), "")
        rechallenge = next((d.rechallenge for d in suspect if d.rechallenge), "")

        def challenge(value: str, not_done: str) -> str:
            options = [
                (pgettext("ADR form", "Yes"), Challenge.YES),
                (pgettext("ADR form", "No"), Challenge.NO),
                (pgettext("ADR form", "Unknown"), Challenge.UNKNOWN),
                (not_done, Challenge.NOT_DONE),
            ]
            return box([(label, value == code) for label, code in options])

        abated = _(
            "Did the reaction / event abate after the drug was stopped or the dose reduced? %(boxes)s"
        ) % {"boxes": challenge(dechallenge, _("Not stopped or reduced"))}
        recurred = _(
            "Did the same reaction / event recur when the suspect drug was used again? %(boxes)s"
        ) % {"boxes": challenge(rechallenge, _("Not used again"))}
        effects = [
            _("Not obvious"),
            _("Prolonged course"),
            _("Worsened"),
            _("Led to sequelae"),
            _("Led to death"),
        ]
        effect = _("Effect on the underlying disease: %(boxes)s") % {
            "boxes": box((e, False) for e in effects)
        }
        self.grid(
            [
                [(_("Outcome: %(boxes)s") % {"boxes": outcome}, 6)],
                [(sequelae, 2), (fatal, 4)],
                [(abated, 6)],
                [(recurred, 6)],
                [(effect, 6)],
            ]
        )

    def assessment(self) -> None:
        case = self.case

        def scale(value: str) -> str:
            return pdfdoc.checkboxes([(str(c.label), value == c) for c in Causality])

        signature = _("Signature: %(blank)s") % {"blank": BLANK}
        by_reporter = _("By the reporter: %(boxes)s") % {"boxes": scale(case.causality_reporter)}
        by_unit = _("By the reporting unit: %(boxes)s") % {"boxes": scale(case.causality_company)}
        self.line(_("Causality assessment"), bold=True)
        self.grid([[(by_reporter, 5), (signature, 1)], [(by_unit, 5), (signature, 1)]])

    def reporter(self) -> None:
        case = self.case
        contact = case.reporter_contact.strip()
        email = contact if "@" in contact else ""
        phone = "" if email else contact
        q = case.reporter_qualification
        other = q not in ("", Qualification.PHYSICIAN, Qualification.PHARMACIST)
        occupation = [
            (_label(Qualification, Qualification.PHYSICIAN), q == Qualification.PHYSICIAN),
            (_label(Qualification, Qualification.PHARMACIST), q == Qualification.PHARMACIST),
            (_("Nurse"), False),
            (pgettext("ADR form", "Other") + (f"（{_label(Qualification, q)}）" if other else ""), other),
        ]
        source = [
            (_("Medical institution"), q in HEALTH_PROFESSIONALS),
            (_("Distributor"), False),
            (pgettext("ADR reporting unit", "Individual"), q == Qualification.CONSUMER),
            (_("Literature"), False),
            (_("Post-marketing study"), case.report_type == ReportType.STUDY),
            (pgettext("ADR form", "Other"), False),
        ]
        contact_person = str(case.owner) if case.owner else ""  # the PV officer who owns the case
        self.line(_("Reporter"), bold=True)
        self.grid(
            [
                [
                    (_("Reporter name: %(value)s") % {"value": case.reporter_name}, 2),
                    (_("Phone: %(value)s") % {"value": phone}, 2),
                    (_("E-mail: %(value)s") % {"value": email}, 2),
                ],
                [
                    (_("Occupation: %(boxes)s") % {"boxes": pdfdoc.checkboxes(occupation)}, 4),
                    (_("Signature: %(blank)s") % {"blank": BLANK}, 2),
                ],
            ]
        )
        self.line(_("Reporting unit"), bold=True)
        self.grid(
            [
                [
                    # the reporting unit is the company (the marketing authorisation holder), as in E2B's C.3.2
                    (_("Name of the unit: %(value)s") % {"value": conf.sender_organisation()}, 2),
                    (_("Contact person: %(value)s") % {"value": contact_person}, 2),
                    (_("Phone: %(value)s") % {"value": ""}, 1),
                    (_("Report date: %(value)s") % {"value": ""}, 1),
                ],
                [
                    (
                        _("Manufacturers, source of the information: %(boxes)s")
                        % {"boxes": pdfdoc.checkboxes(source)},
                        6,
                    )
                ],
            ]
        )

    def remarks(self) -> None:
        case = self.case
        lines = [
            _("Follow-up %(n)s received %(date)s: %(summary)s")
            % {
                "n": version.sequence,
                "date": _short_date(timezone.localtime(version.received_at).date()),
                "summary": version.summary,
            }
            for version in self.versions
            if version.sequence > 0
        ]
        if case.reporter_comment:
            lines.append(_("Reporter's comments: %(text)s") % {"text": case.reporter_comment})
        if case.sender_comment:
            lines.append(_("Sender's comments: %(text)s") % {"text": case.sender_comment})
        self.block(_("Remarks:"), "\n".join(lines), min_lines=3)
