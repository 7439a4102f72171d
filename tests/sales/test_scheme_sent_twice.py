"""The new appraisal scheme sent twice (a double click on Save) answered the second time that the name was taken;
the form now carries a one-time token: the second sending creates nothing and shows the scheme the first created."""

from __future__ import annotations

import re

import pytest

from pharmacrm.sales.models import AppraisalScheme
from tests.sales.test_kpi import ALL

pytestmark = pytest.mark.django_db


def test_the_new_scheme_sent_twice_creates_one(users, client_for):
    manager = client_for("manager")
    page = manager.get("/sales/appraisal/schemes/new/").content.decode()
    form = {"name": "月度考核", "period_kind": "month", "roles": ["rep"], "excellent": "90", "good": "75",
            "passing": "60", "active": "on",
            "form_token": re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)}  # fmt: skip
    for i in ALL:
        form.update({f"{i['code']}_{w}": i[w] for w in ("weight", "target", "floor", "cap")})

    first = manager.post("/sales/appraisal/schemes/new/", form)
    again = manager.post("/sales/appraisal/schemes/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    scheme = AppraisalScheme.objects.get()
    assert first.status_code == 302, first.content.decode()[-2000:]
    assert again.redirect_chain[-1][0] == f"/sales/appraisal/schemes/{scheme.pk}/"
    assert "This form was already sent" in again.content.decode()
    assert 'name="form_token"' not in again.content.decode()  # the scheme's page edits it, by its version
