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

import contextvars
import datetime as dt
import functools
import json
import logging
import queue
import re
import sqlite3
import threading
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from hashlib import blake2b
from operator import itemgetter

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy, pgettext_lazy

from pharmacrm.core.roles import Cap
from pharmacrm.core.wording import listing
from pharmacrm.customers import importer as base
from pharmacrm.customers import normalise
from pharmacrm.customers.importer import Column, Counts, FieldError, NumberText
from pharmacrm.customers.models import ImportJob, Institution
from pharmacrm.customers.services import last_survivor, survivors_of_freed_codes
from pharmacrm.servicedesk.models import Product

from . import rollups
from .models import OrderLine, ProductCode, product_code_key, yuan

log = logging.getLogger(__name__)

CHUNK_ROWS = 10_000  # rows per chunk: with one chunk queued and one being written, memory stays under 500 MB
EARLIEST = dt.date(2000, 1, 1)
MAX_FEN = 10**15  # ten trillion yuan: anything larger is a typing error
HUNDRED = Decimal(100)
MAX_YUAN = Decimal(MAX_FEN).scaleb(-2)
CENT = Decimal(1)
FLOAT_NOISE = Decimal("1e-9")  # what a spreadsheet's binary float adds to a decimal it shows

# Besides the template's headers, the names the usual ERPs' exports give (用友 U8, 金蝶: 单据日期, 客户编码, 存货编码,
# 存货名称, 批次): an order list exported from them is read without renaming its columns.
ORDER_COLUMNS: list[Column] = [
    Column("order_number", "订单号", ("order number", "order_no", "order no", "订单编号", "单据号",
                                   "单据编号", "销售订单号"), required=True, label=_("Order number")),
    Column("line_number", "行号", ("line", "line number", "line_no", "订单行号", "行"), required=True,
           help=_("1, 2, 3 … within the order; with the order number it identifies the line on re-import."),
           label=pgettext_lazy("import column", "Line number")),
    Column("order_date", "订单日期", ("order date", "date", "日期", "下单日期", "单据日期"), required=True,
           help=_("A date like 2026-03-15."), label=_("Order date")),
    Column("credit_code", "客户统一社会信用代码", ("credit code", "credit_code", "统一社会信用代码", "信用代码", "uscc"),
           help=_("The customer's unified social credit code, or give its external id."),
           label=pgettext_lazy("import column", "Customer credit code")),
    Column("external_id", "客户外部编号", ("external id", "external_id", "customer id", "客户编号", "erp客户编号",
                                         "客户编码"),
           help=_("The customer's id in the ERP (the external id on its customer record)."),
           label=pgettext_lazy("import column", "Customer external id")),
    Column("customer_name", "客户名称", ("customer", "customer name", "客户"),
           help=_("For people reading the file; customers are matched by credit code or external id only."),
           label=pgettext_lazy("import column", "Customer name")),
    Column("product_code", "产品编码", ("product code", "product_code", "物料编码", "产品代码", "存货编码", "商品编码",
                                       "药品编码"), required=True, label=_("Product code")),
    Column("product_name", "产品名称", ("product", "product name", "品名", "物料名称", "存货名称", "商品名称", "药品名称"),
           label=pgettext_lazy("import column", "Product name")),
    Column("approval_number", "批准文号", ("approval number", "approval_number", "国药准字"),
           help=_("Links the product code to the product catalogue (国药准字…)."), label=_("Approval number")),
    Column("batch_number", "批号", ("batch", "lot", "batch number", "生产批号", "批次", "批次号"),
           label=pgettext_lazy("import column", "Batch number")),
    Column("quantity", "数量", ("quantity", "qty"), required=True, label=_("Quantity")),
    # 金蝶 exports both the price before tax and with it (单价, 含税单价; 金额, 价税合计): the customer pays the latter
    Column("unit_price", "单价", ("unit price", "price", "单价(元)", "含税单价"), required=True,
           help=_("Yuan (CNY)."), prefer=("含税单价",), label=pgettext_lazy("import column", "Unit price")),
    Column("amount", "金额", ("amount", "line amount", "金额(元)", "含税金额", "价税合计"), prefer=("价税合计", "含税金额"),
           help=_("Yuan (CNY); empty = quantity × unit price, and a given amount must equal it (up to rounding; "
                  "negative for returns)."), label=_("Amount")),
    Column("invoice_number", "发票号", ("invoice", "invoice number", "发票号码"), label=_("Invoice number")),
    Column("payment_due", "应付款日期", ("payment due", "due date", "到期日", "应收到期日", "付款到期日"),
           help=_("When the customer must have paid this line."),
           label=pgettext_lazy("import column", "Payment due date")),
    Column("paid_date", "付款日期", ("paid date", "payment date", "回款日期", "收款日期"),
           help=_("The day the customer paid: never in the future."),
           label=pgettext_lazy("import column", "Paid date")),
    Column("paid_amount", "付款金额", ("paid amount", "paid", "回款金额", "收款金额"),
           help=_("Yuan (CNY); empty with a payment date = paid in full. On a return: the amount refunded, negative."),
           label=pgettext_lazy("import column", "Paid amount")),
    # not in the template (every amount is in yuan), but ERPs' exports carry it (用友 币种, 金蝶 币别): a line in
    # another currency is refused rather than its dollars booked as yuan
    Column("currency", "币种", ("currency", "currency code", "币别", "货币", "结算币种", "原币币种", "币种名称"),
           template=False, label=pgettext_lazy("import column", "Currency")),
]  # fmt: skip

MESSAGES = {
    "customer_missing": _("Give the customer's credit code or external id."),
    "customer_not_found": _("No customer has the credit code or external id “%(value)s”."),
    "customer_conflict": _("The credit code and the external id name two different customers."),
    "customer_mismatch": _("The credit code and the external id do not belong to the same customer."),
    "invalid_number": _("“%(value)s” is not a number."),
    "foreign_money": _("“%(value)s” is an amount in another currency: amounts are imported in yuan (CNY). Convert "
                       "it to yuan in the ERP."),
    "foreign_currency": _("This line is in “%(value)s”, but amounts are imported in yuan (CNY): convert the line to "
                          "yuan in the ERP, or leave it out of the file."),
    "comma_not_thousands": _("“%(value)s”: a comma only separates thousands (1,250.00); write the decimal point "
                             "as a full stop (12.50)."),
    "invalid_line": _("The line number must be a whole number from 1 to 100000."),
    "negative": _("This value cannot be negative."),
    "too_large": _("This amount is too large."),
    "quantity_too_large": _("This quantity is too large: check it for a typing error."),
    "quantity_zero": _("The quantity is 0: give the quantity sold (negative for a return)."),
    "too_many_places": _("At most %(places)s decimal places: “%(value)s” would have to be rounded."),
    "paid_too_much": _("The paid amount is larger than the line amount."),
    "amount_mismatch": _("The amount does not equal quantity × unit price (%(expected)s yuan)."),
    "paid_without_date": _("Give the payment date of the paid amount."),
    "refund_positive": _(
        "This line is a return (its amount is negative): give the amount refunded to the customer as a negative "
        "number, from %(amount)s to 0."
    ),
    "refund_too_much": _("The refunded amount is larger than the amount returned."),
    "before_order": _("This date lies before the order date."),
    "paid_long_before": _("This payment date lies more than a year before the order date: check it for a typing "
                          "error (a prepayment is paid before the order, but not that long before)."),
    "future_date": _("This date lies in the future."),
    "too_far_ahead": _("This date lies more than five years from today: check it for a typing error."),
    "too_early": _("This date lies before the year 2000: check it for a typing error."),
    "duplicate_line": _("Order %(order)s line %(line)s appears twice in the file (first in row %(row)s)."),
    "order_two_customers": _(
        "Order %(order)s is for %(first)s (row %(row)s), but this row names another customer, %(customer)s: an "
        "order belongs to one customer. Correct the customer, or give this line its own order number."
    ),
    "order_two_dates": _(
        "Order %(order)s is dated %(first)s (row %(row)s), but this row gives %(date)s: an order has one order date. "
        "Correct the date, or give this line its own order number."
    ),
    "order_stored_customer": _(
        "Order %(order)s is stored for %(customer)s (its line %(line)s, which this file does not correct): an order "
        "belongs to one customer. To move the order to another customer, give all its lines in one file."
    ),
    "order_stored_date": _(
        "Order %(order)s is stored with the order date %(date)s (its line %(line)s, which this file does not "
        "correct): an order has one order date. To change it, give all the order's lines in one file, with the new "
        "date."
    ),
    "product_code_chars": _("A product code cannot contain commas or line breaks."),
    "code_control_chars": _(
        "This code contains a control character (%(char)s: a line break, a tab or an invisible formatting mark). "
        "Give it as the ERP shows it, on one line."
    ),
    "customer_column_missing": _(
        "The file needs a column for the customer: its unified social credit code or its external id."
    ),
    # job-level note
    "unknown_products": _(
        "Order lines whose product code is not in the product catalogue: %(lines)s (codes: %(codes)s). They are "
        "imported all the same; an approval number in the file links a code to its catalogue product."
    ),
    "totals_rows": _("Rows of totals (合计, 小计) were passed over: rows %(rows)s."),
    "initial_load": _(
        "Initial load: the order tables were empty, so the lines went in as one transaction and their indexes and "
        "the monthly purchase figures were built once at the end."
    ),
    "initial_load_not_empty": _(
        "An initial load is for empty order tables, and order lines are stored already: nothing was imported. "
        "Import the file without --initial-load."
    ),
    "split_orders": ngettext_lazy(
        "%(orders)d order named in this file is split: its stored lines name two customers or carry two order dates "
        "(stored so before the import checked each order under its lock). The import leaves it as it is: repair it on "
        "the split orders page.",
        "%(orders)d orders named in this file are split: their stored lines name two customers or carry two order "
        "dates (stored so before the import checked each order under its lock). The import leaves them as they are: "
        "repair them on the split orders page.",
        "orders",
    ),
    "rerun_orders": _(
        "To finish, import the same file again: order lines are recognised by their order number and line "
        "number, so the lines already saved are not imported twice."
    ),
}
UNKNOWN_CODES_SHOWN = 20  # product codes the note names
SPLIT_ORDERS_KEPT = 100  # split orders the note keeps by number (for the result's link to them)
TOTALS_ROWS_SHOWN = 20  # rows of totals the note names

# the label of a report's totals line (用友, 金蝶 and Excel's subtotals end an order list with 合计, group it with 小计)
_TOTALS_LABEL = re.compile(r"(?:合\s*计|总\s*计|小\s*计|共\s*计|(?:grand\s+|sub-?)?totals?)\s*[:：]?", re.IGNORECASE)


def is_totals_row(cells: list[str], raw: dict[str, str]) -> bool:
    """A report's totals line: a cell labelled 合计 (小计, 总计, Total …), sums under the money columns, and neither a
    line number nor an order date nor a customer. Read as an order line, it was rejected for every column it lacks,
    every time the ERP's export was imported (and an all-or-nothing import of it refused whole)."""
    if any(raw.get(key, "").strip() for key in ("line_number", "order_date", "credit_code", "external_id")):
        return False
    return any(_TOTALS_LABEL.fullmatch(str(cell).strip()) for cell in cells if str(cell).strip())
UNKNOWN_CODES_KEPT = 100_000  # distinct codes counted one by one (memory stays bounded whatever the file)

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
            template_name=_("order import template"), check_header=check_header,
            text_columns=("order_number", "credit_code", "external_id", "product_code", "approval_number",
                          "batch_number", "invoice_number"),
            rerun_note="rerun_orders", on_interrupted=_after_interrupted, links=_links,
            marked_cells=True,  # a failed formula (#N/A …) reads as its error text, not as an empty cell
        ),
    )  # fmt: skip


def _links(user, job: ImportJob | None = None) -> list[tuple[str, str]]:
    """The order import page's link to the split orders, and an import's result's (views_splits.import_links)."""
    from . import views_splits

    return views_splits.import_links(user, job)


def _after_interrupted(job: ImportJob) -> None:
    """An import whose worker stopped after some chunks were committed: their rollups are repaired now (the corrected
    lines' months), and their customers scored again (the evaluation's incremental update) — as after an import that
    ends. Left to the next import, the customers of a file whose last chunk was committed just before the worker
    stopped kept their old scores: importing the file again finds every line unchanged and re-scores no one."""
    from . import services

    rollups.refresh_dirty()
    services.rescore_changed()


def check_header(header: base.Header) -> None:
    keys = {col.key for _i, col in header.mapping}
    if not keys & {"credit_code", "external_id"}:
        raise base.refuse(MESSAGES["customer_column_missing"])


# --- parsing --------------------------------------------------------------------------------------


def _text(value: str, max_length: int, required: bool = False) -> str:
    value = normalise.csv_unescape(value.strip())  # a cell of our own CSV export: '=… is =…
    if not value:
        if required:
            raise FieldError("required")
        return ""
    if len(value) > max_length:
        raise FieldError("too_long", max=max_length)
    return value


@functools.lru_cache(maxsize=4096)
def _approval(value: str) -> str:
    """An approval number as the catalogue keeps it: 国药准字 h2005 9876, typed with spaces, in lower case or in full
    width (国药准字Ｈ２００５９８７６), is 国药准字H20059876 — as typed, it linked no catalogue product."""
    from pharmacrm.servicedesk.knowledge import normalise_approval_number

    return normalise_approval_number(normalise.csv_unescape(value.strip())).upper()


@functools.lru_cache(maxsize=4096)
def approval_cell(value: str) -> str | None:
    """An approval-number cell as the exact checks read it (`Parser`), or None where they refuse it: longer than the
    catalogue's 16 characters once normalised. Normalising may lengthen it (㍿ is 株式会社, ß in capitals SS): the
    quick checks, which measured the cell as typed, took a row the exact ones refuse — and the lanes then differed
    when a cell the import does not read (#N/A in a helper column) sent the row to the exact ones in one lane only."""
    try:
        return _text(_approval(value), 16)
    except FieldError:
        return None


def _code(value: str, max_length: int, required: bool = False) -> str:
    """An order, product, batch or invoice number as the ERP writes it: typed in full width (ＹＰ１００１, ２５Ａ００１,
    ＳＯ－２０２６０３０１, an input method's full-width mode) it is the ordinary characters — as typed, the batch trace and
    the list's filters, which look a code up as the ordinary characters, never found the line, and a corrected row
    added a second line beside the ERP's instead of correcting it. A control or format character inside it (a line
    break from a quoted CSV cell or a JSON string, a tab, a zero-width space pasted with it) is refused: stored, it
    made a code no one can type or find, that the export wrote over two lines."""
    return _no_control(_text(unicodedata.normalize("NFKC", value), max_length, required))


def _no_control(code: str) -> str:
    # str.isprintable() is a quick pass for the usual code; it is False for spaces other than U+0020 too, which are
    # allowed (an ERP's order number may hold one), so the categories decide
    if not code.isprintable():
        for char in code:
            if unicodedata.category(char) in ("Cc", "Cf"):
                raise FieldError("code_control_chars", char=f"U+{ord(char):04X}")
    return code


def _product_code(value: str) -> str:
    code = _text(unicodedata.normalize("NFKC", value), 40, True)
    if "," in code or "\n" in code or "\r" in code:
        raise FieldError("product_code_chars")
    return _no_control(code)


# what a money cell carries besides its number, as Chinese ERPs and Excel's currency and accounting formats write
# it (a CSV saved by Excel holds the cell as shown): ￥1,234.50, RMB 1,234.50, 人民币1,234.50, 1,234.50元, (1,234.50) for a
# negative amount, a lone - for zero
_MONEY_MARKS = re.compile(r"[\s¥￥]|^(?:rmb|cny|人民币)|元$", re.IGNORECASE)
# the full-width forms of ASCII (Ｕ+FF01–FF5E: １２３，．－（）) and the ideographic space, as ASCII
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_IN_BRACKETS = re.compile(r"[(（](.*)[)）]")
# the marks of other currencies (¥ is the yuan's: a Chinese ERP's, whatever Japan writes)
_FOREIGN_MONEY = re.compile(
    r"[$€£₩₹]|(?<![A-Za-z])(?:USD|HKD|EUR|GBP|JPY|TWD|MOP|SGD|AUD|CAD|CHF|KRW)(?![A-Za-z])|美元|美金|港币|港元|港幣|欧元|"
    r"歐元|日元|日圆|英镑|澳门币|澳元|新台币|韩元",
    re.IGNORECASE,
)
# what a currency column holds for yuan (empty too): 用友 and 金蝶 write 人民币
_YUAN = frozenset({"", "CNY", "RMB", "人民币", "人民币元", "元", "¥", "￥", "本位币"})


_CURRENCY_PARTS = re.compile(r"[\s()（）\[\]【】/\\_,，:：-]+")


def _currency(value: str) -> str:
    """A currency column's value: yuan (CNY, RMB, 人民币, 人民币(RMB), CNY-人民币 or empty) or the line is refused,
    naming the currency."""
    text = unicodedata.normalize("NFKC", value).strip()
    if not all(part.upper() in _YUAN for part in _CURRENCY_PARTS.split(text)):
        raise FieldError("foreign_currency", value=text[:30])
    return "CNY"


# a comma separates thousands only: 1,250.00. 12,50 and 1.250,00 (a decimal comma, as some ERPs write it) would be
# read as 1250 and 1.25, a hundred or a thousand times off: they are refused, saying so
_GROUPED = re.compile(r"[-+(]*\d{1,3}(?:,\d{3})+(?:\.\d*)?\)?")


def _decimal(value: str) -> Decimal:
    # full-width digits and signs, as a Chinese input method in full-width mode types them (１，２５０．００, －１２５), are
    # the ordinary ones (a superscript ² is not a 2); \u2212 is the typographic minus
    text = value.translate(_FULL_WIDTH).strip().replace("\u2212", "-")
    if _FOREIGN_MONEY.search(text):
        # $1,250.00, USD 1,250.00, 1,250.00美元: another currency, said so — $1,250.00 was refused as writing the decimal
        # point as a comma, and a plain 1,250.00 beside a currency column saying USD was booked as yuan
        raise FieldError("foreign_money", value=value.strip()[:30])
    text = _MONEY_MARKS.sub("", text)
    text = _MONEY_MARKS.sub("", text)  # RMB￥1,234.50: the mark after the prefix
    if len(text) > 1 and text[-1] == "-" and text[0] not in "-+(":
        text = "-" + text[:-1]  # SAP writes a negative number with its sign after it: 1,250.00- is -1,250.00
    if "," in text:
        if not _GROUPED.fullmatch(text):
            raise FieldError("comma_not_thousands", value=value[:30])
        text = text.replace(",", "")
    if bracketed := _IN_BRACKETS.fullmatch(text):
        text = "-" + bracketed.group(1).lstrip("+")  # accounting format: (125.00) is -125.00
    if text == "-":
        text = "0"  # accounting format shows zero as -
    if "_" in text or not text.isascii():
        # Decimal reads 1_000 as 1000 and an Arabic-Indic ٣ as 3: neither is how a figure is written in an ERP's file
        # (found by QA) — refused, not guessed
        raise FieldError("invalid_number", value=value[:30])
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise FieldError("invalid_number", value=value[:30]) from None
    if not number.is_finite():
        raise FieldError("invalid_number", value=value[:30])
    return number


def _fen(value: Decimal) -> int:
    if value.copy_abs() >= MAX_YUAN:  # before rounding: 1E+30 has more digits than a Decimal rounds in, and the
        raise FieldError("too_large")  # import stopped on it with an unexpected error
    fen = int((value * HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP))
    if abs(fen) >= MAX_FEN:
        raise FieldError("too_large")
    return fen


_CJK_DATE_SPACES = re.compile(r"\s*([年月日])\s*")
# Excel's long date in Chinese (长日期: 2026年3月5日星期四, as a CSV saved from such a cell holds it) and a date with a
# day of the week (2026/3/5 周四, (星期四)): the weekday says nothing the date does not
_WEEKDAY = re.compile(r"\s*[(（]?(?:星期|礼拜|周)[一二三四五六日天][)）]?$")
_CJK_DATE_TIME = re.compile(r"(\d{4}年\d{1,2}月\d{1,2}日)\d{1,2}:\d{2}(?::\d{2})?")  # 2026年3月5日 10:30
_SERIAL_WITH_TIME = re.compile(r"\d{5}\.\d+")
_ONE_DIGIT = re.compile(r"(?<=[-T ])(\d)(?=\D)")
_DATE_TIME = re.compile(r"\d{4}[-/]\d{1,2}[-/]\d{1,2}[ T]\d{1,2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})?")


def _date(value: str) -> dt.date:
    # full-width digits (２０２６年３月５日, ２０２６-０３-０５, typed in a Chinese input method's full-width mode) are the
    # ordinary ones, and 2026 年 3 月 5 日 (spaced, as WPS and Word lay it out) is 2026年3月5日
    value = _CJK_DATE_SPACES.sub(r"\1", _WEEKDAY.sub("", value.translate(_FULL_WIDTH).strip())).strip()
    if with_time := _CJK_DATE_TIME.fullmatch(value):
        value = with_time.group(1)
    if _SERIAL_WITH_TIME.fullmatch(value):  # an Excel date and time as a number (46086.375 is 2026-03-05 09:00)
        value = value.partition(".")[0]
    elif _DATE_TIME.fullmatch(value):
        # a date and time as a database (2026-03-05 00:00:00.000, SQL Server's, as U8 exports it) or an integration
        # (2026-03-04T16:00:00Z) writes it: the day it is in China, not in UTC
        padded = _ONE_DIGIT.sub(r"0\1", value.replace("/", "-"))  # 2026-3-5 8:30:00 → 2026-03-05 08:30:00
        try:
            moment = dt.datetime.fromisoformat(padded)
        except ValueError:
            raise FieldError("impossible_date", value=value[:30]) from None  # 2026-02-30 00:00:00.000
        if moment.tzinfo is not None:
            moment = timezone.localtime(moment)
        return moment.date()
    if len(value) == 10 and value[4] == "-" and value[5] not in "Ww":  # 2026-W40-1: an ISO week, no order date
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
        nul = [key for key, value in raw.items() if "\x00" in value]
        if nul:  # a damaged export: the row is refused, naming where the character is
            item.errors = [(key, "nul_character", {}) for key in nul]
            return item
        # a failed formula (#N/A, #REF! …; calamine would read it as empty): an empty paid amount with a payment
        # date means paid in full, an empty amount means quantity × price. The customer's name is not imported.
        failed = [(key, "excel_error", {"value": value.strip()}) for key, value in raw.items()
                  if key != "customer_name" and value.strip() in base.EXCEL_ERRORS]  # fmt: skip
        if failed:
            item.errors = failed
            return item
        # a code typed into a number cell has lost digits (Excel keeps 15; 9.1110108E+17 in a CSV): say so, rather
        # than that no customer has the code it became, or store a 20-digit invoice number (数电发票) ending in 0s
        for key in ("credit_code", "external_id"):
            cell = raw.get(key, "")
            if value := cell.strip():
                lost = base._stored_as_number(value, type(cell) is NumberText)
                if lost or (lost is None and key == "credit_code"):  # no number cell holds 18 characters intact
                    item.errors.append((key, "stored_as_number", {}))
        for key in ("order_number", "product_code", "batch_number", "invoice_number"):
            cell = raw.get(key, "")
            if (value := cell.strip()) and _number_lost(value, type(cell) is NumberText):
                item.errors.append((key, "stored_as_number", {}))
        if item.errors:
            return item
        v, get = item.values, raw.get
        self._one(item, "currency", lambda: _currency(get("currency", "")))
        self._one(item, "order_number", lambda: _code(get("order_number", ""), 40, True))
        self._one(item, "line_number", lambda: self._line(get("line_number", "")))
        self._one(item, "order_date", lambda: self._order_date(get("order_date", "")))
        # as the customer record stores it: 9111 0108 MA00 ABCD 5X (grouped as a licence prints it) or in full width
        # is the same code, not one no customer has
        v["credit_code"] = normalise.credit_code(get("credit_code", ""))
        v["external_id"] = get("external_id", "").strip()
        if not v["credit_code"] and not v["external_id"]:
            item.errors.append(("credit_code", "customer_missing", {}))
        self._one(item, "product_code", lambda: _product_code(get("product_code", "")))
        self._one(item, "product_name", lambda: _text(get("product_name", ""), 100))
        self._one(item, "approval_number", lambda: _text(_approval(get("approval_number", "")), 16))
        self._one(item, "batch_number", lambda: _code(get("batch_number", ""), 40))
        self._one(item, "invoice_number", lambda: _code(get("invoice_number", ""), 40))
        self._one(item, "quantity", lambda: self._quantity(get("quantity", "")))
        self._one(item, "unit_price", lambda: self._price(get("unit_price", "")))
        self._one(item, "amount", lambda: self._amount(v, get("amount", ""), get("unit_price", "")))
        self._one(item, "payment_due", lambda: self._optional_date(get("payment_due", "")))
        self._one(item, "paid_date", lambda: self._paid_date(get("paid_date", "")))
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
        if day < EARLIEST:
            raise FieldError("too_early")
        return day

    def _optional_date(self, value: str, latest: dt.date | None = None) -> dt.date | None:
        if not value.strip():
            return None
        day = _date(value)
        if day > (latest or self.latest):
            raise FieldError("future_date" if latest == self.today else "too_far_ahead")
        if day < EARLIEST:
            raise FieldError("too_early")
        return day

    def _paid_date(self, value: str) -> dt.date | None:
        """A payment has happened: its date is never in the future (a future date would count as paid)."""
        return self._optional_date(value, latest=self.today)

    @staticmethod
    def _required_decimal(value: str, places: int, too_large: str = "too_large", exact: bool = False) -> Decimal:
        if not value.strip():
            raise FieldError("required")
        number = _decimal(value)
        if number.copy_abs() >= Decimal(10) ** (14 - places):  # (abs() overflows on 1E+9999999999)
            raise FieldError(too_large)
        rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        # an exact quantity of 1.0005 is refused, not booked as 1.001 (an ERP's unit price with six places is
        # rounded to four, as documented); an XLSX float's last-bit noise (0.30000000000000004) is never refused
        if exact and abs(number - rounded) > FLOAT_NOISE:
            raise FieldError("too_many_places", places=places, value=value.strip()[:30])
        return rounded

    def _quantity(self, value: str) -> Decimal:
        quantity = self._required_decimal(value, 3, "quantity_too_large", exact=True)
        if not quantity:
            raise FieldError("quantity_zero")  # a return is negative; nothing sold is no line
        return quantity

    def _price(self, value: str) -> Decimal:
        price = self._required_decimal(value, 4)
        if price < 0:
            raise FieldError("negative")
        return price

    @staticmethod
    def _amount(v: dict, value: str, price_text: str = "") -> int:
        if value.strip():
            return _fen(_decimal(value))
        if "quantity" in v and "unit_price" in v:
            # quantity × the unit price as the file gives it: an ERP's price with six places (88.495575, a price
            # before tax) is stored rounded to four, but the line costs what the ERP charged (10,000 × 88.495575 =
            # 884,955.75, not 884,956.00 — the payment of the ERP's amount would leave 0.25 open for ever)
            return _fen(v["quantity"] * _decimal(price_text))
        return 0  # the quantity or price error is reported already

    @staticmethod
    def _paid(v: dict, value: str) -> int:
        """The amount paid; on a return (a negative amount) the amount refunded to the customer, negative as
        the line's amount (an ERP writes money paid back so)."""
        amount = v.get("amount", 0)
        if value.strip():
            paid = _fen(_decimal(value))
            if amount < 0 and paid > 0:
                raise FieldError("refund_positive", amount=f"{yuan(amount)}")
            if amount >= 0 and paid < 0:
                raise FieldError("negative")
            return paid
        if v.get("paid_date") is not None:
            return amount  # a payment date alone: paid (a return: refunded) in full
        return 0

    @staticmethod
    def _cross_checks(item: Parsed) -> None:
        v = item.values
        if item.raw.get("amount", "").strip():
            exponent = _decimal(item.raw["unit_price"]).as_tuple().exponent
            places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
            milli, price_e4 = int(v["quantity"] * 1000), int(v["unit_price"] * 10_000)
            if not amount_matches(milli, price_e4, places, v["amount"]):
                expected = Decimal(milli * price_e4).scaleb(-7).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
                item.errors.append(("amount", "amount_mismatch", {"expected": f"{expected:.2f}"}))
        if v["amount"] >= 0 and v["paid_amount"] > v["amount"]:
            item.errors.append(("paid_amount", "paid_too_much", {}))
        if v["amount"] < 0 and v["paid_amount"] < v["amount"]:
            item.errors.append(("paid_amount", "refund_too_much", {}))
        if v["paid_amount"] and v["paid_date"] is None:
            item.errors.append(("paid_date", "paid_without_date", {}))
        if v["payment_due"] is not None and v["payment_due"] < v["order_date"]:
            item.errors.append(("payment_due", "before_order", {}))
        # paid before the order: a prepayment (款到发货), on time whatever the due date; a year before is a typo
        if v["paid_date"] is not None and v["paid_date"] < v["order_date"] - PREPAID_DAYS:
            item.errors.append(("paid_date", "paid_long_before", {}))


PREPAID_DAYS = dt.timedelta(days=366)  # how long before its order a payment (a prepayment) may be dated


def amount_matches(quantity_milli: int, price_e4: int, price_places: int, amount_fen: int) -> bool:
    """Whether a given amount is quantity × unit price, up to the rounding of the amount to the fen and of the
    unit price to the places it was given with (at least to the fen: a whole-yuan price is taken as exact to
    the fen). Integers only: quantity in thousandths, price in ten-thousandths of a yuan, amount in fen; the
    comparison is in 1/200,000 fen, so that half a unit stays whole."""
    exact_2e5 = 2 * quantity_milli * price_e4  # quantity × price, in 1/200,000 fen
    slack = 200_000 + abs(quantity_milli) * _PRICE_SLACK[min(max(price_places, 2), 4)]
    return abs(amount_fen * 200_000 - exact_2e5) <= slack


_PRICE_SLACK = {2: 100, 3: 10, 4: 1}  # half a unit of the price's last place × 2, per thousandth of quantity


def row_hash(values: tuple) -> int:
    """A signed 64-bit digest of a line's imported values (what tells a corrected line from the same).
    Both parsing paths give the same canonical text for the same values (ISO dates, quantity with three
    places, unit price with four, amounts in fen)."""
    text = "\x1f".join(["" if x is None else str(x) for x in values])
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _hashed_values(line: dict, institution_id: int) -> tuple:
    """A stored line's imported values as the import hashes them (`row_hash`), with this customer."""
    def day(value):
        return value.isoformat() if value else None

    return (
        line["order_number"], line["line_number"], day(line["order_date"]), day(line["month"]), institution_id,
        line["product_code"], line["product_name"], line["batch_number"], str(line["quantity"]),
        str(line["unit_price"]), line["amount_fen"], line["invoice_number"], day(line["payment_due"]),
        day(line["paid_date"]), line["paid_fen"],
    )  # fmt: skip


def rehash_moved(line_ids: list[int], from_institution: int) -> int:
    """Re-fingerprint lines a customer merge moved from `from_institution` to their present customer: the
    fingerprint holds the customer, and a re-import of the same file (with the merged record's codes, which
    lead to the survivor, or with the survivor's) must find them unchanged. A line whose fingerprint is not
    the one its values give with `from_institution` (corrected since, or fingerprinted otherwise) is left
    as it is. Returns how many were re-fingerprinted."""
    fields = [
        "id", "order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
        "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date",
        "paid_fen", "row_hash",
    ]  # fmt: skip
    changed = []
    for i in range(0, len(line_ids), 5000):
        for line in OrderLine.objects.filter(pk__in=line_ids[i : i + 5000]).values(*fields):
            if line["institution_id"] == from_institution:
                continue
            if row_hash(_hashed_values(line, from_institution)) == line["row_hash"]:
                changed.append((row_hash(_hashed_values(line, line["institution_id"])), line["id"]))
    if changed:
        with connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {OrderLine._meta.db_table} SET row_hash = %s WHERE id = %s", changed)
    return len(changed)


# --- the fast path --------------------------------------------------------------------------------------


class Fast:
    """Checks a well-formed row with plain string operations and caches (dates repeat, customers repeat)
    and returns its canonical values; anything unusual returns None and goes to `Parser`, which gives the
    exact error or the normalised value. Keeps an import at a few microseconds of Python per row."""

    KEYS = ("order_number", "line_number", "order_date", "credit_code", "external_id", "product_code",
            "product_name", "approval_number", "batch_number", "quantity", "unit_price", "amount",
            "invoice_number", "payment_due", "paid_date", "paid_amount")  # fmt: skip

    def __init__(self, mapping: list[tuple[int, Column]], today: dt.date):
        where = {col.key: i for i, col in mapping}
        self.width = max(where.values()) + 1
        # cells padded with one empty cell at `width`: a column the file lacks reads that one
        self.get = itemgetter(*[where.get(k, self.width) for k in self.KEYS])
        self.currency = where.get("currency")  # a currency column (not the template's): yuan only
        self.today = today.isoformat()
        self.latest = (today + dt.timedelta(days=366 * 5)).isoformat()
        self.dates: dict[str, str | None] = {}  # text → its month ("YYYY-MM-01"), None when not a date
        self.nul = True  # may a cell hold a NUL character? (the file says: base.FileInfo.has_nul)

    def _month(self, text: str) -> str | None:
        month = self.dates.get(text, False)
        if month is False:
            month = None
            if len(text) == 10 and text[4] == "-" and text[7] == "-":
                try:
                    month = dt.date.fromisoformat(text).replace(day=1).isoformat()
                except ValueError:
                    month = None
            if len(self.dates) > 100_000:
                self.dates.clear()
            self.dates[text] = month
        return month

    def row(self, cells: list[str]) -> tuple | None:
        if self.nul and any("\x00" in c for c in cells):
            return None  # the slow path names the cell
        if not _EXCEL_ERRORS.isdisjoint(cells):
            return None  # a failed formula's error value (#N/A …): the slow path names the cell
        if len(cells) != self.width:
            cells = cells[: self.width] + [""] * (self.width - len(cells))
        if self.currency is not None and cells[self.currency] not in _YUAN:
            return None  # another currency (or yuan written otherwise): the careful path
        cells.append("")
        on, ln, od, cc, ext, pc, pn, ap, bn, qty, price, amt, inv, due, paid, paid_amt = self.get(cells)
        cells.pop()
        if not on or len(on) > 40 or on != on.strip():
            return None
        if not (ln.isascii() and ln.isdigit()) or len(ln) > 6:
            return None
        line = int(ln)
        if not 0 < line <= 100_000:
            return None
        month = self._month(od)
        if month is None or od > self.today or od < "2000-01-01":
            return None
        if cc.__class__ is not str or ext.__class__ is not str or "E+" in ext or "e+" in ext:
            return None  # a customer code in a number cell, or as Excel writes a large number: the careful path
        for code in (on, pc, bn, inv):
            if code.__class__ is not str and (len(code) > 15 or not code.isdigit()) or "E+" in code:
                return None  # a code from a number cell that lost digits, or as Excel writes a large number
        if cc:
            if len(cc) != 18 or not (cc.isascii() and cc.isalnum()) or not cc.isupper() and not cc.isdigit():
                return None
        elif not ext:
            return None
        if ext != ext.strip():
            # padded ('C001  ', an ERP's fixed-width column) or kept text by our export's tab ('\t00123'): the careful
            # path reads it as the customer record keeps it, beside a credit code too
            return None
        if not pc or len(pc) > 40 or pc != pc.strip() or "," in pc or "\n" in pc or "\r" in pc:
            return None  # a line break (a carriage return too) or a comma: the slow path refuses it
        codes = on + pc + bn + inv
        if not (codes.isascii() and codes.isprintable()):
            # perhaps typed in full width (ＹＰ１００１): the careful path reads the ordinary characters; a control
            # character (a line break, a tab): it refuses the row
            return None
        if len(pn) > 100 or len(bn) > 40 or len(inv) > 40:
            return None
        if pn != pn.strip() or ap != ap.strip() or bn != bn.strip() or inv != inv.strip():
            return None
        if "'" in on[:1] + pc[:1] + pn[:1] + ap[:1] + bn[:1] + inv[:1]:
            return None  # perhaps escaped by our CSV export ('=…): the careful path reads it back
        # quantity: whole number or up to 3 places; unit price up to 4 places, never negative
        a, dot, b = qty.partition(".")
        if not (qty.isascii() and a.isdigit()) or len(a) > 11 or dot and (not b.isdigit() or len(b) > 3):
            return None
        b = b.ljust(3, "0")
        quantity_milli = int(a) * 1000 + int(b)
        if not quantity_milli:
            return None  # the careful path reports it
        quantity = f"{int(a)}.{b}"
        a, dot, b = price.partition(".")
        if not (price.isascii() and a.isdigit()) or len(a) > 10 or dot and (not b.isdigit() or len(b) > 4):
            return None
        price_places = len(b)
        b = b.ljust(4, "0")
        price_e4 = int(a) * 10_000 + int(b)
        unit_price = f"{int(a)}.{b}"
        if amt:
            amount = _fen_text(amt)
            if amount is None or not amount_matches(quantity_milli, price_e4, price_places, amount):
                return None  # the slow path names the mismatch
        else:
            amount = (quantity_milli * price_e4 + 50_000) // 100_000
            if amount >= MAX_FEN:
                return None  # a typing error: the slow path says the amount is too large
        if due:
            if self._month(due) is None or due < od or due > self.latest:
                return None
        else:
            due = None
        if paid:
            if self._month(paid) is None or paid < od or paid > self.today:  # a prepayment: the careful path
                return None
            if paid_amt:
                paid_fen = _fen_text(paid_amt)
                if paid_fen is None:
                    return None
            else:
                paid_fen = max(amount, 0)
            if paid_fen > max(amount, 0):
                return None
        else:
            if paid_amt and _fen_text(paid_amt) != 0:
                # a paid amount without its date: the slow path says so; and "." or "0.0.0" is no number (it was taken
                # for a zero here, and refused by the slow path)
                return None
            paid, paid_fen = None, 0
        if ap:
            ap = approval_cell(ap)  # as the slow path reads it: too long once normalised, it says so
            if ap is None:
                return None
        return (on, line, od, month, cc, ext, pc, pn, ap, bn, quantity, unit_price, amount, inv, due, paid,
                paid_fen)  # fmt: skip


_EXCEL_ERRORS = base.EXCEL_ERRORS
_EXCEL_LARGE_NUMBER = re.compile(r"\d(?:\.\d+)?E\+\d+")  # 2.40111E+19: how Excel writes a long number


def _number_lost(value: str, numeric: bool) -> bool:
    """Whether an order, product, batch or invoice code lost digits as a number: from a number cell, more digits
    than Excel keeps (or a decimal); in a CSV, Excel's way of writing a large number (codes such as 21E005 stay)."""
    if numeric:
        return len(value) > base.EXCEL_PRECISION or not value.isdigit()
    return "E+" in value and _EXCEL_LARGE_NUMBER.fullmatch(value) is not None


def _fen_text(text: str) -> int | None:
    """"1234.5" → 123450 for plain non-negative amounts with at most two places; None otherwise."""
    a, dot, b = text.partition(".")
    if not (text.isascii() and a.isdigit()) or len(a) > 12 or dot and (not b.isdigit() or len(b) > 2):
        return None
    return int(a) * 100 + int(b.ljust(2, "0"))


def _pre_from_parsed(it: Parsed) -> tuple:
    """The slow path's checked values in the fast path's shape."""
    v = it.values
    return (
        v["order_number"], v["line_number"], v["order_date"].isoformat(), v["order_date"].replace(day=1).isoformat(),
        v["credit_code"], v["external_id"], v["product_code"], v["product_name"], v["approval_number"] or "",
        v["batch_number"], str(v["quantity"]), str(v["unit_price"]), v["amount"], v["invoice_number"],
        v["payment_due"].isoformat() if v["payment_due"] else None,
        v["paid_date"].isoformat() if v["paid_date"] else None, v["paid_amount"],
    )  # fmt: skip


# --- resolving references --------------------------------------------------------------------------


class Resolver:
    """Customer and product references → ids, cached across chunks (one IN query per chunk for new ones)."""

    CACHE_LIMIT = 500_000

    def __init__(self):
        self.by_credit: dict[str, int | None] = {}
        self.by_external: dict[str, int | None] = {}
        self.products: dict[str, int | None] = {}  # approval number → catalogue product
        self.codes: set[str] = set()  # product codes known to exist
        self.linked: dict[str, bool] = {}  # product code → linked to a catalogue product (as stored)
        self.own_codes: dict[int, tuple[str, str]] = {}  # customer id → (its credit code, its external id)
        self.names: dict[int, str] = {}  # customer id → name, for the messages that name customers
        # the columnar lane: each product code's row before the load touched it (None: the load created it), and
        # how many lines linked it to the catalogue, to undo what lines refused at the end did
        self.before: dict[str, tuple[str, int | None] | None] = {}
        self.link_lines: dict[str, int] = {}
        self.named: dict[str, str] = {}  # product code → the name this import gave it (`save_product_codes`)
        # each product code the import changed since its last audit, with its row (name, catalogue product) before
        # those changes (None: the import created it): `audit_product_codes` records what changed
        self.unaudited: dict[str, tuple[str, int | None] | None] = {}
        # product codes in any letter case: each code's key (`product_code_key`) → the spelling stored (the catalogue's
        # codes, read at the first chunk), or for a code met for the first time the spelling of its first line; and
        # each spelling met → its code as stored
        self.spellings: dict[str, str] | None = None
        self.spelled: dict[str, str] = {}
        self.first_spellings: dict[str, tuple[int, str]] = {}  # the columnar lane: a block's new keys, first lines

    def spell(self, codes: set[str], first_rows) -> dict[str, str]:
        """Each of these product codes (NFKC, trimmed) → the code as the catalogue keeps it: `yp1001` is the stored
        YP1001, and a code no line stored yet is spelt as the first line giving it (`first_rows()`: code → its first
        file row, asked only then; the columnar lane's block notes its own in `first_spellings`). Per distinct code:
        a chunk's lines share the few codes an ERP has."""
        spelled = self.spelled
        wanted = [c for c in codes if c not in spelled]
        if wanted:
            self._load_spellings()
            new: dict[str, list[str]] = {}
            for code in wanted:
                key = product_code_key(code)
                if key in self.spellings:
                    spelled[code] = self.spellings[key]
                else:
                    new.setdefault(key, []).append(code)
            if new:
                rows = first_rows()
                for key, given in new.items():
                    candidates = [(rows.get(c, 1 << 62), c) for c in given]
                    if key in self.first_spellings:
                        candidates.append(self.first_spellings.pop(key))
                    self.spellings[key] = min(candidates)[1]
                    for code in given:
                        spelled[code] = self.spellings[key]
        return {c: spelled[c] for c in codes}

    def _load_spellings(self) -> None:
        """The stored product codes by key, once per import (the ERP's products: hundreds, a few thousand)."""
        if self.spellings is not None:
            return
        self.spellings = {}
        # the code linked to the catalogue first, then the oldest: two spellings stored before this rule
        rows = ProductCode.objects.order_by(F("product_id").asc(nulls_last=True), "id").values_list("code", flat=True)
        for code in rows.iterator(chunk_size=5000):
            self.spellings.setdefault(product_code_key(code), code)

    def note_first_spellings(self, firsts: dict[str, int]) -> None:
        """The columnar lane: a block's product codes taken in columns, with their first rows, before its other lines
        are checked row by row — a code new to the catalogue is spelt as its first line in the file, whichever way
        that line is read."""
        self._load_spellings()
        for code, row in firsts.items():
            key = product_code_key(code)
            if key not in self.spellings:
                self.first_spellings[key] = min(self.first_spellings.get(key, (row, code)), (row, code))

    def _load(self, cache: dict, column: str, wanted: set[str]) -> None:
        # emptied before the chunk's codes are picked: after, the codes it found in the cache were gone, their rows
        # refused as naming no customer
        if len(cache) > self.CACHE_LIMIT:
            cache.clear()
        wanted = {w for w in wanted if w and w not in cache}
        if not wanted:
            return
        found = {}
        items = list(wanted)
        for i in range(0, len(items), 5000):
            qs = Institution.objects.filter(**{f"{column}__in": items[i : i + 5000]})
            for pk, value, merged in qs.values_list("id", column, "merged_into_id"):
                # a merged customer's orders go to its survivor, to the end of the chain (as the columnar lane)
                found[value] = last_survivor(merged, seen={pk}) if merged else pk
        missing = [w for w in wanted if w not in found]
        if missing:
            found.update(survivors_of_freed_codes(column, missing))
        for w in wanted:
            cache[w] = found.get(w)

    def load(self, pres: list[tuple]) -> None:
        self._load(self.by_credit, "credit_code", {p[4] for p in pres})
        self._load(self.by_external, "external_id", {p[5] for p in pres})
        self._load_own_codes(pres)
        self.load_products({p[8] for p in pres if p[8]})

    def load_products(self, approvals: set[str]) -> None:
        """The catalogue products of these approval numbers (one query for the new ones)."""
        wanted = approvals - set(self.products)
        if wanted:
            found = dict(Product.objects.filter(approval_number__in=wanted).values_list("approval_number", "id"))
            for w in wanted:
                self.products[w] = found.get(w)

    def load_linked(self, codes: set[str]) -> None:
        """Whether these product codes are linked to the catalogue already (one query for the new ones)."""
        if len(self.linked) > self.CACHE_LIMIT:  # before the codes are picked, as in `_load`
            self.linked.clear()
        wanted = [c for c in codes if c not in self.linked]
        if not wanted:
            return
        for i in range(0, len(wanted), 5000):
            part = wanted[i : i + 5000]
            found = set(
                ProductCode.objects.filter(code__in=part, product__isnull=False).values_list("code", flat=True)
            )
            for code in part:
                self.linked[code] = code in found

    def _load_own_codes(self, pres: list[tuple]) -> None:
        """The codes of the customers that rows name by one code while giving another that names nobody: the
        other code must then be the customer's own (or the customer has none of that kind)."""
        if len(self.own_codes) > self.CACHE_LIMIT:  # before the customers are picked, as in `_load`
            self.own_codes.clear()
        wanted = set()
        for p in pres:
            if p[4] and p[5]:
                a, b = self.by_credit.get(p[4]), self.by_external.get(p[5])
                if bool(a) != bool(b) and (a or b) not in self.own_codes:
                    wanted.add(a or b)
        if not wanted:
            return
        items = list(wanted)
        for i in range(0, len(items), 5000):
            qs = Institution.objects.filter(pk__in=items[i : i + 5000])
            for pk, credit, external in qs.values_list("id", "credit_code", "external_id"):
                self.own_codes[pk] = ((credit or "").upper(), external or "")

    def customer(self, credit: str, external: str) -> tuple[int | None, tuple | None]:
        """(institution id, None) or (None, (column key, code, params))."""
        a = self.by_credit.get(credit) if credit else None
        b = self.by_external.get(external) if external else None
        if a and b and a != b:
            return None, ("external_id", "customer_conflict", {})
        if credit and external and bool(a) != bool(b):
            # one code names a customer, the other nobody: never guess that the other is a typo
            own_credit, own_external = self.own_codes.get(a or b, ("", ""))
            if a and own_external and own_external != external:
                return None, ("external_id", "customer_mismatch", {})
            if b and own_credit and own_credit != credit:
                return None, ("credit_code", "customer_mismatch", {})
        if a or b:
            return a or b, None
        key, ref = ("credit_code", credit) if credit else ("external_id", external)
        return None, (key, "customer_not_found", {"value": ref[:100]})

    def respell_new_codes(self, rows: list[tuple], approvals: dict[str, str]) -> list[tuple]:
        """The chunk's rows with a product code this import is recording for the first time spelt as another import
        recorded it meanwhile, read under the writers' lock: two imports at the same moment each giving a new code in
        another letter case (ab-7, AB-7) read the catalogue before either recorded it, and the database keeps one code
        in any letter case (sales 0016) — the later one's lines were stored under a spelling no code had. The lines are
        fingerprinted with the code as stored. One query per chunk giving codes not known to be stored yet."""
        unknown = {r[5] for r in rows} - self.codes
        if not unknown:
            return rows
        from django.db.models.functions import Upper

        stored = {}
        wanted = sorted({c.upper() for c in unknown})
        for i in range(0, len(wanted), 5000):
            for code in (ProductCode.objects.annotate(key=Upper("code")).filter(key__in=wanted[i : i + 5000])
                         .values_list("code", flat=True)):  # fmt: skip
                stored[product_code_key(code)] = code
        renamed = {c: stored[product_code_key(c)] for c in unknown
                   if product_code_key(c) in stored and stored[product_code_key(c)] != c}  # fmt: skip
        if not renamed:
            return rows
        for code, as_stored in renamed.items():
            if code in approvals:  # the chunk's approval number links the code as stored
                approvals.setdefault(as_stored, approvals[code])
            if self.spellings is not None:
                self.spellings[product_code_key(code)] = as_stored
            self.spelled.update({given: as_stored for given, spelt in self.spelled.items() if spelt == code})
        out = []
        for r in rows:
            if r[5] in renamed:
                values = (*r[:5], renamed[r[5]], *r[6:15])
                r = (*values, r[15], row_hash(values))
            out.append(r)
        return out

    def follow_merges(self, rows: list[tuple]) -> list[tuple]:
        """The chunk's rows with their customers as they are now, read under the writers' lock: a customer
        merged since this import looked it up (another user merging while the file is read) is replaced by its
        survivor, and the line fingerprinted with it, as the merge does with the lines it moves. Left, the later
        chunks wrote their lines to the merged-away record, shown nowhere, whose rollups the merge had dropped.
        One query per chunk. The cache keeps the record looked up, so that an order's rows still name one
        customer across chunks (each chunk is redirected here)."""
        survivors = dict(
            Institution.objects.filter(pk__in={r[4] for r in rows}, merged_into__isnull=False)
            .values_list("pk", "merged_into_id")
        )  # fmt: skip
        if not survivors:
            return rows
        for pk, survivor in list(survivors.items()):
            survivors[pk] = last_survivor(survivor, seen={pk})
        moved = []
        for r in rows:
            if r[4] in survivors:
                values = (*r[:4], survivors[r[4]], *r[5:15])
                r = (*values, r[15], row_hash(values))
            moved.append(r)
        return moved

    def name(self, institution_id: int) -> str:
        """A customer's name for a message (a query per customer named, in messages only)."""
        if institution_id not in self.names:
            self.names[institution_id] = (
                Institution.objects.filter(pk=institution_id).values_list("name", flat=True).first() or ""
            )
        return self.names[institution_id]

    def save_product_codes(self, rows: list[tuple], approvals: dict[str, str]) -> None:
        """Record product codes met for the first time; link a code to the catalogue when a row gives its
        approval number. A code the import records, or finds without a name, is named by the last of the lines it
        stores (`rows`, in file order) that gives a name, whatever chunk that line is in: the last line of the code's
        first chunk named it, so that the columnar lane, whose blocks end at other rows, named it otherwise (and a
        line given without a name left it without one)."""
        latest: dict[str, int | None] = {}
        names: dict[str, str] = {}  # each code's last name given in these rows
        for r in rows:
            code = r[5]
            if r[6]:
                names[code] = r[6]
            product = self.products.get(approvals.get(code, ""))
            if code not in self.codes or product:
                latest[code] = product
        now = timezone.now()
        if latest:
            existing = {
                code: (name, product)
                for code, name, product in ProductCode.objects.filter(code__in=list(latest)).values_list(
                    "code", "name", "product_id"
                )
            }
            for code in latest:
                self.before.setdefault(code, existing.get(code))
                self.unaudited.setdefault(code, existing.get(code))
            new = [ProductCode(code=c, name=names.get(c, ""), product_id=p, updated_at=now)
                   for c, p in latest.items() if c not in existing]  # fmt: skip
            ProductCode.objects.bulk_create(new, ignore_conflicts=True)
            self.named.update((c.code, c.name) for c in new)
            for code, product in latest.items():
                old = existing.get(code)
                if old is None:
                    continue
                if not old[0]:
                    self.named.setdefault(code, "")  # no name yet: the file's names give it one
                if product and old[1] != product:
                    ProductCode.objects.filter(code=code).update(product_id=product, updated_at=now)
            self.codes.update(latest)
        renamed = {code: name for code, name in names.items() if self.named.get(code, name) != name}
        self.before_change(renamed)
        for code, name in renamed.items():
            ProductCode.objects.filter(code=code).update(name=name, updated_at=now)
            self.named[code] = name

    def before_change(self, codes) -> None:
        """Note the rows of these product codes as they are, before the import changes them (those it changed since
        the last audit are noted already): the audit gives their values before and after."""
        missing = [code for code in codes if code not in self.unaudited]
        for i in range(0, len(missing), 5000):
            part = missing[i : i + 5000]
            found = {code: (name, product) for code, name, product in
                     ProductCode.objects.filter(code__in=part).values_list("code", "name", "product_id")}  # fmt: skip
            for code in part:
                self.unaudited[code] = found.get(code)

    def audit_product_codes(self, job_id: int) -> None:
        """Audit what the import did to product codes since the last time, in the transaction that did it: a code
        recorded gets a `create` entry with its name and catalogue product, a code renamed or linked to another
        catalogue product an `update` entry with the fields before and after — with the import job's id, by its
        user. A code changed and changed back (the columnar lane undoing what lines refused at the end did) gets
        none: the entries say what the import's transaction leaves."""
        from pharmacrm.core import audit
        from pharmacrm.core.models import AuditEntry

        if not self.unaudited:
            return
        codes, now = list(self.unaudited), {}
        for i in range(0, len(codes), 5000):
            for pk, code, name, product in ProductCode.objects.filter(code__in=codes[i : i + 5000]).values_list(
                "id", "code", "name", "product_id"
            ):
                now[code] = (pk, name, product)
        created, updated = [], []
        for code in sorted(codes):
            before, after = self.unaudited[code], now.get(code)
            if after is None:
                continue  # recorded and taken out again: nothing changed
            pk, name, product = after
            label = ("sales.productcode", str(pk), f"{code} {name}".strip())
            if before is None:
                created.append((label, {"code": [None, code], "name": [None, name], "product": [None, product]}))
                continue
            changes = {}
            if before[0] != name:
                changes["name"] = [before[0], name]
            if before[1] != product:
                changes["product"] = [before[1], product]
            if changes:
                updated.append((label, changes))
        self.unaudited.clear()
        audit.record_many(AuditEntry.Action.CREATE, created, import_job=job_id)
        audit.record_many(AuditEntry.Action.UPDATE, updated, import_job=job_id)


def _scratch_db() -> sqlite3.Connection:
    # "" = a private temporary on-disk database, deleted on close. Few statements kept prepared: each chunk's look-up
    # has its own number of values (a statement of its own), and a kept statement keeps its values bound — the
    # module's 128 held some 10 MiB of a file's order numbers
    db = sqlite3.connect("", cached_statements=4)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    return db


class SeenLines:
    """The order lines met so far in a file, (order number, line number) → the row of the first, for the check that
    a line is not given twice. In a private temporary SQLite file, not in a dict: memory stays flat whatever the file.

    Keyed by the values themselves, compared exactly (as the line table's unique constraint compares them): a 64-bit
    hash of them, as the store kept before, could make two different lines one, the second refused as a repeat of
    a line the file does not repeat. An ERP's export comes in order-number order, so the keys mostly arrive sorted and
    go in at the end of the table's b-tree, where a hash's random order went anywhere in it (2 M lines of the
    benchmark's file: 3.2 µs a line for both stores, against 7.1); each chunk goes in sorted, so that a file in
    no order at all costs little more than the hashes did (11.1 µs against 9.5)."""

    def __init__(self):
        self.db = _scratch_db()
        # refused: the line's first copy was refused after it was added (its order's customer or date): the order's
        # stored line is then not corrected by the file (`Run._stored_conflicts`)
        self.db.execute("CREATE TABLE seen (o TEXT NOT NULL, l INTEGER NOT NULL, row INTEGER NOT NULL, "
                        "refused INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (o, l)) WITHOUT ROWID")  # fmt: skip

    def add_new(self, lines: list[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
        """Add (order number, line number, row) triples; return the first rows of the lines that were there before
        (usually none: then one statement did it all)."""
        before = self.db.total_changes
        self.db.executemany("INSERT OR IGNORE INTO seen (o, l, row) VALUES (?, ?, ?)", sorted(lines))  # b-tree order
        if self.db.total_changes - before == len(lines):
            return {}
        mine = {(o, line): row for o, line, row in lines}
        orders = list({o for o, _line, _row in lines})
        found = {}
        for i in range(0, len(orders), 30_000):  # under SQLite's 32,766 parameters
            part = orders[i : i + 30_000]
            sql = f"SELECT o, l, row FROM seen WHERE o IN ({', '.join('?' * len(part))})"
            for o, line, row in self.db.execute(sql, part):
                if mine.get((o, line), row) != row:
                    found[(o, line)] = row
        return found

    def refuse(self, lines: list[tuple[str, int]]) -> None:
        """Mark these lines' first copies refused (rare: an order's second customer or date)."""
        if lines:
            self.db.executemany("UPDATE seen SET refused = 1 WHERE o = ? AND l = ?", lines)

    def kept(self, lines: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Those of these lines that the file gives and that were not refused."""
        found = set()
        for i in range(0, len(lines), 10_000):
            part = lines[i : i + 10_000]
            sql = (f"SELECT o, l FROM seen WHERE refused = 0 AND (o, l) IN "  # noqa: S608
                   f"(VALUES {', '.join(['(?, ?)'] * len(part))})")  # fmt: skip
            found.update(self.db.execute(sql, [x for line in part for x in line]))
        return found

    def close(self) -> None:
        self.db.close()


class OrderOwners:
    """Each order's customer, order date and first row in the file, for the check that one order number names one
    customer and one order date. In a private temporary SQLite file, as `SeenLines`: memory stays flat whatever the
    file. Keyed by the order number itself: a 64-bit hash of it, as before, could make two orders one, and refuse the
    second's lines as naming another customer than the first's."""

    def __init__(self):
        self.db = _scratch_db()
        self.db.execute("CREATE TABLE owner (o TEXT PRIMARY KEY NOT NULL, inst INTEGER NOT NULL, day TEXT NOT NULL, "
                        "row INTEGER NOT NULL) WITHOUT ROWID")  # fmt: skip

    def first(self, orders: set[str]) -> dict[str, tuple[int, str, int]]:
        """order number → (customer id, order date, first row) for the orders met in earlier chunks."""
        wanted, found = list(orders), {}
        for i in range(0, len(wanted), 30_000):  # under SQLite's 32,766 parameters
            part = wanted[i : i + 30_000]
            sql = f"SELECT o, inst, day, row FROM owner WHERE o IN ({', '.join('?' * len(part))})"
            found.update((o, (inst, day, row)) for o, inst, day, row in self.db.execute(sql, part))
        return found

    def add(self, owners: dict[str, tuple[int, str, int]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO owner VALUES (?, ?, ?, ?)", sorted((o, *v) for o, v in owners.items()))

    def close(self) -> None:
        self.db.close()


# --- the initial load ----------------------------------------------------------------------------------

# Set by `pharmacrm import orders --initial-load`: the first migration of an ERP's order history into empty order
# tables. The lines go in as one transaction into the line table stripped of its secondary indexes (and, on
# PostgreSQL, of its unique constraint), which are built again from their own definitions at the end, with every monthly
# rollup computed in one pass: what the database spends per line then is an append, not a probe of four b-trees
# that no longer fit its cache, and a delta to a rollup. Everything the rows go through is the ordinary import's.
INITIAL_LOAD: contextvars.ContextVar[bool] = contextvars.ContextVar("orders_initial_load", default=False)


class InitialLoadRefused(Exception):
    """The order tables hold lines already: an initial load is for empty ones."""


def order_tables_empty() -> bool:
    return not OrderLine.objects.exists()


def foreign_keys_off() -> bool:
    """SQLite: an initial load's connection checks no foreign key while it loads — the check of each line's customer
    is a probe of the customers' b-tree per insert on SQLite's one writer, 1.5–2 µs of its time per line — and checks
    each chunk's customers once instead (`BareTable.hold`). SQLite lets it change only outside a transaction, so
    before the load's begins. True when it was turned off (to turn back on with `foreign_keys_on`)."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        if not cursor.fetchone()[0]:
            return False
        cursor.execute("PRAGMA foreign_keys = OFF")
    return True


def foreign_keys_on(turned_off: bool) -> None:
    if turned_off:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA foreign_keys = ON")


class BareTable:
    """The line table's secondary indexes and unique constraints (never its primary key), read from the database's
    own catalogue, dropped, and created again exactly as they were. Inside the load's transaction, both databases
    undo the drop with everything else when the load fails or its process is killed.

    Its foreign keys cannot simply be dropped: dropping one locks the table it points to, the customers, against every
    reader until the load commits — the whole CRM, and the import's own look-ups of customers on its reading
    connection. So on PostgreSQL the load goes into a new, bare table instead (`swap`): the empty line table is renamed
    out of the way with its foreign keys, which locks nothing but itself, a table like it without them takes its name,
    and the foreign keys are added to it last, in one check of all the lines (a few seconds) rather than one per line
    (about half the server's work in the load). Meanwhile each chunk's customers are locked as the per-line check
    would lock them (`hold`), so that none can be deleted under the load. The empty table renamed away is dropped once
    the load has committed (`drop_retired`). Where the table carries something a copy would lose — other roles'
    grants, triggers, views, policies, a publication, tables pointing at it — or on SQLite, the foreign keys stay and
    are checked line by line, at the end of each chunk's insert rather than all at the commit (PostgreSQL would queue
    millions of checks in memory otherwise)."""

    RETIRED = "_retired_"  # the name given to the empty line table a swap moved away: table + RETIRED + a suffix

    def __init__(self):
        self.table = OrderLine._meta.db_table
        self.indexes: list[tuple[str, str]] = []  # (name, CREATE INDEX …)
        self.constraints: list[tuple[str, str]] = []  # (name, UNIQUE (…))
        self.foreign_keys: list[str] = []  # names
        self.foreign_key_definitions: list[tuple[str, str]] = []  # (name, FOREIGN KEY …), every one
        self.swap = False
        self.unchecked = False  # SQLite: the load's connection checks no foreign key (`foreign_keys_off`)
        self.held: set[int] = set()  # the customers held so far (`hold`)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'u' ORDER BY conname",
                    [self.table],
                )
                self.constraints = list(cursor.fetchall())
                cursor.execute(
                    "SELECT conname, pg_get_constraintdef(oid), condeferrable FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
                    [self.table],
                )
                keys = cursor.fetchall()
                self.foreign_key_definitions = [(name, definition) for name, definition, _d in keys]
                self.foreign_keys = [name for name, _definition, deferrable in keys if deferrable]
                cursor.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename = %s AND indexname NOT IN "
                    "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass) ORDER BY indexname",
                    [self.table, self.table],
                )
                self.indexes = list(cursor.fetchall())
                self.swap = self._plain(cursor)
            else:  # the UNIQUE constraint is part of the table (an automatic index, which cannot be dropped)
                cursor.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL "
                    "ORDER BY name",
                    [self.table],
                )
                self.indexes = list(cursor.fetchall())
                cursor.execute("PRAGMA foreign_keys")
                self.unchecked = not cursor.fetchone()[0]

    def _plain(self, cursor) -> bool:
        """PostgreSQL: nothing but columns, constraints and indexes that a swap carries over — an ordinary table
        owned by the connecting role, without storage settings, granted to nobody else, with no trigger of its own, no view, rule or policy on it, in
        no publication, no foreign key pointing at it, its ids from an identity of its own (a `serial` column's
        sequence would go with the table renamed away) — and a role that may create the new table in the schema and
        point its foreign keys at the tables they reference."""
        cursor.execute(
            "SELECT c.relkind = 'r' AND NOT c.relispartition AND NOT c.relhassubclass AND NOT c.relrowsecurity "
            "AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND c.reloptions IS NULL "
            "AND has_schema_privilege(c.relnamespace, 'CREATE') "
            "AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'id' "
            "            AND a.attidentity <> '') "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conrelid = c.oid AND f.contype = 'f' "
            "                AND NOT has_table_privilege(f.confrelid, 'REFERENCES')) "
            "AND NOT EXISTS (SELECT 1 FROM aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a "
            "                WHERE a.grantee <> c.relowner) "
            "AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = c.oid) "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "                WHERE d.refobjid = c.oid AND r.ev_class <> c.oid) "
            "AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) "
            "AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) "
            "AND NOT EXISTS (SELECT 1 FROM pg_publication_rel p WHERE p.prrelid = c.oid) "
            "FROM pg_class c WHERE c.oid = %s::regclass",
            [self.table],
        )
        return bool(cursor.fetchone()[0]) and bool(self.foreign_key_definitions)

    @staticmethod
    def _check_deferred(cursor) -> None:
        """PostgreSQL refuses to alter a table with foreign-key checks still queued in the transaction (a customer
        created in it, say): run them now; the constraints stay deferred afterwards."""
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")

    def drop(self) -> None:
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            self._check_deferred(cursor)
            for name, _definition in self.constraints:
                cursor.execute(f"ALTER TABLE {qn(self.table)} DROP CONSTRAINT {qn(name)}")
            for name, _definition in self.indexes:
                cursor.execute(f"DROP INDEX {qn(name)}")
            if self.swap:
                self._swap(cursor)
            elif self.foreign_keys:
                cursor.execute(f"SET CONSTRAINTS {', '.join(qn(n) for n in self.foreign_keys)} IMMEDIATE")

    def _swap(self, cursor) -> None:
        """The empty line table renamed away with its primary key, its identity sequence and its foreign keys (which
        locks nothing but itself), and a table like it — columns, defaults, checks, identity — under its name, with its
        primary key only. The new identity goes on from where the old one was: line ids are never given twice."""
        qn = connection.ops.quote_name
        table = self.table
        retired = f"{table}{self.RETIRED}{uuid.uuid4().hex[:8]}"
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (sequence,) = cursor.fetchone()
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608 (the catalogue's own name)
        last_value, is_called = cursor.fetchone()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [table],
        )
        primary = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {qn(table)} RENAME TO {qn(retired)}")
        if primary:
            cursor.execute(f"ALTER TABLE {qn(retired)} RENAME CONSTRAINT {qn(primary[0])} TO {qn(retired + '_pkey')}")
        cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {qn(retired + '_id_seq')}")
        cursor.execute(
            f"CREATE TABLE {qn(table)} (LIKE {qn(retired)} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE INCLUDING COMMENTS INCLUDING STATISTICS INCLUDING COMPRESSION INCLUDING GENERATED)"
        )
        if primary:
            cursor.execute(f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(primary[0])} {primary[1]}")
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [table, last_value, is_called])

    @property
    def holds(self) -> bool:
        """The load checks its lines' customers itself (`hold`), the foreign key does not."""
        return self.swap or self.unchecked

    def hold(self, customer_ids) -> None:
        """The customers a chunk's lines name, checked as the foreign key would check each line. On PostgreSQL (a
        swap) they are locked as that check locks them (FOR KEY SHARE: they can be read and edited, not deleted, until
        the load ends); on SQLite the load's transaction is the only writer from its first write to its commit, so
        none can be deleted meanwhile. A customer deleted since the import looked it up fails the load as the foreign
        key would have."""
        if not self.holds:
            return
        new = sorted({int(i) for i in customer_ids} - self.held)
        if not new:
            return
        qn = connection.ops.quote_name
        customers = Institution._meta.db_table
        found: set[int] = set()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"SELECT id FROM {qn(customers)} WHERE id = ANY(%s) FOR KEY SHARE", [new])  # noqa: S608
                found.update(pk for (pk,) in cursor.fetchall())
            else:
                for i in range(0, len(new), 10_000):  # under SQLite's limit of parameters
                    part = new[i : i + 10_000]
                    cursor.execute(f"SELECT id FROM {qn(customers)} WHERE id IN ({', '.join(['%s'] * len(part))})",  # noqa: S608
                                   part)  # fmt: skip
                    found.update(pk for (pk,) in cursor.fetchall())
        new = set(new)
        if new - found:
            from django.db import IntegrityError

            raise IntegrityError(
                f'insert or update on table "{self.table}" violates foreign key constraint: '
                f"Key (institution_id)=({min(new - found)}) is not present in table \"{customers}\"."
            )
        self.held |= new

    def restore(self) -> None:
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            self._check_deferred(cursor)
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")  # the server's memory, for the sorts
            for _name, definition in self.indexes:
                cursor.execute(definition)
            for name, definition in self.constraints:
                cursor.execute(f"ALTER TABLE {qn(self.table)} ADD CONSTRAINT {qn(name)} {definition}")
            if self.foreign_keys and not self.swap:
                cursor.execute(f"SET CONSTRAINTS {', '.join(qn(n) for n in self.foreign_keys)} DEFERRED")

    def attach(self) -> None:
        """A swap, last thing before the commit: the foreign keys added to the loaded table, each checked once over all
        its lines (the customers can be read meanwhile, not changed); the emptied table dropped after the commit."""
        if self.unchecked:
            self._check_product_codes()
        if not self.swap:
            return
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            for name, definition in self.foreign_key_definitions:
                cursor.execute(f"ALTER TABLE {qn(self.table)} ADD CONSTRAINT {qn(name)} {definition}")
        transaction.on_commit(self.drop_retired, robust=True)

    @staticmethod
    def _check_product_codes() -> None:
        """SQLite, its foreign keys unchecked while loading: the product codes the load recorded (linked to catalogue
        products it looked up) checked as the foreign key would, before the commit."""
        from django.db import IntegrityError

        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA foreign_key_check({connection.ops.quote_name(ProductCode._meta.db_table)})")
            broken = cursor.fetchall()
        if broken:
            raise IntegrityError(f"FOREIGN KEY constraint failed: {ProductCode._meta.db_table} row {broken[0][1]}")

    @classmethod
    def drop_retired(cls) -> None:
        """Drop the empty line tables that swaps moved away. Dropping one takes a moment's exclusive lock on the
        customers (its foreign key goes with it), so each waits at most a few seconds for readers to finish and is
        otherwise left, empty and harmless, for the next load to drop before it begins."""
        if connection.vendor != "postgresql":
            return
        qn = connection.ops.quote_name
        pattern = OrderLine._meta.db_table + cls.RETIRED.replace("_", r"\_") + "%"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE %s", [pattern]
            )
            names = [name for (name,) in cursor.fetchall()]
        for name in names:
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '5s'")
                    cursor.execute(f"SELECT COUNT(*) FROM {qn(name)}")  # noqa: S608
                    if cursor.fetchone()[0]:
                        log.error("%s holds order lines: not dropped", name)
                        continue
                    cursor.execute(f"DROP TABLE {qn(name)}")
            except Exception:
                log.warning("the emptied order-line table %s is left for the next initial load to drop", name)


def _first_rows(values: list[tuple], numbers: list[int], index: int) -> dict[str, int]:
    """Each value at `index` of these rows → the first file row giving it."""
    out: dict[str, int] = {}
    for v, number in zip(values, numbers, strict=True):
        out.setdefault(v[index], number)
    return out


def _customers_of(chunk: Chunk, rows: list[tuple]) -> set[int]:
    """The customers a chunk's lines name: its rows', and its columnar lines'."""
    ids = {r[4] for r in rows}
    if chunk.table is not None and chunk.table.num_rows:
        ids.update(chunk.table.column("institution_id").unique().to_pylist())
    return ids


# --- one pass over a file ----------------------------------------------------------------------------

# Final values of a line, in the order of the line table's columns (row_hash is over all but the last two).
LINE_COLUMNS = (
    "order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
    "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date",
    "paid_fen", "outstanding_fen", "row_hash",
)  # fmt: skip


@dataclass
class Chunk:
    rows: list[tuple]  # final line values (LINE_COLUMNS)
    numbers: list[int]  # their rows in the file
    approvals: dict[str, str]  # product code → approval number given in the chunk
    preview: list[tuple[int, list, list]]  # (row, cells, errors) of rows still to show in the preview
    processed: int = 0
    errors: int = 0  # rows of the chunk refused while checking
    last_row: int = 0  # the file row the chunk ends on
    table: object = None  # the columnar lane's lines (a pyarrow Table of LINE_COLUMNS and "row"), besides `rows`
    approval_rows: dict = field(default_factory=dict)  # the columnar lane: code → the row its approval is from
    # the stored lines of the chunk's orders as the reading side checked them (order → its customers' and dates'
    # MIN and MAX; an order with none left out), and each line's customer codes as read (credit code, external id),
    # for the error of a line the writer refuses when it checks again under its lock
    stored: dict | None = None
    customer_codes: list = field(default_factory=list)


class Run:
    """One pass over a file: the reading side (parse, check, resolve, in-file duplicates, error report)."""

    def __init__(self, job: ImportJob, header: base.Header, write: bool):
        self.job, self.write = job, write
        self.all_or_nothing = job.mode == ImportJob.Mode.ALL_OR_NOTHING
        self.initial = write and INITIAL_LOAD.get()  # an initial load (one transaction, whatever the mode)
        self.header = header
        self.headers = {col.key: header.text_of(col.key) for _i, col in header.mapping}
        self.parser = Parser(header.mapping, timezone.localdate())
        self.fast = Fast(header.mapping, timezone.localdate())
        self.resolver = Resolver()
        self.counts = Counts(total=job.total_rows)
        self.saved = base.Saved()  # what the chunks handled so far saved (the job row carries it)
        self.kept_errors: list[dict] = []
        # a chunk's errors wait here until the chunk is checked, then go out in row order (the customer and
        # duplicate checks come after the parsing of the whole chunk); chunks come in row order
        self.chunk_errors: list[tuple[int, int, str, str, dict, str]] = []  # (row, column position, key, …)
        late = len(header.cells)  # a column the file lacks (the customer's other code) comes after its own
        self.column_order = {col.key: i for i, col in enumerate(ORDER_COLUMNS, start=late)}
        self.column_order.update({col.key: i for i, col in header.mapping})
        self.preview: list[dict] = []
        self.preview_rows = 0
        self.seen = SeenLines()  # each order line's first row in the file
        self.owners = OrderOwners()  # each order's customer, as its first good row in the file gives it
        # good lines whose product code the catalogue does not know: code → lines (in file order), and the
        # codes an approval number in the file links (their lines are not counted, before or after it)
        self.unknown_products: dict[str, int] = {}
        self.unknown_overflow = 0  # lines of codes beyond UNKNOWN_CODES_KEPT
        self.linked_in_file: set[str] = set()
        self.stop_writing = False
        self.totals_rows: list[int] = []  # rows of totals passed over (the first ones, for the note)
        self.error_file = self.error_writer = None
        self.last_row = header.row
        # the columnar lane of an initial load (`columnar.Lane`): the in-file duplicate and order-owner checks are
        # made by the database once the file is loaded (`columnar.after_load`), for the rows checked row by row too
        self.lane = None
        self.preview_cells: dict[int, list[str]] = {}  # the chunk's rows holding a place in the preview
        self.locked = threading.Event()  # set once the writer holds the writers' lock
        self.stored_view: dict[str, tuple] = {}  # `_against_stored`: the stored orders as the chunk's check read them
        self.split_orders: set[str] = set()  # stored orders of the file split before session 56 (`_against_stored`)
        self.late_errors: list[tuple[int, list[str], list]] = []  # refused by the writer (`Writer._one_customer`)

    @property
    def set_based(self) -> bool:
        return self.lane is not None

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
        self.owners.close()

    def record_errors(self, item: Parsed) -> None:
        """Count a bad row and hold its errors until `flush_errors` (at the end of its chunk)."""
        self.counts.errors += 1
        for key, code, params in item.errors:
            position = self.column_order.get(key, 1 << 30)
            self.chunk_errors.append((item.row, position, key, code, params, item.raw.get(key, "")[:100]))

    def flush_errors(self) -> None:
        """Keep and report the chunk's errors sorted by row, then by column (as the file has them). Only one
        chunk's errors wait, so memory stays bounded, and the errors kept for the page are the file's first."""
        self.chunk_errors.sort(key=itemgetter(0, 1))  # stable: one column's errors keep their order
        for row, _position, key, code, params, value in self.chunk_errors:
            # a column the file lacks (the customer's credit code beside its external id) by its key: the report
            # names it in its reader's language (base.column_name), not by the Chinese template's header
            column = self.headers.get(key, "") or key
            value = base.shown(value)
            if len(self.kept_errors) < base.MAX_KEPT_ERRORS:
                err = {"row": row, "column": column, "code": code, "params": params}
                if value:
                    err["value"] = value
                self.kept_errors.append(err)
            if self.error_writer:
                self.error_writer.writerow([row, column, code, json.dumps(params, ensure_ascii=False), value])
        self.chunk_errors.clear()

    def _error(self, number: int, cells: list[str], errors: list, preview: list) -> None:
        raw = {col.key: (cells[i] if i < len(cells) else "") for i, col in self.header.mapping}
        item = Parsed(number, raw, errors=errors, action="error")
        self.record_errors(item)
        if number in self.preview_cells:  # refused after its checks (its customer, a repeat): its place is kept
            preview.append((number, cells, errors))
        elif self.preview_rows < base.PREVIEW_ROWS:
            preview.append((number, cells, errors))
            self.preview_rows += 1

    def prepare(self, raw_rows: list[tuple[int, list[str]]]) -> Chunk:
        """Parse, check and resolve a chunk; the bad rows are reported here, the good ones returned."""
        self.last_row = raw_rows[-1][0]
        errors_before = self.counts.errors
        pres, numbers, cells_of, preview = [], [], {}, []
        # a row refused after parsing (its customer, a repeat) had its place in the preview already: it was left out
        self.preview_cells = cells_of
        # a row refused after parsing (its customer, a duplicate) is reported with its own cells: the chunk holds them
        # anyway. Rebuilt from the parsed values, in their order, the report gave another column's value (the
        # order's month for an unknown credit code) for every row after the preview's
        file_cells = dict(raw_rows)
        fast = self.fast.row
        for number, cells in raw_rows:
            pre = fast(cells)
            if pre is None:
                item = self.parser.parse(number, cells)
                if item is None:
                    continue  # an empty row
                if item.errors and is_totals_row(cells, item.raw):
                    self.totals_rows.append(number)  # passed over, and named in the job's notes
                    del self.totals_rows[TOTALS_ROWS_SHOWN + 1 :]
                    continue
                if item.errors:
                    self._error(number, cells, item.errors, preview)
                    continue
                pre = _pre_from_parsed(item)
            pres.append(pre)
            numbers.append(number)
            if self.preview_rows < base.PREVIEW_ROWS:
                cells_of[number] = cells
                self.preview_rows += 1
        self.resolver.load(pres)
        if pres:  # a product code in any letter case is the catalogue's (per distinct code; lines rebuilt only then)
            spelt = self.resolver.spell({p[6] for p in pres}, lambda: _first_rows(pres, numbers, 6))
            if any(code != as_stored for code, as_stored in spelt.items()):
                pres = [p if spelt[p[6]] == p[6] else (*p[:6], spelt[p[6]], *p[7:]) for p in pres]
        rows, good_numbers, approvals = [], [], {}
        first_here: dict[tuple[str, int], int] = {}
        keys, repeats = [], []  # the chunk's first copy of each line; its later copies
        customer = self.resolver.customer
        for pre, number in zip(pres, numbers, strict=True):
            inst, err = customer(pre[4], pre[5])
            if err is not None:
                self._error(number, file_cells[number], [err], preview)
                continue
            if self.set_based:
                keys.append((0, number, pre, inst))
                continue
            h = (pre[0], pre[1])  # the line itself, never a hash of it (two lines could share one)
            if h in first_here:
                repeats.append((number, pre, h))
                continue
            first_here[h] = number
            keys.append((h, number, pre, inst))
        earlier = {} if self.set_based else self.seen.add_new([(*k[0], k[1]) for k in keys])
        for number, pre, h in repeats:
            # the row of the line's first copy in the file: an earlier chunk's when it holds one (the chunk's first
            # copy, named before, is a repeat itself; the columnar lane named the file's first)
            self._duplicate(number, pre, earlier.get(h, first_here[h]), file_cells, preview)
        self.resolver.load_linked({k[2][6] for k in keys})
        owners, new_owners = ({}, {}) if self.set_based else (self.owners.first({k[2][0] for k in keys}), {})
        # the lines the file's own checks keep; the lines they refuse (their first copies)
        kept, refused = [], []
        for h, number, pre, inst in keys:
            if h in earlier:
                self._duplicate(number, pre, earlier[h], file_cells, preview)
                continue
            order_key = pre[0]
            owner = None if self.set_based else owners.get(order_key) or new_owners.get(order_key)
            if owner is None:
                new_owners[order_key] = (inst, pre[2], number)
            elif owner[0] != inst or owner[1] != pre[2]:
                # one order, two customers or two order dates: the order's first row stands. Its lines dated in two
                # months counted the order in both months' rollups ("orders, last 12 months", the frequency score)
                err = self._order_error(pre, inst, owner)
                self._error(number, file_cells[number], [err], preview)
                refused.append(h)
                continue
            kept.append((h, number, pre, inst))
        # an initial load's table was empty: nothing stored to agree with
        stored = None
        if not self.set_based and not self.initial:
            self.stored_view = stored = {}
            kept = self._against_stored(kept, owners, new_owners, refused, file_cells, preview)
        codes = []
        for _h, number, pre, inst in kept:
            on, line, od, month, cc, ext, pc, pn, ap, bn, qty, price, amount, inv, due, paid, paid_fen = pre
            values = (on, line, od, month, inst, pc, pn, bn, qty, price, amount, inv, due, paid, paid_fen)
            rows.append((*values, max(amount - paid_fen, 0), row_hash(values)))
            good_numbers.append(number)
            codes.append((cc, ext))
            if ap and self.resolver.products.get(ap):
                # the code's link: the chunk's last approval number the catalogue knows (one it lacks, on a later
                # line, left the code unlinked when both fell in one chunk, and linked it when they did not)
                approvals[pc] = ap
                if self.set_based:
                    self.resolver.link_lines[pc] = self.resolver.link_lines.get(pc, 0) + 1
            self._check_product(pc, ap)
            if number in cells_of:
                preview.append((number, cells_of[number], []))
        if not self.set_based:
            self.owners.add(new_owners)
            self.seen.refuse(refused)
        self.flush_errors()
        preview.sort(key=lambda p: p[0])
        return Chunk(rows, good_numbers, approvals, preview, processed=len(raw_rows),
                     errors=self.counts.errors - errors_before, last_row=self.last_row, stored=stored,
                     customer_codes=codes if stored is not None else [])  # fmt: skip

    def _order_error(self, pre: tuple, inst: int, owner: tuple[int, str, int]) -> tuple[str, str, dict]:
        """The error of a row whose order's first row in the file names another customer or another order date."""
        if owner[0] != inst:
            return ("credit_code" if pre[4] else "external_id", "order_two_customers", {
                "order": pre[0], "row": owner[2], "first": self.resolver.name(owner[0]),
                "customer": self.resolver.name(inst),
            })  # fmt: skip
        params = {"order": pre[0], "row": owner[2], "first": owner[1], "date": pre[2]}
        return "order_date", "order_two_dates", params

    def _against_stored(self, kept: list, owners: dict, new_owners: dict, refused: list, file_cells, preview):
        """The chunk's kept lines less those that would leave their order's stored lines with two customers or two
        order dates: a stored line of the order that the file does not correct (another file gave it; or this file
        refused its row) names another customer or date than the file's rows of the order. A file that moves a whole
        order — all its stored lines — to another customer or date corrects it; a line given alone stays with its
        order. A row that changes nothing of its line's customer and date is kept (an order split before this check
        existed is not made worse by it, and the order-lines export of it imports again).

        One query per chunk, on the order number's index: each order's stored customers and dates in a range (MIN,
        MAX), and only where they differ from the file's rows, a second query for those orders' lines."""
        if not kept:
            return kept
        table = connection.ops.quote_name(OrderLine._meta.db_table)
        reference = {}  # order → (customer, date) its rows in the file give
        for o, (inst, day, _row) in owners.items():
            reference[o] = (inst, day)
        for o, (inst, day, _row) in new_owners.items():
            reference[o] = (inst, day)
        orders = sorted({k[2][0] for k in kept})
        suspect = []
        with connection.cursor() as cursor:
            ranges = in_parts(cursor, "SELECT order_number, MIN(institution_id), MAX(institution_id), MIN(order_date), "
                              f"MAX(order_date) FROM {table} WHERE order_number IN ({{}}) GROUP BY order_number", orders)  # noqa: S608
            for o, low, high, first, last in ranges:
                self.stored_view[o] = (low, high, _iso(first), _iso(last))
                if low != high or _iso(first) != _iso(last):
                    self.split_orders.add(o)  # left as it is, and named in the job's notes
                inst, day = reference[o]
                if not (low == high == inst and _iso(first) == _iso(last) == day):
                    suspect.append(o)
            if not suspect:
                return kept
            stored: dict[str, list[tuple[int, int, str]]] = {}
            lines = in_parts(cursor, "SELECT order_number, line_number, institution_id, order_date "
                             f"FROM {table} WHERE order_number IN ({{}})", suspect)  # noqa: S608
            for o, line, inst, day in lines:
                stored.setdefault(o, []).append((line, inst, _iso(day)))
        here = {k[0] for k in kept}
        others = [(o, line) for o, lines in stored.items() for line, inst, day in lines
                  if (inst, day) != reference[o] and (o, line) not in here]  # fmt: skip
        corrected = self.seen.kept(others)  # given in an earlier chunk, and kept
        conflict: dict[str, tuple[str, dict]] = {}
        for o, lines in stored.items():
            inst, day = reference[o]
            left = sorted(x for x in lines if (o, x[0]) not in here and (o, x[0]) not in corrected)
            other = next((x for x in left if x[1] != inst), None)
            if other is not None:
                conflict[o] = ("order_stored_customer", {"order": o, "line": other[0],
                                                         "customer": self.resolver.name(other[1])})  # fmt: skip
            elif other := next((x for x in left if x[2] != day), None):
                conflict[o] = ("order_stored_date", {"order": o, "line": other[0], "date": other[2]})
        if not conflict:
            return kept
        before = {(o, line): (inst, day) for o, lines in stored.items() for line, inst, day in lines}
        out, still = [], set()
        for h, number, pre, inst in kept:
            found = conflict.get(pre[0])
            if found is None or before.get(h) == (inst, pre[2]):
                out.append((h, number, pre, inst))  # no conflict; or a line that stays as it is stored
                still.add(pre[0])
                continue
            code, params = found
            key = "order_date" if code == "order_stored_date" else "credit_code" if pre[4] else "external_id"
            self._error(number, file_cells[number], [(key, code, params)], preview)
            refused.append(h)
        for o in conflict:
            if o not in still:
                new_owners.pop(o, None)  # none of its rows kept: a later row of the order is its first
        return out

    def _check_product(self, code: str, approval: str) -> None:
        """Count a good line whose product code is not in the service-desk catalogue: neither linked already
        nor linked by this row's approval number. The line is imported all the same (ERP files carry
        products the catalogue lacks); the job's note names the codes."""
        if code in self.linked_in_file or self.resolver.linked.get(code):
            return
        if approval and self.resolver.products.get(approval):
            self.linked_in_file.add(code)
            return
        if code in self.unknown_products:
            self.unknown_products[code] += 1
        elif len(self.unknown_products) < UNKNOWN_CODES_KEPT:
            self.unknown_products[code] = 1
        else:
            self.unknown_overflow += 1

    def unknown_products_note(self) -> tuple[str, dict] | None:
        """("unknown_products", {lines, codes, code_list, more}) when good lines carry codes the catalogue
        does not know (codes linked by an approval number later in the file left out)."""
        unknown = {c: n for c, n in self.unknown_products.items() if c not in self.linked_in_file}
        lines = sum(unknown.values()) + self.unknown_overflow
        if not lines:
            return None
        codes = list(unknown)[:UNKNOWN_CODES_SHOWN]
        more = len(unknown) > UNKNOWN_CODES_SHOWN or bool(self.unknown_overflow)
        text = ", ".join(codes) + (", …" if more else "")
        return "unknown_products", {"lines": lines, "codes": text, "code_list": codes, "more": more}

    def report_late_errors(self) -> None:
        """Report the lines the writer refused under its lock (`Writer._one_customer`), once it is done: at their
        rows among the others."""
        if not self.late_errors:
            return
        for number, raw, errors in sorted(self.late_errors, key=itemgetter(0)):
            self.record_errors(Parsed(number, raw, errors=errors, action="error"))
        self.late_errors.clear()
        self.flush_errors()
        self.kept_errors.sort(key=lambda e: e["row"])

    def _duplicate(self, number, pre, first, file_cells, preview) -> None:
        err = ("line_number", "duplicate_line", {"order": pre[0], "line": pre[1], "row": first})
        self._error(number, file_cells[number], [err], preview)

    def add_preview(self, chunk: Chunk, actions: dict[int, str]) -> None:
        for number, cells, errors in chunk.preview:
            if len(self.preview) >= base.PREVIEW_ROWS:
                return
            shown = [[col.header, base.shown((cells[i] if i < len(cells) else "")[:100])]
                     for i, col in self.header.mapping]  # fmt: skip
            errs = [{"column": self.headers.get(k, ""), "code": c, "params": p} for k, c, p in errors]
            action = "error" if errors else actions.get(number, "unchanged")
            self.preview.append({"row": number, "action": action, "cells": shown, "errors": errs})


# --- the writing side ---------------------------------------------------------------------------------


class Writer:
    """Classifies each chunk against the stored lines and (when writing) stores it with its rollups —
    in a second thread with its own connection when possible, so that the database's work on one chunk
    overlaps the Python work on the next. All-or-nothing: one transaction; good rows: one per chunk."""

    def __init__(self, run: Run, job_id: int, threaded: bool):
        self.run, self.job_id, self.threaded = run, job_id, threaded
        self.one_transaction = run.write and (run.all_or_nothing or run.initial)
        self.bare: BareTable | None = None  # an initial load's line table while it loads
        self.error: BaseException | None = None
        self.now = timezone.now()
        self.today = timezone.localdate()
        self.dirty = False
        self.updates_audit: list[tuple[tuple, dict]] = []  # (line label, changes) of corrected lines not audited yet
        self.first_id = 0  # the columnar lane: a line's id is this + its file row
        self.refused: list[tuple] = []  # the columnar lane: (row, column key, code, params, id) refused at the end
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=1)
            context = contextvars.copy_context()
            self.thread = threading.Thread(target=context.run, args=(self._loop,), name="orders-writer", daemon=True)
            self.thread.start()
        elif self.one_transaction:
            if run.initial:
                BareTable.drop_retired()  # a table an earlier load's swap left (before this load's transaction)
            self.temp_store = rollups.sort_on_disk() if run.initial else None
            self.keys_off = foreign_keys_off() if run.initial else False
            self.atomic = transaction.atomic()
            self.atomic.__enter__()
            try:
                self._begin_initial()
                run.locked.set()
            except BaseException:
                transaction.set_rollback(True)
                self.atomic.__exit__(None, None, None)
                rollups.give_back_temp_store(self.temp_store)
                foreign_keys_on(self.keys_off)
                raise

    def _begin_initial(self) -> None:
        """An initial load: under the writers' lock, in its transaction, check that no line is stored (another
        import may have got in first), then strip the line table."""
        if not self.run.initial:
            return
        rollups.lock()
        if not order_tables_empty():
            raise InitialLoadRefused()
        self.bare = BareTable()
        self.bare.drop()
        if self.run.set_based:
            from . import columnar

            self.first_id = columnar.first_id()

    def submit(self, chunk: Chunk) -> None:
        if not self.threaded:
            self._handle(chunk)
            return
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(chunk, timeout=1)
                return
            except queue.Full:
                continue

    def close(self, failed: bool) -> None:
        if self.threaded:
            while self.thread.is_alive():
                try:
                    self.queue.put(None if not failed else _ABORT, timeout=1)
                    break
                except queue.Full:
                    continue
            self.thread.join()
            if self.error is not None and not failed:
                raise self.error
            return
        if self.one_transaction:
            try:
                self._finish_transaction(failed)
            except BaseException:
                transaction.set_rollback(True)
                raise
            finally:
                self.atomic.__exit__(None, None, None)
                rollups.give_back_temp_store(self.temp_store)
                foreign_keys_on(self.keys_off)
        else:
            self._refresh_committed(failed)

    def _refresh_committed(self, failed: bool) -> None:
        """Good rows only: recompute the pairs the committed chunks marked dirty (corrected lines) — at the end of
        the file, and as well when it stopped midway (a database error, a row unreadable further on, the worker
        shutting down): the chunks before it are committed, and their customers' purchases and credit show them
        at once rather than after the periodic repair. A refresh failing then leaves the marks to that repair and
        does not hide why the import stopped."""
        if not self.run.write:
            return
        if not failed:
            rollups.refresh_dirty()
            return
        try:
            rollups.refresh_dirty()
        except Exception:
            log.exception("orders import %s: the rollups of its committed chunks are left to the periodic refresh",
                          self.job_id)  # fmt: skip

    def _finish_transaction(self, failed: bool) -> None:
        if not failed and self.bare is not None and self.run.set_based:
            from . import columnar

            columnar.after_load(self)  # the in-file checks on the loaded lines; may refuse lines
        if failed or self.run.stop_writing:
            transaction.set_rollback(True)
            self.updates_audit.clear()
            self.run.resolver.unaudited.clear()
        else:
            if self.bare is not None and connection.vendor == "postgresql":
                # every rollup from the lines, once, then the indexes back: without the (customer, month) index the
                # rollups' GROUP BY reads the table in its own order and sorts it, rather than visiting ten million
                # lines in the index's order (17 s against 24 s at 10 M lines)
                rollups.rebuild_all(self.today)
                self.bare.restore()
            elif self.bare is not None:  # SQLite: the same either way (20.0 s by the index, 20.7 s by a sort)
                self.bare.restore()
                rollups.rebuild_all(self.today)
            self._flush_audit()
            self.run.resolver.audit_product_codes(self.job_id)
            rollups.refresh_dirty()
            if self.bare is not None:
                self.bare.attach()  # the foreign keys last: they keep the customers from changing until the commit

    def _audit(self, items: list[tuple[tuple, dict]]) -> None:
        """Audit the corrected lines of a chunk: one entry per line with its fields before and after. Good
        rows: with the chunk, in its transaction. All or nothing: at the end of the file's transaction, so that
        the audit chain is not held for the whole import."""
        self.updates_audit.extend(items)
        if not self.one_transaction:
            self._flush_audit()

    def _flush_audit(self) -> None:
        from pharmacrm.core import audit
        from pharmacrm.core.models import AuditEntry

        while self.updates_audit:
            part, self.updates_audit = self.updates_audit[:CHUNK_ROWS], self.updates_audit[CHUNK_ROWS:]
            audit.record_many(AuditEntry.Action.UPDATE, part, import_job=self.job_id)

    def _loop(self) -> None:
        failed = False
        try:
            base._lean_sqlite()
            if self.one_transaction:
                if self.run.initial:
                    BareTable.drop_retired()  # a table an earlier load's swap left (before this load's transaction)
                    rollups.sort_on_disk()  # this thread's own connection, closed at the end
                    foreign_keys_off()
                with transaction.atomic():
                    self._begin_initial()
                    self.run.locked.set()
                    failed = self._drain()
                    self._finish_transaction(failed)
            else:
                self.run.locked.set()
                try:
                    failed = self._drain()
                except BaseException:
                    self._refresh_committed(failed=True)
                    raise
                self._refresh_committed(failed)
        except BaseException as e:
            self.error = e
            while self.queue.get() not in (None, _ABORT):
                pass
        finally:
            connection.close()

    def _drain(self) -> bool:
        while True:
            chunk = self.queue.get()
            if chunk is None:
                return False
            if chunk is _ABORT:
                return True
            self._handle(chunk)

    def _handle(self, chunk: Chunk) -> None:
        run = self.run
        # the columnar lane stores on past a first error of an all-or-nothing load (its transaction is rolled back
        # all the same): its repeats and split orders are found on the stored lines at the end, and reported too
        lane = self.bare is not None and run.set_based
        writing = run.write and not (run.all_or_nothing and run.stop_writing and not lane)
        if writing and not self.one_transaction:
            with transaction.atomic():  # the job row's counts go with the chunk: it says what is committed
                actions = self._apply(chunk, write=True)
                self._count(chunk, actions, in_transaction=False)
        else:
            actions = self._apply(chunk, write=writing)
            self._count(chunk, actions, in_transaction=self.one_transaction)

    def _one_customer(self, chunk: Chunk, rows: list[tuple], existing: dict) -> list[tuple]:
        """The chunk's lines less those that would now split their order between customers or order dates. The
        reading side checked the order against its stored lines (`Run._against_stored`) before the writers' lock;
        read again here, under it, from the stored lines the classification reads anyway (no query of its own),
        an order whose stored lines are still as that check read them is as it decided. One that another import
        stored lines of since (at the same moment) is checked again: its stored lines that the chunk does not
        write must name the customer and date the chunk gives, else the chunk's lines of it that change or add a
        line are refused, as the reading side refuses them. Lines this import wrote in an earlier chunk agree by
        the file's own check."""
        now: dict[str, list] = {}
        for (o, _line), (_h, inst, _month, day) in existing.items():
            r = now.get(o)
            if r is None:
                now[o] = [inst, inst, day, day]
            else:
                r[0], r[1], r[2], r[3] = min(r[0], inst), max(r[1], inst), min(r[2], day), max(r[3], day)
        seen = chunk.stored
        changed = {o for o in now if tuple(now[o]) != seen.get(o)}
        if not changed:
            return rows
        given = {(r[0], r[1]) for r in rows}
        want: dict[str, tuple[int, str]] = {}
        for r in rows:
            want.setdefault(r[0], (r[4], r[2]))
        conflict: dict[str, tuple[str, dict]] = {}
        for (o, line), (_h, inst, _month, day) in sorted(existing.items()):
            if o not in changed or o in conflict or (o, line) in given or (inst, day) == want[o]:
                continue
            if o in seen and (seen[o][0] != seen[o][1] or seen[o][2] != seen[o][3]):
                continue  # split before this check existed: the reading side's decision stands
            if inst != want[o][0]:
                conflict[o] = ("order_stored_customer", {"order": o, "line": line,
                                                         "customer": self.run.resolver.name(inst)})  # fmt: skip
            else:
                conflict[o] = ("order_stored_date", {"order": o, "line": line, "date": day})
        if not conflict:
            return rows
        run, kept, numbers = self.run, [], []
        for r, number, (credit, external) in zip(rows, chunk.numbers, chunk.customer_codes, strict=True):
            found = conflict.get(r[0])
            old = existing.get((r[0], r[1]))
            if found is None or (old is not None and (old[1], old[3]) == (r[4], r[2])):
                kept.append(r)
                numbers.append(number)
                continue
            code, params = found
            key = "order_date" if code == "order_stored_date" else "credit_code" if credit else "external_id"
            raw = {"order_date": r[2], "credit_code": credit, "external_id": external}  # as read
            with _LOCK:
                run.late_errors.append((number, raw, [(key, code, params)]))
        chunk.numbers[:] = numbers
        if run.all_or_nothing:
            run.stop_writing = True  # the file's transaction is rolled back: a bad row refuses it all
        return kept

    def _count(self, chunk: Chunk, actions: list[str], in_transaction: bool) -> None:
        run = self.run
        by_row = dict(zip(chunk.numbers, actions, strict=True))
        with _LOCK:
            run.counts.created += actions.count("create") + (chunk.table.num_rows if chunk.table is not None else 0)
            run.counts.updated += actions.count("update")
            run.counts.unchanged += actions.count("unchanged")
            run.counts.processed += chunk.processed
            run.add_preview(chunk, by_row)
            processed = run.counts.processed
            saved = run.saved
            saved.processed, saved.created = processed, run.counts.created
            saved.updated, saved.unchanged = run.counts.updated, run.counts.unchanged
            saved.errors += chunk.errors
            saved.last_row = max(saved.last_row, chunk.last_row)
        base.write_progress(run.job, processed, in_transaction=in_transaction, saved=saved)

    def _apply(self, chunk: Chunk, *, write: bool) -> list[str]:
        """Classify the chunk's lines (new / changed / unchanged) and, when writing, store them."""
        rows = chunk.rows
        if not rows and chunk.table is None:
            return []
        if write:
            rollups.lock()
            rows = self.run.resolver.follow_merges(rows) if rows else rows
            rows = self.run.resolver.respell_new_codes(rows, chunk.approvals) if rows else rows
            if self.bare is not None and self.bare.holds:  # the customers checked as the foreign key would
                self.bare.hold(_customers_of(chunk, rows))
            if self.bare is not None and self.run.set_based:
                from . import columnar

                return columnar.write(self, chunk, rows)
        # an initial load started on an empty table, under the lock: its lines are new (the file's duplicates are
        # refused while reading, and the unique constraint is checked again when it is built at the end)
        existing = {} if self.bare is not None else _existing({r[0] for r in rows})
        if write and chunk.stored is not None and rows:
            rows = self._one_customer(chunk, rows, existing)
        actions, creates, updates = [], [], []
        for r in rows:
            old = existing.get((r[0], r[1]))
            if old is None:
                actions.append("create")
                creates.append(r)
            elif old[0] == r[16]:
                actions.append("unchanged")
            else:
                actions.append("update")
                updates.append((r, old))
        if not write:
            return actions
        # an approval number links its product code to the catalogue on an unchanged line too (it is no value of
        # the line): the same file given again with the 批准文号 column, as the import's note advises, links its codes
        # (in file order: a code is named by the last of them that gives a name)
        products = self.run.resolver.products
        recorded = [r for r, action in zip(rows, actions, strict=True)
                    if action != "unchanged" or products.get(chunk.approvals.get(r[5], ""))]  # fmt: skip
        if recorded:
            self.run.resolver.save_product_codes(recorded, chunk.approvals)
            if not self.one_transaction:
                self.run.resolver.audit_product_codes(self.job_id)  # with the chunk, in its transaction
        if not (creates or updates):
            return actions
        now = self.now if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(self.now)
        if creates and self.bare is not None:  # the rollups are built at the end
            base.insert_rows(OrderLine._meta.db_table, [*LINE_COLUMNS, "job_id", "imported_at"],
                             [(*r, self.job_id, now) for r in creates])  # fmt: skip
        elif creates:
            after = rollups.last_line_id()
            base.insert_rows(OrderLine._meta.db_table, [*LINE_COLUMNS, "job_id", "imported_at"],
                             [(*r, self.job_id, now) for r in creates])  # fmt: skip
            rollups.add_new_lines(after, self.today)
        if updates:
            audited = _changes([u[0] for u in updates])  # before the update: the stored values are the "before"
            _update_lines([u[0] for u in updates], self.job_id, now)
            self._audit(audited)
            rollups.mark_dirty({(u[1][1], u[1][2]) for u in updates} | {(u[0][4], u[0][3]) for u in updates})
        return actions


_ABORT = object()
_LOCK = threading.Lock()


def in_parts(cursor, sql: str, values: list, size: int = 10_000) -> list[tuple]:
    """`sql` with `{}` where a list of values goes, run over `values` in parts (the databases' parameter limits); the
    rows it returns."""
    out: list[tuple] = []
    for i in range(0, len(values), size):
        part = values[i : i + size]
        cursor.execute(sql.format(", ".join(["%s"] * len(part))), part)
        if cursor.description:
            out += cursor.fetchall()
    return out


def _iso(day) -> str:
    """A stored order date as the import's checks write it (SQLite returns the text, PostgreSQL a date)."""
    return day if isinstance(day, str) else day.isoformat()


def _existing(order_numbers: set[str]) -> dict[tuple[str, int], tuple[int, int, str, str]]:
    """(order number, line) → (row hash, institution id, month, order date) of the stored lines of these orders."""
    found = {}
    numbers = list(order_numbers)
    table = OrderLine._meta.db_table
    with connection.cursor() as cursor:
        for i in range(0, len(numbers), 10_000):
            part = numbers[i : i + 10_000]
            cursor.execute(
                f"SELECT order_number, line_number, row_hash, institution_id, month, order_date FROM {table} "
                f"WHERE order_number IN ({', '.join(['%s'] * len(part))})",
                part,
            )
            for on, line, h, inst, month, day in cursor.fetchall():
                found[(on, line)] = (h, inst, _iso(month), _iso(day))
    return found


# What a corrected line's audit entry lists (the names `services.remove_line` uses), and where the import's
# value is in a line tuple (LINE_COLUMNS); money in fen is shown as yuan.
AUDITED = (
    ("order_date", "order_date", 2), ("institution", "institution_id", 4), ("product_code", "product_code", 5),
    ("product_name", "product_name", 6), ("batch_number", "batch_number", 7), ("quantity", "quantity", 8),
    ("unit_price", "unit_price", 9), ("amount", "amount_fen", 10), ("invoice_number", "invoice_number", 11),
    ("payment_due", "payment_due", 12), ("paid_date", "paid_date", 13), ("paid_amount", "paid_fen", 14),
)  # fmt: skip


def _audit_value(column: str, value):
    if value is None or value == "":
        return None if value is None else ""
    if column.endswith("_fen"):
        return str(yuan(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    return value if isinstance(value, int) else str(value)


def _changes(rows: list[tuple]) -> list[tuple[tuple, dict]]:
    """(label, {field: [before, after]}) of each corrected line, read before it is updated. Only corrected lines
    pay for this (one query per chunk that has some): new and unchanged lines are never read."""
    wanted = {(r[0], r[1]): r for r in rows}
    columns = ["id", "order_number", "line_number", *(c for _name, c, _i in AUDITED)]
    out = []
    numbers = sorted({r[0] for r in rows})
    for i in range(0, len(numbers), 5000):
        for old in OrderLine.objects.filter(order_number__in=numbers[i : i + 5000]).values(*columns):
            r = wanted.get((old["order_number"], old["line_number"]))
            if r is None:
                continue
            changes = {}
            for name, column, index in AUDITED:
                before, after = _audit_value(column, old[column]), _audit_value(column, r[index])
                if before != after:
                    changes[name] = [before, after]
            label = ("sales.orderline", str(old["id"]), f"{old['order_number']}/{old['line_number']}")
            out.append((label, changes))
    return out


def _update_lines(rows: list[tuple], job_id: int, now) -> None:
    table = OrderLine._meta.db_table
    sets = ", ".join(f"{c} = %s" for c in (*LINE_COLUMNS[2:], "job_id", "imported_at"))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {sets} WHERE order_number = %s AND line_number = %s",
            [(*r[2:], job_id, now, r[0], r[1]) for r in rows],
        )


def _chunks(rows: Iterator, size: int, order_cell: int | None = None) -> Iterator[list]:
    """The rows in chunks of `size`. A chunk runs on past `size` to the end of its last order (up to a tenth more
    rows): an order is checked against its stored lines in the chunk that holds it, and a file moving a whole order to
    another customer or date (every line of it) was refused when the chunk ended inside the order — its later lines,
    not yet read, counted as stored lines the file does not correct. An ERP's export lists an order's lines together."""
    chunk: list = []
    limit = size + size // 10

    def order_of(row) -> str:  # "" (no order: the chunk ends at `size`) without the column
        cells = row[1]
        return cells[order_cell].strip() if order_cell is not None and order_cell < len(cells) else ""

    rows = iter(rows)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except BaseException:
            # a full chunk waiting for its order's end: handled, as it was before that wait
            if len(chunk) >= size:
                yield chunk
            raise
        order = order_of(row)
        if len(chunk) >= size and (not order or order != order_of(chunk[-1])):
            yield chunk
            chunk = []
        chunk.append(row)
        if len(chunk) >= limit:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _threaded(run: Run) -> bool:
    return base.writer_thread_possible() and getattr(settings, "IMPORT_WRITER_THREAD", True)


def _read_and_write(run: Run, rows) -> Writer:
    """Read the file chunk by chunk and hand each chunk to the writer; returns the closed writer."""
    with base.lean_connection(reader_only=_threaded(run)):
        writer = Writer(run, run.job.pk, threaded=_threaded(run))
        failed = True
        try:
            try:
                order_cell = next((i for i, col in run.header.mapping if col.key == "order_number"), None)
                chunks = (run.lane.chunks(run.locked, writer) if run.lane
                          else map(run.prepare, _chunks(rows, CHUNK_ROWS, order_cell)))  # fmt: skip
                for chunk in chunks:
                    if run.all_or_nothing and run.counts.errors:
                        run.stop_writing = True
                    writer.submit(chunk)
                failed = False
            finally:
                writer.close(failed=failed)
        except BaseException:
            if run.write and not writer.one_transaction and (run.saved.created or run.saved.updated):
                # the chunks committed before it stopped changed purchases too; a failure to queue the update is
                # logged, not raised over why the import stopped
                _evaluate_after_import(robust=True)
            raise
    return writer


def run_job(job: ImportJob, user, sheet, header, rows) -> tuple[str, Counts, list, list, list]:
    """The customer import's runner calls this for an orders job: (status, counts, errors, preview, notes). An
    initial load of a UTF-8 CSV file takes the columnar lane (`columnar`); where Arrow cannot read the file as
    Python's csv module does, that attempt is rolled back and the file loads row by row."""
    if INITIAL_LOAD.get() and not job.dry_run and COLUMNAR.get():
        from . import columnar

        if columnar.eligible(sheet):
            try:
                return _run_job(job, sheet, header, rows, columnar)
            except columnar.NotColumnar as e:
                log.info("orders import %s: loading row by row (%s)", job.pk, e)
    return _run_job(job, sheet, header, rows, None)


COLUMNAR: contextvars.ContextVar[bool] = contextvars.ContextVar("orders_columnar", default=True)


def _run_job(job: ImportJob, sheet, header, rows, columnar) -> tuple[str, Counts, list, list, list]:
    run = Run(job, header, write=not job.dry_run)
    run.fast.nul = sheet.info.has_nul
    if columnar is not None:
        run.lane = columnar.Lane(run, sheet, header)
    notes: list[tuple[str, dict]] = []
    if run.initial and not order_tables_empty():
        run.close()
        return ImportJob.Status.FAILED, run.counts, [], [], [("initial_load_not_empty", {})]
    if header.ignored:
        notes.append(("ignored_columns", {"columns": listing(header.ignored)}))
    run.open_report(base.error_report_path(job))
    try:
        try:
            writer = _read_and_write(run, rows)
        except InitialLoadRefused:  # another import stored lines between the check above and the lock
            return ImportJob.Status.FAILED, Counts(), [], [], [("initial_load_not_empty", {})]
        run.report_late_errors()
        if writer.one_transaction and not run.stop_writing:
            base.checkpoint(job, run.saved)  # committed: from now on the job row says so
        run.counts.total = run.counts.processed
        if job.dry_run:
            status = ImportJob.Status.PREVIEWED
        elif run.stop_writing:
            notes.append(("all_or_nothing_rejected", {"errors": run.counts.errors}))
            run.counts.created = run.counts.updated = run.counts.unchanged = 0
            status = ImportJob.Status.REJECTED
        else:
            status = ImportJob.Status.DONE
            if run.initial:
                notes.append(("initial_load", {}))
        if run.totals_rows:
            shown = run.totals_rows[:TOTALS_ROWS_SHOWN]
            more = ", …" if len(run.totals_rows) > TOTALS_ROWS_SHOWN else ""
            notes.append(("totals_rows", {"rows": ", ".join(map(str, shown)) + more}))
        unknown = run.unknown_products_note()
        if unknown is not None and status != ImportJob.Status.REJECTED:  # nothing was imported: not even these
            notes.append(unknown)
        if run.split_orders:
            notes.extend(_split_orders_note(run.split_orders))
    finally:
        run.close()
    if connection.vendor == "sqlite" and not job.dry_run and not connection.in_atomic_block:
        with connection.cursor() as cursor:  # a large import leaves a large write-ahead log: fold it back now
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    run.preview.sort(key=lambda p: p["row"])
    if not job.dry_run and status == ImportJob.Status.DONE and (run.counts.created or run.counts.updated):
        _evaluate_after_import()
    return status, run.counts, run.kept_errors, run.preview, notes


def _split_orders_note(numbers: set[str]) -> list[tuple[str, dict]]:
    """("split_orders", {orders, order_list}) when orders the file names are split still (a file giving all of an
    order's lines one customer and date corrects it): the result says so and links to the split orders page."""
    from . import splits

    still = splits.split_numbers(numbers)
    return [("split_orders", {"orders": len(still), "order_list": still[:SPLIT_ORDERS_KEPT]})] if still else []


def _evaluate_after_import(robust: bool = False) -> None:
    """The evaluation's incremental update of the customers whose purchases changed, once the import's writes
    are committed."""
    from pharmacrm.keyaccounts import tasks as ka_tasks

    transaction.on_commit(ka_tasks.after_import, robust=robust)
