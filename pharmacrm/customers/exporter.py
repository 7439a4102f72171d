"""Customer export (CSV streamed, XLSX write-only) in the import template's format, within the
user's scope, with personal data masked for roles that may not see it, and audited."""

from __future__ import annotations

import csv
import io
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db.models import Q
from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit, downloads
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.numbers import typed_code
from pharmacrm.core.personal import MASKERS, free_text
from pharmacrm.core.roles import Cap

from . import importer, normalise, search, services
from .choices import (
    Gender,
    HospitalGrade,
    InstitutionType,
    PersonRole,
    PreferredLanguage,
    Source,
    Stage,
    Tier,
)
from .models import ImportJob, Institution, Person

A = AuditEntry.Action
CHUNK = 2000
XLSX_MAX_ROWS = 1_048_575  # data rows a sheet holds (Excel's limit, less the header row): more go on in a further sheet
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEGATIVE_NUMBER = re.compile(r"-\d+(\.\d+)?")


def attachment(name: str) -> str:
    return content_disposition_header(True, name)


# --- which customers ------------------------------------------------------------------------------


def _int(value) -> int | None:
    """An id from the query string; None (the filter ignored) when it is none, or beyond the database's integers."""
    value = str(value or "").strip()
    return int(value) if value.isdecimal() and 0 < int(value) <= 2**63 - 1 else None


# the filters of one list only: the other list's are not applied, so the audit entry does not name them either
# (an institution export with ?role=doctor was recorded as filtered by a role it never was)
TARGET_FILTERS = {ImportJob.Target.INSTITUTIONS: ("role", "institution"), ImportJob.Target.PEOPLE: ("type",)}


def filters_from(params, target: str = "") -> dict[str, Any]:
    """The list pages' filters (type, region/province/city, tier, owner, stage, q, tag, role,
    institution) that apply to the target's list; an invalid value is ignored, as the lists do."""
    # NUL dropped: PostgreSQL refuses it in text (a pasted link with %00 was a server error)
    get = lambda k: str(params.get(k) or "").replace("\x00", "").strip()  # noqa: E731
    region = typed_code(get("region") or get("city") or get("province"))  # １１０１０１ is 110101
    out = {
        "type": get("type") if get("type") in InstitutionType.values else "",
        "region": region if re.fullmatch(r"[0-9]{2,6}", region) else "",
        "tier": get("tier") if get("tier") in Tier.values else "",
        "stage": get("stage") if get("stage") in Stage.values else "",
        "owner": _int(get("owner")),
        "q": get("q")[:100],
        "tag": get("tag")[:50],
        "role": get("role") if get("role") in PersonRole.values else "",
        "institution": _int(get("institution")),
    }
    return {k: v for k, v in out.items() if v and k not in TARGET_FILTERS.get(target, ())}


def queryset(user, target: str, filters: dict[str, Any]):
    """The active customers this user may see, narrowed by the filters (same rules as the lists)."""
    flt = search.Filters(
        type=filters.get("type", "") if target == ImportJob.Target.INSTITUTIONS else "",
        region=filters.get("region", ""), tier=filters.get("tier", ""), owner=filters.get("owner"),
        stage=filters.get("stage", ""),
    )  # fmt: skip
    if target == ImportJob.Target.INSTITUTIONS:
        qs = access.institutions_for(user, Institution.objects.active())
        qs = qs.filter(flt.institution_q()) if flt.any else qs
        qs = qs.select_related("region", "parent", "owner", "team")
        kind = "institution"
    else:
        qs = access.people_for(user, Person.objects.active())
        qs = qs.filter(flt.person_q()) if flt.any else qs
        if filters.get("role"):
            qs = qs.filter(role=filters["role"])
        if filters.get("institution"):
            inst = filters["institution"]
            qs = qs.filter(Q(institution_id=inst) | Q(department_id=inst))
        qs = qs.select_related("institution", "department", "owner", "team")
        kind = "person"
    if filters.get("tag"):
        qs = qs.filter(services.tag_q([filters["tag"]])).distinct()
    if filters.get("q"):
        search.check_contact_look_up(user, filters["q"])
        qs = search.every_match(qs, filters["q"], kind)  # every match: the search page lists the best only
    return qs.prefetch_related("tags").order_by("code")


# --- how each column is written -------------------------------------------------------------------


def _label(choices: type, value: str) -> str:
    return importer.choice_label(choices, value)  # in the reader's language; the import reads any


def _key_of(inst: Institution | None) -> str:
    """What the importer resolves an institution by: credit code, else external id, else code."""
    if inst is None:
        return ""
    return inst.credit_code or inst.external_id or inst.code


def _common(obj, plain: bool) -> dict[str, Any]:
    """`plain`: the reader sees personal data; else contact details typed into needs and notes are masked."""
    return {
        "code": obj.code,
        "tier": _label(Tier, obj.tier),
        "stage": _label(Stage, obj.stage),
        "source": _label(Source, obj.source),
        "owner": obj.owner.get_username() if obj.owner_id else "",
        # in the reader's language (a key account's service team); the import finds the team by it too
        "team": obj.team.shown_name if obj.team_id else "",
        "external_id": obj.external_id or "",
        "tags": ",".join(t.name for t in obj.tags.all()),
        "needs": free_text(obj.needs, not plain),
        "notes": free_text(obj.notes, not plain),
    }


def _institution_row(regions: importer.Regions, plain: bool) -> Callable[[Institution], dict]:
    def row(obj: Institution) -> dict:
        province, city, district = regions.parts(obj.region_id)
        return {
            **_common(obj, plain), "name": obj.name, "short_name": obj.short_name, "kind": _label(InstitutionType, obj.kind),
            "grade": _label(HospitalGrade, obj.grade), "credit_code": obj.credit_code or "", "province": province,
            "city": city, "district": district, "region_code": obj.region_id or "", "address": obj.address,
            "phone": obj.phone, "legal_representative": obj.legal_representative,
            "beds": obj.beds if obj.beds is not None else "", "specialties": ",".join(obj.specialties or []),
            "parent": _key_of(obj.parent), "parent_name": obj.parent.name if obj.parent_id else "",
        }  # fmt: skip

    return row


def _personal(field: str, value, plain: bool) -> str:
    if not value:
        return ""
    if not plain:
        return MASKERS[field](value)
    if field in ("mobile", "landline"):
        return normalise.format_phone(value)
    if field == "birthday":
        return value.isoformat()
    return value


def _person_row(plain: bool) -> Callable[[Person], dict]:
    def row(obj: Person) -> dict:
        out = {
            **_common(obj, plain), "name": obj.name, "gender": _label(Gender, obj.gender), "role": _label(PersonRole, obj.role),
            "title": obj.title, "institution": _key_of(obj.institution),
            "institution_name": obj.institution.name if obj.institution_id else "",
            "department": obj.department.name if obj.department_id else "",
            "preferred_language": _label(PreferredLanguage, obj.preferred_language),
        }  # fmt: skip
        for f in Person.PERSONAL_FIELDS:
            out[f] = _personal(f, getattr(obj, f), plain)
        return out

    return row


def columns(target: str) -> list[tuple[str, str]]:
    """(key, header) in export order: the import template's columns plus readable names, headed in the exporting
    user's language (the template's Chinese headers in Simplified Chinese). The import reads them in any language."""
    out = []
    for col in importer.columns_for(target):
        if not col.template:
            continue
        out.append((col.key, importer.column_label(col)))
        if col.key == "institution":
            out.append(("institution_name", importer.export_only_label("institution_name")))
        if col.key == "parent":
            out.append(("parent_name", importer.export_only_label("parent_name")))
    return out


# --- writing -------------------------------------------------------------------------------------


def _rows(qs, make: Callable[[Any], dict], keys: list[str]) -> Iterator[list]:
    for obj in qs.iterator(chunk_size=CHUNK):
        values = make(obj)
        yield [values.get(k, "") for k in keys]


# digit strings Excel turns into numbers that lose them: 12 digits and more (an 18-digit credit code keeps 15), a leading
# 0, and a code that reads as scientific notation (the batch 21E005 is shown 2.10E+06, and saved back as 2100000)
_EXCEL_NUMBER_LOSES = re.compile(r"[0-9]{12,}|0[0-9]+|[0-9]+(?:\.[0-9]+)?[Ee][+-]?[0-9]+")
_EXCEL_DATE_LIKE = re.compile(r"[0-9]{1,4}[-/][0-9]{1,2}(?:[-/][0-9]{1,4})?")  # what Excel turns into a date
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def csv_safe(value) -> Any:
    """Keep spreadsheet programs from running a cell as a formula (CSV injection): every CSV the application
    writes for people to open (exports, import error reports) passes its cells through this. A plain negative
    number (a return's quantity, -3) is no formula and stays as it is. Long digit strings are kept text."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NEGATIVE_NUMBER.fullmatch(value):
        return "'" + value
    if isinstance(value, str) and (_EXCEL_NUMBER_LOSES.fullmatch(value)
                                   or (_EXCEL_DATE_LIKE.fullmatch(value) and not _ISO_DATE.fullmatch(value))):  # fmt: skip
        # Excel reads a bare digit string as a number: a credit code or ID number of 18 digits keeps 15 and shows
        # 1.23101E+17, a code starting with 0 loses it, a batch 21E005 becomes 2100000. It reads a batch 3-15 or an
        # order number 2026-03 as a date (15 March; March 2026) and saves it back as one. A leading tab keeps it
        # text; the importers strip it. The export's own dates (ISO, 2026-03-15) stay dates.
        return "\t" + value
    return value


def csv_stream(header: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")  # Excel opens UTF-8 CSV correctly only with a BOM
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_safe(v) for v in row])
        if buf.tell() > 64 * 1024:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def sheet_title(title: str, number: int) -> str:
    """The name of a workbook's `number`th sheet of `title`: the title itself, then 联系人 (2), 联系人 (3) … within
    Excel's 31 characters (the number is kept, the title shortened) and without the characters Excel refuses."""
    title = re.sub(r"[\\/*?:\[\]]", " ", title).strip() or "Sheet"
    if number == 1:
        return title[:31]
    # Translators: the name of an Excel sheet that continues another; the import finds such sheets by " (N)": keep
    # the space and the half-width brackets
    suffix = _("%(title)s (%(number)s)") % {"title": "", "number": number}
    return _("%(title)s (%(number)s)") % {"title": title[: 31 - len(suffix)], "number": number}


def xlsx_file(title: str, header: list[str], rows: Iterable[list]):
    """An XLSX written row by row (openpyxl write-only: each sheet streams to its own temporary file, strings are
    written inline) into a temporary file, rewound for reading. Rows beyond a sheet's XLSX_MAX_ROWS go on in
    further sheets with the same header — 联系人, 联系人 (2) … — so that nothing is left out: an export of 1.2 million
    people used to stop at Excel's limit without a word."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    sheets = 0
    ws, room = None, 0
    for row in rows:
        if room == 0:
            sheets += 1
            ws = wb.create_sheet(title=sheet_title(title, sheets))
            ws.append(header)
            room = XLSX_MAX_ROWS
        cells = []
        for value in row:
            if isinstance(value, str):
                value = downloads.ILLEGAL_XML.sub("", value)
                if value.startswith("="):
                    cell = WriteOnlyCell(ws, value=value)
                    cell.data_type = "s"  # text, never a formula
                    value = cell
            cells.append(value)
        ws.append(cells)
        room -= 1
    if ws is None:  # no rows: the header alone
        wb.create_sheet(title=sheet_title(title, 1)).append(header)
    out = tempfile.TemporaryFile()
    wb.save(out)
    out.seek(0)
    return out


class _Written:
    """What an XLSX export really wrote, for its audit entries: the rows, and the people's ids (the first
    AUDIT_IDS_MAX and one more, to know the list is cut), counted while the rows are written."""

    def __init__(self, ids: bool):
        self.count, self.ids, self._keep = 0, [], ids

    def rows(self, qs, make: Callable[[Any], dict], keys: list[str]) -> Iterator[list]:
        for obj in qs.iterator(chunk_size=CHUNK):
            values = make(obj)
            self.count += 1
            if self._keep and len(self.ids) <= AUDIT_IDS_MAX:
                self.ids.append(obj.pk)
            yield [values.get(k, "") for k in keys]


def export_response(user, target: str, fmt: str, params) -> StreamingHttpResponse | FileResponse:
    """The export download; audited as EXPORT (and READ_PERSONAL when personal data is in clear). A CSV is
    streamed after its audit entries (with the count of the rows about to be sent); an XLSX is audited once it is
    written, with the rows it really holds."""
    access.require(user, Cap.EXPORT_CUSTOMERS)
    if target not in ImportJob.Target.values or fmt not in ("csv", "xlsx"):
        raise ValueError(f"unknown export {target}.{fmt}")
    filters = filters_from(params, target)
    qs = queryset(user, target, filters)
    plain = access.personal_data_mode(user) == "plain"
    cols = columns(target)
    keys, header = [k for k, _h in cols], [h for _k, h in cols]
    row_of = (
        _institution_row(importer.Regions(), plain)
        if target == ImportJob.Target.INSTITUTIONS
        else _person_row(plain)
    )
    language = translation.get_language()

    def make(obj) -> dict:  # a CSV's rows are written as it streams, after the request: in the exporting user's language
        with translation.override(language):
            return row_of(obj)

    label = _("institutions") if target == ImportJob.Target.INSTITUTIONS else _("people")
    name = f"{label}-{timezone.localdate():%Y%m%d}.{fmt}"
    if fmt == "csv":
        _audit(user, target, fmt, filters, qs.count(), plain, qs)
        rows = _rows(qs, make, keys)
        response = StreamingHttpResponse(csv_stream(header, rows), content_type="text/csv; charset=utf-8")
    else:
        written = _Written(ids=target == ImportJob.Target.PEOPLE and plain)
        content = xlsx_file(label, header, written.rows(qs, make, keys))
        sheets = max(1, -(-written.count // XLSX_MAX_ROWS))
        _audit(user, target, fmt, filters, written.count, plain, people=written.ids, sheets=sheets)
        response = FileResponse(content, content_type=importer.XLSX_TYPE)
    response["Content-Disposition"] = attachment(name)
    response["Cache-Control"] = "no-store"
    return response


AUDIT_IDS_MAX = 100_000  # the people an export in clear names in its audit entry (beyond: the filters say which)


_ID_NUMBER_TYPED = re.compile(r"\d{15}|\d{17}[\dX]")


def masked_search(text: str) -> str:
    """A search text as the audit trail keeps it: a phone number, e-mail address or ID card number typed to find a
    person masked as the pages mask it (138****8000, z***@example.com, 110***********1234), names and other words as
    typed. The trail is append-only and outlives the person's deletion; the auditor reads it with personal data
    masked. One inside a word is masked too, whatever is attached to it (13800138000, — 电话13800138000 —
    tel:13800138000, a full-width ＠): mask_contacts, as for a ticket's subject."""

    def one(word: str) -> str:
        folded = unicodedata.normalize("NFKC", word)
        compact = re.sub(r"[\s().-]", "", folded).upper()
        if _ID_NUMBER_TYPED.fullmatch(compact):
            return MASKERS["id_number"](compact)
        if search.classify(word) == "phone":
            return normalise.mask_phone(normalise.phone_readings(compact, folded)[0])
        masked = normalise.mask_contacts(folded)
        return word if masked == folded else masked

    # then the whole text again: a number written with spaces (138 0013 8000, 陈强 138 0013 8000) is no one word
    return one(" ".join(one(word) for word in text.split()))


def _audit(user, target: str, fmt: str, filters: dict, count: int, plain: bool, qs=None, people=None, **extra) -> None:
    """The export's entries; the people read in clear are those of `qs`, or the ids `people` written."""
    label = "customers.institution" if target == ImportJob.Target.INSTITUTIONS else "customers.person"
    personal = target == ImportJob.Target.PEOPLE
    if filters.get("q"):
        filters = {**filters, "q": masked_search(filters["q"])}
    audit.record(
        A.EXPORT, (label, "", f"{count}"), user=user, target=target, format=fmt, count=count, filters=filters,
        masked=personal and not plain, **extra,
    )  # fmt: skip
    if personal and plain and count:
        # which people were read, as a list page records them: "who has read this person's data?" finds it
        if people is None:
            people = list(qs.order_by().values_list("pk", flat=True)[: AUDIT_IDS_MAX + 1]) if qs is not None else []
        more = {"people_truncated": True} if len(people) > AUDIT_IDS_MAX else {}
        audit.record(
            A.READ_PERSONAL, ("customers.person", "", f"{count}"), user=user, count=count,
            fields=list(Person.PERSONAL_FIELDS), purpose="export", format=fmt, filters=filters,
            people=people[:AUDIT_IDS_MAX], **more,
        )  # fmt: skip
