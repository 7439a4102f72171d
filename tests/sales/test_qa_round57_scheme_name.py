"""Session 57 (API QA): a second appraisal scheme of a name taken was refused with "Another scheme has this name.",
which does not say which name; the refusal now names it, on the scheme editor."""

from __future__ import annotations

import pytest

from pharmacrm.sales import kpi
from pharmacrm.sales.models import AppraisalScheme
from tests.sales.test_kpi import ALL, scheme_data

pytestmark = pytest.mark.django_db


def test_a_scheme_named_as_another_is_refused_naming_the_name(users, client_for):
    kpi.save_scheme(users["manager"], scheme_data(name="月度考核"))
    form = {"name": "月度考核", "period_kind": "month", "roles": ["rep"], "excellent": "90", "good": "75",
            "passing": "60", "active": "on"}  # fmt: skip
    for i in ALL:
        form.update({f"{i['code']}_{w}": i[w] for w in ("weight", "target", "floor", "cap")})

    refused = client_for("manager").post("/sales/appraisal/schemes/new/", form, HTTP_ACCEPT_LANGUAGE="en")

    assert refused.status_code == 400
    assert "An appraisal scheme named “月度考核” exists already: choose another name." in refused.content.decode()
    assert AppraisalScheme.objects.count() == 1
