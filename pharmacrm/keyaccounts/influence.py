"""Market influence (KOLs, marketing's assessment) and improvement actions opened from a score: the writes
behind the candidate and evaluation pages. Each checks permission, validates, writes in one transaction
and audits."""

from __future__ import annotations

import datetime as dt
import io
import unicodedata

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit, personal
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers import importer, normalise
from pharmacrm.customers.models import Institution
from pharmacrm.customers.services import ConflictError, survivors_of_freed_codes
from pharmacrm.servicedesk.models import ImprovementAction

from . import evaluation
from .choices import ModelKind
from .models import MarketInfluence, Score

A = AuditEntry.Action


def may_edit_influence(user) -> bool:
    return access.can(user, Cap.CONFIGURE_SCORING) or access.can(user, Cap.PROPOSE_KEY_ACCOUNTS)


def open_improvement_action(user, score: Score) -> ImprovementAction:
    """Open an improvement action for the customer of an evaluation score by hand (RUN_EVALUATIONS): owned
    as the automatic ones are (evaluation.action_owner), titled with the period so that a run does not open a
    second one; refused while the customer has an open one (of any period: the runs never open a second while one
    is open, and neither does a hand — found by QA, a 2026H2 score opened a second action beside the open 2026H1
    one), and for a customer merged away (the action would sit on a record nobody opens)."""
    from pharmacrm.customers.services import merged_choice_error
    from pharmacrm.servicedesk import revisit

    access.require(user, Cap.RUN_EVALUATIONS)
    institution = score.institution
    if score.kind != ModelKind.EVALUATION or not access.can_see(user, institution):
        raise PermissionDenied(_("You do not have permission to do this."))
    if institution.merged_into_id:
        raise ValidationError(merged_choice_error(institution))
    with transaction.atomic():
        # the same form sent twice (a double click) or a run opening the period's actions: one after the other, so
        # that the second finds the first one's action
        evaluation.lock_results(ModelKind.EVALUATION)
        existing = (
            ImprovementAction.objects.filter(institution=institution)
            .exclude(status__in=revisit.CLOSED_ACTIONS).order_by("id").first()
        )  # fmt: skip
        if existing is not None:
            raise ValidationError(_("Improvement action %(number)s of this customer is still open: follow it up "
                                    "there.") % {"number": existing.number})  # fmt: skip
        owner = evaluation.action_owner(institution)
        if owner is None:
            raise ValidationError(
                _("Nobody may own an improvement action: give the customer an owner first.")
            )
        title, description = evaluation.action_text(institution.name, score.klass, score.period)
        return revisit._create_action(user, {
            "title": title, "description": description, "owner": owner,
            "due_date": timezone.localdate() + dt.timedelta(days=evaluation.ACTION_DAYS),
            "institution": institution, "generated": "evaluation",
            "generated_params": evaluation.action_params(institution.name, score.klass, score.period),
        })  # fmt: skip


INFLUENCE_FIELDS = ("kol_count", "kol_names", "assessment", "notes")
_TYPE = "keyaccounts.marketinfluence"


def _clean_influence(data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    out = {}
    count = data.get("kol_count")
    if count in ("", None):
        count = None  # counted from the names
    else:
        try:
            count = int(count)
        except (TypeError, ValueError):
            count = -1
    names = str(data.get("kol_names") or "").replace("\x00", "").strip()[:2000]
    out["kol_count"], kol_errors = evaluation.check_kols(count, names)
    errors.update(kol_errors)
    assessment = data.get("assessment")
    if assessment in ("", None):
        out["assessment"] = None
    else:
        try:
            out["assessment"] = int(assessment)
        except (TypeError, ValueError):
            out["assessment"] = -1
        if not 0 <= out["assessment"] <= 100:
            errors["assessment"] = [_("The assessment is a score from 0 to 100, or empty.")]
    out["kol_names"] = names
    out["notes"] = str(data.get("notes") or "").replace("\x00", "").strip()[:5000]
    if errors:
        raise ValidationError(errors)
    return out


def save_influence(user, institution: Institution, data: dict, *, version: int | None = None) -> MarketInfluence:
    """Set a customer's key opinion leaders and marketing's assessment (CONFIGURE_SCORING or
    PROPOSE_KEY_ACCOUNTS); audited with its changes; `version` guards against overwriting another's edit: the
    version loaded, or 0 for a customer that had no entry then (someone who entered one meanwhile is not
    overwritten either)."""
    if not may_edit_influence(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    if not access.can_see(user, institution):
        raise PermissionDenied(_("You do not have permission to do this."))
    # a reader shown the names and notes with their contact details masked sends the masks back: put back as stored
    stored = MarketInfluence.objects.filter(institution=institution).only(*personal.FREE_TEXT_OF[_TYPE]).first()
    data = personal.restore_free_text(user, data, stored, personal.FREE_TEXT_OF[_TYPE])
    clean = _clean_influence(data)
    now = timezone.now()
    with transaction.atomic():
        # the customer's row first: a customer without an entry has no row of it to lock, so two first entries at
        # once (two analysts, a double click, the KOL import beside the form) both created one, and the second
        # failed on the one-to-one (an error page on PostgreSQL); now the second waits and finds the first's
        Institution.objects.select_for_update().filter(pk=institution.pk).first()
        current = MarketInfluence.objects.select_for_update().filter(institution=institution).first()
        if current is None:
            created = MarketInfluence.objects.create(institution=institution, updated_by=user, updated_at=now, **clean)
            audit.record(A.CREATE, created, user=user, changes={k: [None, v] for k, v in clean.items()},
                         institution=institution.pk)  # fmt: skip
            return created
        if version is not None and version != current.version:
            raise ConflictError(current.version)
        changes = audit.diff({k: getattr(current, k) for k in INFLUENCE_FIELDS}, clean)
        if not changes:
            return current
        for k, v in clean.items():
            setattr(current, k, v)
        current.updated_by, current.updated_at, current.version = user, now, current.version + 1
        current.save()
        audit.record(A.UPDATE, current, user=user, changes=changes, institution=institution.pk)
    return current


def merge_influence(sender, survivor, duplicate, user=None, **kwargs) -> None:
    """A customer merge (customers.services.merged, inside its transaction): the duplicate's KOLs and
    marketing's assessment are the survivor's now. The survivor without its own record takes the
    duplicate's; with one, its KOL names gain the duplicate's (each name once), the larger KOL count, the
    duplicate's assessment only where it had none, and the duplicate's notes. The duplicate keeps its record
    as it was (the merge keeps its history); a merged customer is never scored."""
    if sender is not Institution:
        return
    theirs = MarketInfluence.objects.filter(institution_id=duplicate.pk).first()
    if theirs is None:
        return
    mine = MarketInfluence.objects.select_for_update().filter(institution_id=survivor.pk).first()
    fields = {k: getattr(theirs, k) for k in INFLUENCE_FIELDS}
    now = timezone.now()
    if mine is None:
        created = MarketInfluence.objects.create(institution_id=survivor.pk, updated_by=user, updated_at=now, **fields)
        audit.record(A.CREATE, created, user=user, changes={k: [None, v] for k, v in fields.items()},
                     institution=survivor.pk, merged=duplicate.pk)  # fmt: skip
        return
    before = {k: getattr(mine, k) for k in INFLUENCE_FIELDS}
    names = list(dict.fromkeys([*evaluation.kol_names(mine.kol_names), *evaluation.kol_names(theirs.kol_names)]))
    if names != evaluation.kol_names(mine.kol_names):
        mine.kol_names = "、".join(names)[:2000]
    mine.kol_count = min(max(mine.kol_count, theirs.kol_count, len(names)), evaluation.KOL_MAX)
    if mine.assessment is None:
        mine.assessment = theirs.assessment
    if theirs.notes and theirs.notes not in mine.notes:
        mine.notes = "\n".join(x for x in (mine.notes, theirs.notes) if x)[:5000]
    changes = audit.diff(before, {k: getattr(mine, k) for k in INFLUENCE_FIELDS})
    if changes:
        mine.updated_by, mine.updated_at, mine.version = user, now, mine.version + 1
        mine.save()
        audit.record(A.UPDATE, mine, user=user, changes=changes, institution=survivor.pk, merged=duplicate.pk)


KOL_COLUMNS = {  # the Simplified headers, their Traditional forms (a zh-Hant user types those) and English
    "credit_code": ("统一社会信用代码", "統一社會信用代碼", "credit code", "credit_code", "客户统一社会信用代码", "客戶統一社會信用代碼"),
    "external_id": ("客户外部编号", "客戶外部編號", "external id", "external_id"),
    "kol_count": ("kol人数", "kol人數", "kol count", "kol_count"),
    "kol_names": ("kol姓名", "kol names", "kol_names"),
    "assessment": ("市场影响力评分", "市場影響力評分", "assessment", "market influence"),
    "notes": ("备注", "備註", "notes"),
}


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValidationError(_("The file is not a CSV file in UTF-8 or GBK."))


def import_kols(user, upload) -> tuple[int, list[tuple[int, str]]]:
    """Market influence from a small CSV file: (customers saved, [(row, message)] of the refused rows)."""
    if not may_edit_influence(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    text = _decode(upload.read())
    try:  # read strictly, as every import reads CSV: a stray quote refuses the file, naming its row
        parsed = [cells for _row, cells in importer.csv_records(io.StringIO(text, newline=""), ",")]
    except importer.UnreadableRow as e:
        raise ValidationError(importer.message(*e.note())) from None
    reader = iter(parsed)
    header = next(reader, None)
    if not header:
        raise ValidationError(_("The file is empty."))
    aliases = {alias.lower(): key for key, names in KOL_COLUMNS.items() for alias in names}
    index = {}
    for i, cell in enumerate(header):
        # a header typed in full width (ＫＯＬ人数, a Chinese input method's) is the template's
        key = aliases.get(unicodedata.normalize("NFKC", cell).strip().lower())
        if key and key not in index:
            index[key] = i
    if "credit_code" not in index and "external_id" not in index:
        raise ValidationError(_("The file needs a column 统一社会信用代码 or 客户外部编号."))
    rows = []
    for number, cells in enumerate(reader, start=2):
        values = {k: (cells[i].strip() if i < len(cells) else "") for k, i in index.items()}
        if any(values.values()):
            rows.append((number, values))
    # a code as customers are stored and every import reads it: full width, lower case, spaces and invisible
    # characters copied from a web page or a chat folded
    codes = {normalise.credit_code(v.get("credit_code")) for _n, v in rows} - {""}
    external = {v.get("external_id", "") for _n, v in rows} - {""}
    visible = access.institutions_for(user, Institution.objects.active())
    by_code, by_external = {}, {}
    codes_list, external_list = sorted(codes), sorted(external)
    for i in range(0, len(codes_list), 500):
        by_code.update({x.credit_code: x for x in visible.filter(credit_code__in=codes_list[i : i + 500])})
    for i in range(0, len(external_list), 500):
        by_external.update({x.external_id: x for x in visible.filter(external_id__in=external_list[i : i + 500])})
    # a code of a customer merged into another (the merge frees it) names the record it was merged into, to the end
    # of the chain, as the order import reads it: marketing's KOL sheet still carries the duplicate's code
    for column, wanted, found in (("credit_code", codes, by_code), ("external_id", external, by_external)):
        missing = [c for c in wanted if c not in found]
        survivors = survivors_of_freed_codes(column, missing) if missing else {}
        records = visible.in_bulk(set(survivors.values()))
        found.update({c: records[pk] for c, pk in survivors.items() if pk in records})
    saved, errors = 0, []
    for number, values in rows:
        code, ext = normalise.credit_code(values.get("credit_code")), values.get("external_id", "")
        institution = by_code.get(code) if code else by_external.get(ext)
        if institution is None:
            errors.append((number, _("No customer with this credit code or external id (or you may not see it).")
                           if code or ext else _("Give the credit code or the external id.")))  # fmt: skip
            continue
        # a column the file does not have, or an empty cell, leaves the stored value alone (a KOL list must not
        # wipe the assessments marketing entered by hand, nor a row giving only an assessment the KOLs), as every
        # import of PharmaCRM reads an empty cell
        stored = MarketInfluence.objects.filter(institution=institution).first()
        data = {
            "kol_count": stored.kol_count if stored else 0, "kol_names": stored.kol_names if stored else "",
            "assessment": stored.assessment if stored else None, "notes": stored.notes if stored else "",
        }  # fmt: skip
        data.update({k: v for k, v in values.items() if k in ("kol_count", "kol_names", "assessment", "notes") and v})
        if ("kol_count" not in index or not values.get("kol_count")) and values.get("kol_names"):
            data["kol_count"] = None  # counted from the names (evaluation.check_kols)
        try:  # the cells left empty keep what was read above: not what someone saved since
            save_influence(user, institution, data, version=stored.version if stored else 0)
        except ConflictError as e:
            errors.append((number, str(e)))
        except ValidationError as e:
            errors.append((number, " ".join(e.messages)))
        else:
            saved += 1
    return saved, errors
