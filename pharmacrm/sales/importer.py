"""Order import (ERP → PharmaCRM), XLSX and CSV: streamed, idempotent, with row-level error reports.

A file is one row per order line. Rows are read as a stream and handled in chunks: each chunk is parsed
and checked in Python (customers are matched by credit code or external id, never guessed), then goes
into a temporary staging table with one multi-row insert (COPY on PostgreSQL), and the rest is set-based
SQL inside the database:

* the staged rows are classified against the stored lines by (order number, line number) and a hash of
  every imported value: new, changed or unchanged — so re-importing a file changes nothing, and a
  corrected file updates exactly the corrected lines;
* the (customer, month) pairs whose lines change are written to `sales_rollupdirty` in the same
  transaction as the lines;
* new and changed lines are upserted.

At the end (and after a killed worker, by the periodic task) `rollups.refresh_dirty` recomputes the
monthly rollups of the dirty pairs only. Memory stays flat: nothing grows with the file but the
in-file duplicate check, which lives in a temporary SQLite file.

The job, wizard, progress bar and error report are the customer import's (`customers.importer`), with
`ImportJob.Target.ORDERS`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pharmacrm.core.roles import Cap
from pharmacrm.customers import importer as base
from pharmacrm.customers.importer import Column, Counts, FieldError, SeenKeys
from pharmacrm.customers.models import ImportJob, Institution
from pharmacrm.servicedesk.models import Product

from . import rollups
from .models import OrderLine, ProductCode

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
MAX_FEN = 10**15  # ten trillion yuan: anything larger is a typing error
HUNDRED = Decimal(100)
CENT = Decimal(1)

ORDER_COLUMNS: list[Column] = [
    Column("order_number", "订单号", ("order number", "order_no", "order no", "订单编号", "单据号"), required=True),
    Column("line_number", "行号", ("line", "line number", "line_no", "订单行号", "行"), required=True,
           help=_("1, 2, 3 … within the order; with the order number it identifies the line on re-import.")),
    Column("order_date", "订单日期", ("order date", "date", "日期", "下单日期"), required=True,
           help=_("A date like 2026-03-15.")),
    Column("credit_code", "客户统一社会信用代码", ("credit code", "credit_code", "统一社会信用代码", "信用代码", "uscc"),
           help=_("The customer's unified social credit code, or give its external id.")),
    Column("external_id", "客户外部编号", ("external id", "external_id", "customer id", "客户编号", "erp客户编号"),
           help=_("The customer's id in the ERP (the external id on its customer record).")),
    Column("customer_name", "客户名称", ("customer", "customer name", "客户"),
           help=_("For people reading the file; customers are matched by credit code or external id only.")),
    Column("product_code", "产品编码", ("product code", "product_code", "物料编码", "产品代码"), required=True),
    Column("product_name", "产品名称", ("product", "product name", "品名", "物料名称")),
    Column("approval_number", "批准文号", ("approval number", "approval_number", "国药准字"),
           help=_("Links the product code to the product catalogue (国药准字…).")),
    Column("batch_number", "批号", ("batch", "lot", "batch number", "生产批号")),
    Column("quantity", "数量", ("quantity", "qty"), required=True),
    Column("unit_price", "单价", ("unit price", "price", "单价(元)", "含税单价"), required=True,
           help=_("Yuan (CNY).")),
    Column("amount", "金额", ("amount", "line amount", "金额(元)", "含税金额"),
           help=_("Yuan (CNY); empty = quantity × unit price.")),
    Column("invoice_number", "发票号", ("invoice", "invoice number", "发票号码")),
    Column("payment_due", "应付款日期", ("payment due", "due date", "到期日", "应收到期日"),
           help=_("When the customer must have paid this line.")),
    Column("paid_date", "付款日期", ("paid date", "payment date", "回款日期", "收款日期")),
    Column("paid_amount", "付款金额", ("paid amount", "paid", "回款金额", "收款金额"),
           help=_("Yuan (CNY); empty with a payment date = paid in full.")),
]  # fmt: skip

MESSAGES = {
    "customer_missing": _("Give the customer's credit code or external id."),
    "customer_not_found": _("No customer has the credit code or external id “%(value)s”."),
    "customer_conflict": _("The credit code and the external id name two different customers."),
    "invalid_number": _("“%(value)s” is not a number."),
    "invalid_line": _("The line number must be a whole number from 1 to 100000."),
    "negative": _("This value cannot be negative."),
    "too_large": _("This amount is too large."),
    "paid_too_much": _("The paid amount is larger than the line amount."),
    "paid_without_date": _("Give the payment date of the paid amount."),
    "before_order": _("This date lies before the order date."),
    "future_date": _("This date lies in the future."),
    "duplicate_line": _("Order %(order)s line %(line)s appears twice in the file (first in row %(row)s)."),
    "customer_column_missing": _(
        "The file needs a column for the customer: its unified social credit code or its external id."
    ),
}

# Order of the staged values (and of the columns the line table gets); row_hash is over the others.
STAGE = (
    "order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
    "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date",
    "paid_fen", "outstanding_fen", "row_hash",
)  # fmt: skip
HASHED = len(STAGE) - 2  # everything before outstanding_fen (derived) and row_hash


def register() -> None:
    base.register_target(
        ImportJob.Target.ORDERS,
        base.TargetSpec(
            columns=ORDER_COLUMNS, cap=Cap.IMPORT_ORDERS, run=run_job, messages=MESSAGES,
            template_name="订单导入模板", check_header=check_header,
            text_columns=("order_number", "credit_code", "external_id", "product_code", "approval_number",
                          "batch_number", "invoice_number"),
        ),
    )  # fmt: skip


def check_header(header: base.Header) -> None:
    keys = {col.key for _i, col in header.mapping}
    if not keys & {"credit_code", "external_id"}:
        raise base.refuse(MESSAGES["customer_column_missing"])


# --- parsing --------------------------------------------------------------------------------------


def _text(value: str, max_length: int, required: bool = False) -> str:
    value = value.strip()
    if not value:
        if required:
            raise FieldError("required")
        return ""
    if len(value) > max_length:
        raise FieldError("too_long", max=max_length)
    return value


def _decimal(value: str) -> Decimal:
    text = value.strip().replace(",", "").replace("，", "").replace("¥", "").replace("￥", "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise FieldError("invalid_number", value=value[:30]) from None
    if not number.is_finite():
        raise FieldError("invalid_number", value=value[:30])
    return number


def _fen(value: Decimal) -> int:
    fen = int((value * HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP))
    if abs(fen) >= MAX_FEN:
        raise FieldError("too_large")
    return fen


def _date(value: str) -> dt.date:
    value = value.strip()
    if len(value) == 10 and value[4] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    return base.parse_date(value)


@dataclass
class Parsed:
    row: int
    raw: dict[str, str]
    values: dict = field(default_factory=dict)
    errors: list[tuple[str, str, dict]] = field(default_factory=list)  # (column key, code, params)
    action: str = ""


class Parser:
    """Turns one row's cells into checked values; references (customer, product) are resolved per chunk."""

    def __init__(self, mapping: list[tuple[int, Column]], today: dt.date):
        self.mapping = mapping
        self.today = today
        self.latest = today + dt.timedelta(days=366 * 5)  # payment terms may run years ahead, not decades

    def parse(self, number: int, cells: list[str]) -> Parsed | None:
        raw = {}
        for idx, col in self.mapping:
            raw[col.key] = cells[idx] if idx < len(cells) else ""
        if not any(v.strip() for v in raw.values()):
            return None
        item = Parsed(number, raw)
        v, get = item.values, raw.get
        self._one(item, "order_number", lambda: _text(get("order_number", ""), 40, True))
        self._one(item, "line_number", lambda: self._line(get("line_number", "")))
        self._one(item, "order_date", lambda: self._order_date(get("order_date", "")))
        v["credit_code"] = get("credit_code", "").strip().upper()
        v["external_id"] = get("external_id", "").strip()
        if not v["credit_code"] and not v["external_id"]:
            item.errors.append(("credit_code", "customer_missing", {}))
        self._one(item, "product_code", lambda: _text(get("product_code", ""), 40, True))
        self._one(item, "product_name", lambda: _text(get("product_name", ""), 100))
        self._one(item, "approval_number", lambda: _text(get("approval_number", ""), 16))
        self._one(item, "batch_number", lambda: _text(get("batch_number", ""), 40))
        self._one(item, "invoice_number", lambda: _text(get("invoice_number", ""), 40))
        self._one(item, "quantity", lambda: self._required_decimal(get("quantity", ""), 3))
        self._one(item, "unit_price", lambda: self._price(get("unit_price", "")))
        self._one(item, "amount", lambda: self._amount(v, get("amount", "")))
        self._one(item, "payment_due", lambda: self._optional_date(get("payment_due", "")))
        self._one(item, "paid_date", lambda: self._optional_date(get("paid_date", "")))
        self._one(item, "paid_amount", lambda: self._paid(v, get("paid_amount", "")))
        if not item.errors:
            self._cross_checks(item)
        return item

    @staticmethod
    def _one(item: Parsed, key: str, fn) -> None:
        try:
            item.values[key] = fn()
        except FieldError as e:
            item.errors.append((key, e.code, e.params))

    @staticmethod
    def _line(value: str) -> int:
        value = value.strip()
        if value.endswith(".0"):
            value = value[:-2]
        if not value.isdecimal() or not 1 <= int(value) <= 100_000:
            raise FieldError("invalid_line")
        return int(value)

    def _order_date(self, value: str) -> dt.date:
        if not value.strip():
            raise FieldError("required")
        day = _date(value)
        if day > self.today:
            raise FieldError("future_date")
        return day

    def _optional_date(self, value: str) -> dt.date | None:
        if not value.strip():
            return None
        day = _date(value)
        if day > self.latest:
            raise FieldError("future_date")
        return day

    @staticmethod
    def _required_decimal(value: str, places: int) -> Decimal:
        if not value.strip():
            raise FieldError("required")
        number = _decimal(value)
        if abs(number) >= Decimal(10) ** (14 - places):
            raise FieldError("too_large")
        return number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)

    def _price(self, value: str) -> Decimal:
        price = self._required_decimal(value, 4)
        if price < 0:
            raise FieldError("negative")
        return price

    @staticmethod
    def _amount(v: dict, value: str) -> int:
        if value.strip():
            return _fen(_decimal(value))
        if "quantity" in v and "unit_price" in v:
            return _fen(v["quantity"] * v["unit_price"])
        return 0  # the quantity or price error is reported already

    @staticmethod
    def _paid(v: dict, value: str) -> int:
        if value.strip():
            paid = _fen(_decimal(value))
            if paid < 0:
                raise FieldError("negative")
            return paid
        if v.get("paid_date") is not None:
            return max(v.get("amount", 0), 0)  # a payment date alone: paid in full
        return 0

    @staticmethod
    def _cross_checks(item: Parsed) -> None:
        v = item.values
        if v["paid_amount"] > max(v["amount"], 0):
            item.errors.append(("paid_amount", "paid_too_much", {}))
        if v["paid_amount"] and v["paid_date"] is None:
            item.errors.append(("paid_date", "paid_without_date", {}))
        for key in ("payment_due", "paid_date"):
            if v[key] is not None and v[key] < v["order_date"]:
                item.errors.append((key, "before_order", {}))


def row_hash(values: tuple) -> int:
    """A signed 64-bit digest of a line's imported values (what tells a corrected line from the same)."""
    text = "\x1f".join("" if x is None else str(x) for x in values)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def line_key_hash(order_number: str, line_number: int) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"{order_number}\x1f{line_number}".encode(), digest_size=8).digest(), "big", signed=True
    )


# --- resolving references --------------------------------------------------------------------------


class Resolver:
    """Customer and product references → ids, cached across chunks (one IN query per chunk for new ones)."""

    CACHE_LIMIT = 500_000

    def __init__(self):
        self.by_credit: dict[str, int | None] = {}
        self.by_external: dict[str, int | None] = {}
        self.products: dict[str, int | None] = {}  # approval number → catalogue product
        self.codes: set[str] = set()  # product codes known to exist

    def _load(self, cache: dict, column: str, wanted: set[str]) -> None:
        wanted = {w for w in wanted if w and w not in cache}
        if not wanted:
            return
        if len(cache) > self.CACHE_LIMIT:
            cache.clear()
        found = {}
        items = list(wanted)
        for i in range(0, len(items), 5000):
            qs = Institution.objects.filter(**{f"{column}__in": items[i : i + 5000]})
            for pk, value, merged in qs.values_list("id", column, "merged_into_id"):
                found[value] = merged or pk  # a merged customer's orders go to the survivor
        for w in wanted:
            cache[w] = found.get(w)

    def customers(self, items: list[Parsed]) -> None:
        good = [it for it in items if not it.errors]
        self._load(self.by_credit, "credit_code", {it.values["credit_code"] for it in good})
        self._load(self.by_external, "external_id", {it.values["external_id"] for it in good})
        for it in good:
            v = it.values
            a = self.by_credit.get(v["credit_code"]) if v["credit_code"] else None
            b = self.by_external.get(v["external_id"]) if v["external_id"] else None
            if a and b and a != b:
                it.errors.append(("external_id", "customer_conflict", {}))
            elif not (a or b):
                key, ref = ("credit_code", v["credit_code"]) if v["credit_code"] else ("external_id", v["external_id"])
                it.errors.append((key, "customer_not_found", {"value": ref[:100]}))
            else:
                v["institution_id"] = a or b

    def catalogue(self, items: list[Parsed]) -> None:
        wanted = {it.values.get("approval_number") for it in items if not it.errors} - {"", None}
        wanted = {w.upper() for w in wanted} - set(self.products)
        if wanted:
            found = dict(Product.objects.filter(approval_number__in=wanted).values_list("approval_number", "id"))
            for w in wanted:
                self.products[w] = found.get(w)

    def save_product_codes(self, items: list[Parsed]) -> None:
        """Record product codes met for the first time; link a code to the catalogue when a row gives its
        approval number."""
        latest: dict[str, tuple[str, int | None]] = {}
        for it in items:
            v = it.values
            product = self.products.get((v.get("approval_number") or "").upper())
            if v["product_code"] not in self.codes or product:
                latest[v["product_code"]] = (v.get("product_name") or "", product)
        if not latest:
            return
        existing = {
            code: (name, product)
            for code, name, product in ProductCode.objects.filter(code__in=list(latest)).values_list(
                "code", "name", "product_id"
            )
        }
        now = timezone.now()
        new = [ProductCode(code=c, name=n, product_id=p, updated_at=now) for c, (n, p) in latest.items() if c not in existing]
        ProductCode.objects.bulk_create(new, ignore_conflicts=True)
        for code, (name, product) in latest.items():
            old = existing.get(code)
            if old is not None and product and old[1] != product:
                ProductCode.objects.filter(code=code).update(product_id=product, updated_at=now)
            if old is not None and name and not old[0]:
                ProductCode.objects.filter(code=code).update(name=name, updated_at=now)
        self.codes.update(latest)


# --- the run ----------------------------------------------------------------------------------------


class Run:
    """One pass over a file: counters, the error report, the in-file duplicate check, the staging table."""

    def __init__(self, job: ImportJob, header: base.Header, write: bool):
        self.job, self.write = job, write
        self.all_or_nothing = job.mode == ImportJob.Mode.ALL_OR_NOTHING
        self.header = header
        self.headers = {col.key: header.text_of(col.key) for _i, col in header.mapping}
        self.parser = Parser(header.mapping, timezone.localdate())
        self.resolver = Resolver()
        self.counts = Counts(total=job.total_rows)
        self.kept_errors: list[dict] = []
        self.preview: list[dict] = []
        self.seen = SeenKeys()
        self.stop_writing = False
        self.error_file = self.error_writer = None
        self.stage = Stage()
        self.now = timezone.now()
        self.last_row = header.row

    def open_report(self, path) -> None:
        import csv

        self.error_file = open(path, "w", encoding="utf-8", newline="")
        self.error_writer = csv.writer(self.error_file)
        self.error_writer.writerow(["row", "column", "code", "params", "value"])

    def close(self) -> None:
        if self.error_file:
            self.error_file.close()
            self.error_file = None
        self.seen.close()

    def record_errors(self, item: Parsed) -> None:
        self.counts.errors += 1
        for key, code, params in item.errors:
            column = self.headers.get(key, "") or next((c.header for c in ORDER_COLUMNS if c.key == key), "")
            value = item.raw.get(key, "")[:100]
            err = {"row": item.row, "column": column, "code": code, "params": params}
            if value:
                err["value"] = value
            if len(self.kept_errors) < base.MAX_KEPT_ERRORS:
                self.kept_errors.append(err)
            if self.error_writer:
                self.error_writer.writerow([item.row, column, code, json.dumps(params, ensure_ascii=False), value])

    def add_preview(self, item: Parsed) -> None:
        if len(self.preview) >= base.PREVIEW_ROWS:
            return
        cells = [[col.header, item.raw.get(col.key, "")[:100]] for _i, col in self.header.mapping]
        errors = [{"column": self.headers.get(k, ""), "code": c, "params": p} for k, c, p in item.errors]
        self.preview.append({"row": item.row, "action": item.action or "error", "cells": cells, "errors": errors})

    # one chunk

    def prepare(self, raw_rows: list[tuple[int, list[str]]]) -> list[Parsed]:
        self.last_row = raw_rows[-1][0]
        items = [it for it in (self.parser.parse(n, cells) for n, cells in raw_rows) if it is not None]
        self.resolver.customers(items)
        self.resolver.catalogue(items)
        self._duplicates(items)
        return items

    def _duplicates(self, items: list[Parsed]) -> None:
        keyed = [(line_key_hash(it.values["order_number"], it.values["line_number"]), it) for it in items if not it.errors]
        earlier = self.seen.first_rows(h for h, _it in keyed)
        first_here: dict[int, int] = {}
        for h, it in keyed:
            first = earlier.get(h) or first_here.get(h)
            if first is not None:
                v = it.values
                it.errors.append(("line_number", "duplicate_line",
                                  {"order": v["order_number"], "line": v["line_number"], "row": first}))  # fmt: skip
            else:
                first_here[h] = it.row
        self.seen.add(first_here.items())

    def staged_rows(self, items: list[Parsed]) -> list[tuple]:
        rows = []
        for it in items:
            v = it.values
            day = v["order_date"]
            values = (
                v["order_number"], v["line_number"], day, day.replace(day=1), v["institution_id"], v["product_code"],
                v["product_name"], v["batch_number"], v["quantity"], v["unit_price"], v["amount"],
                v["invoice_number"], v["payment_due"], v["paid_date"], v["paid_amount"],
            )  # fmt: skip
            outstanding = max(v["amount"] - v["paid_amount"], 0)
            rows.append((*values, outstanding, row_hash(values)))
        return rows

    def commit(self, items: list[Parsed]) -> None:
        """Classify (and, when writing, store) a prepared chunk; count; report the bad rows."""
        good = [it for it in items if not it.errors]
        bad = [it for it in items if it.errors]
        for it in bad:
            it.action = "error"
            self.record_errors(it)
        if bad and self.all_or_nothing:
            self.stop_writing = True
        if good:
            rows = self.staged_rows(good)
            writing = self.write and not self.stop_writing
            if writing:
                self.resolver.save_product_codes(good)
            created, updated, actions = self.stage.apply(rows, write=writing, job_id=self.job.pk, now=self.now)
            for it, action in zip(good, actions, strict=True):
                it.action = action
            self.counts.created += created
            self.counts.updated += updated
            self.counts.unchanged += len(rows) - created - updated
        for it in items:
            self.add_preview(it)
        self.counts.processed += len(items)


class Stage:
    """The temporary staging table and the set-based statements that classify and upsert a chunk."""

    def __init__(self):
        self.created = False

    def _ensure(self, cursor) -> None:
        if self.created:
            return
        cols = ", ".join(f"{c} {t}" for c, t in zip(STAGE, STAGE_TYPES, strict=True))
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS sales_stage (seq INTEGER, {cols})")
        self.created = True

    def apply(self, rows: list[tuple], *, write: bool, job_id: int, now) -> tuple[int, int, list[str]]:
        """(created, updated, action per row) of a chunk; with `write` the lines are stored and their
        (customer, month) pairs marked dirty, in the caller's transaction."""
        line = OrderLine._meta.db_table
        with connection.cursor() as cursor:
            self._ensure(cursor)
            cursor.execute("DELETE FROM sales_stage")
            base.insert_rows("sales_stage", ["seq", *STAGE], [(i, *r) for i, r in enumerate(rows)])
            cursor.execute(
                f"SELECT s.seq, CASE WHEN o.id IS NULL THEN 'create' WHEN o.row_hash = s.row_hash THEN 'unchanged' "
                f"ELSE 'update' END FROM sales_stage s LEFT JOIN {line} o "
                f"ON o.order_number = s.order_number AND o.line_number = s.line_number"
            )
            actions = ["unchanged"] * len(rows)
            for seq, action in cursor.fetchall():
                actions[seq] = action
            created = actions.count("create")
            updated = actions.count("update")
            if write and (created or updated):
                rollups.mark_dirty_from_stage(cursor, line)
                cols = ", ".join(STAGE)
                sets = ", ".join(f"{c} = excluded.{c}" for c in (*STAGE[2:], "job_id", "imported_at"))
                params = [job_id, now if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(now)]
                cursor.execute(
                    f"INSERT INTO {line} ({cols}, job_id, imported_at) SELECT {cols}, %s, %s FROM sales_stage WHERE true "
                    f"ON CONFLICT (order_number, line_number) DO UPDATE SET {sets} "
                    f"WHERE {line}.row_hash <> excluded.row_hash",
                    params,
                )
        return created, updated, actions


STAGE_TYPES = (
    "varchar(40)", "integer", "date", "date", "bigint", "varchar(40)", "varchar(100)", "varchar(40)",
    "numeric(14,3)", "numeric(14,4)", "bigint", "varchar(40)", "date", "date", "bigint", "bigint", "bigint",
)  # fmt: skip


def _chunks(rows: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _execute(run: Run, rows: Iterator) -> None:
    """Good rows only: one transaction per chunk (a killed worker leaves whole chunks and their dirty
    marks). All or nothing: one transaction for the file, rolled back at the first bad row."""
    if run.all_or_nothing and run.write:
        try:
            with transaction.atomic():
                for chunk in _chunks(rows, CHUNK_ROWS):
                    run.commit(run.prepare(chunk))
                    base.write_progress(run.job, run.counts.processed, in_transaction=True)
                    if run.stop_writing:
                        raise _Rollback
                rollups.refresh_dirty()
        except _Rollback:
            for chunk in _chunks(rows, CHUNK_ROWS):  # keep checking, to report every bad row
                run.commit(run.prepare(chunk))
                base.write_progress(run.job, run.counts.processed, in_transaction=False)
            run.counts.created = run.counts.updated = 0
        return
    for chunk in _chunks(rows, CHUNK_ROWS):
        with transaction.atomic():
            run.commit(run.prepare(chunk))
        base.write_progress(run.job, run.counts.processed, in_transaction=False)
    if run.write:
        rollups.refresh_dirty()


class _Rollback(Exception):
    pass


def run_job(job: ImportJob, user, sheet, header, rows) -> tuple[str, Counts, list, list, list]:
    """The customer import's runner calls this for an orders job: (status, counts, errors, preview, notes)."""
    run = Run(job, header, write=not job.dry_run)
    notes: list[tuple[str, dict]] = []
    if header.ignored:
        notes.append(("ignored_columns", {"columns": "、".join(header.ignored)}))
    run.open_report(base.error_report_path(job))
    try:
        with base.lean_connection(reader_only=False):
            _execute(run, rows)
        run.counts.total = run.counts.processed
        if job.dry_run:
            status = ImportJob.Status.PREVIEWED
        elif run.stop_writing:
            notes.append(("all_or_nothing_rejected", {"errors": run.counts.errors}))
            status = ImportJob.Status.REJECTED
        else:
            status = ImportJob.Status.DONE
    finally:
        run.close()
    if not job.dry_run and status == ImportJob.Status.DONE and (run.counts.created or run.counts.updated):
        from pharmacrm.keyaccounts import tasks as ka_tasks

        transaction.on_commit(ka_tasks.after_import)
    return status, run.counts, run.kept_errors, run.preview, notes
