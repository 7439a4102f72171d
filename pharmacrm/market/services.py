"""Market information and competitor analysis: who sees and writes what, validation (errors per field, in the
reader's language), the audited changes, the current presence (the latest observation per customer and competitor
product) and the estimate of our share. The pages and the API call only this module (docs/market.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit, personal
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.numbers import typed_decimal
from pharmacrm.core.roles import Cap
from pharmacrm.customers.models import Institution, Region
from pharmacrm.customers.normalise import clean_text, visible
from pharmacrm.customers.services import ConflictError
from pharmacrm.sales.models import MonthlyRollup
from pharmacrm.sales.services import last_months
from pharmacrm.servicedesk.models import Product

from .models import (
    Competitor,
    CompetitorProduct,
    Importance,
    IntelKind,
    Intelligence,
    Presence,
    Source,
    VbpStatus,
)

A = AuditEntry.Action
MAX_PRICE = Decimal("9999999999.99")
MAX_VOLUME = 2_000_000_000
PRODUCT_FIELDS = ("company", "generic_name", "brand_name", "dosage_form", "strength", "our_products", "vbp_status",
                  "vbp_batch", "reference_price", "notes", "active")  # fmt: skip
PRESENCE_FIELDS = ("product", "monthly_volume", "share", "observed_on", "source", "note")
INTEL_FIELDS = ("kind", "title", "content", "happened_on", "source", "importance", "province", "competitor_products",
                "our_products", "customers")  # fmt: skip
MONTHS = 12  # the window of our purchases the share estimate reads


# --- who sees and writes what ----------------------------------------------------------------------------------


def _denied() -> PermissionDenied:
    return PermissionDenied(_("You do not have permission to do this."))


def require_read(user) -> None:
    access.require(user, Cap.READ_MARKET)


def may_manage(user) -> bool:
    return access.can(user, Cap.MANAGE_MARKET)


def presence_for(user, qs=None):
    """Observations at the customers the user may see (every customer for those who see all of them)."""
    qs = Presence.objects.all() if qs is None else qs
    if not access.can(user, Cap.READ_MARKET):
        return qs.none()
    q = access.institution_scope_q(user)
    return qs if q is None else qs.filter(institution__in=Institution.objects.filter(q).values("id"))


def intelligence_for(user, qs=None):
    """Market intelligence is read by everyone who reads the market pages: it is about markets, not people."""
    qs = Intelligence.objects.all() if qs is None else qs
    return qs if access.can(user, Cap.READ_MARKET) else qs.none()


def may_record_at(user, institution: Institution) -> bool:
    """Record competitor presence at this customer: the catalogue's keepers anywhere, reps and key-account managers
    at the customers in their scope."""
    if not access.can(user, Cap.RECORD_MARKET):
        return False
    return may_manage(user) or access.institutions_for(user).filter(pk=institution.pk).exists()


def may_change_intelligence(user, item: Intelligence) -> bool:
    """The catalogue's keepers change any item; the others only those they wrote."""
    if may_manage(user):
        return True
    return access.can(user, Cap.RECORD_MARKET) and item.created_by_id == user.pk


# --- validation --------------------------------------------------------------------------------------------------


def _text(errors: dict, field: str, value, limit: int, *, required: bool = False) -> str:
    # as the customer forms store text (customers.normalise): a name or title (a line, at most 500 characters) with
    # its spaces collapsed and full-width letters and digits made ASCII; every text without the zero-width
    # characters pasted along from WeChat, which made 华海\u200b药业 another company than 华海药业 and hid a title from search
    text = (value or "") if isinstance(value, str) else ("" if value is None else str(value))
    text = clean_text(text) if limit <= 500 else visible(text).strip()
    if required and not text:
        errors[field] = [_("This field is required.")]
    elif len(text) > limit:
        errors[field] = [_("At most %(n)d characters.") % {"n": limit}]
    return text


def _date(errors: dict, field: str, value, *, not_future: bool = True):
    if value in (None, ""):
        errors[field] = [_("Give the date.")]
        return None
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            errors[field] = [_("Give the date as YYYY-MM-DD.")]
            return None
    if not isinstance(value, dt.date):
        errors[field] = [_("Give the date as YYYY-MM-DD.")]
        return None
    if not_future and value > timezone.localdate():
        errors[field] = [_("The date cannot be in the future.")]
    return value


_decimal = typed_decimal  # 1.2万, 十二, 1_000 or Arabic-Indic ١٢ were stored as numbers


def _choice(errors: dict, field: str, value, choices, message: str, default=None) -> str:
    value = value or default or ""
    if value not in choices.values:
        errors[field] = [message]
    return value


def _ids(value) -> list[int] | None:
    """A list of ids from a list, a comma-separated text or a single id; None when any of them is no id."""
    if value in (None, ""):
        return []
    items = value if isinstance(value, (list, tuple, set)) else str(value).replace("，", ",").split(",")
    out = []
    for item in items:
        item = getattr(item, "pk", item)
        text = str(item).strip()
        if not text:
            continue
        if not is_id(text):
            return None
        out.append(int(text))
    return out


def _related(errors: dict, field: str, value, qs, message: str) -> list:
    ids = _ids(value)
    if ids is None:
        errors[field] = [message]
        return []
    found = list(qs.filter(pk__in=ids))
    if len(found) != len(set(ids)):
        errors[field] = [message]
    return found


def provinces() -> list[tuple[str, str]]:
    from pharmacrm.customers.forms import region_children

    return region_children("")


def province_name(code: str) -> str:
    return dict(provinces()).get(code, code) if code else ""


# --- competitors and their products -------------------------------------------------------------------------------


def _check_version(obj, version) -> None:
    # a garbled version (not a number) is as stale as an old one
    if version not in (None, "") and (not is_id(version) or int(version) != obj.version):
        raise ConflictError(obj.version)


def _plain(value):
    if isinstance(value, list):
        return sorted(getattr(v, "pk", v) for v in value)
    return getattr(value, "pk", value)


def clean_competitor(data: dict, *, current: Competitor | None = None) -> dict:
    errors: dict = {}
    name = _text(errors, "name", data.get("name"), 100, required=True)
    if name and "name" not in errors:
        same = Competitor.objects.filter(name__iexact=name)
        if current is not None:
            same = same.exclude(pk=current.pk)
        recorded = same.values_list("name", flat=True).first()  # names are one name in any letter case
        if recorded is not None:
            errors["name"] = [_("A competitor named “%(name)s” is recorded already: change that one, or choose another "
                                "name.") % {"name": recorded}]  # fmt: skip
    out = {"name": name, "notes": _text(errors, "notes", data.get("notes"), 5000),
           "active": data.get("active") not in (False, "false", "0", "off", "")
           if "active" in data else (current.active if current else True)}  # fmt: skip
    if errors:
        raise ValidationError(errors)
    return out


def save_competitor(user, data: dict, current: Competitor | None = None, version=None) -> Competitor:
    if not may_manage(user):
        raise _denied()
    if current is not None:
        _check_version(current, version)
        # an editor shown the notes with their contact details masked (the analyst: the edit form, a GET then PATCH)
        # sends the masks back: each is put back as stored
        data = personal.restore_free_text(user, data, current, personal.FREE_TEXT_OF["market.competitor"])
    values = clean_competitor({**({f: getattr(current, f) for f in ("name", "notes", "active")} if current else {}),
                               **data}, current=current)  # fmt: skip
    with transaction.atomic():
        if current is None:
            current = Competitor.objects.create(**values)
            audit.record(A.CREATE, current, user=user, changes={k: [None, v] for k, v in values.items() if v != ""})
            return current
        changes = {k: [getattr(current, k), v] for k, v in values.items() if getattr(current, k) != v}
        if changes:
            locked = Competitor.objects.select_for_update().get(pk=current.pk)
            _check_version(locked, current.version)
            for k, v in values.items():
                setattr(current, k, v)
            current.version += 1
            current.save()
            audit.record(A.UPDATE, current, user=user, changes=changes)
    return current


def clean_product(data: dict, *, current: CompetitorProduct | None = None) -> dict:
    errors: dict = {}
    out: dict = {}
    company = data.get("company")
    pk = getattr(company, "pk", company)
    out["company"] = Competitor.objects.filter(pk=pk).first() if is_id(pk) else None
    if out["company"] is None:
        errors["company"] = [_("Choose the competitor company.")]
    out["generic_name"] = _text(errors, "generic_name", data.get("generic_name"), 100, required=True)
    out["brand_name"] = _text(errors, "brand_name", data.get("brand_name"), 100)
    out["dosage_form"] = _text(errors, "dosage_form", data.get("dosage_form"), 40)
    out["strength"] = _text(errors, "strength", data.get("strength"), 60)
    out["our_products"] = _related(errors, "our_products", data.get("our_products"), Product.objects.all(),
                                   _("Choose products of our catalogue."))  # fmt: skip
    out["vbp_status"] = _choice(errors, "vbp_status", data.get("vbp_status"), VbpStatus,
                                _("Choose the volume-based procurement status."), VbpStatus.NONE)  # fmt: skip
    out["vbp_batch"] = _text(errors, "vbp_batch", data.get("vbp_batch"), 60)
    if out["vbp_status"] == VbpStatus.NONE and out["vbp_batch"] and "vbp_batch" not in errors:
        errors["vbp_batch"] = [_("A product not in volume-based procurement has no procurement batch.")]
    price = data.get("reference_price")
    out["reference_price"] = None
    if price not in (None, ""):
        number = _decimal(price, "¥", "元")
        if number is None or number.as_tuple().exponent < -2:
            errors["reference_price"] = [_("Give the price in yuan with at most two decimals, e.g. 12.50.")]
        elif number < 0:
            errors["reference_price"] = [_("The price cannot be negative.")]
        elif number > MAX_PRICE:
            errors["reference_price"] = [_("The price is too large.")]
        else:
            out["reference_price"] = number.quantize(Decimal("0.01"))
    out["notes"] = _text(errors, "notes", data.get("notes"), 5000)
    active = data.get("active", current.active if current else True)
    out["active"] = active not in (False, "false", "0", "off", "")
    if not errors:
        same = CompetitorProduct.objects.filter(company=out["company"], generic_name=out["generic_name"],
                                                brand_name=out["brand_name"], strength=out["strength"])  # fmt: skip
        if current is not None:
            same = same.exclude(pk=current.pk)
        if same.exists():
            product = " ".join(v for v in (out["generic_name"], out["brand_name"], out["strength"]) if v)
            errors["generic_name"] = [_("The product %(product)s of %(company)s is recorded already: change that "
                                        "one.") % {"product": product, "company": out["company"].name}]  # fmt: skip
    if errors:
        raise ValidationError(errors)
    return out


def save_product(user, data: dict, current: CompetitorProduct | None = None, version=None) -> CompetitorProduct:
    if not may_manage(user):
        raise _denied()
    before = {}
    if current is not None:
        _check_version(current, version)
        data = personal.restore_free_text(user, data, current, personal.FREE_TEXT_OF["market.competitorproduct"])
        before = {f: getattr(current, f) for f in PRODUCT_FIELDS if f != "our_products"}
        before["our_products"] = list(current.our_products.all())
    values = clean_product({**before, **data}, current=current)
    ours = values.pop("our_products")
    with transaction.atomic():
        if current is None:
            current = CompetitorProduct.objects.create(**values)
            current.our_products.set(ours)
            audit.record(A.CREATE, current, user=user, changes={
                k: [None, _plain(v)] for k, v in {**values, "our_products": ours}.items() if v not in (None, "", [])})
            return current
        changes = {k: [_plain(before[k]), _plain(v)] for k, v in values.items() if before[k] != v}
        if _plain(before["our_products"]) != _plain(ours):
            changes["our_products"] = [_plain(before["our_products"]), _plain(ours)]
        if changes:
            locked = CompetitorProduct.objects.select_for_update().get(pk=current.pk)
            _check_version(locked, current.version)
            for k, v in values.items():
                setattr(current, k, v)
            current.version += 1
            current.save()
            current.our_products.set(ours)
            audit.record(A.UPDATE, current, user=user, changes=changes)
    return current


# --- competitor presence at a customer ------------------------------------------------------------------------------


def clean_presence(data: dict) -> dict:
    errors: dict = {}
    out: dict = {}
    product = data.get("product")
    pk = getattr(product, "pk", product)
    out["product"] = CompetitorProduct.objects.filter(pk=pk).first() if is_id(pk) else None
    if out["product"] is None:
        errors["product"] = [_("Choose the competitor product.")]
    volume, share = data.get("monthly_volume"), data.get("share")
    out["monthly_volume"] = out["share"] = None
    if volume not in (None, ""):
        number = _decimal(volume)
        if number is None or number != number.to_integral_value():
            errors["monthly_volume"] = [_("Give the volume as a whole number of units.")]
        elif number < 0:
            errors["monthly_volume"] = [_("The volume cannot be negative.")]
        elif number > MAX_VOLUME:
            errors["monthly_volume"] = [_("The volume is too large.")]
        else:
            out["monthly_volume"] = int(number)
    if share not in (None, ""):
        number = _decimal(share, "%")
        if number is None or number.as_tuple().exponent < -2:
            errors["share"] = [_("Give the share in percent with at most two decimals, e.g. 35.5.")]
        elif not Decimal(0) <= number <= Decimal(100):
            errors["share"] = [_("The share is a percentage between 0 and 100.")]
        else:
            out["share"] = number.quantize(Decimal("0.01"))
    if volume in (None, "") and share in (None, ""):
        errors["monthly_volume"] = [_("Give the estimated monthly volume, the share, or both.")]
    out["observed_on"] = _date(errors, "observed_on", data.get("observed_on"))
    out["source"] = _choice(errors, "source", data.get("source"), Source, _("Choose where the observation comes from."))
    out["note"] = _text(errors, "note", data.get("note"), 2000)
    if errors:
        raise ValidationError(errors)
    return out


def record_presence(user, institution: Institution, data: dict) -> Presence:
    """Append an observation; the earlier ones of the product at the customer stay as its history."""
    if not may_record_at(user, institution):
        raise _denied()
    if institution.merged_into_id:
        raise ValidationError({"institution": [_("This customer was merged into another: record it there.")]})
    values = clean_presence(data)
    with transaction.atomic():
        presence = Presence.objects.create(institution=institution, recorded_by=user, **values)
        audit.record(A.CREATE, presence, user=user, customer=institution.name, changes={
            k: [None, _plain(v)] for k, v in values.items() if v not in (None, "")})  # fmt: skip
    return presence


def current_presence(qs=None):
    """The latest observation of each competitor product at each customer (the newest date; of one day, the last
    recorded), as a queryset of observations."""
    qs = Presence.objects.all() if qs is None else qs
    latest = Presence.objects.filter(institution_id=OuterRef("institution_id"), product_id=OuterRef("product_id"))
    return qs.filter(pk=Subquery(latest.order_by("-observed_on", "-id").values("pk")[:1]))


# --- our share -------------------------------------------------------------------------------------------------


def window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The 12 whole months before the current one: [first day, first day of the current month), as every "last 12
    months" figure reads them (sales.services.last_months: the purchases block beside this one gives the same sum)."""
    return last_months(MONTHS, today)


@dataclass
class Estimate:
    ours: Decimal  # yuan, our purchases over the window (the monthly rollups)
    theirs: Decimal  # yuan, the competitors' estimated volume × reference price × 12
    estimated: bool  # at least one current observation with a volume and a priced product

    @property
    def share(self) -> Decimal | None:
        total = self.ours + self.theirs
        if not self.estimated or total <= 0:
            return None
        return (self.ours * 100 / total).quantize(Decimal("0.1"))


def estimates(institution_ids, current: list[Presence], today: dt.date | None = None) -> dict[int, Estimate]:
    """Per customer: our purchases over the last 12 whole months beside the competitors' estimated purchases over
    the same time, from the current observations given (their product loaded). One query (the rollups)."""
    start, end = window(today)
    ours = dict(MonthlyRollup.objects.filter(institution_id__in=list(institution_ids), month__gte=start, month__lt=end)
                .values("institution_id").annotate(fen=Sum("amount_fen")).values_list("institution_id", "fen"))  # fmt: skip
    out = {i: Estimate(Decimal(ours.get(i) or 0) / 100, Decimal(0), False) for i in institution_ids}
    for p in current:
        if p.monthly_volume is None or p.product.reference_price is None or p.institution_id not in out:
            continue
        e = out[p.institution_id]
        e.theirs += p.monthly_volume * p.product.reference_price * MONTHS
        e.estimated = True
    return out


def customer_brief(user, institution: Institution) -> dict:
    """The key-account market brief: current presence, our purchases beside the competitors' estimate, the recent
    intelligence of the customer's province and products. A fixed number of queries."""
    current = list(current_presence(presence_for(user).filter(institution=institution))
                   .select_related("product__company", "recorded_by").order_by("product__generic_name", "product_id"))  # fmt: skip
    estimate = estimates([institution.pk], current)[institution.pk]
    product_ids = [p.product_id for p in current]
    ours = list(Product.objects.filter(competitor_products__in=product_ids).distinct().order_by("brand_name"))
    q = Q(customers=institution) | Q(competitor_products__in=product_ids) | Q(our_products__in=[p.pk for p in ours])
    if institution.province:
        q |= Q(province=institution.province)
    since = timezone.localdate() - dt.timedelta(days=365)
    intel = list(intelligence_for(user).filter(q, happened_on__gte=since).distinct()
                 .order_by("-happened_on", "-id")[:5])  # fmt: skip
    return {"current": current, "estimate": estimate, "our_products": ours, "intelligence": intel,
            "window": window()}  # fmt: skip


# --- market intelligence -------------------------------------------------------------------------------------------


def clean_intelligence(user, data: dict, *, current: Intelligence | None = None) -> dict:
    errors: dict = {}
    out: dict = {}
    out["kind"] = _choice(errors, "kind", data.get("kind"), IntelKind, _("Choose the kind of intelligence."))
    out["title"] = _text(errors, "title", data.get("title"), 200, required=True)
    out["content"] = _text(errors, "content", data.get("content"), 20000)
    out["happened_on"] = _date(errors, "happened_on", data.get("happened_on"))
    out["source"] = _text(errors, "source", data.get("source"), 500)
    out["importance"] = _choice(errors, "importance", data.get("importance"), Importance,
                                _("Choose normal or important."), Importance.NORMAL)  # fmt: skip
    province = (data.get("province") or "").strip()
    if province and not Region.objects.filter(code=province, level=Region.Level.PROVINCE).exists():
        errors["province"] = [_("Choose a province from the list.")]
    out["province"] = province
    out["competitor_products"] = _related(errors, "competitor_products", data.get("competitor_products"),
                                          CompetitorProduct.objects.all(), _("Choose recorded competitor products."))
    out["our_products"] = _related(errors, "our_products", data.get("our_products"), Product.objects.all(),
                                   _("Choose products of our catalogue."))  # fmt: skip
    ids = _ids(data.get("customers"))
    keep = {c.pk for c in current.customers.all()} if current is not None else set()
    if ids is None:
        errors["customers"] = [_("No such customer, or one you may not see.")]
        out["customers"] = []
    else:
        visible = access.institutions_for(user, Institution.objects.filter(pk__in=ids))
        found = {c.pk: c for c in visible}
        # a customer linked by someone who sees it stays linked when another edits the item
        hidden = [i for i in ids if i not in found and i in keep]
        if any(i not in found and i not in keep for i in ids):
            errors["customers"] = [_("No such customer, or one you may not see.")]
        out["customers"] = list(found.values()) + list(Institution.objects.filter(pk__in=hidden))
        if not may_manage(user) and "customers" not in errors and not found:
            errors["customers"] = [_("Name at least one of your customers this intelligence concerns.")]
    if errors:
        raise ValidationError(errors)
    return out


RELATIONS = ("competitor_products", "our_products", "customers")


def _snapshot(item: Intelligence) -> dict:
    out = {f: getattr(item, f) for f in INTEL_FIELDS if f not in RELATIONS}
    for f in RELATIONS:
        out[f] = list(getattr(item, f).all())
    return out


def create_intelligence(user, data: dict) -> Intelligence:
    if not access.can(user, Cap.RECORD_MARKET):
        raise _denied()
    values = clean_intelligence(user, data)
    related = {f: values.pop(f) for f in RELATIONS}
    with transaction.atomic():
        item = Intelligence.objects.create(created_by=user, **values)
        for f, objs in related.items():
            getattr(item, f).set(objs)
        audit.record(A.CREATE, item, user=user, changes={
            k: [None, _plain(v)] for k, v in {**values, **related}.items() if v not in (None, "", [])})  # fmt: skip
    return item


def update_intelligence(user, item: Intelligence, data: dict, version=None) -> Intelligence:
    if not may_change_intelligence(user, item):
        raise _denied()
    _check_version(item, version)
    # an editor shown the title, text and source with their contact details masked (the edit form, a GET then PATCH)
    # sends the masks back: each is put back as stored, never saved in place of the real number or address
    data = personal.restore_free_text(user, data, item, personal.FREE_TEXT_OF["market.intelligence"])
    before = _snapshot(item)
    values = clean_intelligence(user, {**before, **data}, current=item)
    changes = {k: [_plain(before[k]), _plain(v)] for k, v in values.items() if _plain(before[k]) != _plain(v)}
    if not changes:
        return item
    related = {f: values.pop(f) for f in RELATIONS}
    with transaction.atomic():
        if not Intelligence.objects.filter(pk=item.pk, version=item.version).update(
                version=item.version + 1, updated_at=timezone.now(), **values):
            raise ConflictError(Intelligence.objects.filter(pk=item.pk).values_list("version", flat=True).first())
        item.version += 1
        for k, v in values.items():
            setattr(item, k, v)
        for f, objs in related.items():
            if f in changes:
                getattr(item, f).set(objs)
        audit.record(A.UPDATE, item, user=user, changes=changes)
    return item


def delete_intelligence(user, item: Intelligence, version=None) -> None:
    if not may_change_intelligence(user, item):
        raise _denied()
    _check_version(item, version)
    with transaction.atomic():
        audit.record(A.DELETE, item, user=user, changes={
            k: [_plain(v), None] for k, v in _snapshot(item).items() if v not in (None, "", [])})  # fmt: skip
        item.delete()
