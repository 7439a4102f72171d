"""`pharmacrm import orders FILE --report F`, from a QA round: the report is never written over the file it reports
on (`--report s.csv` for s.csv replaced the orders with the rejected rows)."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command

from pharmacrm.sales.models import OrderLine

from .conftest import line

SEPT = "2026-09-30"


@pytest.mark.parametrize("how", ["same", "symlink", "relative"])
def test_the_report_is_never_written_over_the_imported_file(order_file, xiehe, users, tmp_path, capsys, how,
                                                            monkeypatch):  # fmt: skip
    path = order_file(
        [line("QA-1", 1, SEPT, xiehe, "P1", 1, 10), line("QA-1", 2, SEPT, xiehe, "P1", "x", 10)]
    )
    before = path.read_bytes()
    report = path
    if how == "symlink":
        report = tmp_path / "report.csv"
        os.symlink(path, report)
    elif how == "relative":
        monkeypatch.chdir(tmp_path)
        report = os.path.join(".", path.name)

    with pytest.raises(SystemExit) as e:
        call_command("import", "orders", str(path), "--report", str(report), "--language", "en")

    assert e.value.code == 2
    assert (
        "is the file being imported: give the report another name with --report." in capsys.readouterr().err
    )
    assert path.read_bytes() == before
    assert not OrderLine.objects.exists()
