"""Customer services: validation, optimistic locking, scope, duplicates, merge, audit."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import normalise, search, services
from pharmacrm.customers.models import Institution, MergeRecord, Person, SearchTerm
from tests.concurrency import held_while


def test_a_bad_credit_code_is_refused_with_the_field_and_the_reason(users, beijing):
    bad = normalise.make_credit_code("91110000MA0000001")[:-1] + "0"
    with translation.override("en"):
        with pytest.raises(ValidationError) as exc:
            services.create_institution(users["agent"], {"name": "测试医院", "kind": "hospital", "credit_code": bad})
        assert "check character" in str(exc.value.message_dict["credit_code"])
    with translation.override("zh-hans"):  # the default language
        assert "校验码" in str(exc.value.message_dict["credit_code"])
    assert not Institution.objects.filter(name="测试医院").exists()


@pytest.mark.parametrize(
    "mobile, ok",
    [("13800138000", True), ("+86 138-0013-8000", True), ("12800138000", False), ("1380013800", False)],
)
def test_mobile_numbers_are_validated(users, mobile, ok):
    data = {"name": "李娜", "mobile": mobile}
    if ok:
        person = services.create_person(users["agent"], data)
        assert person.mobile == "13800138000"
    else:
        with pytest.raises(ValidationError) as exc:
            services.create_person(users["agent"], data)
        assert "mobile" in exc.value.message_dict


@pytest.mark.parametrize("landline, ok", [("010-12345678", True), ("0755-1234567", True), ("12345678", False)])
def test_landlines_need_an_area_code(users, landline, ok):
    if ok:
        assert services.create_person(users["agent"], {"name": "王芳", "landline": landline}).landline
    else:
        with pytest.raises(ValidationError):
            services.create_person(users["agent"], {"name": "王芳", "landline": landline})


def test_the_second_of_two_concurrent_edits_gets_a_conflict_and_the_first_is_kept(users, xiehe):
    a = Institution.objects.get(pk=xiehe.pk)
    b = Institution.objects.get(pk=xiehe.pk)
    services.update_institution(users["agent"], a, {"address": "东城区帅府园1号"}, version=a.version)
    with pytest.raises(services.ConflictError):
        services.update_institution(users["manager"], b, {"address": "别的地址"}, version=b.version)
    assert Institution.objects.get(pk=xiehe.pk).address == "东城区帅府园1号"


def test_updates_are_audited_with_before_and_after(users, xiehe):
    services.update_institution(users["agent"], xiehe, {"beds": 2100})
    entry = AuditEntry.objects.filter(action="update", object_id=str(xiehe.pk)).first()
    assert entry.changes["beds"] == [2000, 2100]
    assert entry.actor == users["agent"]


def test_personal_values_never_appear_in_clear_in_the_audit_trail(users, xiehe):
    person = Person.objects.get(name="张伟")
    services.update_person(users["agent"], person, {"mobile": "13900139000"})
    entry = AuditEntry.objects.filter(action="update", object_id=str(person.pk)).first()
    before, after = entry.changes["mobile"]
    assert "13900139000" not in str(entry.changes) and "13800138000" not in str(entry.changes)
    assert before != after


def test_the_auditor_changes_nothing(users, xiehe):
    with pytest.raises(PermissionDenied):
        services.update_institution(users["auditor"], xiehe, {"beds": 1})
    with pytest.raises(PermissionDenied):
        services.create_institution(users["auditor"], {"name": "x", "kind": "clinic"})


def test_a_rep_cannot_change_an_institution_outside_their_territory(users, ruijin, xiehe):
    with pytest.raises(PermissionDenied):
        services.update_institution(users["rep"], ruijin, {"beds": 1})
    services.update_institution(users["rep"], xiehe, {"beds": 2001})


def test_a_department_needs_its_hospital(users, beijing):
    with pytest.raises(ValidationError) as exc:
        services.create_institution(users["agent"], {"name": "心内科", "kind": "department"})
    assert "parent" in exc.value.message_dict


def test_duplicates_are_found_by_phone_and_by_name_in_the_same_city(users, xiehe, beijing):
    copy = services.create_institution(
        users["agent"], {"name": "北京 协和医院", "kind": "hospital", "region": beijing, "phone": "01069156114"}
    )
    reasons = dict((o.pk, r) for o, r in services.duplicates_of(copy))
    assert reasons[xiehe.pk] in ("phone", "name_city")
    groups = services.institution_duplicates()
    assert any({xiehe.pk, copy.pk} <= set(g.ids) for g in groups)


def test_people_with_the_same_mobile_are_duplicates(users, xiehe):
    twin = services.create_person(users["agent"], {"name": "张 伟", "mobile": "138 0013 8000"})
    original = Person.objects.get(name="张伟")
    assert (original, "phone") in services.duplicates_of(twin)


def test_a_merged_records_phone_and_email_point_to_the_record_it_was_merged_into(users, xiehe):
    """张伟 entered twice, merged: the copy's mobile and e-mail stayed on the merged record. A third entry typed
    with that mobile (or e-mail) was no likely duplicate of anyone, on its page or in the duplicates panel; now
    it points to 张伟's surviving record, as the search and the new-person warning do."""
    original = Person.objects.get(name="张伟")
    copy = services.create_person(users["manager"], {"name": "张伟", "institution": xiehe, "mobile": "13900139000",
                                                     "email": "zhangwei@example.cn"})  # fmt: skip
    services.merge(users["manager"], original, copy)
    assert services.duplicates_of(original) == []  # its own merged record is no duplicate of it
    assert not [g for g in services.person_duplicates() if original.pk in g.ids]
    third = services.create_person(users["agent"], {"name": "张卫", "mobile": "139 0013 9000"})
    fourth = services.create_person(users["agent"], {"name": "张薇", "email": "ZhangWei@example.cn"})
    assert services.duplicates_of(third) == [(original, "phone")]
    assert services.duplicates_of(fourth) == [(original, "email")]
    groups = {(g.reason, tuple(sorted(g.ids))) for g in services.person_duplicates()}
    assert groups == {("phone", (original.pk, third.pk)), ("email", (original.pk, fourth.pk))}


def test_a_merged_institutions_phone_points_to_the_institution_it_was_merged_into(users, xiehe, beijing):
    copy = services.create_institution(users["manager"], {"name": "协和医院东院", "kind": "hospital", "region": beijing,
                                                          "phone": "010-65295114"})  # fmt: skip
    services.merge(users["manager"], xiehe, copy)
    again = services.create_institution(
        users["agent"], {"name": "协和东院", "kind": "hospital", "phone": "01065295114"}
    )
    assert services.duplicates_of(again) == [(xiehe, "phone")]
    assert [sorted(g.ids) for g in services.institution_duplicates() if g.reason == "phone"] == [
        sorted([xiehe.pk, again.pk])
    ]


def test_merge_moves_people_and_departments_and_keeps_the_history(users, xiehe, beijing):
    dup = services.create_institution(
        users["agent"], {"name": "协和医院", "kind": "hospital", "region": beijing, "address": "帅府园1号"}
    )
    moved = services.create_person(users["agent"], {"name": "刘洋", "institution": dup})
    survivor = services.merge(users["manager"], xiehe, dup)
    dup.refresh_from_db()
    assert dup.merged_into == survivor
    assert Person.objects.get(pk=moved.pk).institution == survivor
    assert survivor.address == "帅府园1号"  # the survivor's empty field was filled
    assert MergeRecord.objects.get(merged_id=dup.pk).snapshot["name"] == "协和医院"
    assert AuditEntry.objects.filter(action="merge", object_id=str(survivor.pk)).exists()
    assert not SearchTerm.objects.filter(kind=1, obj_id=dup.pk).exists()
    assert [h.obj for h in search.search(users["agent"], "协和医院")] == [survivor]


def test_only_managers_and_admins_may_merge(users, xiehe, ruijin):
    with pytest.raises(PermissionDenied):
        services.merge(users["agent"], xiehe, ruijin)


def test_consent_withdrawal_is_the_current_state(users, xiehe):
    person = Person.objects.get(name="张伟")
    services.record_consent(users["agent"], person, {"purpose": "marketing", "channel": "phone", "status": "given"})
    services.record_consent(users["agent"], person, {"purpose": "marketing", "channel": "email", "status": "withdrawn"})
    assert services.current_consents(person)["marketing"].status == "withdrawn"


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_consent_recorded_while_the_person_is_merged_away_is_not_left_on_the_merged_record(users, xiehe):
    """张伟 withdraws his consent on the copy's page while a manager merges the copy into his record: the
    withdrawal waited for the merge and was written on the merged record after its consents had moved, so the
    surviving record still showed marketing as allowed. Now it is refused, as on a merged record's page."""
    from pharmacrm.customers.models import Consent

    original = Person.objects.get(name="张伟")
    copy = services.create_person(users["manager"], {"name": "张伟", "mobile": "13900139000"})
    services.record_consent(
        users["agent"], copy, {"purpose": "marketing", "channel": "phone", "status": "given"}
    )
    refused: list[Exception] = []

    def withdraw():
        try:
            services.record_consent(users["agent"], copy, {"purpose": "marketing", "channel": "phone",
                                                           "status": "withdrawn"})  # fmt: skip
        except PermissionDenied as e:
            refused.append(e)

    held_while(lambda: services.merge(users["manager"], original, Person.objects.get(pk=copy.pk)), withdraw)
    assert not Consent.objects.filter(person=copy).exists()  # nothing left behind on the merged record
    assert len(refused) == 1  # the officer is told, and records it on the surviving record


def test_deleting_is_audited_and_removes_it_from_search(users, ruijin):
    pk = ruijin.pk
    services.delete_customer(users["manager"], ruijin)
    assert not Institution.objects.filter(pk=pk).exists()
    assert AuditEntry.objects.filter(action="delete", object_id=str(pk)).exists()
    assert search.search(users["agent"], "瑞金") == []


# --- people carry their institution's region (the columns lists and the rep's scope filter on) -----


def _region_of(person) -> tuple:
    return tuple(Person.objects.filter(pk=person.pk).values_list("region_id", "province", "city").get())


def test_a_person_takes_the_region_of_their_institution_and_follows_a_move(users, xiehe, ruijin):
    from pharmacrm.core import access

    zhang = Person.objects.get(name="张伟")
    assert _region_of(zhang) == ("110105", "110000", "110100")
    rep = users["rep"]  # the North team: Beijing
    assert access.people_for(rep).filter(pk=zhang.pk).exists()
    services.update_person(users["admin"], zhang, {"institution": ruijin, "department": None})
    assert _region_of(zhang) == ("310104", "310000", "310100")
    assert not access.people_for(rep).filter(pk=zhang.pk).exists()


def test_moving_an_institution_to_another_region_moves_its_people_in_lists_and_scope(users, xiehe, shanghai, client_for):
    from pharmacrm.core import access

    zhang = Person.objects.get(name="张伟")
    rep = users["rep"]
    assert access.people_for(rep).filter(pk=zhang.pk).exists()
    services.update_institution(users["admin"], xiehe, {"region": shanghai})
    assert _region_of(zhang) == ("310104", "310000", "310100")
    assert not access.people_for(users["rep"]).filter(pk=zhang.pk).exists()
    page = client_for("agent").get("/customers/people/?province=310000").content.decode()
    assert "张伟" in page
    page = client_for("agent").get("/customers/people/?province=110000").content.decode()
    assert "张伟" not in page


def test_merging_institutions_gives_the_moved_people_the_survivors_region(users, xiehe, ruijin):
    li = services.create_person(users["admin"], {"name": "李娜", "institution": ruijin})
    assert _region_of(li)[1] == "310000"
    services.merge(users["manager"], xiehe, ruijin)
    assert _region_of(li) == ("110105", "110000", "110100")


def test_a_hospital_given_its_region_by_a_merge_takes_its_departments_along(users, beijing):
    """The hospital entered without a region took the Beijing copy's region in the merge, and the Beijing rep saw
    it, but not its departments: they stayed nowhere, missing from the rep's lists, search and the hospital's page."""
    from pharmacrm.core import access

    admin, rep = users["admin"], users["rep"]
    hospital = services.create_institution(admin, {"name": "朝阳医院", "kind": "hospital"})
    cardiology = services.create_institution(admin, {"name": "心内科", "kind": "department", "parent": hospital})
    copy = services.create_institution(admin, {"name": "朝阳医院", "kind": "hospital", "region": beijing})

    services.merge(users["manager"], hospital, copy)

    cardiology.refresh_from_db()
    assert (cardiology.region_id, cardiology.province) == ("110105", "110000")
    assert access.institutions_for(rep).filter(pk=cardiology.pk).exists()
    history = AuditEntry.objects.filter(object_type="customers.institution", object_id=str(cardiology.pk))
    assert history.latest("seq").changes == {"region": [None, "110105"]}


def test_people_owned_through_their_institution_stay_visible_outside_the_territory(users, ruijin):
    from pharmacrm.core import access

    rep = users["rep"]
    wang = services.create_person(users["admin"], {"name": "王芳", "institution": ruijin})
    assert not access.people_for(rep).filter(pk=wang.pk).exists()
    services.update_institution(users["admin"], ruijin, {"owner": rep})
    rep = type(rep).objects.get(pk=rep.pk)  # a new request: scope facts are read afresh
    assert access.people_for(rep).filter(pk=wang.pk).exists()
    assert access.visible_ids(rep, "person", [wang.pk]) == {wang.pk}


def test_a_merged_away_institution_cannot_be_chosen_for_a_new_person_or_department(users, xiehe, beijing):
    dup = services.create_institution(users["agent"], {"name": "协和医院东院", "kind": "hospital", "region": beijing})
    services.merge(users["manager"], xiehe, dup)
    dup.refresh_from_db()
    with translation.override("en"):
        with pytest.raises(ValidationError) as exc:
            services.create_person(users["agent"], {"name": "赵敏", "institution": dup})
        assert f"was merged into 北京协和医院 ({xiehe.code})" in str(exc.value.message_dict["institution"])
        with pytest.raises(ValidationError) as exc:
            services.create_institution(users["agent"], {"name": "心内科", "kind": "department", "parent": dup})
        assert "merged into" in str(exc.value.message_dict["parent"])
    with translation.override("zh-hans"):  # the message is in the language of the request that raised it
        with pytest.raises(ValidationError) as exc:
            services.create_person(users["agent"], {"name": "赵敏", "institution": dup})
    assert f"协和医院东院（{dup.code}）已合并到 北京协和医院（{xiehe.code}）" in str(exc.value.message_dict["institution"])
    assert not Person.objects.filter(name="赵敏").exists()
    assert not Institution.objects.filter(name="心内科", parent=dup).exists()
    # the survivor is the right choice, and editing someone else keeps working
    person = services.create_person(users["agent"], {"name": "赵敏", "institution": xiehe})
    services.update_person(users["agent"], person, {"title": "主任医师"}, version=person.version)


@pytest.mark.parametrize("version", ["abc", "²", "١", "1" * 40])
def test_a_garbled_version_is_a_stale_edit_not_a_server_error(users, xiehe, version):
    """A version that is no ASCII number counts as an old one: a conflict and nothing changed, instead of
    a ValueError (500) — or "١" (an Arabic-Indic one) taken for version 1."""
    for change in ({"address": "东城区帅府园1号"}, {}):
        with pytest.raises(services.ConflictError):
            services.update_institution(users["admin"], Institution.objects.get(pk=xiehe.pk), change, version=version)
    fresh = Institution.objects.get(pk=xiehe.pk)
    assert (fresh.address, fresh.version) == (xiehe.address, xiehe.version)
