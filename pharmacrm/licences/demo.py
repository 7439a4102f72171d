"""Demo licences for `pharmacrm demo`: the licences each pharmacy, distributor, hospital and clinic of the demo holds —
most verified and in force, some ending within the notice period, a few expired, some not verified yet, and a few
customers with a licence missing — so that the licence list, the "lacking" list and the Customer 360 block have
something to show. Bulk-inserted with their audit entries; deterministic; loaded once (marker `demo:licences`)."""

from __future__ import annotations

import datetime as dt
import random

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry, Counter, Region, User

from .models import Licence, LicenceKind, Scope

MARKER = "demo:licences"
SEED = 4711
ABBREVIATION = {
    "11": "京", "12": "津", "13": "冀", "14": "晋", "15": "蒙", "21": "辽", "22": "吉", "23": "黑", "31": "沪", "32": "苏",
    "33": "浙", "34": "皖", "35": "闽", "36": "赣", "37": "鲁", "41": "豫", "42": "鄂", "43": "湘", "44": "粤", "45": "桂",
    "46": "琼", "50": "渝", "51": "川", "52": "贵", "53": "云", "54": "藏", "61": "陕", "62": "甘", "63": "青", "64": "宁",
    "65": "新",
}  # fmt: skip
WHOLESALE_SCOPE = [Scope.PATENT_CHINESE, Scope.CHEMICAL, Scope.ANTIBIOTIC, Scope.BIOCHEMICAL, Scope.BIOLOGICAL]
SCANNED = 8  # licences with a scanned copy: enough to show the link, cheap to load
RETAIL_SCOPE = [Scope.HERBAL_PIECES, Scope.PATENT_CHINESE, Scope.CHEMICAL, Scope.ANTIBIOTIC, Scope.BIOCHEMICAL]


def _fate(rng: random.Random) -> str:
    """What happens to one licence: most are fine; the rest give every list and block something to show."""
    roll = rng.random()
    if roll < 0.06:
        return "missing"
    if roll < 0.12:
        return "expired"
    if roll < 0.22:
        return "expiring"
    if roll < 0.32:
        return "unverified"
    return "valid"


def load(seed: int = SEED) -> int:
    """Returns how many licences it made (0 when they are there already or the demo users are missing)."""
    from pharmacrm.customers.models import Institution

    if Counter.objects.filter(name=MARKER).exists():
        return 0
    users = {u.username: u for u in User.objects.filter(username__in=["rep", "kam", "manager", "pv"], is_active=True)}
    if len(users) < 4:
        return 0
    rng = random.Random(seed)
    today = timezone.localdate()
    now = timezone.now()
    provinces = dict(Region.objects.filter(level=Region.Level.PROVINCE).values_list("code", "name"))
    customers = list(Institution.objects.active().filter(kind__in=list(settings.LICENCES_REQUIRED))
                     .exclude(region__isnull=True).select_related("owner").order_by("id"))  # fmt: skip
    rows = []
    for n, customer in enumerate(customers):
        province = customer.region_id[:2]
        province_name = provinces.get(province + "0000", "")
        recorder = customer.owner if customer.owner_id and customer.owner.username in ("rep", "kam") else users["rep"]
        for kind in settings.LICENCES_REQUIRED[customer.kind]:
            fate = _fate(rng)
            if fate == "missing" or (kind == LicenceKind.BUSINESS and not customer.credit_code):
                continue
            issued = today - dt.timedelta(days=rng.randint(200, 1700))
            until = issued + dt.timedelta(days=5 * 365)
            if fate == "expired":
                until = today - dt.timedelta(days=rng.randint(1, 90))
            elif fate == "expiring":
                until = today + dt.timedelta(days=rng.randint(3, 55))
            elif until <= today + dt.timedelta(days=70):
                until = today + dt.timedelta(days=rng.randint(120, 1500))
            scope, note = [], ""
            if kind == LicenceKind.BUSINESS:
                number, issuer = customer.credit_code, f"{province_name}市场监督管理局"
                until = None if rng.random() < 0.7 and fate not in ("expired", "expiring") else until
                note = "药品批发；医疗器械经营；保健食品销售" if customer.kind == "distributor" else "药品零售；医疗器械零售"
            elif kind == LicenceKind.DRUG_TRADING:
                wholesale = customer.kind == "distributor"
                number = f"{ABBREVIATION.get(province, '京')}{'AA' if wholesale else 'CB'}{rng.randint(0, 9999999):07d}"
                issuer = f"{province_name}药品监督管理局"
                scope = [str(s) for s in (WHOLESALE_SCOPE if wholesale else RETAIL_SCOPE) if rng.random() < 0.85]
                scope = scope or [str(Scope.CHEMICAL)]
            else:
                number = f"PDY{rng.randint(10000, 99999)}X{customer.region_id}A{n % 10000:04d}"
                issuer = f"{province_name}卫生健康委员会"
            verified = fate != "unverified"
            rows.append(Licence(
                institution=customer, kind=kind, number=number, scope=scope, scope_note=note, issuer=issuer,
                issued_on=issued, valid_until=until, recorded_by=recorder, recorded_at=now,
                verified_by=(users["pv"] if n % 3 else users["manager"]) if verified else None,
                verified_at=now if verified else None))  # fmt: skip
    _scan([x for x in rows if x.verified_at is not None][:SCANNED], seed)
    with transaction.atomic():
        Licence.objects.bulk_create(rows, batch_size=2000)
        audit.record_many(AuditEntry.Action.CREATE, [
            (x, {"kind": [None, x.kind], "number": [None, x.number], "valid_until": [None, _iso(x.valid_until)],
                 **({"scan": [None, x.scan]} if x.scan else {})})
            for x in rows], actor_name="demo")  # fmt: skip
        Counter.objects.create(name=MARKER, value=len(rows))
    return len(rows)


def _scan(licences: list[Licence], seed: int) -> None:
    """A few licences get a scanned copy: one tiny generated PDF (the core font, no image), written once per licence
    into var/licences/ as services.keep_scan names them, before the rows are saved (a failed load leaves files the
    nightly sweep deletes)."""
    if not licences:
        return
    import hashlib

    from fpdf import FPDF

    from . import services

    doc = FPDF()
    doc.set_creation_date(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))  # the same file, and checksum, each load
    doc.add_page()
    doc.set_font("helvetica", size=12)
    doc.cell(text="Licence copy, stamped by the customer (demo)")
    data = bytes(doc.output())
    sha = hashlib.sha256(data).hexdigest()
    folder = services.files_dir()
    for licence in licences:
        stem = services.scan_stem(licence.number)
        path = folder / f"{stem}-{hashlib.sha256(f'{seed}:{licence.number}'.encode()).hexdigest()[:32]}.pdf"
        path.write_bytes(data)
        licence.scan, licence.scan_name, licence.scan_sha256 = path.name, f"{licence.number}.pdf", sha


def _iso(value):
    return value.isoformat() if value else None
