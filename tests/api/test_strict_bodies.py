"""What a request body may hold: a field the endpoint does not know is refused by name (a typing error lost the
client's value, with a 200), and numbers, ids and dates in other than ASCII digits are refused (Python read "١٢"
and "１２" as 12). The fields a record is read with may be sent back unchanged (GET, change one field, PUT)."""

from __future__ import annotations

import inspect

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation
from rest_framework import serializers as drf_serializers
from rest_framework.test import APIClient

from pharmacrm.customers.models import ImportJob, Institution
from pharmacrm.servicedesk.models import Ticket

from .conftest import token_for

TICKET = {"subject": "询问说明书用法用量", "channel": "phone", "category": "drug_info",
          "received_at": "2026-02-13T16:00:00+08:00"}  # fmt: skip


def _unknown_in(lang: str) -> str:
    with translation.override(lang):
        return translation.gettext("Unknown field.")


def test_a_misspelt_field_is_refused_by_name_on_create_and_nothing_is_written(api_for, beijing):
    before = Institution.objects.count()
    r = api_for("kam").post("/api/v1/institutions/", {"name": "北京朝阳医院", "kind": "hospital", "regoin": "110105"},
                            format="json")  # fmt: skip
    assert r.status_code == 400, r.content
    assert r.json() == {"regoin": ["Unknown field."]}
    assert Institution.objects.count() == before


def test_a_misspelt_field_is_refused_with_the_other_errors_on_put_and_patch(api_for, xiehe):
    client = api_for("manager")
    url = f"/api/v1/institutions/{xiehe.pk}/"
    current = client.get(url).json()
    r = client.patch(url, {"nmae": "协和东院", "version": current["version"]}, format="json")
    assert r.status_code == 400 and r.json() == {"nmae": ["Unknown field."]}
    r = client.put(url, {**current, "name": "", "nmae": "协和东院"}, format="json")
    assert r.status_code == 400 and set(r.json()) == {"name", "nmae"}
    xiehe.refresh_from_db()
    assert xiehe.name == current["name"] and xiehe.version == current["version"]


@pytest.mark.parametrize("lang", ["zh-hans", "zh-hant", "en"])
def test_the_unknown_field_message_follows_the_request_language(users, xiehe, lang):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['agent'])}", HTTP_ACCEPT_LANGUAGE=lang)
    r = client.post("/api/v1/tickets/", {**TICKET, "institution": xiehe.pk, "descripton": "来电"}, format="json")
    assert r.status_code == 400 and r.json() == {"descripton": [_unknown_in(lang)]}
    assert not Ticket.objects.exists()


def test_a_record_read_with_get_can_be_sent_back_with_one_field_changed(api_for, xiehe):
    client = api_for("agent")
    created = client.post("/api/v1/tickets/", {**TICKET, "institution": xiehe.pk}, format="json").json()
    r = api_for("manager").patch(f"/api/v1/institutions/{xiehe.pk}/",
                                 {**api_for("manager").get(f"/api/v1/institutions/{xiehe.pk}/").json(), "beds": 2100},
                                 format="json")  # fmt: skip
    assert r.status_code == 200, r.content
    assert r.json()["beds"] == 2100 and r.json()["id"] == xiehe.pk
    assert created["number"]  # the read-only fields of a creation's answer are not refused either


def test_an_upload_still_takes_its_form_fields_and_refuses_a_misspelt_one(api_for, xiehe):
    csv = "姓名,所属机构,手机,外部编号\n王芳,北京协和医院,13900139000,P-1\n".encode()
    file = SimpleUploadedFile("联系人.csv", csv, content_type="text/csv")
    client = api_for("kam")
    r = client.post("/api/v1/imports/", {"file": file, "target": "people", "mdoe": "good"}, format="multipart")
    assert r.status_code == 400 and r.json() == {"mdoe": ["Unknown field."]}
    assert not ImportJob.objects.exists()
    file.seek(0)
    r = client.post("/api/v1/imports/", {"file": file, "target": "people", "mode": "good"}, format="multipart")
    assert r.status_code in (200, 201, 202), r.content
    assert ImportJob.objects.get().mode == "good"


@pytest.mark.parametrize("zero", ["٠", "０", "۰"], ids=["arabic-indic", "full-width", "persian"])
def test_an_id_in_other_than_ascii_digits_is_refused_by_name(api_for, users, xiehe, zero):
    written = "".join(chr(ord(zero) + int(d)) for d in str(xiehe.pk))  # 协和's id: it was read as such
    body = {**TICKET, "institution": written}
    r = api_for("agent").post("/api/v1/tickets/", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json() == {"institution": ["A valid integer is required."]}
    r = api_for("agent", lang="zh-hans").post("/api/v1/tickets/", body, format="json")
    assert r.json() == {"institution": ["请输入有效的整数。"]}
    assert not Ticket.objects.exists()


def test_a_date_in_full_width_digits_is_refused_by_name(api_for, xiehe):
    r = api_for("agent").post(
        "/api/v1/tickets/", {**TICKET, "institution": xiehe.pk, "received_at": "２０２６-02-13T16:00:00+08:00"},
        format="json",
    )  # fmt: skip
    assert r.status_code == 400 and list(r.json()) == ["received_at"]
    assert not Ticket.objects.exists()


def _pharmacrm_serializers():
    seen, todo = set(), [drf_serializers.Serializer]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return [c for c in seen if c.__module__.startswith("pharmacrm.") and not inspect.isabstract(c)]


def test_every_serializer_of_the_api_refuses_unknown_fields_and_foreign_digits():
    import pharmacrm.api_urls  # noqa: F401 — every API module, with its serializers
    from pharmacrm.core.api_utils import StrictInputMixin

    found = _pharmacrm_serializers()
    assert len(found) > 100
    lax = sorted(f"{c.__module__}.{c.__qualname__}" for c in found if not issubclass(c, StrictInputMixin))
    assert lax == []


def test_an_xml_upload_refuses_a_misspelt_form_field(api_for):
    xml = SimpleUploadedFile("ack.xml", b"<ichicsrack/>", content_type="application/xml")
    r = api_for("pv").post("/api/v1/safety/acks/", {"file": xml, "commnet": "网关回执"}, format="multipart")
    assert r.status_code == 400 and r.json() == {"commnet": ["Unknown field."]}


def test_a_version_or_a_query_id_in_full_width_digits_is_not_read_as_a_number(api_for, xiehe):
    client = api_for("manager")
    url = f"/api/v1/institutions/{xiehe.pk}/"
    version = client.get(url).json()["version"]
    written = "".join(chr(ord("０") + int(d)) for d in str(version))
    r = client.patch(url, {"beds": 2100}, format="json", HTTP_IF_MATCH=f'"{written}"')
    assert r.status_code == 400 and list(r.json()) == ["version"]
    xiehe.refresh_from_db()
    assert xiehe.version == version
    r = client.get("/api/v1/service-board/", {"team": "１"})  # refused before it is looked up
    assert r.status_code == 400 and list(r.json()) == ["team"], r.content
