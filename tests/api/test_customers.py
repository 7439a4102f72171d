"""Institutions and people over the API: CRUD, per-field errors in two languages, versions, scope."""

from __future__ import annotations

import pytest
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import normalise, services
from pharmacrm.customers.models import Institution, Person

A = AuditEntry.Action
GOOD_CODE = normalise.make_credit_code("91110105MA0000000")
BAD_CODE = GOOD_CODE[:-1] + ("0" if GOOD_CODE[-1] != "0" else "1")


def test_a_kam_creates_an_institution_and_the_trail_records_it(api_for, users, beijing):
    response = api_for("kam").post(
        "/api/v1/institutions/",
        {
            "name": "北京朝阳医院", "kind": "hospital", "grade": "3A", "region": "110105", "credit_code": GOOD_CODE,
            "beds": 1900, "specialties": ["呼吸科"], "tags": ["核心"], "tier": "vip",
        },
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["code"].startswith("I") and body["version"] == 1 and response["ETag"] == '"1"'
    assert body["region_name"] == "北京市朝阳区" and body["tags"] == ["核心"]
    entry = AuditEntry.objects.get(
        action=A.CREATE, object_id=str(body["id"]), object_type="customers.institution"
    )
    assert entry.actor == users["kam"] and entry.changes["credit_code"] == [None, GOOD_CODE]


def test_a_bad_credit_code_is_reported_on_its_field_in_english_and_chinese(api_for, users):
    data = {"name": "某医院", "kind": "hospital", "credit_code": BAD_CODE}
    english = api_for("kam", lang="en").post("/api/v1/institutions/", data, format="json")
    assert english.status_code == 400
    assert english.json() == {
        "credit_code": [
            "The unified social credit code's check character is wrong: please check for a typing error."
        ]
    }
    chinese = api_for("kam", lang="zh-hans").post(
        "/api/v1/institutions/", {**data, "name": ""}, format="json"
    )
    assert chinese.status_code == 400
    assert chinese.json()["name"] == ["该字段不能为空。"]  # DRF's own catalogue: proves the language switch
    with translation.override("zh-hans"):
        expected = translation.gettext(
            "The unified social credit code's check character is wrong: please check for a typing error."
        )
    # credit code is checked by services only once the serializer's own checks pass
    chinese = api_for("kam", lang="zh-hans").post("/api/v1/institutions/", data, format="json")
    assert chinese.json() == {"credit_code": [expected]}
    assert not Institution.objects.filter(name="某医院").exists()


def test_person_validation_errors_name_each_field(api_for, xiehe):
    response = api_for("agent").post(
        "/api/v1/people/",
        {
            "name": "李娜",
            "institution": xiehe.pk,
            "mobile": "12345",
            "email": "not-an-address",
            "landline": "123",
        },
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"mobile", "email", "landline"}
    assert errors["mobile"] == ["Enter a valid mainland mobile (11 digits starting with 13–19), or a mobile from "
                                "elsewhere with its country code, e.g. +852 9123 4567."]


def test_an_update_needs_the_loaded_version_and_a_stale_one_gets_409(api_for, xiehe):
    client = api_for("kam")
    url = f"/api/v1/institutions/{xiehe.pk}/"
    version = client.get(url).json()["version"]

    missing = client.patch(url, {"beds": 2100}, format="json")
    assert missing.status_code == 400 and "version" in missing.json()

    ok = client.patch(url, {"beds": 2100, "version": version}, format="json")
    assert ok.status_code == 200 and ok.json()["version"] == version + 1 and ok.json()["beds"] == 2100

    stale = client.patch(url, {"beds": 2200, "version": version}, format="json")
    assert stale.status_code == 409
    assert stale.json()["current_version"] == version + 1
    assert "Someone else changed this record" in stale.json()["detail"]
    assert Institution.objects.get(pk=xiehe.pk).beds == 2100

    via_header = client.patch(url, {"beds": 2300}, format="json", HTTP_IF_MATCH=f'"{version + 1}"')
    assert via_header.status_code == 200 and via_header.json()["version"] == version + 2


def test_a_full_update_replaces_the_editable_fields(api_for, xiehe):
    client = api_for("manager")
    url = f"/api/v1/institutions/{xiehe.pk}/"
    current = client.get(url).json()
    response = client.put(url, {**current, "name": "北京协和医院东院", "tags": ["教学医院"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "北京协和医院东院" and response.json()["tags"] == ["教学医院"]


def test_deleting_an_institution_with_people_is_a_conflict_and_a_person_can_be_deleted(api_for, xiehe, zhang):
    client = api_for("manager")
    blocked = client.delete(f"/api/v1/institutions/{xiehe.pk}/")
    assert blocked.status_code == 409 and "detail" in blocked.json()
    assert client.delete(f"/api/v1/people/{zhang.pk}/").status_code == 204
    assert not Person.objects.filter(pk=zhang.pk).exists()
    assert AuditEntry.objects.filter(
        action=A.DELETE, object_type="customers.person", object_id=str(zhang.pk)
    ).exists()


# --- scope -------------------------------------------------------------------------------------


def test_a_rep_sees_beijing_but_not_shanghai(api_for, xiehe, ruijin):
    rep = api_for("rep")
    names = {i["name"] for i in rep.get("/api/v1/institutions/").json()["results"]}
    assert "北京协和医院" in names and ruijin.name not in names
    assert rep.get(f"/api/v1/institutions/{ruijin.pk}/").status_code == 404
    assert (
        rep.patch(f"/api/v1/institutions/{ruijin.pk}/", {"beds": 1, "version": 1}, format="json").status_code
        == 404
    )
    assert rep.get("/api/v1/search/", {"q": "瑞金"}).json()["results"] == []
    assert api_for("agent").get(f"/api/v1/institutions/{ruijin.pk}/").status_code == 200


def test_a_rep_cannot_attach_a_person_to_an_institution_outside_their_scope(api_for, ruijin):
    response = api_for("rep").post(
        "/api/v1/people/", {"name": "王芳", "institution": ruijin.pk}, format="json"
    )
    assert response.status_code == 400 and "institution" in response.json()


def test_a_rep_owns_what_they_create(api_for, users):
    response = api_for("rep").post(
        "/api/v1/institutions/", {"name": "西城药房", "kind": "pharmacy"}, format="json"
    )
    assert response.status_code == 201 and response.json()["owner"] == users["rep"].pk


# --- personal data -----------------------------------------------------------------------------


def test_an_agent_sees_the_mobile_masked_until_revealing_it_with_a_reason(api_for, zhang):
    client = api_for("agent")
    masked = client.get(f"/api/v1/people/{zhang.pk}/").json()["contact"]
    assert masked["mobile"] == "138****8000" and masked["masked"] is True
    assert masked["email"] == "z***@example.com" and masked["birthday"] == "****-03-15"
    assert not AuditEntry.objects.filter(action=A.READ_PERSONAL).exists()

    revealed = client.get(f"/api/v1/people/{zhang.pk}/", {"reveal_reason": "客户来电核实身份"}).json()[
        "contact"
    ]
    assert revealed["mobile"] == "138 0013 8000" and revealed["masked"] is False
    entry = AuditEntry.objects.get(action=A.READ_PERSONAL)
    assert entry.extra["reason"] == "客户来电核实身份" and entry.extra["people"] == [zhang.pk]


@pytest.mark.parametrize("role", ["rep", "kam"])
def test_reps_and_kams_see_contact_data_plain(role, api_for, zhang):
    contact = api_for(role).get(f"/api/v1/people/{zhang.pk}/").json()["contact"]
    assert contact["mobile"] == "138 0013 8000" and contact["masked"] is False


def test_an_analyst_sees_masked_data_even_with_a_reason(api_for, zhang):
    contact = (
        api_for("analyst").get(f"/api/v1/people/{zhang.pk}/", {"reveal_reason": "分析"}).json()["contact"]
    )
    assert contact["mobile"] == "138****8000" and contact["masked"] is True


def test_personal_fields_are_never_echoed_as_top_level_values(api_for, zhang):
    body = api_for("kam").get(f"/api/v1/people/{zhang.pk}/").json()
    assert not {"mobile", "email", "birthday", "id_number"} & set(body)


def _queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_a_list_page_audits_its_clear_reads_once(api_for, users, xiehe):
    for i in range(3):
        services.create_person(
            users["admin"], {"name": f"医生{i}", "institution": xiehe, "mobile": f"1390000000{i}"}
        )
    client = api_for("kam")
    before = AuditEntry.objects.filter(action=A.READ_PERSONAL).count()
    response = client.get("/api/v1/people/")
    assert response.status_code == 200 and response.json()["count"] == 4
    assert AuditEntry.objects.filter(action=A.READ_PERSONAL).count() == before + 1
    assert AuditEntry.objects.filter(action=A.READ_PERSONAL).latest("seq").extra["count"] == 4


def test_list_pages_cost_the_same_queries_for_one_row_or_many(api_for, users, xiehe, beijing):
    client = api_for("rep")  # the scoped role: its filters must not add per-row queries either
    client.get("/api/v1/roles/")  # the token's first use of the minute writes last_used_at
    people_one, institutions_one = (
        _queries(client, "/api/v1/people/"),
        _queries(client, "/api/v1/institutions/"),
    )
    for i in range(8):
        inst = services.create_institution(
            users["admin"], {"name": f"药房{i}", "kind": "pharmacy", "region": beijing, "tags": ["连锁"]}
        )
        services.create_person(users["admin"], {"name": f"药师{i}", "institution": inst, "tags": ["药师"]})
    assert _queries(client, "/api/v1/people/") == people_one
    assert _queries(client, "/api/v1/institutions/") == institutions_one
    assert institutions_one <= 10 and people_one <= 16


# --- filters and ordering ----------------------------------------------------------------------


def test_lists_filter_by_region_kind_tags_and_order_by_name(api_for, users, xiehe, ruijin):
    services.update_institution(users["admin"], ruijin, {"tags": ["教学医院"]})
    client = api_for("agent")

    def names(**params):
        return [i["name"] for i in client.get("/api/v1/institutions/", params).json()["results"]]

    assert names(region="110000") == ["北京协和医院", "心内科"]  # default order: oldest first
    assert names(region="310000") == [ruijin.name]
    assert names(kind="department") == ["心内科"]
    assert names(tags="教学医院") == [ruijin.name]
    assert names(ordering="-name")[0] == max(names(), key=lambda n: n)
    assert client.get("/api/v1/institutions/", {"region": "999999"}).status_code == 400
    people = client.get("/api/v1/people/", {"region": "110000"}).json()["results"]
    assert [p["name"] for p in people] == ["张伟"]
    assert client.get("/api/v1/people/", {"region": "310000"}).json()["count"] == 0


def test_pages_are_bounded(api_for, xiehe):
    body = api_for("agent").get("/api/v1/institutions/", {"page_size": 1}).json()
    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]


# --- consents, regions, search -----------------------------------------------------------------


def test_an_agent_records_a_consent_and_an_analyst_may_not(api_for, users, zhang):
    data = {
        "person": zhang.pk,
        "purpose": "marketing",
        "channel": "phone",
        "status": "given",
        "evidence": "录音 #123",
    }
    created = api_for("agent").post("/api/v1/consents/", data, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["recorded_by"] == users["agent"].pk
    assert api_for("analyst").post("/api/v1/consents/", data, format="json").status_code == 403
    listed = api_for("analyst").get("/api/v1/consents/", {"person": zhang.pk}).json()
    assert listed["count"] == 1 and listed["results"][0]["purpose"] == "marketing"


def test_a_consent_in_the_future_is_refused_on_its_field(api_for, zhang):
    data = {
        "person": zhang.pk,
        "purpose": "marketing",
        "channel": "sms",
        "status": "given",
        "at": "2999-01-01T00:00:00Z",
    }
    response = api_for("agent").post("/api/v1/consents/", data, format="json")
    assert response.status_code == 400 and list(response.json()) == ["at"]


def test_a_rep_does_not_see_consents_of_people_outside_their_scope(api_for, users, ruijin):
    outsider = services.create_person(users["admin"], {"name": "陈静", "institution": ruijin})
    services.record_consent(
        users["admin"], outsider, {"purpose": "service", "channel": "phone", "status": "given"}
    )
    assert api_for("rep").get("/api/v1/consents/").json()["count"] == 0
    assert api_for("agent").get("/api/v1/consents/").json()["count"] == 1


def test_regions_filter_by_parent_and_level(api_for):
    client = api_for("rep")
    children = client.get("/api/v1/regions/", {"parent": "110100", "page_size": 200}).json()
    assert children["count"] >= 16 and {r["full_name"] for r in children["results"]} >= {
        "北京市朝阳区",
        "北京市海淀区",
    }
    provinces = client.get("/api/v1/regions/", {"level": 1, "page_size": 200}).json()
    assert 31 <= provinces["count"] <= 34
    assert client.get("/api/v1/regions/310104/").json()["name"] == "徐汇区"


def test_search_ranks_by_pinyin_initials_and_masks_phones(api_for, xiehe, zhang, ruijin):
    client = api_for("agent")
    hits = client.get("/api/v1/search/", {"q": "bjxh"}).json()["results"]
    assert hits[0]["id"] == xiehe.pk and hits[0]["kind"] == "institution" and hits[0]["match"] == "pinyin"
    by_phone = client.get("/api/v1/search/", {"q": "13800138000"}).json()["results"]
    assert by_phone == [
        {
            "kind": "person", "id": zhang.pk, "code": zhang.code, "name": "张伟", "score": by_phone[0]["score"],
            "match": "phone", "institution": "北京协和医院", "region": None, "phone": "138****8000",
        }
    ]  # fmt: skip
    shanghai_only = client.get("/api/v1/search/", {"q": "医院", "region": "310000"}).json()["results"]
    assert [h["id"] for h in shanghai_only] == [ruijin.pk]
    assert client.get("/api/v1/search/", {"q": "医院", "region": "abc"}).status_code == 400
    assert client.get("/api/v1/search/").status_code == 400


def test_the_api_refuses_a_merged_away_institution_naming_the_survivor(api_for, users, xiehe, beijing):
    dup = services.create_institution(users["agent"], {"name": "协和医院西院", "kind": "hospital", "region": beijing})
    services.merge(users["manager"], xiehe, dup)
    response = api_for("kam").post("/api/v1/people/", {"name": "钱坤", "institution": dup.pk}, format="json")
    assert response.status_code == 400
    assert "merged into 北京协和医院" in str(response.json()["institution"])
    assert not Person.objects.filter(name="钱坤").exists()
