"""`pharmacrm import orders` in the command's language (--language): a file without a required column was refused
"Required columns are missing: 数量" in English too, and the rejected rows' report named each column by the Chinese
template's header — a column the file lacks as well (the customer's credit code of a file that gives the external
id). The columns are named in the chosen language, with the file's own header beside a name it words otherwise."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.utils import translation

from pharmacrm.sales.importer import ORDER_COLUMNS
from pharmacrm.sales.models import OrderLine
from tests.sales.conftest import line


def write(path, rows: list[list[str]]):
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def without(column: str, rows: list[dict]) -> list[list[str]]:
    columns = [c for c in ORDER_COLUMNS if c.template and c.key != column]
    return [[c.header for c in columns], *[[r.get(c.key, "") for c in columns] for r in rows]]


@pytest.mark.parametrize(
    ("language", "expected", "chinese"),
    [("en", "Required columns are missing: Quantity.", "数量"), ("zh-hant", "數量", "数量"),
     ("zh-hans", "数量", "Quantity")],
)  # fmt: skip
def test_a_missing_column_is_named_in_the_commands_language(tmp_path, xiehe, users, capsys, language, expected,
                                                             chinese):  # fmt: skip
    path = write(tmp_path / "orders.csv", without("quantity", [line("M-1", 1, "2025-03-01", xiehe, "P1", 2, "10")]))
    with pytest.raises(SystemExit) as exit_info:
        call_command("import", "orders", str(path), "--language", language)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert expected in err and chinese not in err
    assert not OrderLine.objects.exists()


def test_the_rejected_rows_report_names_the_columns_in_the_commands_language(tmp_path, xiehe, users):
    rows = [line("R-1", 1, "2025-03-01", xiehe, "P1", "abc", "10"),  # row 2: no number, and no customer at all
            line("R-2", 1, "2025-03-01", "", "P1", 1, "10", external_id="NO-SUCH-ID")]  # row 3: no such customer
    path = write(tmp_path / "orders.csv", without("credit_code", rows))
    for language, quantity, credit_code, external_id in (
        ("en", "Quantity (数量)", "Customer credit code", "Customer external id (客户外部编号)"),
        # the file's 数量 is 數量 in the other script: named once
        ("zh-hant", "數量", str_in("zh-hant", "credit_code"), "客戶外部編號"),
        ("zh-hans", "数量", "客户统一社会信用代码", "客户外部编号"),
    ):
        report = tmp_path / f"rejected-{language}.csv"
        with pytest.raises(SystemExit) as exit_info:
            call_command("import", "orders", str(path), "--dry-run", "--report", str(report), "--language", language)
        assert exit_info.value.code == 1
        lines = list(csv.reader(io.StringIO(report.read_text(encoding="utf-8-sig"))))
        if language == "en":
            assert lines[0] == ["Row", "Column", "Reason", "Value"]
            assert "credit code or external id" in lines[2][2]
        # the credit code's column is not in the file: its name alone, not the Chinese template's header
        assert [(r[0], r[1]) for r in lines[1:]] == [("2", quantity), ("2", credit_code), ("3", external_id)], language


def str_in(language: str, key: str) -> str:
    with translation.override(language):
        return str(next(c.label for c in ORDER_COLUMNS if c.key == key))
