"""Every change to customer data: checked, validated, written in one transaction, audited.

Views, the API, imports and commands call these functions; nothing else writes customers.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit, crypto
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Counter, Region
from pharmacrm.core.roles import Cap

from . import normalise, search
from .choices import InstitutionType, Tier
from .models import Consent, DistinctPair, Institution, MergeRecord, Person, SearchTerm, Tag, region_columns

A = AuditEntry.Action


class ConflictError(Exception):
    """Someone else saved the record after this user loaded it (optimistic locking)."""

    def __init__(self, current_version: int):
        super().__init__(_("Someone else changed this record while you were editing it. Reload and apply your changes again."))
        self.current_version = current_version


INSTITUTION_FIELDS = (
    "name", "short_name", "kind", "grade", "specialties", "beds", "parent", "region", "credit_code",
    "legal_representative", "address", "phone", "external_id", "tier", "stage", "owner", "team", "source",
    "needs", "notes",
)  # fmt: skip
PERSON_FIELDS = (
    "name", "gender", "role", "title", "preferred_language", "institution", "department", "mobile", "landline", "email", "birthday",
    "home_address", "id_number", "external_id", "tier", "stage", "owner", "team", "source", "needs", "notes",
)  # fmt: skip


def snapshot(obj, fields: Iterable[str]) -> dict[str, Any]:
    """Field values for the audit trail; personal fields appear only as 'changed', never in clear."""
    out = {}
    personal = getattr(obj, "PERSONAL_FIELDS", ())
    for f in fields:
        value = getattr(obj, f + "_id") if _is_fk(obj, f) else getattr(obj, f)
        if f in personal:
            if f in ("mobile", "landline") and value:
                value = normalise.phone_key(value)  # 0311-62916057 and 031162916057 are the same number
            # a keyed digest: before/after show that it changed without revealing the value. Keyed to the record
            # and field too: the same value elsewhere digests differently, so a value typed on a scratch record
            # cannot be compared with another person's to confirm a guess of their birthday or phone
            label = f"{obj._meta.label_lower}:{obj.pk}:{f}:{value}"
            value = f"******#{crypto.blind_index(label, 'audit')[:8]}" if value else ""
        out[f] = value
    return out


def _is_fk(obj, name: str) -> bool:
    field = obj._meta.get_field(name)
    return isinstance(field, models.ForeignKey)


def next_codes(model, count: int) -> list[str]:
    first = Counter.allocate(f"code:{model.CODE_PREFIX}", count)
    return [f"{model.CODE_PREFIX}{n:08d}" for n in range(first, first + count)]


# --- validation --------------------------------------------------------------------------------


# the rules of one field each, which hold whatever the other fields say: a form or API client with errors
# elsewhere still learns about these in the same answer
INSTITUTION_FORMAT_FIELDS = (
    "credit_code", "phone", "address", "name", "short_name", "legal_representative", "external_id",
)  # fmt: skip
PERSON_FORMAT_FIELDS = ("mobile", "landline", "email", "birthday", "id_number", "home_address", "name", "title",
                        "external_id")  # fmt: skip
ADDRESS_MAX_LENGTH = Institution._meta.get_field("address").max_length
# The free-text fields, each held to its column's length (a home address, encrypted, to the address's), counted as
# stored: after the spaces are collapsed (normalise.clean_text), as the import, the forms and the API store them;
# the external id (an id, not text) once stripped. A longer value is refused, naming the field, never cut to fit.
# field → (its message in normalise.TOO_LONG, the limit)
INSTITUTION_TEXT_LIMITS = {
    field: (field, Institution._meta.get_field(field).max_length)
    for field in ("name", "short_name", "legal_representative", "address", "external_id")
}
PERSON_TEXT_LIMITS = {
    "name": ("person_name", Person._meta.get_field("name").max_length),
    "title": ("title", Person._meta.get_field("title").max_length),
    "home_address": ("home_address", Person.HOME_ADDRESS_MAX_LENGTH),
    "external_id": ("external_id", Person._meta.get_field("external_id").max_length),
}


def _check_lengths(errors: dict, out: dict, limits: dict) -> None:
    for field, (key, limit) in limits.items():
        if isinstance(out.get(field), str):
            try:
                normalise.check_length(key, out[field], limit)
            except ValidationError as e:
                errors.setdefault(field, []).append(e)
    # each tag too, counted as its name is stored: a longer one was cut to 50 characters without a word (the form,
    # the import) and became another tag
    if isinstance(out.get("tags"), list | tuple):
        for raw in out["tags"]:
            if isinstance(raw, str):
                try:
                    normalise.check_length("tag", normalise.clean_text(raw), normalise.TAG_MAX_LENGTH)
                except ValidationError as e:
                    errors.setdefault("tags", []).append(e)
                    break


def field_errors(clean, field: str, value, instance=None) -> list[ValidationError]:
    """The errors `clean` (clean_institution / clean_person) finds in this one field on its own."""
    if value in (None, ""):
        return []
    try:
        clean({field: value}, instance)
    except ValidationError as e:
        # not the rules that join it to another field: that one may be changed in the same request
        return [err for err in getattr(e, "error_dict", {}).get(field, []) if err.code not in JOINT_CODES]
    return []


JOINT_CODES = frozenset({"birthday_not_id"})  # errors of a field checked against another field's value


def birthday_id_error(values: dict[str, Any], instance: Person | None = None,
                      stored_hidden: bool = False) -> ValidationError | None:
    """A birthday other than the date of birth its ID card number encodes (characters 7–14), as an error for the
    birthday field naming that date; None when they agree or cannot be compared. `values` holds the birthday and
    ID number given (cleaned); the one not given is the stored one. A stored record whose two already disagree is
    refused only when one of them is changed: an edit of its phone is not stopped by them. With `stored_hidden`
    (an editor who sees the record's personal data masked), a value given is not compared with the stored one:
    the answer would tell them the birth date they may not see, one guess at a time."""
    given = [f for f in ("birthday", "id_number") if f in values]
    if not given or (instance is not None and all(values[f] == getattr(instance, f) for f in given)):
        return None
    pair = {}
    for field in ("birthday", "id_number"):
        if field in values:
            pair[field] = values[field]
        elif instance is not None and not stored_hidden:
            pair[field] = getattr(instance, field)
        else:
            return None
    birthday, born = pair["birthday"], normalise.id_card_birth_date(pair["id_number"] or "")
    if not isinstance(birthday, datetime.date) or born is None or born == birthday:
        return None
    return ValidationError(
        _("The birthday differs from the date of birth in the ID card number (%(date)s)."),
        code="birthday_not_id", params={"date": born.isoformat()},
    )  # fmt: skip


def _refuse_merged(errors: dict, out: dict, field: str, current_id: int | None) -> None:
    """A merged-away institution (or department) cannot be newly chosen: its records live on at the survivor,
    and a customer placed under the duplicate would be hidden from lists and scopes that skip merged rows."""
    chosen = out.get(field)
    if chosen is None or not chosen.merged_into_id or chosen.pk == current_id:
        return
    errors.setdefault(field, []).append(ValidationError(merged_choice_error(chosen), code="merged"))


def merged_choice_error(obj: Institution | Person) -> str:
    """Why a merged-away record cannot be chosen, naming both records by name and code and the record its work
    goes to now — the last survivor when the survivor was merged in turn. Merged duplicates usually share their
    name: "张伟 was merged into 张伟: choose 张伟" told nobody which one to pick, and pointed at a survivor merged
    away itself."""
    model = type(obj)
    survivor = model.objects.filter(pk=last_survivor(obj.merged_into_id, model=model)).first()
    return _("%(name)s (%(code)s) was merged into %(survivor)s (%(survivor_code)s): choose %(survivor_code)s "
             "instead.") % {"name": obj.name, "code": obj.code, "survivor": survivor.name if survivor else "—",
                            "survivor_code": survivor.code if survivor else "—"}  # fmt: skip


def merged_choice_errors(data: dict, keys=("institution", "person")) -> dict[str, list]:
    """Field errors for customers chosen for new work (a ticket, an interaction) that were merged away: the work
    would be filed under a record nobody sees any more, and never reach the survivor."""
    errors: dict[str, list] = {}
    for key in keys:
        obj = data.get(key)
        if obj is not None and getattr(obj, "merged_into_id", None):
            errors[key] = [merged_choice_error(obj)]
    return errors


def hold_unmerged(**chosen: int | None) -> None:
    """In the transaction that files new work under these customers (`institution=`, `person=` ids): hold each
    row until it commits and read it again, so that a merge under way finishes first and one starting now waits
    for the work (and moves it); a customer merged away meanwhile raises merged_choice_errors' field error. The
    hold is FOR KEY SHARE on PostgreSQL: only a merge's lock waits for it, not edits nor other work."""
    found = {}
    for key, pk in chosen.items():
        model = Institution if key == "institution" else Person
        if pk and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM {model._meta.db_table} WHERE id = %s FOR KEY SHARE", [pk])
        found[key] = model.objects.filter(pk=pk).first() if pk else None
    errors = merged_choice_errors(found, keys=tuple(chosen))
    if errors:
        raise ValidationError(errors)


def refuse_merged_record(obj) -> None:
    """A merged-away record is history: changes (an edit, a consent, a deletion) go to the survivor."""
    if getattr(obj, "merged_into_id", None):
        raise PermissionDenied(_("This record was merged into another one and can no longer be changed."))


def _check_choices(errors: dict, out: dict, model) -> None:
    """A coded field (type, grade, tier, stage, source, gender, role) holds one of its codes: a script or an
    integration calling the services directly stored an unknown code, which the pages then showed raw."""
    for field in model._meta.concrete_fields:
        if field.choices and field.name in out and out[field.name] not in (None, ""):
            try:
                field.validate(out[field.name], None)
            except ValidationError as e:
                errors.setdefault(field.name, []).extend(e.error_list)


def clean_institution(data: dict[str, Any], instance: Institution | None = None) -> dict[str, Any]:
    """Normalise and validate institution fields; raise ValidationError with per-field messages."""
    errors: dict[str, list] = {}
    out = dict(data)
    _check_choices(errors, out, Institution)
    for key in ("name", "short_name", "legal_representative", "address", "needs", "notes"):
        if key in out and out[key] is not None:
            out[key] = normalise.clean_text(out[key]) if key not in ("needs", "notes") else out[key].strip()
    if isinstance(out.get("external_id"), str):  # as the import reads it: ZW\u200b1 is ZW1
        out["external_id"] = normalise.visible(out["external_id"]).strip()
    _check_lengths(errors, out, INSTITUTION_TEXT_LIMITS)  # counted as stored, as the import counts them
    if "name" in out and not out.get("name"):
        errors.setdefault("name", []).append(ValidationError(_("Enter the institution's name."), code="required"))
    for key in ("name", "short_name"):  # a short name of punctuation alone (（）, ···) names nothing either
        if out.get(key) and not errors.get(key):
            try:
                normalise.check_has_word(out[key])
            except ValidationError as e:
                errors.setdefault(key, []).append(e)
    if instance is None and not out.get("kind"):
        errors.setdefault("kind", []).append(ValidationError(_("Choose the institution's type."), code="required"))
    if out.get("credit_code"):
        try:
            out["credit_code"] = normalise.validate_credit_code(out["credit_code"])
        except ValidationError as e:
            errors.setdefault("credit_code", []).append(e)
    elif "credit_code" in out:
        out["credit_code"] = None
    if out.get("phone"):
        try:
            normalise.validate_any_phone(out["phone"])
        except ValidationError as e:
            errors.setdefault("phone", []).append(e)
    if "external_id" in out and not out["external_id"]:
        out["external_id"] = None
    _refuse_merged(errors, out, "parent", instance.parent_id if instance else None)
    kind = out.get("kind", instance.kind if instance else "")
    parent = out.get("parent", instance.parent if instance else None)
    if kind == InstitutionType.DEPARTMENT and parent is None:
        errors.setdefault("parent", []).append(
            ValidationError(_("A department belongs to a hospital: choose its parent institution."), code="required")
        )
    elif kind == InstitutionType.DEPARTMENT and parent.kind != InstitutionType.HOSPITAL and (
        instance is None or "parent" in out or "kind" in out
    ):
        # as the form offers hospitals only: a department under a pharmacy, or under another department, has
        # no hospital its people could be placed at (a person's department belongs to their institution)
        errors.setdefault("parent", []).append(ValidationError(
            _("A department belongs to a hospital: %(name)s is not one."), code="parent_not_hospital",
            params={"name": parent.name},
        ))  # fmt: skip
    if parent is not None and instance is not None and instance.pk:
        node, seen = parent, set()
        while node is not None and node.pk not in seen:
            if node.pk == instance.pk:
                errors.setdefault("parent", []).append(
                    ValidationError(_("An institution cannot be placed under itself."), code="cycle")
                )
                break
            seen.add(node.pk)
            node = node.parent
    if kind == InstitutionType.DEPARTMENT and parent is not None and "parent" not in errors:
        error = _department_province_error(out, instance, parent)
        if error is not None:
            errors.setdefault("region", []).append(error)
    if out.get("grade") and kind not in (InstitutionType.HOSPITAL, ""):
        out["grade"] = out["grade"] if kind == InstitutionType.HOSPITAL else ""
    elif instance is not None and instance.grade and kind != InstitutionType.HOSPITAL:
        out["grade"] = ""  # a hospital that becomes a pharmacy (an API client changing the type only) has no grade
    if (
        instance is not None and instance.pk and instance.kind == InstitutionType.HOSPITAL
        and kind != InstitutionType.HOSPITAL
        and instance.children.filter(kind=InstitutionType.DEPARTMENT, merged_into__isnull=True).exists()
    ):  # fmt: skip
        errors.setdefault("kind", []).append(ValidationError(
            _("This hospital has departments, and only a hospital has departments: move or delete them first."),
            code="has_departments",
        ))  # fmt: skip
    if out.get("beds") is not None and out.get("beds") != "":
        try:
            beds = int(out["beds"])
            if beds < 0 or beds > 100000:
                raise ValueError
            out["beds"] = beds
        except (TypeError, ValueError):
            errors.setdefault("beds", []).append(ValidationError(_("Beds must be a whole number from 0 to 100000."), code="invalid"))
    elif "beds" in out:
        out["beds"] = None
    if "specialties" in out:
        sp = out["specialties"]
        if isinstance(sp, str):
            sp = [s.strip() for s in sp.replace("，", ",").replace("、", ",").split(",") if s.strip()]
        out["specialties"] = list(dict.fromkeys(sp or []))
    if errors:
        raise ValidationError(errors)
    return out


def clean_person(data: dict[str, Any], instance: Person | None = None, stored_hidden: bool = False) -> dict[str, Any]:
    """`data` checked and normalised for create_person / update_person; `stored_hidden`: the editor sees the
    instance's personal data masked (see `birthday_id_error`)."""
    errors: dict[str, list] = {}
    out = dict(data)
    if isinstance(out.get("preferred_language"), str):  # zh-Hans, EN as language tags are written: the codes
        out["preferred_language"] = out["preferred_language"].strip().lower()
    elif "preferred_language" in out and out["preferred_language"] is None:
        out["preferred_language"] = ""
    _check_choices(errors, out, Person)
    if "name" in out:
        out["name"] = normalise.clean_text(out["name"])
        if not out["name"]:
            errors.setdefault("name", []).append(ValidationError(_("Enter the person's name."), code="required"))
        else:  # a name of punctuation alone (·, ——) names nobody, as an institution's (normalise.check_has_word)
            try:
                normalise.check_has_word(out["name"])
            except ValidationError as e:
                errors.setdefault("name", []).append(e)
    if isinstance(out.get("title"), str):  # stored as the import stores it: spaces collapsed
        out["title"] = normalise.clean_text(out["title"])
    if isinstance(out.get("external_id"), str):  # as the import reads it: ZW\u200b1 is ZW1
        out["external_id"] = normalise.visible(out["external_id"]).strip()
    for key in Person.PERSONAL_FIELDS:
        try:
            normalise.check_not_masked(key, out.get(key))  # a masked value read back must not replace the real one
        except ValidationError as e:
            errors.setdefault(key, []).append(e)
            out.pop(key, None)
    # a landline keeps the extension written after it (010-12345678 转 8021): the switchboard alone reaches no one
    checks = (("mobile", normalise.validate_mobile), ("landline", normalise.validate_landline_with_extension))
    for key, check in checks:
        if out.get(key):
            try:
                out[key] = check(out[key])
            except ValidationError as e:
                errors.setdefault(key, []).append(e)
        elif key in out:
            out[key] = ""
    if out.get("email"):
        try:
            out["email"] = normalise.validate_email_address(out["email"])
        except ValidationError as e:
            errors.setdefault("email", []).append(e)
    elif "email" in out:
        out["email"] = ""
    if out.get("birthday"):
        try:
            normalise.validate_birthday(out["birthday"])
        except ValidationError as e:
            errors.setdefault("birthday", []).append(e)
    _check_lengths(errors, out, PERSON_TEXT_LIMITS)  # counted as stored, as the import counts them
    if out.get("id_number"):
        idn = normalise.credit_code(out["id_number"])
        if not normalise.valid_id_card(idn):
            errors.setdefault("id_number", []).append(
                ValidationError(_("Enter a valid 18-character resident ID card number."), code="invalid_id")
            )
        out["id_number"] = idn
    if "birthday" not in errors and "id_number" not in errors:
        mismatch = birthday_id_error(out, instance, stored_hidden)
        if mismatch is not None:
            errors.setdefault("birthday", []).append(mismatch)
    _refuse_merged(errors, out, "institution", instance.institution_id if instance else None)
    _refuse_merged(errors, out, "department", instance.department_id if instance else None)
    chosen = out.get("institution")
    if chosen is not None and chosen.kind == InstitutionType.DEPARTMENT and chosen.parent_id:
        # a department given as the institution (an API client, an import): the person works at its hospital, in it —
        # kept as the department, they were missing from the hospital's page and its people filter
        out["institution"] = chosen.parent
        if out.get("department") is None:
            out["department"] = chosen
    if instance is not None and "institution" in out and out["institution"] is None and "department" not in out:
        # no institution any more, no department named (an API client's PATCH {"institution": null}): the person
        # left the hospital, its department too. The kept department filled its hospital in again, and the answer
        # was 200 with the person still there
        out["department"] = None
    dept = out.get("department", instance.department if instance else None)
    inst = out.get("institution", instance.institution if instance else None)
    if dept is not None:
        if dept.kind != InstitutionType.DEPARTMENT:
            errors.setdefault("department", []).append(ValidationError(_("Choose a department."), code="invalid"))
        elif inst is None:
            out["institution"] = dept.parent
        elif dept.parent_id != inst.pk:
            errors.setdefault("department", []).append(
                ValidationError(_("This department does not belong to the chosen institution."), code="mismatch")
            )
    if "external_id" in out and not out["external_id"]:
        out["external_id"] = None
    if errors:
        raise ValidationError(errors)
    return out


# --- create / update / delete ------------------------------------------------------------------


def _apply(obj, data: dict[str, Any], fields: Iterable[str]) -> None:
    for key in fields:
        if key in data and key != "tags":
            setattr(obj, key, data[key])


def tag_names(names: Iterable[str]) -> list[str]:
    """The tags these names stand for: an existing tag's own name when one is written so in any letter case (kol,
    Kol and ＫＯＬ are the tag KOL), else the cleaned name; each tag once. One tag typed in another case or width
    became a second tag, and filtering by either found half the customers."""
    out: dict[str, str] = {}
    for raw in names:
        name = normalise.tag_name(raw)
        if name and name.casefold() not in out:
            existing = Tag.objects.filter(name__iexact=name).order_by("id").values_list("name", flat=True).first()
            out[name.casefold()] = existing or name
    return list(out.values())


def tag_q(names: Iterable[str], field: str = "tags") -> Q:
    """Customers with any of these tags, whatever the letter case or width the names are typed in."""
    q = Q(pk__in=[])
    for name in dict.fromkeys(normalise.tag_name(n) for n in names):
        if name:
            q |= Q(**{f"{field}__name__iexact": name})
    return q


def _set_tags(obj, names: Iterable[str] | None) -> None:
    if names is None:
        return
    obj.tags.set([Tag.objects.get_or_create(name=name)[0] for name in tag_names(names)])


def _unique_error(exc: IntegrityError, obj) -> ValidationError:
    text = str(exc).lower()
    if "credit_code" in text:
        return ValidationError({"credit_code": [_("Another institution already has this credit code.")]})
    if "external_id" in text:
        return ValidationError({"external_id": [_("Another customer already has this external id.")]})
    return ValidationError(_("This record conflicts with an existing one."))


def _create(user, model, data: dict[str, Any], fields):
    obj = model()
    _apply(obj, data, fields)
    if obj.owner_id is None and not access.can(user, Cap.ALL_CUSTOMERS):
        obj.owner = user  # a rep creates inside their own scope
    obj.refresh_derived()
    try:
        with transaction.atomic():
            obj.code = next_codes(model, 1)[0]
            obj.save(force_insert=True)
            _set_tags(obj, data.get("tags"))
            search.reindex([obj])
            audit.record(A.CREATE, obj, changes=audit.diff({}, snapshot(obj, fields)), user=user)
            stage_changed.send(sender=model, ids=[obj.pk], user=user, created=True)
    except IntegrityError as e:
        raise _unique_error(e, obj) from None
    return obj


def create_institution(user, data: dict[str, Any]) -> Institution:
    access.require(user, Cap.CHANGE_CUSTOMERS)
    cleaned = clean_institution(data)
    parent = cleaned.get("parent")
    if parent is not None and not cleaned.get("region") and cleaned.get("kind") == InstitutionType.DEPARTMENT:
        # a department lies where its hospital does: without a region, no rep of that territory would see it
        cleaned["region"] = parent.region
    return _create(user, Institution, cleaned, INSTITUTION_FIELDS)


def departments_follow(institution: Institution, old_region: str | None, user=None) -> None:
    """A hospital that moves takes along its departments that were where it was (or nowhere), and, when it moves to
    another province, every department of it: a department lies in its hospital's province. Each department's
    region is its own field, so the move is a change of it like an edit: its version and `updated_at` move and its
    history records it. Written behind their backs, an API client syncing by `updated_since` never learnt the
    departments had moved, and one saving a department it had loaded before put it back, unrefused."""
    ids, frontier = [], [institution.pk]
    while frontier:
        frontier = list(Institution.objects.filter(parent_id__in=frontier, kind=InstitutionType.DEPARTMENT,
                                                   merged_into__isnull=True).values_list("pk", flat=True))  # fmt: skip
        ids += frontier
    if not ids:
        return
    follow = Q(region_id=old_region) | Q(region__isnull=True)
    if institution.region_id:
        # a department in a district of its own stays there while its hospital moves within the province; moved to
        # another province, the hospital takes it along: a department lies in its hospital's province
        follow |= ~Q(province=region_columns(institution.region_id)[0])
    moving = Institution.objects.filter(pk__in=ids).filter(follow)
    moving = moving.exclude(region_id=institution.region_id) if institution.region_id else moving.exclude(region=None)
    province, city = region_columns(institution.region_id)
    departments = list(moving)
    if not departments:
        return
    now = timezone.now()
    Institution.objects.filter(pk__in=[d.pk for d in departments]).update(
        region_id=institution.region_id, province=province, city=city, version=F("version") + 1, updated_at=now
    )
    for dept in departments:
        before = dept.region_id
        dept.region_id, dept.province, dept.city = institution.region_id, province, city
        dept.version += 1
        dept.updated_at = now
        audit.record(A.UPDATE, dept, changes={"region": [before, institution.region_id]}, user=user,
                     hospital_moved=institution.pk)  # fmt: skip
    search.reindex(departments)


DEPARTMENT_PROVINCE = gettext_lazy(
    "A department lies in its hospital's province: %(hospital)s is in %(province)s, so choose a region in %(province)s."
)


def _department_province_error(out: dict[str, Any], instance: Institution | None, parent: Institution):
    """A department lies in its hospital's province (its region may be a district of its own there): the error for the
    region field when the region this change leaves it in is in another province, naming the hospital's; None when
    it is not. A department moved to another hospital without a region chosen follows that hospital
    (`region_after_parent_move`): nothing to refuse."""
    current = instance.region_id if instance is not None else None
    region = out["region"] if "region" in out else (instance.region if instance is not None else None)
    chosen = "region" in out and (region.pk if region else None) != current
    made_department = instance is not None and instance.kind != InstitutionType.DEPARTMENT
    if instance is not None and not chosen and not made_department:
        return None  # it follows its new hospital (moved), or keeps its place: an edit of its phone is not refused
    if region is None or not parent.region_id:
        return None
    if region.pk[:2] == parent.region_id[:2]:
        return None
    province = Region.objects.filter(code=parent.region_id[:2] + "0000").first()
    return ValidationError(
        str(DEPARTMENT_PROVINCE),
        code="department_province",
        params={"hospital": parent.name, "province": province.display_name if province else parent.region_id},
    )  # fmt: skip


def _department_region_follows_parent(obj: Institution, data: dict[str, Any]) -> None:
    """A department moved to another hospital lies where its new hospital does, unless this same change gives it
    a region of its own: it kept the old hospital's (or none), so reps of the new hospital's territory did not see
    it, and the reps of the old one still did."""
    parent = data.get("parent")
    kind = data.get("kind", obj.kind)
    if kind != InstitutionType.DEPARTMENT or parent is None or parent.pk == obj.parent_id:
        return
    region = data.get("region", obj.region)
    if (region.pk if region else None) != obj.region_id:
        return  # chosen in the same edit
    follows = region_after_parent_move(obj, obj.parent_id, parent.pk)
    if follows is not False:
        data["region"] = parent.region


def region_after_parent_move(obj: Institution, old_parent_id, new_parent_id):
    """The region code a department takes when it moves from one hospital to another: the new hospital's, when it
    lay where the old one does (or nowhere); False when it keeps its own."""
    if obj.kind != InstitutionType.DEPARTMENT or not new_parent_id or new_parent_id == old_parent_id:
        return False
    regions = dict(Institution.objects.filter(pk__in=[p for p in (old_parent_id, new_parent_id) if p])
                   .values_list("pk", "region_id"))  # fmt: skip
    new_region = regions.get(new_parent_id)
    if obj.region_id is None or obj.region_id == regions.get(old_parent_id):
        return new_region
    if new_region and obj.region_id[:2] != new_region[:2]:
        return new_region  # its own district is in another province than the new hospital's: it follows the hospital
    return False


def people_follow_department(user, department: Institution) -> None:
    """The people of a department moved to another hospital work at that hospital now: their institution follows,
    each change in their history. Left at the old hospital, they showed a department of another hospital and
    their edit form refused every save ("This department does not belong to the chosen institution")."""
    hospital = department.parent
    people = Person.objects.filter(department=department, merged_into__isnull=True).exclude(institution=hospital)
    _place_people(user, people, hospital, department, department_moved=department.pk)


def people_follow_kind(user, institution: Institution, was_department: bool) -> None:
    """The people of an institution whose type changed between department and another type, placed as a person
    at that type is (found by QA): a hospital recorded by mistake and made a department of another hospital — its
    people work at that hospital, in this department; a department made a clinic (or any type but a department)
    — its people work at it, in no department. Left as they were, they had a department as their institution, or
    a clinic as their department, and their edit form refused every save over a field nobody had touched."""
    if institution.is_department == was_department:
        return
    if institution.is_department:
        people = Person.objects.filter(institution=institution, merged_into__isnull=True)
        _place_people(user, people, institution.parent, institution, kind_changed=institution.pk)
    else:
        people = Person.objects.filter(department=institution, merged_into__isnull=True)
        _place_people(user, people, institution, None, kind_changed=institution.pk)


def _place_people(user, people, institution: Institution, department: Institution | None, **extra) -> None:
    """Each person of `people` at `institution`, in `department`: a change in their history, audited with `extra`."""
    for person in people.select_related("institution"):
        before = snapshot(person, PERSON_FIELDS)
        person.institution, person.department = institution, department
        person.refresh_derived(region_id=institution.region_id)
        person.version += 1
        person.updated_at = timezone.now()
        person.save(update_fields=[
            "institution", "department", "region", "province", "city", "version", "updated_at"])  # fmt: skip
        search.reindex([person])
        audit.record(A.UPDATE, person, changes=audit.diff(before, snapshot(person, PERSON_FIELDS)), user=user,
                     **extra)  # fmt: skip


def sync_people_region(institution_ids: Iterable[int]) -> int:
    """Copy institutions' regions onto their people (the denormalised columns that filters and the access
    scope read); derived data, so neither `updated_at` nor the version moves. Returns the rows changed."""
    changed = 0
    for inst_id, region_id in Institution.objects.filter(pk__in=list(institution_ids)).values_list("id", "region_id"):
        province, city = region_columns(region_id)
        people = Person.objects.filter(institution_id=inst_id)
        changed += (
            people.exclude(region_id=region_id, province=province, city=city)
            .update(region_id=region_id, province=province, city=city)
            if region_id
            else people.exclude(region_id=None).update(region_id=None, province="", city="")
        )
        search.move_people(people.values("id"), province)  # their postings carry the province too
    return changed


def _update(user, obj, data: dict[str, Any], version: int | None, fields, cleaner):
    if not access.can_change(user, obj):
        raise PermissionDenied(_("You may not change this customer."))
    refuse_merged_record(obj)  # the web pages refused it; the API and scripts reach here directly
    if version is not None and not is_id(version):
        raise ConflictError(obj.version)  # a garbled version (not a number) is as stale as an old one
    if access.personal_data_mode(user, obj) != "plain":
        # a reader shown the free text with its contact details masked sends the masks back (the edit form, a GET
        # then PUT): each is put back as stored, never saved in place of the real number or address
        data = {**data, **{f: normalise.restore_contacts(data[f], getattr(obj, f))
                           for f in ("needs", "notes") if isinstance(data.get(f), str)}}  # fmt: skip
    try:
        data = cleaner(data, instance=obj)
    except ValidationError as e:
        # a department's region in another province than its hospital's, sent from a version before the hospital
        # moved it there: the record changed under the client (409, reload), not a wrong value of theirs
        codes = {err.code for errs in getattr(e, "error_dict", {}).values() for err in errs}
        if codes == {"department_province"} and version is not None and int(version) != obj.version:
            raise ConflictError(obj.version) from None
        raise
    old_region = getattr(obj, "region_id", None)
    old_parent = getattr(obj, "parent_id", None)
    was_department = getattr(obj, "is_department", False)
    if isinstance(obj, Institution):
        _department_region_follows_parent(obj, data)
    before = snapshot(obj, fields)
    before_tags = sorted(obj.tags.values_list("name", flat=True))
    _apply(obj, data, fields)
    obj.refresh_derived()
    after = snapshot(obj, fields)
    changes = audit.diff(before, after)
    if "tags" in data and data["tags"] is not None:
        after_tags = sorted(tag_names(data["tags"]))
        if after_tags != before_tags:
            changes["tags"] = [before_tags, after_tags]
    if not changes:
        # a stale version is a conflict even when nothing would change: otherwise the answer (409 for a wrong
        # value, 200 for the stored one) would tell a role that sees a field masked what it holds
        stale = version is not None and int(version) != obj.version
        if stale and not _saved_already(user, obj, data, int(version), fields):
            raise ConflictError(obj.version)
        return obj
    model = type(obj)
    try:
        with transaction.atomic():
            expected = obj.version if version is None else int(version)
            now = timezone.now()
            values = {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields
                      if f.attname not in ("id", "code", "version", "created_at")}  # fmt: skip
            values["updated_at"] = now
            updated = model.objects.filter(pk=obj.pk, version=expected).update(version=F("version") + 1, **values)
            if updated != 1:
                if _saved_already(user, obj, data, expected, fields):
                    raise _AlreadySaved
                current = model.objects.filter(pk=obj.pk).values_list("version", flat=True).first()
                raise ConflictError(current or 0)
            obj.version = expected + 1
            obj.updated_at = now
            _set_tags(obj, data.get("tags"))
            search.reindex([obj])
            if model is Institution and obj.region_id != old_region:
                sync_people_region([obj.pk])
                departments_follow(obj, old_region, user)
            if model is Institution and obj.is_department and obj.parent_id != old_parent:
                people_follow_department(user, obj)
            if model is Institution:
                people_follow_kind(user, obj, was_department)
            audit.record(A.UPDATE, obj, changes=changes, user=user)
            if "stage" in changes:
                stage_changed.send(sender=model, ids=[obj.pk], user=user)
            if "owner" in changes:
                owner_changed.send(sender=model, moves={obj.pk: tuple(changes["owner"])}, user=user)
    except IntegrityError as e:
        raise _unique_error(e, obj) from None
    except _AlreadySaved:
        return model.objects.get(pk=obj.pk)
    return obj


class _AlreadySaved(Exception):
    """The edit is the user's own save sent again: nothing to write."""


def _saved_already(user, obj, data: dict[str, Any], version: int, fields) -> bool:
    """Whether an edit made from `version` is this user's own save sent a second time (a double click on Save, a
    form sent again after a slow answer): the one change since that version is theirs, and this edit changes
    nothing on the record as it is now. Said to be a conflict, the second answer told them someone else had
    changed the record. Personal values the user may not read in clear never count (the answer would say whether
    a guess of them is right)."""
    model = type(obj)
    current = model.objects.filter(pk=obj.pk).first()
    if current is None or current.version != version + 1:
        return False
    if (
        model is Person
        and access.personal_data_mode(user, current) != "plain"
        and any(data.get(f) not in (None, "") for f in Person.PERSONAL_FIELDS)
    ):
        return False
    last = AuditEntry.objects.filter(object_type=model._meta.label_lower, object_id=str(obj.pk)).order_by("-seq")
    if last.values_list("actor_id", "action").first() != (user.pk, A.UPDATE):
        return False
    tags = sorted(current.tags.values_list("name", flat=True))
    before = snapshot(current, fields)
    _apply(current, data, fields)
    current.refresh_derived()
    if audit.diff(before, snapshot(current, fields)):
        return False
    return data.get("tags") is None or sorted(tag_names(data["tags"])) == tags


def update_institution(user, obj: Institution, data: dict[str, Any], version: int | None = None) -> Institution:
    return _update(user, obj, data, version, INSTITUTION_FIELDS, clean_institution)


def create_person(user, data: dict[str, Any]) -> Person:
    access.require(user, Cap.CHANGE_CUSTOMERS)
    data = clean_person(data)
    _check_workplace(user, data)
    return _create(user, Person, data, PERSON_FIELDS)


def _check_workplace(user, data: dict[str, Any], instance: Person | None = None) -> None:
    """A person is placed at an institution the user may see, or in a department the user may see (a rep's own, of
    a hospital outside the territory: at its hospital, in it — clean_person has checked that it is that hospital's);
    elsewhere at that hospital, not at all. The institution a person already has stays theirs to keep."""
    inst = data.get("institution")
    if inst is None or (instance is not None and inst.pk == instance.institution_id):
        return
    if access.institution_scope_q(user) is None or access.can_see(user, inst):
        return
    dept = data.get("department", instance.department if instance is not None else None)
    if dept is not None and access.can_see(user, dept):
        return
    if access.workplaces_for(user).filter(pk=inst.pk).exists():
        raise ValidationError({"department": [_(
            "At %(name)s you may place people only in a department of it that you may see: choose the department."
        ) % {"name": inst.name}]})  # fmt: skip
    raise ValidationError({"institution": [_("You may not add people to this institution.")]})


def update_person(user, obj: Person, data: dict[str, Any], version: int | None = None) -> Person:
    def clean(values, instance):
        hidden = access.personal_data_mode(user, instance) != "plain"
        values = clean_person(values, instance=instance, stored_hidden=hidden)
        _check_workplace(user, values, instance)
        return values

    return _update(user, obj, data, version, PERSON_FIELDS, clean)


def delete_customer(user, obj: Institution | Person, version: int | None = None) -> None:
    """Delete a customer (and the records merged into it). With `version` (the one the deleting user loaded), a
    record someone saved in the meantime is not deleted: ConflictError, as for an edit."""
    access.require(user, Cap.DELETE_CUSTOMERS)
    if not access.can_see(user, obj):
        raise PermissionDenied(_("You may not delete this customer."))
    # a merged-away record is history (its phones and e-mail still lead to the survivor, its merge names it): the
    # customer is deleted by deleting the record it lives on in, which takes the merged records along
    refuse_merged_record(obj)
    if isinstance(obj, Institution):
        # active ones: a person or department merged away is history, shown nowhere, and must not block it
        if obj.children.filter(merged_into__isnull=True).exists():
            raise ValidationError(_("This institution has departments; delete or move them first."))
        # a department's people name it as their department (their institution is the hospital): deleting it would
        # silently empty their department, with nothing in their history
        people = Person.objects.filter(Q(institution=obj) | Q(department=obj), merged_into__isnull=True)
        if people.exists():
            raise ValidationError(_("People belong to this institution; move them or merge the institution instead."))
        fields, kind = INSTITUTION_FIELDS, SearchTerm.Kind.INSTITUTION
    else:
        fields, kind = PERSON_FIELDS, SearchTerm.Kind.PERSON
    with transaction.atomic():
        if version is not None:
            current = type(obj).objects.select_for_update().filter(pk=obj.pk).values_list("version", flat=True).first()
            if not is_id(version) or current != int(version):
                raise ConflictError(current or 0)
        # the records merged into this one are the same customer: they go with it. Left behind, each would lose
        # its pointer (merged_into is SET_NULL) and come back as an active customer, personal data and all —
        # a person deleted on request (PIPL art. 47) would reappear under the duplicate's code
        absorbed = merged_records(obj)
        entries = []
        for record in [obj, *absorbed]:
            # a person's consent records go with them (PIPL art. 47: the person is deleted), but they are the
            # company's evidence of what was consented to and withdrawn: the deletion's entry keeps each of them,
            # evidence included, in the append-only audit trail (where the auditor reads them; nobody else does)
            consents = consent_evidence(record) if isinstance(record, Person) else None
            extra = {"consents": consents} if consents else {}
            if record is not obj:
                extra["merged_into"] = record.merged_into_id
            label = (record._meta.label_lower, str(record.pk), str(record))  # cut with "…" by the entry
            entries.append((label, audit.diff(snapshot(record, fields), {}), extra))
        search.unindex(kind, [r.pk for r in (obj, *absorbed)])
        if isinstance(obj, Institution):
            # merged-away people and departments still name the institution they had when they were merged (their
            # survivors have moved on): they let go of it instead of keeping it from being deleted
            gone = [r.pk for r in (obj, *absorbed)]
            Person.objects.filter(merged_into__isnull=False, institution_id__in=gone).update(institution=None)
            Person.objects.filter(merged_into__isnull=False, department_id__in=gone).update(department=None)
            Institution.objects.filter(merged_into__isnull=False, parent_id__in=gone).exclude(pk__in=gone).update(
                parent=None
            )
        try:
            with transaction.atomic():
                for record in reversed(absorbed):  # the last merged first: nothing points at a deleted record
                    record.delete()
                obj.delete()
        except models.ProtectedError:  # tickets, cases, orders… keep their customer: history is not deleted
            raise ValidationError(_(
                "Tickets, cases or other records refer to this customer, so it cannot be deleted. If it is a "
                "duplicate, merge it into the right record instead."
            )) from None
        for label, changes, extra in entries:
            audit.record(A.DELETE, label, changes=changes, user=user, **extra)


def last_survivor(pk: int, seen: set[int] | None = None, model: type[Institution | Person] | None = None) -> int:
    """The institution (or person, with `model`) a merged record's records go to: its survivor, or that survivor's
    own survivor when it was merged in turn (`seen` guards against a cycle)."""
    model = model or Institution
    seen = set(seen or ())
    while pk and pk not in seen:
        seen.add(pk)
        nxt = model.objects.filter(pk=pk).values_list("merged_into_id", flat=True).first()
        if not nxt:
            break
        pk = nxt
    return pk


def survivors_of_freed_codes(column: str, codes: list[str]) -> dict[str, int]:
    """Credit codes or external ids (`column`) that belonged to an institution merged into another (the merge frees
    them) → the institution they lead to now, following later merges of the survivor too: what every import that
    names customers by code reads them as (orders, KOLs)."""
    out = {}
    merges = MergeRecord.objects.filter(kind=SearchTerm.Kind.INSTITUTION, **{f"snapshot__{column}__in": codes})
    for snapshot, survivor in merges.values_list("snapshot", "survivor_id"):
        code = (snapshot or {}).get(column)
        if code in codes:
            out[code] = last_survivor(survivor)
    return out


def merged_records(obj: Institution | Person) -> list[Institution | Person]:
    """The records merged into `obj`, directly or through another merged record, nearest first."""
    model, found, frontier = type(obj), [], [obj.pk]
    seen = {obj.pk}
    while frontier:
        batch = [r for r in model.objects.filter(merged_into_id__in=frontier).order_by("pk") if r.pk not in seen]
        seen.update(r.pk for r in batch)
        found += batch
        frontier = [r.pk for r in batch]
    return found


# --- consents ----------------------------------------------------------------------------------


EARLIEST_CONSENT = datetime.datetime(2000, 1, 1)  # local time: no consent in the customer master is older


def record_consent(user, person: Person, data: dict[str, Any]) -> Consent:
    access.require(user, Cap.MANAGE_CONSENTS)
    if not access.can_see(user, person):
        raise PermissionDenied(_("You may not change this customer."))
    refuse_merged_record(person)  # a withdrawal on the merged record would never reach the survivor
    errors = {}
    for key in ("purpose", "channel", "status"):
        if not data.get(key):
            errors[key] = [_("This field is required.")]
    at = data.get("at") or timezone.now()
    if at > timezone.now() + timezone.timedelta(minutes=5):
        errors["at"] = [_("A consent cannot be recorded in the future.")]
    elif at < timezone.make_aware(EARLIEST_CONSENT):
        # a mistyped year (0001, 1900): the web form's save failed on it with a server error (the database's local
        # time of year 1 UTC is before year 1), and the API kept it as the date of the person's consent
        errors["at"] = [_("A consent cannot be dated before %(date)s.") % {"date": EARLIEST_CONSENT.date().isoformat()}]
    evidence = (data.get("evidence") or "").strip()
    try:
        normalise.check_length("evidence", evidence, Consent.EVIDENCE_MAX_LENGTH)
    except ValidationError as e:
        errors["evidence"] = e.messages
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        # read again under its lock: a merge of this person under way moves the consents; one written after that
        # would stay on the merged record, and the survivor would go on showing the consent it withdraws
        person = Person.objects.select_for_update().get(pk=person.pk)
        refuse_merged_record(person)
        consent = Consent.objects.create(
            person=person, purpose=data["purpose"], channel=data["channel"], status=data["status"], at=at,
            evidence=evidence, recorded_by=user,
        )  # fmt: skip
        audit.record(
            A.CREATE, consent.audit_name, user=user,
            changes={k: [None, getattr(consent, k)] for k in ("purpose", "channel", "status", "at")},
            person=person.pk,
        )  # fmt: skip
    return consent


CONSENT_EVIDENCE_FIELDS = ("id", "purpose", "channel", "status", "at", "evidence", "recorded_by", "created_at")


def consent_evidence(person: Person) -> list[dict[str, Any]]:
    """The person's consent records as the audit trail keeps them when the person is deleted, oldest first."""
    rows = person.consents.order_by("at", "id").values(
        *(f"{f}_id" if f == "recorded_by" else f for f in CONSENT_EVIDENCE_FIELDS)
    )
    return [{f: row[f"{f}_id" if f == "recorded_by" else f] for f in CONSENT_EVIDENCE_FIELDS} for row in rows]


def current_consents(person: Person) -> dict[str, Consent]:
    """The latest consent record per purpose."""
    latest: dict[str, Consent] = {}
    for c in person.consents.order_by("purpose", "-at", "-id"):
        latest.setdefault(c.purpose, c)
    return latest


# --- duplicates and merge ----------------------------------------------------------------------


@dataclass
class DuplicateGroup:
    reason: str  # credit_code | phone | name_city
    key: str
    ids: list[int]


def institution_duplicates(limit: int = 200) -> list[DuplicateGroup]:
    """Groups of active institutions sharing a credit code, a phone, or a normalised name in one city."""
    base = Institution.objects.filter(merged_into__isnull=True)
    groups: list[DuplicateGroup] = []
    for value in _shared_values(Institution, "phone_norm", limit):
        lines: dict[tuple, list[Institution]] = {}
        sharing = Institution.objects.filter(phone_norm=value).only("id", "phone", "kind", "merged_into_id")
        for inst in sharing:
            lines.setdefault(phone_line(inst.phone, inst.kind), []).append(inst)
        found = [_with_survivors(records) for records in lines.values()]
        groups += [DuplicateGroup("phone", value, ids) for ids in found if len(ids) > 1]
    city = models.functions.Substr("region_id", 1, 4)
    names = (
        base.exclude(region__isnull=True)
        .exclude(kind=InstitutionType.DEPARTMENT)  # 心内科 exists in every hospital; see below
        .annotate(city_stem=city)
        .values("name_norm", "city_stem")
        .annotate(n=models.Count("id"))
        .filter(n__gt=1)[:limit]
    )
    for row in names:
        ids = list(
            base.filter(name_norm=row["name_norm"], region__code__startswith=row["city_stem"]).values_list("id", flat=True)
        )
        groups.append(DuplicateGroup("name_city", f"{row['name_norm']}@{row['city_stem']}", ids))
    depts = (
        base.filter(kind=InstitutionType.DEPARTMENT)
        .values("name_norm", "parent_id")
        .annotate(n=models.Count("id"))
        .filter(n__gt=1)[:limit]
    )
    for row in depts:
        ids = list(base.filter(name_norm=row["name_norm"], parent_id=row["parent_id"]).values_list("id", flat=True))
        groups.append(DuplicateGroup("name_parent", row["name_norm"], ids))
    return groups


def _shared_values(model, field: str, limit: int) -> list[str]:
    """The values of `field` (a phone, an e-mail, their blind indexes) that two active records share, or that a
    merged-away record shares with a record other than the one it was merged into: a merge leaves the duplicate's
    phones and e-mail on the merged record, and they still name the customer (as in the search)."""
    active = model.objects.filter(merged_into__isnull=True).exclude(**{field: ""})
    shared = list(
        active.values(field)
        .annotate(n=models.Count("id"))
        .filter(n__gt=1)
        .values_list(field, flat=True)[:limit]
    )
    another = (model.objects.filter(**{field: OuterRef(field)}).exclude(pk=OuterRef("pk"))
               .exclude(pk=OuterRef("merged_into_id")).exclude(merged_into_id=OuterRef("merged_into_id")))  # fmt: skip
    merged = (model.objects.filter(merged_into__isnull=False).exclude(**{field: ""}).filter(Exists(another))
              .exclude(**{f"{field}__in": shared}).values_list(field, flat=True).distinct()[:limit])  # fmt: skip
    return [*shared, *merged]


def _with_survivors(records) -> list[int]:
    """The active records among `records`, and the records the merged-away ones were merged into."""
    ids = {r.pk for r in records if not r.merged_into_id}
    merged = [r.pk for r in records if r.merged_into_id]
    if merged:
        model = type(records[0])
        ids.update(search.survivors(model.objects.filter(pk__in=merged), len(merged)))
    return sorted(ids)


def phone_line(phone: str, kind: str) -> tuple[bool, str]:
    """What two institutions sharing a number must also share to be taken for one: a hospital's departments are
    reached through its switchboard (010-69156114 转8021), so the hospital and a department, or two departments
    on different extensions, are different customers (a merge refuses the first pair anyway)."""
    return kind == InstitutionType.DEPARTMENT, normalise.extension(phone)


def person_duplicates(limit: int = 200) -> list[DuplicateGroup]:
    """Groups of active people sharing a mobile, landline, e-mail or ID card number (blind indexes: nobody's is
    decrypted to compare) or a name at one institution."""
    base = Person.objects.filter(merged_into__isnull=True)
    groups: list[DuplicateGroup] = []
    reasons = {"mobile_bidx": "phone", "landline_bidx": "phone", "email_bidx": "email", "id_number_bidx": "id_number"}
    for field, reason in reasons.items():
        for value in _shared_values(Person, field, limit):
            lines: dict[str, list[Person]] = {}
            for person in Person.objects.filter(**{field: value}).only("id", "landline", "merged_into_id"):
                # one department line, each doctor on their own extension: not one person
                line = normalise.phone_key(person.landline) if field == "landline_bidx" else ""
                lines.setdefault(line, []).append(person)
            found = [_with_survivors(records) for records in lines.values()]
            groups += [DuplicateGroup(reason, value[:8], ids) for ids in found if len(ids) > 1]
    rows = (
        base.exclude(institution__isnull=True)
        .values("name_norm", "institution_id")
        .annotate(n=models.Count("id"))
        .filter(n__gt=1)[:limit]
    )
    for row in rows:
        ids = list(base.filter(name_norm=row["name_norm"], institution_id=row["institution_id"]).values_list("id", flat=True))
        groups.append(DuplicateGroup("name_institution", row["name_norm"], ids))
    return groups


def _pair_kind(model) -> int:
    return SearchTerm.Kind.INSTITUTION if model is Institution else SearchTerm.Kind.PERSON


def mark_distinct(user, first: Institution | Person, second: Institution | Person) -> DistinctPair:
    """Record that two likely duplicates are different customers (two doctors called 刘倩 at one hospital), so
    that they are not paired again. Needs the merge right and both records in the user's sight; audited on
    both records' histories. Marking a pair twice changes nothing."""
    access.require(user, Cap.MERGE_CUSTOMERS)
    model = type(first)
    if type(second) is not model or first.pk == second.pk:
        raise ValidationError(_("Choose two different records of the same kind."))
    if not (access.can_see(user, first) and access.can_see(user, second)):
        raise PermissionDenied
    low, high = sorted((first.pk, second.pk))
    with transaction.atomic():
        pair, created = DistinctPair.objects.get_or_create(kind=_pair_kind(model), low_id=low, high_id=high,
                                                           defaults={"by": user})  # fmt: skip
        if created:
            for this, other in ((first, second), (second, first)):
                audit.record(A.UPDATE, this, user=user, changes={"not_a_duplicate_of": [None, other.code]})
    return pair


def distinct_from(obj: Institution | Person) -> set[int]:
    """The records marked as different customers from `obj`."""
    kind = _pair_kind(type(obj))
    pairs = DistinctPair.objects.filter(Q(low_id=obj.pk) | Q(high_id=obj.pk), kind=kind).values_list("low_id", "high_id")
    return {low if high == obj.pk else high for low, high in pairs}


def distinct_pairs(model, ids) -> set[tuple[int, int]]:
    """The (low, high) pairs among `ids` marked as different customers."""
    ids = list(ids)
    if not ids:
        return set()
    return set(DistinctPair.objects.filter(kind=_pair_kind(model), low_id__in=ids, high_id__in=ids)
               .values_list("low_id", "high_id"))  # fmt: skip


def duplicates_of(obj: Institution | Person) -> list[tuple[Institution | Person, str]]:
    """Likely duplicates of one record (shown on its page and before saving a new one); records marked as
    different customers from it are left out."""
    found: dict[int, str] = {}
    if isinstance(obj, Institution):
        base = Institution.objects.filter(merged_into__isnull=True).exclude(pk=obj.pk)
        if obj.credit_code:
            found.update({pk: "credit_code" for pk in base.filter(credit_code=obj.credit_code).values_list("pk", flat=True)})
        if obj.phone_norm:
            line = phone_line(obj.phone, obj.kind)
            sharing = Institution.objects.filter(phone_norm=obj.phone_norm).exclude(pk=obj.pk)
            sharing = sharing.only("id", "phone", "kind", "merged_into_id")
            # a merged-away record's number names the institution it was merged into
            for pk in _with_survivors([i for i in sharing if phone_line(i.phone, i.kind) == line]):
                found.setdefault(pk, "phone")
        if obj.is_department:
            for pk in base.filter(name_norm=obj.name_norm, parent_id=obj.parent_id).values_list("pk", flat=True):
                found.setdefault(pk, "name_parent")
        elif obj.region_id:
            same_city = base.filter(name_norm=obj.name_norm, region__code__startswith=obj.region_id[:4])
            for pk in same_city.exclude(kind=InstitutionType.DEPARTMENT).values_list("pk", flat=True):
                found.setdefault(pk, "name_city")
        objs = Institution.objects.in_bulk(list(found))
    else:
        base = Person.objects.filter(merged_into__isnull=True).exclude(pk=obj.pk)
        bidx = [b for b in (obj.mobile_bidx, obj.landline_bidx) if b]
        if bidx:
            mine = {normalise.phone_key(obj.mobile), normalise.phone_key(obj.landline)} - {""}
            sharing = Person.objects.filter(Q(mobile_bidx__in=bidx) | Q(landline_bidx__in=bidx))
            sharing = sharing.exclude(pk=obj.pk)
            # the same number with the same extension (or none): a department's line, each doctor on their own
            # extension, is no sign of one person; a merged-away record's number names the person it was merged into
            same = [other for other in sharing.only("id", "mobile", "landline", "merged_into_id")
                    if mine & {normalise.phone_key(other.mobile), normalise.phone_key(other.landline)}]  # fmt: skip
            for pk in _with_survivors(same):
                found.setdefault(pk, "phone")
        if obj.email_bidx:
            sharing = Person.objects.filter(email_bidx=obj.email_bidx).exclude(pk=obj.pk)
            for pk in _with_survivors(list(sharing.only("id", "merged_into_id"))):
                found.setdefault(pk, "email")
        if obj.id_number_bidx:
            for pk in base.filter(id_number_bidx=obj.id_number_bidx).values_list("pk", flat=True):
                found.setdefault(pk, "id_number")
        if obj.institution_id:
            for pk in base.filter(name_norm=obj.name_norm, institution_id=obj.institution_id).values_list("pk", flat=True):
                found.setdefault(pk, "name_institution")
        objs = Person.objects.in_bulk(list(found))
    found.pop(obj.pk, None)  # the records merged into it lead back to it
    different = distinct_from(obj) if found and obj.pk else set()
    return [(objs[pk], reason) for pk, reason in found.items() if pk in objs and pk not in different]


# What a merge does with the duplicate's records of each relation pointing at a customer (merge_plan):
MOVE = "move"  # a foreign key (one-to-many): the records go to the survivor — the default
MOVE_ONE = "move_one"  # a one-to-one whose model says MERGE_MOVE: to a survivor that has none (_move_one_to_one)
MOVE_LINKS = "move_links"  # a many-to-many: the links go to the survivor, one link where both had one (_move_links)
THROUGH = "through"  # a many-to-many through a model of its own: moved by that model's foreign keys (MOVE)
KEEP = "keep"  # the model says MERGE_KEEP (derived data recomputed, history that stays the merged record's), or
# `merged_into` (the records merged into the duplicate lead to the survivor through it)
OWN = "own"  # the model says MERGE_OWN: its app merges it on the `merged` signal (the market influence, field by field)
UNDECIDED = "undecided"  # nobody said: tests/customers/test_merge_relations.py fails until its model does


def merge_plan(model) -> list[tuple[type[models.Model], str, str]]:
    """Every relation of a record of any app to a customer `model` (Institution or Person) — foreign keys, one-to-ones
    and many-to-manys, those without a reverse accessor (related_name="+") too — as (related model, field name, what
    a merge does with the duplicate's: MOVE, MOVE_ONE, MOVE_LINKS, THROUGH, KEEP, OWN or UNDECIDED). A model
    declares it with MERGE_KEEP, MERGE_MOVE or MERGE_OWN; a foreign key and a many-to-many move unless it does."""
    plan = []
    for rel in model._meta.get_fields(include_hidden=True):
        if not (rel.is_relation and rel.auto_created and not rel.concrete):
            continue
        related, name = rel.related_model, rel.field.name
        if related._meta.auto_created:
            continue  # the table behind a many-to-many: its links follow the field (MOVE_LINKS)
        if name == "merged_into" or getattr(related, "MERGE_KEEP", False):
            action = KEEP
        elif getattr(related, "MERGE_OWN", False):
            action = OWN
        elif rel.many_to_many:
            if not rel.through._meta.auto_created:
                action = THROUGH
            elif related is model:
                action = UNDECIDED  # a customer linked to customers: both sides of its links would have to move
            else:
                action = MOVE_LINKS
        elif rel.one_to_one:
            action = MOVE_ONE if getattr(related, "MERGE_MOVE", False) else UNDECIDED
        else:
            action = MOVE
        plan.append((related, name, action))
    return plan


def _related_moves(model) -> list[tuple[type[models.Model], str]]:
    """Every (model, fk field) that points at `model`: a merge moves all of them."""
    return [(related, field) for related, field, action in merge_plan(model) if action == MOVE]


def _one_to_one_moves(model) -> list[tuple[type[models.Model], str]]:
    """Every (model, one-to-one field) that points at `model` and says a merge moves it (`MERGE_MOVE`: a loyalty
    membership, a referral): the duplicate's goes to the survivor when the survivor has none of its own. (The market
    influence is merged field by field by its own app, on the `merged` signal: `MERGE_OWN`.)"""
    return [(related, field) for related, field, action in merge_plan(model) if action == MOVE_ONE]


def _move_links(model, survivor, duplicate, moved: dict[str, list[int]]) -> None:
    """The duplicate's many-to-many links (a market intelligence item naming the customer) are the survivor's: left on
    the merged record, the survivor's pages never showed them. A record linked to both keeps one link. The records
    whose links moved change as an edit changes them (`_touched`), and `moved` names them for the audit trail."""
    for related, name, action in merge_plan(model):
        if action != MOVE_LINKS:
            continue
        field = related._meta.get_field(name)
        through = field.remote_field.through
        mine, theirs = field.m2m_reverse_field_name(), field.m2m_field_name()  # the customer's column, the record's
        links = through._default_manager.filter(**{mine: duplicate})
        ids = sorted(links.values_list(f"{theirs}_id", flat=True))
        if not ids:
            continue
        both = through._default_manager.filter(**{mine: survivor, f"{theirs}_id__in": ids})
        linked = set(both.values_list(f"{theirs}_id", flat=True))
        links.filter(**{f"{theirs}_id__in": linked}).delete()
        links.update(**{mine: survivor})
        related._default_manager.filter(pk__in=ids).update(**_touched(related))
        moved[f"{related._meta.label_lower}.{name}"] = ids


def _move_one_to_one(model, survivor, duplicate, moved: dict[str, list[int]]) -> None:
    """The duplicate's one-to-one records go to a survivor that lacks them; where both have one, the survivor's
    stays, and the duplicate's stays with the merged record — unless the model says that loses something
    (`MERGE_BOTH_REFUSED`: a loyalty membership's points), when the merge is refused with its message."""
    for related, field in _one_to_one_moves(model):
        manager = related._default_manager
        theirs = list(manager.filter(**{field: duplicate}).values_list("pk", flat=True))
        if not theirs:
            continue
        if manager.filter(**{field: survivor}).exists():
            refused = getattr(related, "MERGE_BOTH_REFUSED", None)
            if refused:
                raise ValidationError(refused)
            continue
        manager.filter(pk__in=theirs).update(**{field: survivor}, **_touched(related))
        moved[f"{related._meta.label_lower}.{field}"] = theirs


def _touched(related) -> dict:
    """What else a record of another app changes when a merge gives it the survivor as its customer: its
    `updated_at` and its version, as an edit would. Moved behind their backs, an API client syncing tickets or
    interactions by their `updated_at` never learnt that their customer had changed, and a form opened before the
    merge saved over it without a word. (The customers' own people and departments: `_moves_recorded`.)"""
    if related in (Institution, Person):
        return {}
    names = {f.name for f in related._meta.concrete_fields}
    return {**({"updated_at": timezone.now()} if "updated_at" in names else {}),
            **({"version": F("version") + 1} if "version" in names else {})}  # fmt: skip


def merge(
    user, survivor: Institution | Person, duplicate: Institution | Person, versions: dict[int, int] | None = None
) -> Institution | Person:
    """Merge `duplicate` into `survivor`: move every related record, fill the survivor's empty fields,
    keep the duplicate (inactive, pointing at the survivor) and a snapshot, audit it all. With `versions` ({id:
    version} of the records as the merging user compared them), records someone saved since are not merged:
    ConflictError, as for an edit or a deletion."""
    access.require(user, Cap.MERGE_CUSTOMERS)
    model = type(survivor)
    if type(duplicate) is not model or survivor.pk == duplicate.pk:
        raise ValidationError(_("Choose two different records of the same kind to merge."))
    if model is Institution and survivor.is_department != duplicate.is_department:
        # a department and a hospital are never one customer: its people would keep a hospital as department
        raise ValidationError(_("Choose two different records of the same kind to merge."))
    if model is Institution and survivor.is_department and survivor.parent_id != duplicate.parent_id:
        # its people would keep their hospital and take the other hospital's department
        raise ValidationError(_(
            "These departments belong to different hospitals. If the hospitals are the same one, merge them first: "
            "their departments then come together."
        ))
    if duplicate.merged_into_id or survivor.merged_into_id:
        raise ValidationError(_("One of these records has already been merged."))
    fields = INSTITUTION_FIELDS if model is Institution else PERSON_FIELDS
    kind = SearchTerm.Kind.INSTITUTION if model is Institution else SearchTerm.Kind.PERSON
    with transaction.atomic():
        merging.send(sender=model, survivor=survivor, duplicate=duplicate)  # before the records are locked
        survivor = model.objects.select_for_update().get(pk=survivor.pk)
        duplicate = model.objects.select_for_update().get(pk=duplicate.pk)
        if duplicate.merged_into_id or survivor.merged_into_id:
            # read again under the lock: two people who opened the same pair (or its mirror) merge at once, and
            # the second, having waited for the first, would merge a record already merged (its history moved to
            # the first survivor, then pointed at another) or merge each record into the other
            raise ValidationError(_("One of these records has already been merged."))
        for record in (survivor, duplicate):
            if versions and versions.get(record.pk, record.version) != record.version:
                # the page compared what the record no longer holds: a merge cannot be undone, so it is compared again
                raise ConflictError(record.version)
        if model is Institution and any(node.pk == duplicate.pk for node in survivor.lineage()):
            raise ValidationError(_("A department cannot absorb the institution it belongs to."))
        before = snapshot(survivor, fields)
        before_tags = sorted(survivor.tags.values_list("name", flat=True))
        old_region = getattr(survivor, "region_id", None)
        moved: dict[str, list[int]] = {}
        try:
            with transaction.atomic():
                for related, field in _related_moves(model):
                    if related is model and field == "parent":
                        qs = related.objects.filter(parent=duplicate).exclude(pk=survivor.pk)
                    else:
                        qs = related._default_manager.filter(**{field: duplicate})
                    ids = list(qs.values_list("pk", flat=True))
                    if ids:
                        related._default_manager.filter(pk__in=ids).update(**{field: survivor}, **_touched(related))
                        moved[f"{related._meta.label_lower}.{field}"] = ids
                _move_one_to_one(model, survivor, duplicate, moved)
                _move_links(model, survivor, duplicate, moved)
        except IntegrityError:  # two of what a customer has one of at most: nothing moved
            raise ValidationError(_(
                "Both records hold something a customer may have only one of (an active key-account file, an open "
                "key-account proposal): close one of them first, then merge."
            )) from None
        if model is Person:
            _refuse_disagreeing_birth(survivor, duplicate)
        # fill what the survivor lacks; unique fields move only once the duplicate lets go of them
        unique_moves = {}
        for f in fields:
            if f in ("tier", "stage", "kind", "role"):
                continue
            value, mine = getattr(duplicate, f), getattr(survivor, f)
            if (mine in (None, "", [])) and value not in (None, "", []):
                if not _fits(survivor, f, value):
                    continue
                if f in ("credit_code", "external_id"):
                    unique_moves[f] = value
                else:
                    setattr(survivor, f, value)
            elif f in MERGE_JOINED_FIELDS and value and value.strip() not in mine:
                setattr(survivor, f, f"{mine.rstrip()}\n\n{value.strip()}")  # both records' notes, not one's
        if model is Institution and duplicate.tier == Tier.KEY and survivor.tier != Tier.KEY:
            from pharmacrm.keyaccounts.services import is_listed

            if is_listed(survivor):  # the duplicate's active key-account file moved here: so does its tier
                survivor.tier = Tier.KEY
        for tag in duplicate.tags.all():
            survivor.tags.add(tag)
        snapshot_dup = snapshot(duplicate, fields)
        model.objects.filter(pk=duplicate.pk).update(
            merged_into=survivor, credit_code=None, external_id=None, updated_at=timezone.now(),
            version=F("version") + 1,
        ) if model is Institution else model.objects.filter(pk=duplicate.pk).update(
            merged_into=survivor, external_id=None, updated_at=timezone.now(), version=F("version") + 1,
        )  # fmt: skip
        for f, value in unique_moves.items():
            setattr(survivor, f, value)
        survivor.refresh_derived()
        survivor.version += 1
        survivor.updated_at = timezone.now()
        survivor.save()
        search.unindex(kind, [duplicate.pk])
        search.reindex([survivor])
        _distinct_marks_follow(kind, survivor.pk, duplicate.pk)
        if model is Institution:
            sync_people_region([survivor.pk])
            # the region filled from the duplicate moves the departments, as an edit giving it one does
            if survivor.region_id != old_region:
                departments_follow(survivor, old_region, user)
            departments = moved.get("customers.institution.parent", [])
            regions = dict(Institution.objects.filter(pk__in=departments).values_list("pk", "region_id"))
            _moved_departments_follow(survivor, duplicate, departments)
            _moves_recorded(user, survivor, duplicate, moved, regions)
        MergeRecord.objects.create(
            kind=kind, survivor_id=survivor.pk, merged_id=duplicate.pk, snapshot=snapshot_dup, moved=moved, by=user
        )
        changes = audit.diff(before, snapshot(survivor, fields))
        after_tags = sorted(survivor.tags.values_list("name", flat=True))
        if after_tags != before_tags:  # the history says which tags came with the duplicate, as an edit's does
            changes["tags"] = [before_tags, after_tags]
        audit.record(
            A.MERGE, survivor, user=user, changes=changes,
            merged=duplicate.pk, merged_code=duplicate.code, moved={k: len(v) for k, v in moved.items()},
        )  # fmt: skip
        merged.send(sender=model, survivor=survivor, duplicate=duplicate, user=user)
        if "owner" in changes:  # the survivor had none: it takes the duplicate's
            owner_changed.send(sender=model, moves={survivor.pk: tuple(changes["owner"])}, user=user)
    return survivor


def _moved_departments_follow(survivor: Institution, duplicate: Institution, ids: list[int]) -> None:
    """The duplicate's departments, now the survivor's, lie where the survivor does when they lay where the duplicate
    did (or nowhere), or in another province than the survivor (a department lies in its hospital's province): a
    duplicate is often the hospital entered in the wrong place, and its departments stayed there, out of sight of the
    survivor's territory."""
    if not ids or not survivor.region_id:
        return
    following = Institution.objects.filter(pk__in=ids, kind=InstitutionType.DEPARTMENT).filter(
        Q(region_id=duplicate.region_id) | Q(region__isnull=True) | ~Q(province=region_columns(survivor.region_id)[0])
    ).exclude(region_id=survivor.region_id)
    pks = list(following.values_list("pk", flat=True))
    if pks:
        province, city = region_columns(survivor.region_id)
        Institution.objects.filter(pk__in=pks).update(region_id=survivor.region_id, province=province, city=city)
        search.reindex(list(Institution.objects.filter(pk__in=pks)))


# the customer records a merge moves to the survivor: (model, field) by the key MergeRecord.moved gives them
MOVED_CUSTOMERS = {
    "customers.person.institution": (Person, "institution"),
    "customers.person.department": (Person, "department"),
    "customers.institution.parent": (Institution, "parent"),
}


def _moves_recorded(user, survivor: Institution, duplicate: Institution, moved: dict, regions: dict) -> None:
    """The people and departments a merge moved to the survivor changed as an edit changes them: their version and
    `updated_at` move and their history says so (a department's region too, when it followed; `regions`: each one's
    before). Moved behind their backs, an API client syncing by `updated_since` never learnt that its doctors now
    work at the survivor, and their pages did not say when or why they had moved."""
    now = timezone.now()
    for model in (Person, Institution):
        changes: dict[int, dict] = {}
        for key, (owner, field) in MOVED_CUSTOMERS.items():
            if owner is model:
                for pk in moved.get(key, []):
                    changes.setdefault(pk, {})[field] = [duplicate.pk, survivor.pk]
        if not changes:
            continue
        model.objects.filter(pk__in=list(changes)).update(version=F("version") + 1, updated_at=now)
        items = []
        for pk, name, region_id in model.objects.filter(pk__in=list(changes)).values_list("pk", "name", "region_id"):
            if model is Institution and regions.get(pk) != region_id:
                changes[pk]["region"] = [regions.get(pk), region_id]
            items.append(((model._meta.label_lower, str(pk), name), changes[pk]))
        audit.record_many(A.UPDATE, items, user=user, institution_merged=duplicate.pk)


def _distinct_marks_follow(kind: int, survivor_id: int, duplicate_id: int) -> None:
    """The duplicate's "not the same customer as …" marks are the survivor's now: it is the same customer. Left on
    the merged record, the pairs a user had settled came back on the duplicate list with the survivor. A mark
    between the two records merged is dropped: they were one customer after all."""
    marks = DistinctPair.objects.filter(Q(low_id=duplicate_id) | Q(high_id=duplicate_id), kind=kind)
    for mark in marks:
        other = mark.high_id if mark.low_id == duplicate_id else mark.low_id
        low, high = sorted((other, survivor_id))
        if other == survivor_id or DistinctPair.objects.filter(kind=kind, low_id=low, high_id=high).exists():
            mark.delete()
        else:
            DistinctPair.objects.filter(pk=mark.pk).update(low_id=low, high_id=high)


# free text a merge joins when both records have some (what each account manager wrote), instead of keeping
# the survivor's and dropping the duplicate's
MERGE_JOINED_FIELDS = ("needs", "notes")


def _refuse_disagreeing_birth(survivor: Person, duplicate: Person) -> None:
    """A merge that would give the survivor a birthday and an ID card number that disagree (one from each record) is
    refused, as the form, the API and the import refuse that pair (found by QA: the merge wrote it without a word).
    The message names neither value: the merging user may see these records' personal data masked."""
    merged = {f: getattr(survivor, f) or getattr(duplicate, f) for f in ("birthday", "id_number")}
    if all(getattr(survivor, f) for f in merged):
        return  # the survivor keeps its own two
    if birthday_id_error(merged) is not None:
        raise ValidationError(_(
            "One record's birthday differs from the date of birth in the other's ID card number: correct one of "
            "them, then merge."
        ))


def _fits(survivor, field: str, value) -> bool:
    """Whether the duplicate's value may fill the survivor's empty field: never a parent that is the survivor
    or lies under it (a loop: the hospital under its own department), never a department of another
    institution than the survivor's."""
    if field == "parent" and any(node.pk == survivor.pk for node in value.lineage()):
        return False
    if field == "department" and value.parent_id != survivor.institution_id:
        return False
    return True


# Sent inside the merge's transaction, after the related records moved: apps with derived per-customer
# data (purchase rollups) recompute it for the survivor.
merged = Signal()
# Sent at the start of the merge's transaction, before the two records are locked: apps whose writers lock in
# their own order (the order import: its writers' lock, then the customers its lines name) take their lock here.
merging = Signal()
# Sent when customers may have entered another lifecycle stage — created, edited, advanced by an opportunity (`ids`,
# inside the saving transaction: a receiver's error undoes the save), or written by an import (`since`: every
# customer it wrote since then, after it): the lifecycle's stage tasks follow (engagement.playbook). `created=True`
# with `ids`: the customers were inserted in that transaction (they have no stage history to look up yet).
stage_changed = Signal()
# Sent, inside the saving transaction, when customers changed owner — the form, the API, an import, a merge that gives
# the survivor the duplicate's owner: `moves` {customer id: (old owner id, new owner id)}, `user` who did it. The
# customers' open stage tasks follow the new owner (engagement.playbook.follow_owner).
owner_changed = Signal()
