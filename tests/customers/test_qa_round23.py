"""Review round 23: customer master data — the 360 page, edit conflicts, deleting and merging."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import Institution, Person


def test_a_departments_page_names_its_hospital_outside_the_territory_without_a_link_to_a_not_found_page(
    users, client_for, ruijin
):
    """A rep's own department of a Shanghai hospital: its page linked the hospital in the breadcrumb and the
    hierarchy, and the link answered "Not found". The hospital is named, as on a person's page, not linked."""
    rep = users["rep"]
    dept = services.create_institution(users["admin"], {"name": "心内科", "kind": "department", "parent": ruijin,
                                                        "owner": rep})  # fmt: skip
    client = client_for("rep")
    page = client.get(reverse("customers:institution", args=[dept.pk])).content.decode()
    assert ruijin.name in page
    assert reverse("customers:institution", args=[ruijin.pk]) not in page
    assert client.get(reverse("customers:institution", args=[ruijin.pk])).status_code == 404
    # a reader who may open it still gets the link, in both places
    page = client_for("agent").get(reverse("customers:institution", args=[dept.pk])).content.decode()
    assert page.count(f'href="{reverse("customers:institution", args=[ruijin.pk])}"') == 2


def test_a_person_form_sent_back_with_a_hospital_outside_the_territory_lists_none_of_its_departments(
    users, client_for, xiehe, ruijin
):
    """The form refused the Shanghai hospital a rep had typed the id of, and came back listing that hospital's
    departments by name: what the rep may not see."""
    services.create_institution(users["admin"], {"name": "神经外科", "kind": "department", "parent": ruijin})
    page = client_for("rep").post(reverse("customers:person-create"), {
        "name": "李四", "role": "doctor", "institution": ruijin.pk, "tier": "new", "stage": "potential",
    })  # fmt: skip
    assert page.status_code == 200 and "institution" in page.context["form"].errors
    assert "神经外科" not in page.content.decode()
    # the hospital's own departments are still offered when it is one the rep may choose
    page = client_for("rep").post(reverse("customers:person-create"), {
        "name": "", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential",
    })  # fmt: skip
    assert "心内科" in page.content.decode()


def _conflicting_edit(users, client_for, xiehe, other_change: dict):
    """A KAM opens 张伟's edit form, the administrator saves `other_change`, the KAM saves a new title."""
    person = Person.objects.get(name="张伟")
    client = client_for("kam")
    url = reverse("customers:person-edit", args=[person.pk])
    form = client.get(url).context["form"]
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    services.update_person(users["admin"], person, other_change)
    data["title"] = "副主任医师"
    return client.post(url, data)


def test_an_edit_conflict_names_choices_and_people_in_the_readers_language(users, client_for, xiehe, beijing):
    """The conflict table showed the codes and ids of what the other person changed — 角色 pharmacist, 客户层级 vip,
    生命周期阶段 active, 负责人 8 — on a Chinese page. It shows what the form offers: labels and names."""
    answer = _conflicting_edit(users, client_for, xiehe, {
        "role": "pharmacist", "tier": "vip", "stage": "active", "owner": users["rep"],
    })  # fmt: skip
    assert answer.status_code == 409
    rows = {label: (theirs, mine) for label, theirs, mine in answer.context["conflict"]}
    assert rows["角色"] == ("药师", "医生")
    assert rows["客户层级"] == ("VIP客户", "新客户")
    assert rows["生命周期阶段"] == ("合作中", "潜在客户")
    assert rows["负责人"] == (str(users["rep"]), "—")
    assert rows["职称"] == ("主任医师", "副主任医师")


def test_an_edit_conflict_that_shows_personal_values_in_clear_is_an_audited_read(users, client_for, xiehe):
    """The table showed the mobile number the other person had just saved, in clear, and nothing in the audit trail
    said it had been read (the edit form's own clear values are)."""
    reads = AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL, actor=users["kam"])
    before = reads.count()
    answer = _conflicting_edit(users, client_for, xiehe, {"mobile": "13900139000"})
    assert answer.status_code == 409
    rows = {label: (theirs, mine) for label, theirs, mine in answer.context["conflict"]}
    assert rows["手机"] == ("139 0013 9000", "13800138000")
    entry = reads.order_by("-seq").first()
    assert reads.count() == before + 2  # the form opened, and the conflict
    assert (entry.extra["purpose"], entry.extra["fields"]) == ("edit form", ["mobile"])


def test_an_institution_edit_conflict_says_the_region_was_changed(users, client_for, xiehe, shanghai):
    """The region someone else changed was not in the table: the three region selects were left out of it."""
    client = client_for("kam")
    url = reverse("customers:institution-edit", args=[xiehe.pk])
    form = client.get(url).context["form"]
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"province": "110000", "city": "110100", "district": "110105", "version": str(xiehe.version)})
    services.update_institution(users["admin"], xiehe, {"region": shanghai})
    data["address"] = "东单帅府园1号"
    answer = client.post(url, data)
    assert answer.status_code == 409
    rows = {label: (theirs, mine) for label, theirs, mine in answer.context["conflict"]}
    assert "朝阳区" in rows["行政区划"][1] and "徐汇区" in rows["行政区划"][0]


def test_a_merged_away_record_is_not_deleted_on_its_own(users, client_for, xiehe):
    """Its page offers no Delete, but the delete page and its form still deleted it: the survivor's history then
    named a merge of nothing, and the phone the duplicate had no longer led to the survivor. Deleting the survivor
    deletes the customer, merged records included."""
    person = Person.objects.get(name="张伟")
    copy = services.create_person(users["admin"], {"name": "张伟", "mobile": "13900139000"})
    services.merge(users["manager"], person, copy)
    client = client_for("manager")
    url = reverse("customers:person-delete", args=[copy.pk])
    for answer in (client.get(url), client.post(url)):
        assert answer.status_code == 403
        assert reverse("customers:person", args=[person.pk]) in answer.content.decode()  # the record it lives in
    assert Person.objects.filter(pk=copy.pk).exists()
    client.post(reverse("customers:person-delete", args=[person.pk]), {"version": Person.objects.get(pk=person.pk).version})
    assert not Person.objects.filter(pk__in=[person.pk, copy.pk]).exists()


def test_a_merge_moves_people_and_departments_as_an_edit_would(users, xiehe, beijing):
    """The duplicate hospital's doctors and departments moved to the survivor with their version and `updated_at`
    unchanged and nothing in their history: a client syncing by `updated_since` kept them at the duplicate."""
    admin = users["admin"]
    dup = services.create_institution(admin, {"name": "北京协和医院东院", "kind": "hospital", "region": beijing})
    dept = services.create_institution(admin, {"name": "骨科", "kind": "department", "parent": dup})
    doctor = services.create_person(admin, {"name": "赵医生", "institution": dup, "department": dept})
    services.merge(users["manager"], xiehe, dup)
    doctor_after, dept_after = Person.objects.get(pk=doctor.pk), Institution.objects.get(pk=dept.pk)
    assert (doctor_after.institution_id, dept_after.parent_id) == (xiehe.pk, xiehe.pk)
    assert (doctor_after.version, dept_after.version) == (doctor.version + 1, dept.version + 1)
    assert doctor_after.updated_at > doctor.updated_at and dept_after.updated_at > dept.updated_at
    entry = AuditEntry.objects.filter(object_type="customers.person", object_id=str(doctor.pk)).order_by("-seq").first()
    assert (entry.action, entry.changes, entry.extra) == (
        AuditEntry.Action.UPDATE, {"institution": [dup.pk, xiehe.pk]}, {"institution_merged": dup.pk}
    )
    entry = AuditEntry.objects.filter(object_type="customers.institution", object_id=str(dept.pk)).order_by("-seq").first()
    assert entry.changes == {"parent": [dup.pk, xiehe.pk]}
    # two departments of one hospital merged: the duplicate's people change department
    dup_dept = services.create_institution(admin, {"name": "心内科", "kind": "department", "parent": xiehe})
    nurse = services.create_person(admin, {"name": "钱护士", "institution": xiehe, "department": dup_dept})
    heart = Institution.objects.get(name="心内科", parent=xiehe, pk__lt=dup_dept.pk)
    services.merge(users["manager"], heart, dup_dept)
    assert Person.objects.get(pk=nurse.pk).version == nurse.version + 1
    entry = AuditEntry.objects.filter(object_type="customers.person", object_id=str(nurse.pk)).order_by("-seq").first()
    assert entry.changes == {"department": [dup_dept.pk, heart.pk]}
    assert audit_ok()


def audit_ok() -> bool:
    from pharmacrm.core import audit

    return audit.verify().ok


def test_the_audit_page_names_what_moved_a_department_or_a_person_along(users, client_for, xiehe, shanghai, beijing):
    """A department that followed its hospital to Shanghai read "hospital_moved 1" on the Chinese audit page: the
    detail's key and the hospital's id. So did a person moved by their department, and those a merge moved."""
    admin = users["admin"]
    services.update_institution(admin, xiehe, {"region": shanghai})
    dup = services.create_institution(admin, {"name": "协和东院", "kind": "hospital", "region": beijing})
    services.create_person(admin, {"name": "赵医生", "institution": dup})
    services.merge(users["manager"], xiehe, dup)
    other = services.create_institution(admin, {"name": "朝阳医院", "kind": "hospital", "region": beijing})
    heart = Institution.objects.get(name="心内科")
    services.update_institution(admin, heart, {"parent": other})
    page = client_for("auditor").get(reverse("audit")).content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    for key in ("hospital_moved", "department_moved", "institution_merged"):
        assert key not in text
    assert "心内科 行政区划 北京市朝阳区 → 上海市徐汇区 医院 北京协和医院" in text
    assert "张伟 机构 北京协和医院 → 朝阳医院 科室 心内科" in text
    assert "赵医生 机构 协和东院 → 北京协和医院 被合并的记录 协和东院" in text


def test_a_record_changed_after_the_merge_page_was_opened_is_not_merged(users, client_for, xiehe):
    """A manager compares 张伟 with a copy; meanwhile an agent finds the copy is another 张伟 and moves him to his
    own hospital. The manager's Merge merged what they had never compared (a merge cannot be undone). It is
    refused now, and the page shows both records as they are, to compare again."""
    person = Person.objects.get(name="张伟")
    copy = services.create_person(users["admin"], {"name": "张伟", "mobile": "13800138000", "title": "主治医师"})
    client = client_for("manager")
    url = reverse("customers:merge", args=["person", person.pk, copy.pk])
    page = client.get(url).content.decode()
    sent = dict(re.findall(r'name="(version_\d+)" value="(\d+)"', page))
    assert sent == {f"version_{person.pk}": "1", f"version_{copy.pk}": "1"}
    services.update_person(users["agent"], copy, {"title": "药剂科主任", "role": "pharmacist"}, version=1)

    answer = client.post(url, {"survivor": person.pk, **sent})
    assert answer.status_code == 200
    assert not Person.objects.get(pk=copy.pk).merged_into_id
    from django.utils.translation import gettext

    said = [str(m) for m in answer.context["messages"]]
    assert said == [gettext(
        "Someone changed one of these records after you opened this page, so they were not merged. Compare them "
        "again below, and merge them if they are still the same customer."
    )]  # fmt: skip
    text = answer.content.decode()
    assert "药剂科主任" in text  # compared again as it is now
    sent = dict(re.findall(r'name="(version_\d+)" value="(\d+)"', text))
    assert client.post(url, {"survivor": person.pk, **sent}).status_code == 302
    assert Person.objects.get(pk=copy.pk).merged_into_id == person.pk


def test_an_id_card_number_another_person_has_is_noted_while_typing(users, client_for, xiehe, ruijin):
    """The person form checks the ID card number while it is typed (a field of LIVE_FIELDS) and noted a phone or an
    e-mail another person has, but said nothing of an ID number another person has: the duplicate was found only
    on the saved record's page. As for phones, only people the user may see count."""
    from django.utils.translation import gettext

    number = "11010519491231002X"
    services.create_person(users["admin"], {"name": "王芳", "institution": xiehe, "id_number": number})
    note = gettext("Another person already has this ID card number: check for a duplicate.")

    def typed(role, value):
        answer = client_for(role).post(reverse("customers:person-create"), {"_validate": "id_number", "id_number": value},
                                       HTTP_HX_REQUEST="true")  # fmt: skip
        return answer.content.decode()

    assert note in typed("agent", number.lower())
    assert note not in typed("agent", "110105194912310011")  # valid, nobody's
    services.create_person(users["admin"], {"name": "李娜", "institution": ruijin, "id_number": "310104198001010017"})
    assert note in typed("agent", "310104198001010017")
    assert note not in typed("rep", "310104198001010017")  # a Shanghai person: not the Beijing rep's to know of


def test_the_services_refuse_an_unknown_code_naming_the_field(admin_user, xiehe):
    """A script calling the services directly stored stage "customer" (no such stage): the page showed it raw."""
    from django.core.exceptions import ValidationError

    from pharmacrm.customers import services as customer_services

    person = xiehe.people.first()
    with pytest.raises(ValidationError) as refused:
        customer_services.update_person(admin_user, person, {"stage": "customer", "role": "surgeon"})
    assert set(refused.value.message_dict) == {"stage", "role"}
    assert refused.value.message_dict["stage"] == ["值 'customer' 不是有效选项。"]  # the default language's words
    with pytest.raises(ValidationError) as refused:
        customer_services.update_institution(admin_user, xiehe, {"grade": "4A", "tier": "gold"})
    assert set(refused.value.message_dict) == {"grade", "tier"}
    person.refresh_from_db()
    assert person.stage != "customer"
    customer_services.update_person(admin_user, person, {"stage": "active", "gender": ""})  # known codes, or none
