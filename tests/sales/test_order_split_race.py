"""Two imports of one order at the same moment: the check that an order keeps one customer and one order date against
its stored lines is read before the writers' lock, so the writer checks again under it. The other import is made to
store its lines exactly between the first one's check and its write (deterministic: the first import's reading side
runs the second import to its end before handing its chunk to the writer)."""

from __future__ import annotations

import pytest

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import importer as orders
from pharmacrm.sales.models import OrderLine

from .conftest import line, today_minus


@pytest.fixture
def between_check_and_write(monkeypatch, settings):
    """between_check_and_write(fn): fn() runs once, right after the next import's first chunk was checked against the
    stored lines, before its writer takes the lock (no writer thread: the chunk is written right after)."""
    settings.IMPORT_WRITER_THREAD = False
    original = orders.Run._against_stored
    pending = []

    def checked(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        while pending:
            pending.pop()()
        return out

    monkeypatch.setattr(orders.Run, "_against_stored", checked)
    return pending.append


@pytest.mark.parametrize("mode", ["good", "all"])
def test_an_order_stored_for_another_customer_meanwhile_is_not_split(
    run_import, xiehe, huashan, between_check_and_write, mode
):
    day = today_minus(4)
    other = []
    between_check_and_write(lambda: other.append(run_import([line("SO-9", 3, day, huashan, "P1", 1, "10")])))

    job = run_import([line("SO-9", 1, day, xiehe, "P1", 1, "10"), line("SO-9", 2, day, xiehe, "P2", 1, "10"),
                      line("SO-8", 1, day, xiehe, "P1", 1, "10")], mode=mode)  # fmt: skip

    assert other[0].created_count == 1
    # (all or nothing: the test's one connection rolls the other import back with it, as it ran inside the file's
    # transaction; two connections would not)
    assert not OrderLine.objects.filter(order_number="SO-9", institution=xiehe).exists()
    assert [(e["row"], e["code"], e["params"]["line"]) for e in job.errors] == [
        (2, "order_stored_customer", 3), (3, "order_stored_customer", 3),
    ]  # fmt: skip
    assert job.error_count == 2 and job.errors[0]["value"] == xiehe.credit_code  # the row's code, as read
    if mode == "good":
        assert set(OrderLine.objects.filter(order_number="SO-9").values_list("institution", flat=True)) == {huashan.pk}
        assert (job.status, job.created_count) == (ImportJob.Status.DONE, 1)
        assert OrderLine.objects.filter(order_number="SO-8").count() == 1
    else:  # all or nothing: a refused row refuses the file
        assert (job.status, job.created_count) == (ImportJob.Status.REJECTED, 0)
        assert not OrderLine.objects.filter(order_number="SO-8").exists()
    with open(importer.error_report_path(job), encoding="utf-8") as fh:
        assert fh.read().count("order_stored_customer") == 2


def test_an_order_stored_on_another_date_meanwhile_is_not_split(run_import, xiehe, between_check_and_write):
    other = []
    between_check_and_write(
        lambda: other.append(run_import([line("SO-7", 2, today_minus(9), xiehe, "P1", 1, "10")]))
    )

    job = run_import([line("SO-7", 1, today_minus(4), xiehe, "P1", 1, "10")])

    assert [(e["row"], e["code"]) for e in job.errors] == [(2, "order_stored_date")]
    assert list(OrderLine.objects.filter(order_number="SO-7").values_list("line_number", flat=True)) == [2]


def test_lines_stored_meanwhile_that_agree_change_nothing(run_import, xiehe, between_check_and_write):
    day = today_minus(4)
    between_check_and_write(lambda: run_import([line("SO-6", 2, day, xiehe, "P1", 1, "10")]))

    job = run_import([line("SO-6", 1, day, xiehe, "P1", 1, "10")])

    assert (job.created_count, job.error_count) == (1, 0)
    assert OrderLine.objects.filter(order_number="SO-6").count() == 2
