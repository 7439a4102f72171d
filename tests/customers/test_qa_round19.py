"""Session 19 review (issue 2, customer master data): what a deleted survivor leaves behind, a customer handed
over to a colleague, merges that keep both records' notes, landlines, e-mails typed with a Chinese input method,
the hospital a department belongs to, ID card numbers."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import Consent, Institution, Person

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


# --- deleting a record that others were merged into ----------------------------------------------------------


def test_deleting_a_person_deletes_the_duplicates_merged_into_them_instead_of_reviving_them(users, client_for, xiehe):
    admin = users["admin"]
    keep = services.create_person(admin, {"name": "李娜", "institution": xiehe, "mobile": "13900139000"})
    dup = services.create_person(
        admin, {"name": "李娜", "institution": xiehe, "landline": "010-69156115", "birthday": datetime.date(1980, 5, 6)}
    )
    services.record_consent(admin, dup, {"purpose": "marketing", "channel": "sms", "status": "withdrawn"})
    services.merge(admin, keep, dup)
    manager = client_for("manager")

    page = manager.get(reverse("customers:person-delete", args=[keep.pk]), **EN).content.decode()
    assert "1 record merged into this one is deleted with it" in page

    response = manager.post(reverse("customers:person-delete", args=[keep.pk]), {"version": _v(keep)}, **EN)
    assert response.status_code == 302
    # the person asked to be deleted: nothing of them stays as a customer, under either code
    assert not Person.objects.filter(pk__in=[keep.pk, dup.pk]).exists()
    assert not Consent.objects.filter(person_id__in=[keep.pk, dup.pk]).exists()
    listing = manager.get(reverse("customers:people"), **EN).content.decode()
    assert reverse("customers:person", args=[dup.pk]) not in listing
    # each deletion is in the audit trail, the merged one saying where it had been merged
    deleted = AuditEntry.objects.filter(action=AuditEntry.Action.DELETE, object_type="customers.person")
    assert {e.object_id for e in deleted} == {str(keep.pk), str(dup.pk)}
    assert deleted.get(object_id=str(dup.pk)).extra["merged_into"] == keep.pk
    # the withdrawn consent moved to the survivor at the merge: its evidence is kept with the deletion
    assert deleted.get(object_id=str(keep.pk)).extra["consents"][0]["status"] == "withdrawn"


def test_deleting_an_institution_takes_the_institutions_merged_into_it(users, beijing):
    admin = users["admin"]
    keep = services.create_institution(admin, {"name": "朝阳药房", "kind": "pharmacy", "region": beijing})
    dup = services.create_institution(admin, {"name": "朝阳大药房", "kind": "pharmacy", "region": beijing})
    older = services.create_institution(admin, {"name": "朝阳大药房有限公司", "kind": "pharmacy", "region": beijing})
    services.merge(admin, dup, older)  # merged twice: older → dup → keep
    services.merge(admin, keep, dup)

    services.delete_customer(admin, keep)
    assert not Institution.objects.filter(pk__in=[keep.pk, dup.pk, older.pk]).exists()


# --- handing a customer over ------------------------------------------------------------------------------------


def _edit_form(client, url) -> dict:
    """The edit form's fields as the page sends them back."""
    from html.parser import HTMLParser

    class Fields(HTMLParser):
        def __init__(self):
            super().__init__()
            self.data, self.select, self.textarea = {}, None, None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button", "checkbox"):
                self.data[a["name"]] = a.get("value") or ""
            elif tag == "select":
                self.select = a.get("name")
                self.data.setdefault(self.select, "")
            elif tag == "option" and self.select and "selected" in a:
                self.data[self.select] = a.get("value") or ""
            elif tag == "textarea":
                self.textarea = a.get("name")
                self.data[self.textarea] = ""

        def handle_endtag(self, tag):
            self.select = None if tag == "select" else self.select
            self.textarea = None if tag == "textarea" else self.textarea

        def handle_data(self, data):
            if self.textarea:
                self.data[self.textarea] += data

    parser = Fields()
    parser.feed(client.get(url, **EN).content.decode())
    parser.data.pop("csrfmiddlewaretoken", None)
    return parser.data


def test_a_rep_who_hands_a_customer_over_is_told_so_instead_of_a_not_found_page(users, client_for, ruijin):
    rep = users["rep"]  # North team (Beijing); 瑞金医院 is in Shanghai
    Institution.objects.filter(pk=ruijin.pk).update(owner=rep)  # theirs by ownership only
    client = client_for("rep")
    url = reverse("customers:institution-edit", args=[ruijin.pk])
    data = _edit_form(client, url)
    data["owner"] = str(users["kam"].pk)

    response = client.post(url, data, follow=True, **EN)
    assert response.status_code == 200
    page = response.content.decode()
    assert "is no longer among the customers you may see" in page
    assert response.redirect_chain[-1][0] == reverse("customers:institutions")
    ruijin.refresh_from_db()
    assert ruijin.owner == users["kam"]


# --- merging two records' notes ---------------------------------------------------------------------------------


def test_a_merge_keeps_what_was_written_on_both_records(users, client_for, xiehe):
    admin = users["admin"]
    keep = services.create_person(
        admin, {"name": "王芳", "institution": xiehe, "notes": "周二上午门诊", "needs": "学术会议", "tags": ["KOL"]}
    )
    dup = services.create_person(
        admin, {"name": "王芳", "institution": xiehe, "notes": "对价格敏感，先约科室主任", "needs": "学术会议",
                "tags": ["讲者"]},
    )  # fmt: skip
    manager = client_for("manager")
    url = reverse("customers:merge", args=["person", keep.pk, dup.pk])
    page = manager.get(url, **EN).content.decode()
    assert "对价格敏感，先约科室主任" in page  # the comparison shows the notes the merge will join

    manager.post(url, {"survivor": keep.pk}, **EN)
    keep.refresh_from_db()
    assert "周二上午门诊" in keep.notes and "对价格敏感，先约科室主任" in keep.notes
    assert keep.needs == "学术会议"  # the same text is not repeated
    shown = manager.get(reverse("customers:person", args=[keep.pk]), **EN).content.decode()
    assert "对价格敏感，先约科室主任" in shown
    # the merge's history entry says what it added: the notes, and the tags that came with the duplicate
    merge_entry = shown[shown.index("Merged in:"):]
    merge_entry = merge_entry[: merge_entry.index("</li>")]
    assert "<dt>Notes</dt>" in merge_entry and "<dt>Tags</dt>" in merge_entry and "讲者" in merge_entry


# --- landlines ------------------------------------------------------------------------------------------------


def test_a_landline_a_digit_short_after_a_three_digit_area_code_is_refused(users, client_for, xiehe):
    from django.core.exceptions import ValidationError

    client = client_for("kam")
    response = client.post(
        reverse("customers:person-create"),
        {"name": "赵敏", "role": "doctor", "tier": "new", "stage": "potential", "institution": xiehe.pk,
         "landline": "021-6437012"},  # a Shanghai number is 8 digits: one was lost
        **EN,
    )  # fmt: skip
    assert response.status_code == 200
    assert "Enter a valid landline with its area code" in response.content.decode()
    assert not Person.objects.filter(name="赵敏").exists()
    with pytest.raises(ValidationError) as refused:
        services.update_institution(users["admin"], xiehe, {"phone": "010-6915611"})
    assert "phone" in refused.value.message_dict
    # what is right stays right: 8 digits after 010/02x, 7 or 8 after a four-digit area code
    for number in ("021-64370045", "010-69156114", "0755-1234567", "0311-62916057", "021-64370045 转 8021"):
        services.clean_person({"landline": number})


# --- e-mail addresses typed with a Chinese input method ------------------------------------------------------


def test_an_email_typed_in_full_width_or_ending_in_a_chinese_full_stop_is_stored_as_the_address(
    users, client_for, xiehe
):
    client = client_for("kam")
    response = client.post(
        reverse("customers:person-create"),
        {"name": "孙悦", "role": "doctor", "tier": "new", "stage": "potential", "institution": xiehe.pk,
         "email": "ｓｕｎｙｕｅ＠１６３．ｃｏｍ"},  # the input method left in full-width mode
        **EN,
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-3000:]
    person = Person.objects.get(name="孙悦")
    assert person.email == "sunyue@163.com"
    # the address written at the end of a sentence, with its full stop, is the same address: a duplicate
    other = services.create_person(users["admin"], {"name": "孙悦", "email": "SunYue@163.com。"})
    assert other.email == "sunyue@163.com"
    assert (person, "email") in services.duplicates_of(other)
    # and the search box finds it typed either way
    page = client.get(reverse("customers:search"), {"q": "sunyue＠163．com"}, **EN).content.decode()
    assert reverse("customers:person", args=[person.pk]) in page


# --- the hospital a department belongs to -----------------------------------------------------------------------


def test_a_department_is_placed_under_a_hospital_by_the_api_and_the_import_as_by_the_form(users, xiehe, beijing, tmp_path):
    from rest_framework.test import APIClient

    from pharmacrm.customers import importer

    admin = users["admin"]
    shop = services.create_institution(
        admin, {"name": "朝阳大药房", "kind": "pharmacy", "region": beijing, "external_id": "SHOP-1"}
    )
    cardiology = Institution.objects.get(name="心内科", parent=xiehe)
    api = APIClient()
    api.force_authenticate(users["kam"])
    for parent in (shop, cardiology):
        response = api.post("/api/v1/institutions/", {"name": "中药科", "kind": "department", "parent": parent.pk},
                            format="json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
        assert response.status_code == 400, response.json()
        assert response.json()["parent"] == [f"A department belongs to a hospital: {parent.name} is not one."]
    response = api.post("/api/v1/institutions/", {"name": "中药科", "kind": "department", "parent": xiehe.pk},
                        format="json")  # fmt: skip
    assert response.status_code == 201
    # moving a department under a pharmacy is refused too
    with pytest.raises(Exception) as refused:
        services.update_institution(admin, cardiology, {"parent": shop})
    assert "parent" in refused.value.message_dict

    # the import: under a pharmacy that exists, and under one new in the same file
    path = tmp_path / "科室.csv"
    path.write_text(
        "机构名称,机构类型,上级机构,外部编号\n"
        "输液室,科室,SHOP-1,\n"
        "新开药房,药店,,SHOP-2\n"
        "煎药室,科室,SHOP-2,\n"
        "康复科,科室,SHOP-X,\n".replace("SHOP-X", xiehe.credit_code),
        encoding="utf-8",
    )  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"], mode="good")
    errors = {e["row"]: (e["column"], e["code"]) for e in job.errors}
    assert errors == {2: ("上级机构", "parent_not_hospital"), 4: ("上级机构", "parent_not_hospital")}, job.errors
    assert not Institution.objects.filter(name__in=["输液室", "煎药室"]).exists()
    assert Institution.objects.get(name="康复科").parent == xiehe


# --- ID card numbers ------------------------------------------------------------------------------------------


def test_an_id_card_number_whose_birth_date_cannot_be_is_refused_even_when_its_check_character_fits(
    users, client_for, xiehe, tmp_path
):
    from pharmacrm.customers import importer

    def with_check(body: str) -> str:  # GB 11643's check character
        total = sum(int(c) * w for c, w in zip(body, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), strict=True))
        return body + "10X98765432"[total % 11]

    month_13 = with_check("11010519751315002")  # 1975-13-15: a typing error the check character did not catch
    future = with_check("11010520991231002")
    good = with_check("11010519750315002")
    client = client_for("kam")
    for number in (month_13, future):
        response = client.post(
            reverse("customers:person-create"),
            {"name": "周杰", "role": "doctor", "tier": "new", "stage": "potential", "institution": xiehe.pk,
             "id_number": number},
            **EN,
        )  # fmt: skip
        assert response.status_code == 200
        assert "Enter a valid 18-character resident ID card number." in response.content.decode()
    assert not Person.objects.filter(name="周杰").exists()
    assert services.clean_person({"id_number": good})["id_number"] == good

    path = tmp_path / "people.csv"
    path.write_text(f"姓名,身份证号\n周杰,{month_13}\n吴敏,{good}\n", encoding="utf-8")
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert [(e["row"], e["code"]) for e in job.errors] == [(2, "invalid_id")]
    assert Person.objects.get(name="吴敏").id_number == good


def test_an_institution_whose_only_people_were_merged_away_can_be_deleted(users, client_for, beijing):
    admin = users["admin"]
    old = services.create_institution(admin, {"name": "朝阳门诊部", "kind": "clinic", "region": beijing})
    new = services.create_institution(admin, {"name": "朝阳社区卫生服务中心", "kind": "community", "region": beijing})
    keep = services.create_person(admin, {"name": "郑洁", "institution": old})
    dup = services.create_person(admin, {"name": "郑洁", "institution": old})
    services.merge(admin, keep, dup)
    keep.refresh_from_db()
    services.update_person(admin, keep, {"institution": new})  # she moved: nobody works at the old clinic now
    manager = client_for("manager")
    page = manager.get(reverse("customers:institution", args=[old.pk]), **EN).content.decode()
    assert "No people recorded for this institution." in page

    response = manager.post(reverse("customers:institution-delete", args=[old.pk]), {"version": _v(old)}, follow=True, **EN)
    assert "was deleted" in response.content.decode()
    assert not Institution.objects.filter(pk=old.pk).exists()
    dup.refresh_from_db()
    assert dup.merged_into_id == keep.pk and dup.institution_id is None  # still pointing at the survivor


def test_a_hospital_with_departments_does_not_become_a_pharmacy_and_a_former_hospital_keeps_no_grade(
    users, xiehe, beijing, tmp_path
):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(users["kam"])
    response = api.patch(f"/api/v1/institutions/{xiehe.pk}/", {"kind": "pharmacy", "version": xiehe.version},
                         format="json",
                         HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert response.status_code == 400, response.json()
    assert "only a hospital has departments" in response.json()["kind"][0], response.json()
    xiehe.refresh_from_db()
    assert xiehe.kind == "hospital"

    # nor by an import that updates it
    from pharmacrm.customers import importer

    path = tmp_path / "机构.csv"
    path.write_text(f"机构名称,机构类型,统一社会信用代码\n北京协和医院,药店,{xiehe.credit_code}\n", encoding="utf-8")
    job = importer.import_file(path, "institutions", users["kam"], mode="all")
    assert [(e["row"], e["code"]) for e in job.errors] == [(2, "has_departments")]
    xiehe.refresh_from_db()
    assert xiehe.kind == "hospital"

    small = services.create_institution(users["admin"], {"name": "朝阳医院门诊部", "kind": "hospital", "grade": "1",
                                                         "region": beijing})  # fmt: skip
    response = api.patch(f"/api/v1/institutions/{small.pk}/", {"kind": "clinic", "version": small.version},
                         format="json")  # fmt: skip
    assert response.status_code == 200
    assert response.json()["grade"] == ""  # its page no longer reads "Clinic · Grade I"


def test_a_department_people_work_in_is_not_deleted_from_under_them(users, client_for, xiehe):
    cardiology = Institution.objects.get(name="心内科", parent=xiehe)
    doctor = Person.objects.get(name="张伟")
    manager = client_for("manager")
    response = manager.post(reverse("customers:institution-delete", args=[cardiology.pk]), {"version": _v(cardiology)},
                            follow=True, **EN)  # fmt: skip
    assert "People belong to this institution" in response.content.decode()
    assert Institution.objects.filter(pk=cardiology.pk).exists()
    doctor.refresh_from_db()
    assert doctor.department == cardiology


def test_departments_of_two_hospitals_are_not_merged(users, client_for, xiehe, ruijin):
    admin = users["admin"]
    theirs = services.create_institution(admin, {"name": "心内科", "kind": "department", "parent": ruijin})
    doctor = services.create_person(admin, {"name": "陈医生", "institution": ruijin, "department": theirs})
    ours = Institution.objects.get(name="心内科", parent=xiehe)
    manager = client_for("manager")
    url = reverse("customers:merge", args=["institution", ours.pk, theirs.pk])
    response = manager.post(url, {"survivor": ours.pk}, follow=True, **EN)
    assert "These departments belong to different hospitals." in response.content.decode()
    theirs.refresh_from_db()
    doctor.refresh_from_db()
    assert theirs.merged_into_id is None
    assert doctor.department == theirs and doctor.institution == ruijin  # not 瑞金's doctor in 协和's department


def test_a_reps_doctor_at_a_hospital_outside_the_territory_names_it_without_a_link_to_a_not_found_page(
    users, client_for, ruijin
):
    doctor = services.create_person(users["admin"], {"name": "钱医生", "institution": ruijin, "owner": users["rep"]})
    page = client_for("rep").get(reverse("customers:person", args=[doctor.pk]), **EN).content.decode()
    assert ruijin.name in page  # where the doctor works is part of the doctor's record
    assert reverse("customers:institution", args=[ruijin.pk]) not in page
    # the search results name it the same way
    rep_search = client_for("rep").get(reverse("customers:search"), {"q": "钱医生"}, **EN).content.decode()
    assert reverse("customers:person", args=[doctor.pk]) in rep_search and ruijin.name in rep_search
    assert reverse("customers:institution", args=[ruijin.pk]) not in rep_search
    assert reverse("customers:institution", args=[ruijin.pk]) in client_for("manager").get(
        reverse("customers:search"), {"q": "钱医生"}, **EN
    ).content.decode()
    # whoever may open the hospital still gets the link
    page = client_for("manager").get(reverse("customers:person", args=[doctor.pk]), **EN).content.decode()
    assert reverse("customers:institution", args=[ruijin.pk]) in page


def test_a_department_given_as_the_institution_places_the_person_at_its_hospital_in_it(
    users, client_for, xiehe, tmp_path
):
    from rest_framework.test import APIClient

    from pharmacrm.customers import importer

    cardiology = Institution.objects.get(name="心内科", parent=xiehe)
    cardiology.external_id = "DEPT-CARD"
    cardiology.save(update_fields=["external_id"])
    api = APIClient()
    api.force_authenticate(users["kam"])
    response = api.post("/api/v1/people/", {"name": "林医生", "institution": cardiology.pk}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["institution"], response.json()["department"]) == (xiehe.pk, cardiology.pk)

    path = tmp_path / "people.csv"
    path.write_text("姓名,所属机构\n何医生,DEPT-CARD\n", encoding="utf-8")
    job = importer.import_file(path, "people", users["kam"], mode="all")
    assert job.created_count == 1, job.errors
    he = Person.objects.get(name="何医生")
    assert (he.institution, he.department) == (xiehe, cardiology)
    # both are listed on the hospital's page, with their department
    page = client_for("kam").get(reverse("customers:institution", args=[xiehe.pk]), **EN).content.decode()
    assert "林医生" in page and "何医生" in page


def test_the_history_of_a_new_record_lists_what_was_filled_in_not_every_empty_field(users, client_for, xiehe):
    doctor = services.create_person(users["admin"], {"name": "马医生", "institution": xiehe, "title": "主治医师"})
    page = client_for("manager").get(reverse("customers:person", args=[doctor.pk]), **EN).content.decode()
    history = page[page.index('id="history"'):]
    assert "<dt>Title</dt>" in history and "主治医师" in history
    for empty in ("Birthday", "Home address", "ID card number", "Gender", "Needs"):
        assert f"<dt>{empty}</dt>" not in history  # "Birthday — → —" said nothing


def test_a_merge_that_brings_an_active_key_account_file_brings_the_key_account_tier(users, client_for, beijing):
    from pharmacrm.keyaccounts.choices import AccountStatus
    from pharmacrm.keyaccounts.models import KeyAccount

    admin = users["admin"]
    keep = services.create_institution(admin, {"name": "朝阳区中心医院", "kind": "hospital", "region": beijing,
                                               "tier": "regular"})  # fmt: skip
    dup = services.create_institution(admin, {"name": "朝阳中心医院", "kind": "hospital", "region": beijing})
    Institution.objects.filter(pk=dup.pk).update(tier="key")  # listed by the programme
    account = KeyAccount.objects.create(number="KA-2026-0099", institution=dup, status=AccountStatus.ACTIVE)
    manager = client_for("manager")
    manager.post(reverse("customers:merge", args=["institution", keep.pk, dup.pk]), {"survivor": keep.pk}, **EN)
    keep.refresh_from_db()
    account.refresh_from_db()
    assert account.institution_id == keep.pk
    assert keep.tier == "key"  # not a "Regular" customer holding an active key-account file


def _v(obj) -> int:
    """The record's version now: what its delete page carries."""
    return type(obj).objects.get(pk=obj.pk).version
