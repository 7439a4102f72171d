"""Demo purchases for `pharmacrm demo`: two years of ERP orders and payments (up to today) for most of the
demo customers that buy — hospitals, distributors, pharmacies, clinics, township and community health
centres — written as an ERP export in the order template's format and loaded through the order import,
so that lines, product codes and monthly rollups are built exactly as in production.

The patterns look like a real customer base: big 三甲 hospitals and distributors order several times a
month for large amounts, small clinics now and then; some customers grow, some decline, some stopped
buying, some started recently; about one in ten pays late as a habit and a few owe overdue arrears.
Products come from the service-desk catalogue (linked by approval number) plus a few ERP-only codes.
Deterministic (random.Random(SEED)); loaded once (marker `demo:orders`)."""

from __future__ import annotations

import csv
import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from pharmacrm.core.models import Counter, User

MARKER = "demo:orders"
SEED = 2505
MONTHS = 24
BUYING_KINDS = ("hospital", "distributor", "pharmacy", "clinic", "township", "community")
CENT = Decimal("0.01")

# list price (yuan per pack) by approval number; products not listed here get one by dosage form
PRICES = {
    "国药准字H20249871": Decimal("32.50"),  # 安心宁 氨氯地平片
    "国药准字H20243302": Decimal("12.80"),  # 畅舒 阿莫西林胶囊
    "国药准字H20250418": Decimal("26.40"),  # 糖平 二甲双胍缓释片
    "国药准字Z20243517": Decimal("24.60"),  # 清咽宝 板蓝根颗粒
    "国药准字Z20250096": Decimal("46.80"),  # 舒心通 丹参滴丸
    "国药准字H20244820": Decimal("158.00"),  # 护肝康 注射液
    "国药准字S20240033": Decimal("96.00"),  # 安疫宁 干扰素
    "国药准字H20253164": Decimal("21.50"),  # 宁咳 糖浆
}
FORM_PRICES = {"注射剂": Decimal("120.00"), "片剂": Decimal("30.00"), "胶囊剂": Decimal("18.00")}
# codes the ERP has but the service-desk catalogue does not: accessories and an agency product
ERP_ONLY = [
    ("ZP9001", "一次性使用输液器（配套）", Decimal("3.50")),
    ("ZP9002", "医用冷藏运输箱（周转）", Decimal("45.00")),
    ("ZP9101", "复方甘草口服溶液 100ml（代理品种）", Decimal("9.80")),
]
RETAIL = ("颗粒剂", "糖浆剂", "胶囊剂", "片剂", "滴丸剂", "缓释片")  # what pharmacies and clinics stock

# (orders a month, lines an order, monthly spend in yuan, payment terms in days) by kind / hospital grade
PROFILES = {
    "3A": (3.6, (3, 6), (60_000, 180_000), 90),
    "3B": (2.0, (2, 5), (20_000, 60_000), 90),
    "2A": (1.2, (2, 4), (6_000, 20_000), 60),
    "private": (0.6, (1, 3), (2_000, 8_000), 60),
    "distributor": (3.2, (4, 8), (120_000, 450_000), 60),
    "pharmacy": (1.2, (2, 5), (4_000, 20_000), 30),
    "clinic": (0.3, (1, 3), (800, 3_000), 30),
    "township": (0.5, (1, 3), (1_500, 5_000), 60),
    "community": (0.6, (1, 3), (1_500, 6_000), 60),
}
GRADE_PROFILE = {"3A": "3A", "3B": "3B", "3C": "3B", "3": "3B", "2A": "2A", "2B": "2A", "2": "2A"}
SEASON = {1: Decimal("0.8"), 2: Decimal("0.75"), 12: Decimal("1.2")}  # Spring Festival dip, year-end peak


@dataclass
class Item:
    code: str
    name: str
    approval: str
    price: Decimal
    form: str = ""


@dataclass
class Customer:
    institution: object
    rate: float
    lines: tuple[int, int]
    spend: int
    terms: int
    price_factor: Decimal
    first: int  # month index 0 … MONTHS-1 of the first and last month with orders
    last: int
    trend: float
    payer: str  # good / late / arrears
    portfolio: list[Item] = field(default_factory=list)
    slump_from: int = MONTHS  # from this month index on, the customer buys about a third of what it did


def _losing(seed: int, customers: list[Customer]) -> None:
    """A few regular buyers the churn watch should catch (sales.churn): about one in twenty stopped buying four
    months ago, as many buy a third of what they did over the last four months. Not the big 3A hospitals nor the
    distributors, whose steady buying the demo's key accounts rest on. A random stream of its own, so that the rest
    of the demo stays as it was."""
    rng = random.Random(seed + 101)
    for c in customers:
        inst = c.institution
        if inst.stage != "active" or c.first > MONTHS - 16 or inst.kind == "distributor" or inst.grade == "3A":
            continue
        roll = rng.random()
        if roll < 0.05:
            c.last = MONTHS - 5
        elif roll < 0.10:
            c.slump_from = MONTHS - 4


def _months(today: dt.date) -> list[dt.date]:
    """The first days of the last MONTHS months, oldest first, ending with today's month."""
    out, day = [], today.replace(day=1)
    for _i in range(MONTHS):
        out.append(day)
        day = (day - dt.timedelta(days=1)).replace(day=1)
    return out[::-1]


def _catalogue() -> list[Item]:
    from pharmacrm.servicedesk.models import Product

    items = []
    for i, p in enumerate(Product.objects.filter(active=True).order_by("id")):
        price = PRICES.get(p.approval_number) or FORM_PRICES.get(p.dosage_form, Decimal("40.00"))
        name = f"{p.brand_name} {p.generic_name} {p.strength}"[:100]
        items.append(Item(f"YP{1001 + i}", name, p.approval_number, price, p.dosage_form))
    return items


def _customer(rng: random.Random, inst, catalogue: list[Item], extras: list[Item]) -> Customer | None:
    """How one institution buys, or None when it has not bought in the last two years."""
    if inst.kind == "hospital":
        key = GRADE_PROFILE.get(inst.grade, "private")
    else:
        key = inst.kind
    rate, lines, (low, high), terms = PROFILES[key]
    last_month = MONTHS - 1
    stage = inst.stage
    if stage == "potential":
        if rng.random() > 0.15:
            return None
        first, last = rng.randint(MONTHS - 4, last_month), last_month
    elif stage == "intent":
        if rng.random() > 0.5:
            return None
        first, last = rng.randint(MONTHS - 10, MONTHS - 3), last_month
    elif stage == "decision":
        first, last = rng.randint(MONTHS - 8, MONTHS - 2), last_month
    elif stage == "churned":
        first, last = rng.randint(0, 3), rng.randint(MONTHS - 18, MONTHS - 10)
    else:  # active
        first, last = (0 if rng.random() < 0.8 else rng.randint(2, 12)), last_month
    roll = rng.random()
    if roll < 0.3:
        trend = rng.uniform(0.3, 0.9)  # growing
    elif roll < 0.55:
        trend = rng.uniform(-0.6, -0.25)  # declining
    else:
        trend = rng.uniform(-0.1, 0.1)
    price_factor = {"distributor": Decimal("0.86"), "pharmacy": Decimal("1.05")}.get(
        inst.kind, Decimal("1.00")
    )
    if inst.kind in ("pharmacy", "clinic", "township", "community"):
        pool = [i for i in catalogue if i.form in RETAIL] or catalogue
    else:
        pool = catalogue
    size = min(len(pool), rng.randint(2, 4) if key in ("clinic", "township", "community", "private") else
               rng.randint(3, len(pool)))  # fmt: skip
    portfolio = rng.sample(pool, size)
    if inst.kind == "distributor" or (key == "3A" and rng.random() < 0.5):
        portfolio += rng.sample(extras, rng.randint(1, len(extras)))
    return Customer(
        inst, rate, lines, rng.randint(low // 100, high // 100) * 100, terms, price_factor, first, last, trend,
        "good", portfolio,
    )  # fmt: skip


def _payers(rng: random.Random, customers: list[Customer]) -> None:
    """About one in ten pays late as a habit; a few of them also owe overdue arrears right now (and the biggest
    customer paying on time an old debt: _old_debt)."""
    current = [c for c in customers if c.last == MONTHS - 1 and c.first <= MONTHS - 8]
    late = rng.sample(current, max(1, len(current) // 10)) if current else []
    for c in late:
        c.payer = "late"
    candidates = [c for c in late if c.institution.kind != "clinic"]
    for c in rng.sample(candidates, min(len(candidates), max(1, len(customers) // 50))):
        c.payer = "arrears"


OLD_DEBT_FEN = 12_000_000  # ¥120,000: above the default credit gate's ¥100,000 (keyaccounts.scoring.GATE_DEFAULT)


def _old_debt(customers: list[Customer], orders: list, today: dt.date) -> set[int]:
    """The orders (by id of their lines) the demo's biggest customer that pays on time left unpaid: the first ones
    due 100 to 200 days ago, until they add up to more than ¥120,000 — so that the customer evaluation shows a
    high scorer capped by the credit gate (overdue more than 90 days above ¥100,000). No random draw: the other
    customers' data stay as they were."""
    good = [c for c in customers if c.payer == "good" and c.last == MONTHS - 1 and c.first == 0]
    if not good:
        return set()
    debtor = max(good, key=lambda c: (c.spend * c.rate, -c.institution.pk))
    picked, total = set(), 0
    for day, c, lines in orders:
        if c is not debtor or not (100 <= (today - (day + dt.timedelta(days=c.terms))).days <= 200):
            continue
        picked.add(id(lines))
        total += sum(int(_money(item.price * c.price_factor) * qty * 100) for item, qty in lines)
        if total > OLD_DEBT_FEN:
            break
    return picked


def _day(rng: random.Random, month: dt.date, today: dt.date) -> dt.date:
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    last = min(today, next_month - dt.timedelta(days=1))
    for _i in range(5):
        day = month + dt.timedelta(days=rng.randint(0, (last - month).days))
        if day.weekday() < 5:  # orders go in on working days
            return day
    return day


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _payment(rng: random.Random, c: Customer, ordered: dt.date, due: dt.date, today: dt.date):
    """(paid date or None, share paid) of one order."""
    if c.payer == "good":
        paid = due - dt.timedelta(days=rng.randint(0, 20)) if rng.random() < 0.92 else \
            due + dt.timedelta(days=rng.randint(1, 15))  # fmt: skip
    elif rng.random() < 0.65:
        paid = due + dt.timedelta(days=rng.randint(10, 100))
    else:
        paid = due - dt.timedelta(days=rng.randint(0, 10))
    paid = max(paid, ordered + dt.timedelta(days=rng.randint(3, 10)))
    share = Decimal(1)
    if c.payer == "arrears" and (today - dt.timedelta(days=200)) <= due < today:
        if rng.random() < 0.7:
            return None, Decimal(0)  # owed and overdue
        share = Decimal(rng.choice(["0.3", "0.5", "0.6"]))
    elif c.payer == "late" and rng.random() < 0.12:
        share = Decimal(rng.choice(["0.6", "0.8", "0.9"]))
    if paid > today:
        return None, Decimal(0)
    return paid, share


class _Numbers:
    """Order numbers per day (XS250312-0007), invoice numbers, batch numbers per product and month."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.per_day: dict[dt.date, int] = {}
        self.invoice = rng.randint(4_400_000, 4_500_000)
        self.batches: dict[tuple[str, dt.date], list[str]] = {}

    def order(self, day: dt.date) -> str:
        self.per_day[day] = self.per_day.get(day, 0) + 1
        return f"XS{day:%y%m%d}-{self.per_day[day]:04d}"

    def next_invoice(self) -> str:
        self.invoice += self.rng.randint(1, 4)
        return f"{self.invoice:08d}"

    def batch(self, code: str, month: dt.date) -> str:
        key = (code, month)
        if key not in self.batches:
            made = sorted({month - dt.timedelta(days=self.rng.randint(15, 120)) for _i in range(2)})
            self.batches[key] = [f"{d:%Y%m%d}" for d in made]
        return self.rng.choice(self.batches[key])


def rows(seed: int = SEED, today: dt.date | None = None) -> list[dict]:
    """The demo ERP export: one dict per order line, keyed by the order columns' keys."""
    from pharmacrm.customers.models import Institution

    today = today or timezone.localdate()
    rng = random.Random(seed)
    catalogue = _catalogue()
    if not catalogue:
        return []
    extras = [Item(code, name, "", price) for code, name, price in ERP_ONLY]
    institutions = (
        Institution.objects.filter(kind__in=BUYING_KINDS, parent__isnull=True, merged_into__isnull=True)
        .exclude(credit_code=None).exclude(credit_code="").order_by("id")
    )  # fmt: skip
    customers = [
        c for c in (_customer(rng, inst, catalogue, extras) for inst in institutions) if c is not None
    ]
    _payers(rng, customers)
    _losing(seed, customers)
    months = _months(today)
    # the month under way has had only its days so far: a whole month's orders squeezed into them made the first
    # week of December outsell any full month (targets 125 % attained, projected at five months' sales)
    next_month = (months[-1] + dt.timedelta(days=32)).replace(day=1)
    elapsed = today.day / (next_month - months[-1]).days
    numbers = _Numbers(rng)
    orders: list[tuple[dt.date, Customer, list[tuple[Item, int]]]] = []
    for c in customers:
        for index in range(c.first, c.last + 1):
            month = months[index]
            growth = max(0.15, 1 + c.trend * (index / (MONTHS - 1) - 0.5))
            if index >= c.slump_from:
                growth *= 0.3
            rate = c.rate * min(1.3, growth**0.5)  # orders in a whole month, each of its usual size
            expected = rate * elapsed if index == MONTHS - 1 else rate
            count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
            for _o in range(count):
                target = (
                    Decimal(c.spend) * Decimal(str(round(growth, 3))) * SEASON.get(month.month, Decimal(1))
                )
                target = target * Decimal(str(round(rng.uniform(0.7, 1.3), 2))) / Decimal(str(max(rate, 1.0)))
                picked = rng.sample(c.portfolio, min(len(c.portfolio), rng.randint(*c.lines)))
                weights = [rng.uniform(0.5, 2.0) for _p in picked]
                lines = []
                for item, w in zip(picked, weights, strict=True):
                    price = _money(item.price * c.price_factor)
                    qty = max(1, int(target * Decimal(str(w / sum(weights))) / price))
                    if qty > 50:
                        qty = qty // 10 * 10
                    lines.append((item, qty))
                orders.append((_day(rng, month, today), c, lines))
    orders.sort(key=lambda o: (o[0], o[1].institution.pk))
    unpaid = _old_debt(customers, orders, today)
    out = []
    for day, c, lines in orders:
        number = numbers.order(day)
        invoice = numbers.next_invoice() if (today - day).days > 3 else ""
        due = day + dt.timedelta(days=c.terms)
        paid_on, share = _payment(rng, c, day, due, today)
        if id(lines) in unpaid:  # drawn all the same: the other customers' payments stay as they were
            paid_on, share = None, Decimal(0)
        month = day.replace(day=1)
        for n, (item, qty) in enumerate(lines, start=1):
            price = _money(item.price * c.price_factor)
            amount = _money(price * qty)
            out.append({
                "order_number": number, "line_number": str(n), "order_date": day.isoformat(),
                "credit_code": c.institution.credit_code, "external_id": "", "customer_name": c.institution.name,
                "product_code": item.code, "product_name": item.name, "approval_number": item.approval,
                "batch_number": numbers.batch(item.code, month), "quantity": str(qty), "unit_price": str(price),
                "amount": str(amount), "invoice_number": invoice, "payment_due": due.isoformat(),
                "paid_date": paid_on.isoformat() if paid_on else "",
                "paid_amount": str(_money(amount * share)) if paid_on else "",
            })  # fmt: skip
    return out


def write_csv(path, lines: list[dict]) -> None:
    """The lines as the ERP exports them: the order template's Chinese headers, UTF-8 with a BOM."""
    from pharmacrm.customers import importer as base
    from pharmacrm.customers.models import ImportJob

    from .importer import ORDER_COLUMNS

    headers = base.template_headers(ImportJob.Target.ORDERS)
    key_of = {c.header: c.key for c in ORDER_COLUMNS}
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers)
        for line in lines:
            writer.writerow([line.get(key_of.get(h, ""), "") for h in headers])


def load(seed: int = SEED) -> int:
    """Import the demo orders unless they are there; returns how many order lines were created."""
    from pharmacrm.customers import importer as base
    from pharmacrm.customers.models import ImportJob

    if Counter.objects.filter(name=MARKER).exists():
        return 0
    admin = User.objects.filter(username="admin", is_active=True).first()
    if admin is None:
        return 0
    today = timezone.localdate()
    lines = rows(seed, today)
    if not lines:
        return 0
    path = base.imports_dir() / f"ERP订单导出-{_months(today)[0]:%Y%m}-{today:%Y%m%d}.csv"
    try:
        write_csv(path, lines)
        job = base.import_file(
            path, ImportJob.Target.ORDERS, admin, mode=ImportJob.Mode.GOOD_ROWS, dry_run=False
        )
    finally:
        path.unlink(missing_ok=True)
    if job.status != ImportJob.Status.DONE or job.error_count:
        raise RuntimeError(
            f"The demo order import did not go through: {job.status} {job.message} {job.errors[:3]}"
        )
    Counter.objects.create(name=MARKER, value=job.created_count)
    return job.created_count


TARGETS_RAISE = Decimal("1.1")  # a demo target: a tenth above what the owner or team bought in that month last year


def load_targets(today: dt.date | None = None) -> int:
    """This year's monthly targets for the demo owners and teams (a tenth above the same month's purchases last year,
    rounded to ¥1,000), set by the demo manager through targets.apply (audited), unless the year has targets already.
    Two grouped queries over the rollups; returns how many targets were set."""
    from django.db.models import Sum

    from pharmacrm.core.models import Team

    from . import targets
    from .models import MonthlyRollup, SalesTarget

    today = today or timezone.localdate()
    manager = User.objects.filter(username="manager", is_active=True).first()
    if manager is None or SalesTarget.objects.filter(year=today.year).exists():
        return 0
    last_year = (dt.date(today.year - 1, 1, 1), dt.date(today.year, 1, 1))
    rollups = MonthlyRollup.objects.filter(month__gte=last_year[0], month__lt=last_year[1])
    changes = []
    for group, model in (("institution__owner_id", User), ("institution__team_id", Team)):
        sums = rollups.filter(**{f"{group}__isnull": False}).values(group, "month").annotate(s=Sum("amount_fen")).order_by()
        subjects = model.objects.in_bulk({r[group] for r in sums})
        for r in sums:
            fen = int((Decimal(r["s"]) * TARGETS_RAISE / 100_000).quantize(Decimal(1), ROUND_HALF_UP)) * 100_000
            if fen and r[group] in subjects:
                period = targets.Period("month", today.year, r["month"].month)
                changes.append(targets.Change(subjects[r[group]], period, fen))
    return targets.apply(manager, changes, source="demo") if changes else 0


# --- the sales pipeline ----------------------------------------------------------------------------------

PIPELINE_SEED = 4512
NEXT_STEPS = ("拜访科主任介绍新品", "提交进院申请资料", "药事会前沟通", "递交报价单", "安排学术推广会", "跟进招标结果",
              "确认年度采购量", "协调配送与回款条款", "邀请参加城市会", "样品试用反馈")  # fmt: skip
TOPICS = ("新品进院", "年度采购协议", "扩大用量", "新科室开发", "招标跟进", "学术推广合作", "替换竞品", "二次议价")
COMPETITORS = ("恒瑞医药", "齐鲁制药", "石药集团", "扬子江药业", "正大天晴", "")
LOST_WEIGHTS = {"price": 30, "competitor": 25, "formulary": 15, "budget": 12, "no_need": 8, "timing": 6, "other": 4}


OPPORTUNITIES = 96  # at scale 1


def opportunity_count(scale: float) -> int:
    """The demo's opportunities at `scale` (the demo's): 96 at 1, two at least (the API walk reads two of each list)."""
    return max(2, round(OPPORTUNITIES * scale))


def load_opportunities(today: dt.date | None = None, seed: int = PIPELINE_SEED, count: int | None = None, *,
                       scale: float = 1.0) -> int:
    """About a hundred opportunities (at scale 1; `count` or opportunity_count(scale)) over the last year for the customers the demo's reps and key-account managers
    own, through pipeline.py as the owners would enter and move them (audited, in their stage history), then dated
    back: some won (their amounts a few months of the customer's purchases, for customers that buy), some lost with
    their reasons, the rest open — a few of those stale. Once (none when any opportunity exists)."""
    from django.db.models import Sum

    from pharmacrm.customers.models import Institution
    from pharmacrm.servicedesk.models import Product

    from . import pipeline
    from .models import MonthlyRollup, Opportunity, OpportunityMove

    if Opportunity.objects.exists():
        return 0
    count = opportunity_count(scale) if count is None else count
    today = today or pipeline.beijing_today()
    rng = random.Random(seed)
    owners = [u for u in User.objects.filter(is_active=True, username__in=("rep", "kam")).order_by("username")]
    customers = list(
        Institution.objects.active().filter(owner__in=owners).exclude(kind="department").select_related("owner")
        .order_by("id")
    )  # fmt: skip
    if not customers:
        return 0
    year_ago = today - dt.timedelta(days=365)
    spend = dict(
        MonthlyRollup.objects.filter(institution__in=customers, month__gte=year_ago.replace(day=1))
        .values("institution").annotate(s=Sum("amount_fen")).values_list("institution", "s").order_by()
    )  # fmt: skip
    products = list(Product.objects.filter(active=True).order_by("id"))
    buyers = [c for c in customers if spend.get(c.pk)]
    S = Opportunity.Stage
    made = 0

    def at(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(rng.randint(9, 17), rng.randint(0, 59)), tzinfo=pipeline.LOCAL)

    last = [dt.datetime.min.replace(tzinfo=pipeline.LOCAL)]

    def backdate(opp, day: dt.date) -> None:
        when = max(at(day), last[0] + dt.timedelta(minutes=7))  # a move after the one before it, the same day too
        last[0] = when
        OpportunityMove.objects.filter(pk=OpportunityMove.objects.filter(opportunity=opp).latest("id").pk).update(at=when)
        Opportunity.objects.filter(pk=opp.pk).update(updated_at=when)

    for i in range(count):
        roll = rng.random()
        outcome = "won" if roll < 0.3 else "lost" if roll < 0.55 else "open"
        pool = buyers if outcome == "won" and buyers else customers
        inst = pool[rng.randrange(len(pool))]
        owner = inst.owner
        monthly = (spend.get(inst.pk) or 0) / 12
        fen = max(1_000_000, int(monthly * rng.uniform(1, 4) / 100_000) * 100_000)  # ¥10,000 at least, whole ¥1,000
        created = today - dt.timedelta(days=rng.randint(20, 360) if outcome != "open" else rng.randint(3, 200))
        close = created + dt.timedelta(days=rng.randint(30, 150))
        stale = outcome == "open" and i % 5 == 0
        if outcome == "open" and not stale and close < today:
            close = today + dt.timedelta(days=rng.randint(10, 120))
        data = {
            "institution": inst, "title": f"{inst.short_name or inst.name} {TOPICS[i % len(TOPICS)]}", "amount_fen": fen,
            "close_date": close, "product": products[i % len(products)] if products else None,
            "competitor": COMPETITORS[rng.randrange(len(COMPETITORS))], "next_step": NEXT_STEPS[i % len(NEXT_STEPS)],
            "next_step_date": (today - dt.timedelta(days=rng.randint(2, 20))) if stale
            else (today + dt.timedelta(days=rng.randint(1, 30))) if outcome == "open" else None,
        }  # fmt: skip
        furthest = rng.choice(pipeline.OPEN)
        start = pipeline.OPEN[0] if rng.random() < 0.7 else furthest
        opp = pipeline.create(owner, data, stage=start, source="demo")
        last[0] = at(created)
        Opportunity.objects.filter(pk=opp.pk).update(created_at=last[0], updated_at=last[0])
        OpportunityMove.objects.filter(opportunity=opp).update(at=last[0])
        day = created
        end = min(today, close if outcome != "open" else today)
        if end <= created:
            end = created + dt.timedelta(days=1)
        for stage in pipeline.OPEN[pipeline.OPEN.index(start) + 1 : pipeline.OPEN.index(furthest) + 1]:
            day = min(end, day + dt.timedelta(days=rng.randint(3, 25)))
            opp = Opportunity.objects.get(pk=opp.pk)
            opp = pipeline.move(owner, opp, stage, opp.version, source="demo", today=day)
            backdate(opp, day)
        if outcome in ("won", "lost"):
            day = min(today, max(day, end) if day < end else day)
            opp = Opportunity.objects.get(pk=opp.pk)
            if outcome == "won":
                opp = pipeline.move(owner, opp, S.WON, opp.version, won_on=day, source="demo", today=today)
            else:
                reason = rng.choices(list(LOST_WEIGHTS), weights=list(LOST_WEIGHTS.values()))[0]
                opp = pipeline.move(owner, opp, S.LOST, opp.version, lost_reason=reason, source="demo", today=day,
                                    lost_note="客户药事会改期，项目搁置" if reason == "other" else "")  # fmt: skip
            backdate(opp, day)
        made += 1
    return made


# --- the KPI appraisal -------------------------------------------------------------------------------------


def load_appraisals(now: dt.datetime | None = None) -> int:
    """The default appraisal scheme (quarterly, reps and key-account managers) and a monthly one for the reps, set by
    the demo manager (audited), each with the results of its last closed period computed — a few grouped queries and
    one bulk insert each. Returns how many results."""
    from . import kpi
    from .models import AppraisalScheme

    manager = User.objects.filter(username="manager", is_active=True).first()
    if manager is None:
        return 0
    quarterly = AppraisalScheme.objects.filter(period_kind="quarter").first() or kpi.default_scheme(manager)
    monthly = AppraisalScheme.objects.filter(period_kind="month").first()
    if monthly is None:
        indicators = [dict(i, weight=w) for i, w in zip(kpi.default_indicators(), (50, 10, 20, 10, 10, 0), strict=True)
                      if w]  # fmt: skip
        monthly = kpi.save_scheme(manager, {"name": "月度销售代表考核", "period_kind": "month", "roles": ["rep"],
                                            "indicators": indicators, "excellent": 90, "good": 75, "passing": 60,
                                            "active": False})  # fmt: skip
    n = 0
    for scheme in (quarterly, monthly):
        period = kpi.current_period(scheme.period_kind, now).previous
        if not scheme.results.filter(period=period.key, status="final").exists():
            n += kpi.compute(scheme, period, user=manager, now=now)
    return n
