"""A licence's business scope as printed, typed in by a rep (…经营范围详询李经理 139-2222-3333), was shown in clear to the
roles that read customers' licences but see personal data masked (the agent, the analyst, the auditor …): it is masked
for them on the customer's licences block, in /api/v1/licences/ and the audit trail, as a customer's notes are; the
roles that see personal data read it as typed, and a masked editor's masks saved back are put back as stored — on
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.licences import services
from pharmacrm.licences.models import Licence

pytestmark = pytest.mark.django_db

NOTE = "医疗机构执业，经营范围详询李经理 139-2222-3333 或 li.zhou@example.com"
SHOWN = "医疗机构执业，经营范围详询李经理 139****3333 或 l***@example.com"
CLEAR = ("139-2222-3333", "li.zhou@example.com")
NUMBER = "PDY60006X31010417A1001"


def practice(**extra):
    today = timezone.localdate()
    return {"kind": "medical_practice", "number": NUMBER, "issuer": "上海市卫生健康委员会",
            "issued_on": today - dt.timedelta(days=400), "valid_until": today + dt.timedelta(days=900), **extra}  # fmt: skip


@pytest.fixture
def licence(users, ruijin):
    licence = services.create(users["kam"], ruijin, practice(scope_note="医疗机构执业"))
    return services.update(users["kam"], licence, {"scope_note": NOTE}, licence.version)


@pytest.mark.parametrize("role", ["agent", "analyst", "auditor"])
def test_the_scope_as_printed_is_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, licence, ruijin, role
):
    block = client_for(role).get(f"/licences/customer/{ruijin.pk}/").content.decode()
    assert SHOWN in block
    api = api_for(role)
    assert api.get(f"/api/v1/licences/{licence.pk}/").json()["scope_note"] == SHOWN
    texts = [block, str(api.get("/api/v1/licences/", {"institution": ruijin.pk}).json())]
    query = {"object_type": "licences.licence", "object_id": licence.pk}
    audit_page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    audited = str(api_for("auditor").get("/api/v1/audit/", query).json()["results"])
    assert SHOWN in audit_page and SHOWN in audited
    for text in [*texts, audit_page, audited]:
        assert not any(clear in text for clear in CLEAR)


def test_the_scope_as_printed_is_read_as_typed_by_roles_that_see_personal_data(client_for, api_for, licence, ruijin):
    assert NOTE in client_for("kam").get(f"/licences/customer/{ruijin.pk}/").content.decode()
    assert api_for("manager").get(f"/api/v1/licences/{licence.pk}/").json()["scope_note"] == NOTE
    query = {"object_type": "licences.licence", "object_id": licence.pk}
    assert NOTE in str(api_for("admin").get("/api/v1/audit/", query).json()["results"])
    assert Licence.objects.get(pk=licence.pk).scope_note == NOTE


@pytest.fixture
def agents_record_licences(monkeypatch):
    """A deployment that lets its service agents, who see personal data masked, record customers' licences."""
    from pharmacrm.core import access
    from pharmacrm.core.roles import MATRIX, Cap, Role

    monkeypatch.setitem(MATRIX, Cap.MANAGE_LICENCES, MATRIX[Cap.MANAGE_LICENCES] | {Role.AGENT})
    access._capabilities_of.cache_clear()
    yield
    access._capabilities_of.cache_clear()


def test_a_masked_editor_saving_the_masked_scope_back_keeps_the_stored_details(
    agents_record_licences, client_for, api_for, licence
):
    agent = client_for("agent")
    form = agent.get(f"/licences/{licence.pk}/edit/")
    assert form.status_code == 200 and SHOWN in form.content.decode()
    assert not any(clear in form.content.decode() for clear in CLEAR)
    posted = {k: v for k, v in form.context["form"].initial.items() if v is not None}
    posted.update({"issuer": "上海市卫健委", "version": licence.version})
    answer = agent.post(f"/licences/{licence.pk}/edit/", posted)
    assert answer.status_code == 302, answer.content.decode()[-2000:]
    licence.refresh_from_db()
    assert (licence.issuer, licence.scope_note) == ("上海市卫健委", NOTE)
    api = api_for("agent")
    shown = api.get(f"/api/v1/licences/{licence.pk}/").json()
    answer = api.patch(f"/api/v1/licences/{licence.pk}/", {"scope_note": shown["scope_note"] + "（副本）",
                                                           "version": shown["version"]}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer.json()["scope_note"] == SHOWN + "（副本）"  # answered as the agent reads it
    licence.refresh_from_db()
    assert licence.scope_note == NOTE + "（副本）"
