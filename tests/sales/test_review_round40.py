"""Review round 40 (sales): the order import's in-file checks keyed by the values themselves, not by a 64-bit hash of
them; product codes an import renames or links to the catalogue audited."""

from __future__ import annotations

import pytest

from pharmacrm.sales import importer

from .conftest import line, today_minus

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
        owners.add({"SO-1": (10, 2), "SO-2": (20, 3)})
        owners.add({"SO-1": (30, 9)})  # the order's first customer stands
        assert owners.first({"SO-1", "SO-2", "SO-3", "so-1"}) == {"SO-1": (10, 2), "SO-2": (20, 3)}
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
