"""Review round 40 (sales): the order import's in-file checks keyed by the values themselves, not by a 64-bit hash of
them; product codes an import renames or links to the catalogue audited."""

from __future__ import annotations

import pytest

from pharmacrm.sales import importer

from . import test_columnar_load as load
from .conftest import line, today_minus

customers_, lane = load.customers_, load.lane  # the fixtures: customers by each kind of code; every line in the kernels

# --- repeats and split orders, keyed by the values -------------------------------------------------------------------


def test_two_order_lines_whose_hashes_collide_are_two_lines_to_the_in_file_check():
    """The store of the lines met so far kept a 64-bit hash of (order number, line number): two lines sharing one were
    one line to it, the second refused as a repeat of the first. In CPython, hash(-1) == hash(-2), and so the tuples'
    hashes: the store must still tell the lines apart, and still find a line given again."""
    assert hash(("SO-1", -1)) == hash(("SO-1", -2))  # the keys chosen to collide
    seen = importer.SeenLines()
    try:
        assert seen.add_new([("SO-1", -1, 2), ("SO-2", 1, 3)]) == {}
        assert seen.add_new([("SO-1", -2, 4)]) == {}  # another line, not a repeat of row 2
        assert seen.add_new([("SO-1", -1, 5), ("SO-3", 1, 6), ("SO-2", 1, 7)]) == {("SO-1", -1): 2, ("SO-2", 1): 3}
        assert seen.add_new([("so-1", -1, 8)]) == {}  # compared exactly, as the line table's unique constraint does
    finally:
        seen.close()


def test_the_order_owners_store_keys_each_order_by_its_number():
    owners = importer.OrderOwners()
    try:
        owners.add({"SO-1": (10, "2026-03-05", 2), "SO-2": (20, "2026-03-06", 3)})
        owners.add({"SO-1": (30, "2026-04-01", 9)})  # the order's first customer and date stand
        first = {"SO-1": (10, "2026-03-05", 2), "SO-2": (20, "2026-03-06", 3)}
        assert owners.first({"SO-1", "SO-2", "SO-3", "so-1"}) == first
    finally:
        owners.close()


def test_orders_and_lines_whose_hashes_collide_are_neither_repeats_nor_one_order(run_import, xiehe, huashan,
                                                                                monkeypatch):  # fmt: skip
    """Every hash the import takes made equal (the one way to make two order numbers collide in a test): the lines of
    three orders of two customers, across chunks, were refused as repeats of the first line and as its order naming a
    second customer. Keyed by the values, they are all imported, and a real repeat and a real split order are still
    refused."""
    from pharmacrm.sales.models import OrderLine

    monkeypatch.setattr(importer, "hash", lambda value: 0, raising=False)
    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)
    d = today_minus(9)
    job = run_import([
        line("SO-1", 1, d, xiehe, "YP1", 1, 10),  # row 2
        line("SO-2", 1, d, huashan, "YP1", 1, 10),  # row 3
        line("SO-1", 2, d, xiehe, "YP1", 1, 10),  # row 4 (the second chunk)
        line("SO-3", 1, d, huashan, "YP1", 1, 10),  # row 5
        line("SO-2", 1, d, huashan, "YP1", 1, 10),  # row 6: a repeat of row 3
        line("SO-1", 3, d, huashan, "YP1", 1, 10),  # row 7: SO-1 is 协和's
    ])  # fmt: skip

    assert [(e["row"], e["code"], e["params"].get("row")) for e in job.errors] == [
        (6, "duplicate_line", 3), (7, "order_two_customers", 2),
    ]  # fmt: skip
    assert sorted(OrderLine.objects.values_list("order_number", "line_number")) == [
        ("SO-1", 1), ("SO-1", 2), ("SO-2", 1), ("SO-3", 1),
    ]  # fmt: skip


# --- product codes: every change audited ------------------------------------------------------------------------------


def _code_entries(job) -> list[tuple]:
    """The audit entries of product codes: (action, code, changes, by whom), all attributed to `job`."""
    from pharmacrm.core.models import AuditEntry

    entries = AuditEntry.objects.filter(object_type="sales.productcode").order_by("seq")
    assert {e.extra.get("import_job") for e in entries} <= {job.pk}
    return [(e.action, e.object_repr.split()[0], e.changes, e.actor_id) for e in entries]


@pytest.mark.parametrize("initial_load", [False, True], ids=["row-by-row", "columnar"])
def test_an_import_that_names_or_links_a_product_code_audits_it_with_its_fields_before_and_after(
    customers_, users, tmp_path, lane, admin_user, initial_load
):
    """An import named a product code found without a name, linked a code to another catalogue product, and recorded
    new codes, without an audit entry. Each change is audited, with the fields before and after, the import job's id
    and its user — in both lanes alike, and a link that only a line refused at the end made (a repeat: the columnar
    lane links, then undoes it) is no change."""
    from pharmacrm.customers.models import ImportJob
    from pharmacrm.sales.models import ProductCode
    from pharmacrm.servicedesk.models import Product

    from .conftest import write_csv
    from .test_columnar_load import _load

    mine = Product.objects.get(approval_number="国药准字H20249871")
    other = Product.objects.create(brand_name="络活喜", generic_name="苯磺酸氨氯地平片", approval_number="国药准字H10950224")
    ProductCode.objects.create(code="YP1", name="")
    ProductCode.objects.create(code="YP2", name="络活喜", product=other)
    ProductCode.objects.create(code="YP4", name="旧名")
    xiehe, d = customers_["xiehe"], today_minus(9)
    rows = [line("A-1", 1, d, xiehe, "YP1", 1, 10, product_name="安心宁 5mg", approval_number="国药准字H20249871"),
            line("A-2", 1, d, xiehe, "YP2", 1, 10, product_name="另一个名字", approval_number="国药准字H20249871"),
            line("A-3", 1, d, xiehe, "YP3", 1, 10, product_name="新药"),
            line("A-4", 1, d, xiehe, "YP4", 1, 10),
            line("A-4", 1, d, xiehe, "YP4", 1, 10, approval_number="国药准字H20249871")]  # a repeat: refused
    rows += [line(f"A-{i}", 1, d, xiehe, "YP5", 1, 10) for i in range(10, 40)]  # a few blocks

    code = _load(write_csv(tmp_path / "orders.csv", rows), *(["--initial-load"] if initial_load else []))

    assert code == 1  # the repeat
    job = ImportJob.objects.filter(target=ImportJob.Target.ORDERS).latest("pk")
    assert job.created_by == admin_user
    yp3 = ProductCode.objects.get(code="YP3")
    assert sorted(_code_entries(job), key=lambda e: e[1]) == [
        ("update", "YP1", {"name": ["", "安心宁 5mg"], "product": [None, mine.pk]}, admin_user.pk),
        ("update", "YP2", {"product": [other.pk, mine.pk]}, admin_user.pk),  # a code that has a name keeps it
        ("create", "YP3", {"code": [None, "YP3"], "name": [None, "新药"], "product": [None, None]}, admin_user.pk),
        ("create", "YP5", {"code": [None, "YP5"], "name": [None, ""], "product": [None, None]}, admin_user.pk),
    ]  # fmt: skip
    assert dict(ProductCode.objects.values_list("code", "product_id")) == {
        "YP1": mine.pk, "YP2": mine.pk, "YP3": None, "YP4": None, "YP5": None,
    }  # fmt: skip
    assert yp3.name == "新药"


def test_an_import_in_chunks_audits_each_chunks_product_code_changes_with_the_chunk(run_import, xiehe, admin_user,
                                                                                 monkeypatch):  # fmt: skip
    """Good rows only, one transaction per chunk: a chunk's product-code changes are audited in its transaction, so
    a code created in one chunk and named by a later one has both entries; a refused all-or-nothing import leaves
    none."""
    from pharmacrm.core.models import AuditEntry

    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)
    d = today_minus(9)
    rows = [line("C-1", 1, d, xiehe, "YP7", 1, 10), line("C-2", 1, d, xiehe, "YP8", 1, 10),
            line("C-3", 1, d, xiehe, "YP7", 1, 10, product_name="安心宁")]  # fmt: skip

    refused = run_import([*rows, line("C-4", 1, d, xiehe, "YP9", "x", 10)], mode="all")
    assert refused.status == "rejected"
    assert not AuditEntry.objects.filter(object_type="sales.productcode").exists()

    job = run_import(rows)

    assert _code_entries(job) == [
        ("create", "YP7", {"code": [None, "YP7"], "name": [None, ""], "product": [None, None]}, admin_user.pk),
        ("create", "YP8", {"code": [None, "YP8"], "name": [None, ""], "product": [None, None]}, admin_user.pk),
        ("update", "YP7", {"name": ["", "安心宁"]}, admin_user.pk),
    ]  # fmt: skip
