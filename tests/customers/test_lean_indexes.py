"""Customers carry no index a query never uses: every index is one more write for each imported, edited,
merged or re-tiered customer. Django adds a pattern-matching (`_like`) copy to every indexed text column on
PostgreSQL; the customer tables look those columns up by equality only, so the migrations drop the copies."""

from __future__ import annotations

import pytest
from django.db import connection

from pharmacrm.customers.models import Institution, Person


def _indexes(model) -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {name: info["columns"] for name, info in found.items() if info["index"] or info["unique"]}


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Institution, Person])
def test_no_pattern_matching_copies_of_the_customer_indexes(model):
    names = _indexes(model)
    assert [n for n in names if n.endswith("_like")] == []
    # the equality look-ups they copied are still indexed: codes, external ids, blind indexes
    columns = {tuple(cols) for cols in names.values()}
    wanted = [("code",), ("external_id",)] + (
        [("mobile_bidx",), ("landline_bidx",), ("email_bidx",), ("id_number_bidx",)] if model is Person else [("credit_code",)]
    )
    assert [c for c in wanted if c not in columns] == []

