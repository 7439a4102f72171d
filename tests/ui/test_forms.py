"""Create and edit forms: service validation shown under the fields, live (htmx) checks while typing,
cascading selects, and an optimistic-lock conflict that keeps what the user typed."""

from __future__ import annotations

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import normalise, services
from pharmacrm.customers.models import Institution, Person

GOOD_CODE = normalise.make_credit_code("91110105MA0000001")
HTMX = {"HTTP_HX_REQUEST": "true"}


def _institution_form(**overrides) -> dict:
    data = {
        "name": "北京朝阳社区卫生服务中心", "kind": "community", "province": "110000", "city": "110100",
        "district": "110105", "credit_code": GOOD_CODE, "phone": "010-65001234", "tier": "regular",
        "stage": "potential", "tags": "社区, 慢病",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_creating_an_institution_saves_it_and_opens_its_page(client_for):
    response = client_for("agent").post("/customers/institutions/new/", _institution_form())
    inst = Institution.objects.get(name="北京朝阳社区卫生服务中心")
    assert response.status_code == 302 and response["Location"] == f"/customers/institutions/{inst.pk}/"
    assert inst.region_id == "110105" and inst.credit_code == GOOD_CODE
    assert sorted(t.name for t in inst.tags.all()) == ["慢病", "社区"]
    assert AuditEntry.objects.filter(
        action="create", object_type="customers.institution", object_id=str(inst.pk)
    ).exists()


def test_a_bad_credit_code_is_explained_under_its_field_and_nothing_is_saved(client_for):
    bad = GOOD_CODE[:-1] + ("0" if GOOD_CODE[-1] != "0" else "1")
    response = client_for("agent").post("/customers/institutions/new/", _institution_form(credit_code=bad))
    assert response.status_code == 200
    page = response.content.decode()
    field = page.split('id="field-credit_code"')[1].split('id="field-')[0]
    assert "check character is wrong" in field
    assert bad in field  # the input is kept
    assert not Institution.objects.filter(name="北京朝阳社区卫生服务中心").exists()


def test_a_department_without_a_parent_is_refused_with_the_service_message(client_for):
    response = client_for("agent").post(
        "/customers/institutions/new/", _institution_form(kind="department", credit_code="")
    )
    field = response.content.decode().split('id="field-parent"')[1].split('id="field-')[0]
    assert "A department belongs to a hospital" in field


def test_a_credit_code_already_in_use_is_refused(client_for, xiehe):
    response = client_for("agent").post(
        "/customers/institutions/new/", _institution_form(credit_code=xiehe.credit_code)
    )
    field = response.content.decode().split('id="field-credit_code"')[1].split('id="field-')[0]
    assert "Another institution already has this credit code." in field


def test_the_credit_code_is_checked_while_typing(client_for, xiehe):
    client = client_for("agent")
    url = "/customers/institutions/new/"
    wrong = client.post(url, {"_validate": "credit_code", "credit_code": "9111"}, **HTMX).content.decode()
    assert 'id="id_credit_code_error"' in wrong and "must have 18 characters (it has 4)" in wrong
    taken = client.post(
        url, {"_validate": "credit_code", "credit_code": xiehe.credit_code}, **HTMX
    ).content.decode()
    assert "Another institution already has this credit code." in taken
    fine = client.post(url, {"_validate": "credit_code", "credit_code": GOOD_CODE}, **HTMX).content.decode()
    assert 'class="error"' not in fine
    own = client.post(
        f"/customers/institutions/{xiehe.pk}/edit/",
        {"_validate": "credit_code", "credit_code": xiehe.credit_code},
        **HTMX,
    ).content.decode()
    assert 'class="error"' not in own  # an institution's own code is not a clash


def test_phones_are_checked_while_typing(client_for, doctor):
    client = client_for("agent")
    bad = client.post(
        "/customers/people/new/", {"_validate": "mobile", "mobile": "1380013"}, **HTMX
    ).content.decode()
    assert "Enter a valid mainland mobile (11 digits starting with 13–19)" in bad
    taken = client.post("/customers/people/new/", {"_validate": "mobile", "mobile": "138 0013 8000"}, **HTMX)
    assert "Another person already has this phone number" in taken.content.decode()
    landline = client.post("/customers/institutions/new/", {"_validate": "phone", "phone": "12345"}, **HTMX)
    assert "Enter a valid China mobile number, landline with area code" in landline.content.decode()


def test_a_merged_records_phone_typed_on_a_new_person_warns_of_the_record_it_was_merged_into(
    client_for, admin_user, xiehe, doctor
):
    # the merge kept 张伟's own mobile; the duplicate's stayed on the merged record: typing it on a new person made
    # the duplicate again without a word
    dup = services.create_person(admin_user, {"name": "张伟", "institution": xiehe, "mobile": "13900139000"})
    services.merge(admin_user, doctor, dup)
    client = client_for("agent")
    taken = client.post("/customers/people/new/", {"_validate": "mobile", "mobile": "139 0013 9000"}, **HTMX)
    assert "Another person already has this phone number" in taken.content.decode()
    own = client.post(
        f"/customers/people/{doctor.pk}/edit/", {"_validate": "mobile", "mobile": "13900139000"}, **HTMX
    )
    assert "Another person already has this phone number" not in own.content.decode()


def test_only_the_listed_fields_are_checked_while_typing(client_for):
    response = client_for("agent").post(
        "/customers/people/new/", {"_validate": "notes", "notes": "x"}, **HTMX
    )
    assert response.status_code == 404


def test_choosing_a_province_loads_its_cities_and_clears_the_districts(client_for):
    response = client_for("agent").get("/customers/regions/", {"province": "440000", "reset": "id_district"})
    page = response.content.decode()
    assert '<option value="440300">Shenzhen City</option>' in page  # in the page's language
    assert '<select id="id_district" hx-swap-oob="innerHTML">' in page
    districts = client_for("agent").get("/customers/regions/", {"city": "440300"}).content.decode()
    assert "Nanshan District" in districts and "Shenzhen City" not in districts


def test_the_region_selects_of_an_existing_institution_show_its_place(client_for, xiehe):
    page = client_for("agent").get(f"/customers/institutions/{xiehe.pk}/edit/").content.decode()
    assert '<option value="110105" selected>Chaoyang District</option>' in page
    assert '<option value="110000" selected>Beijing</option>' in page


def test_the_parent_select_offers_only_hospitals_the_user_may_see(client_for, xiehe, ruijin):
    page = client_for("rep").get("/customers/institutions/new/").content.decode()
    parent = page.split('id="field-parent"')[1].split('id="field-')[0]
    assert "北京协和医院" in parent
    assert "瑞金" not in parent
    assert "心内科" not in parent  # a department is not a parent


def test_a_rep_cannot_hang_a_department_under_a_hospital_outside_their_territory(client_for, ruijin):
    data = _institution_form(kind="department", credit_code="", parent=str(ruijin.pk))
    response = client_for("rep").post("/customers/institutions/new/", data)
    assert response.status_code == 200
    assert not Institution.objects.filter(parent=ruijin).exists()


def test_choosing_an_institution_loads_its_departments(client_for, xiehe, department, ruijin):
    client = client_for("agent")
    page = client.get("/customers/people/new/", {"_options": "department", "institution": xiehe.pk}, **HTMX)
    assert "心内科" in page.content.decode()
    empty = client.get("/customers/people/new/", {"_options": "department", "institution": ruijin.pk}, **HTMX)
    assert "<option" in empty.content.decode() and "心内科" not in empty.content.decode()


def test_the_institution_picker_finds_institutions_by_pinyin(client_for, xiehe, ruijin):
    page = client_for("agent").get("/customers/search/", {"q": "bjxh", "as": "options"}).content.decode()
    assert f'<option value="{xiehe.pk}">北京协和医院' in page
    rep_page = client_for("rep").get("/customers/search/", {"q": "rjyy", "as": "options"}).content.decode()
    assert "瑞金" not in rep_page


def test_creating_a_person_in_a_department(client_for, xiehe, department):
    data = {
        "name": "王芳", "role": "pharmacist", "institution": xiehe.pk, "department": department.pk,
        "mobile": "139 0000 1111", "email": "WANGFANG@example.com", "tier": "new", "stage": "potential",
    }  # fmt: skip
    response = client_for("agent").post("/customers/people/new/", data)
    person = Person.objects.get(name="王芳")
    assert response["Location"] == f"/customers/people/{person.pk}/"
    assert (
        person.department == department
        and person.mobile == "13900001111"
        and person.email == "wangfang@example.com"
    )


def test_a_department_of_another_institution_is_refused(client_for, xiehe, ruijin, admin_user):
    other = services.create_institution(admin_user, {"name": "骨科", "kind": "department", "parent": ruijin})
    data = {
        "name": "王芳",
        "role": "doctor",
        "institution": xiehe.pk,
        "department": other.pk,
        "tier": "new",
        "stage": "potential",
    }
    response = client_for("agent").post("/customers/people/new/", data)
    assert response.status_code == 200
    assert not Person.objects.filter(name="王芳").exists()


def test_a_conflicting_edit_keeps_the_users_input_and_says_what_changed(client_for, xiehe, admin_user):
    client = client_for("agent")
    form_page = client.get(f"/customers/institutions/{xiehe.pk}/edit/").content.decode()
    assert f'name="version" value="{xiehe.version}"' in form_page
    loaded_version = xiehe.version
    services.update_institution(
        admin_user, Institution.objects.get(pk=xiehe.pk), {"address": "东城区帅府园1号"}
    )
    mine = _institution_form(
        name="北京协和医院东院", kind="hospital", credit_code=xiehe.credit_code, version=loaded_version,
        address="",
    )  # fmt: skip
    response = client.post(f"/customers/institutions/{xiehe.pk}/edit/", mine)
    assert response.status_code == 409
    page = response.content.decode()
    assert "Someone else changed this record while you were editing it." in page
    assert 'value="北京协和医院东院"' in page  # the user's input is still in the form
    assert "东城区帅府园1号" in page  # what the other person saved is shown next to it
    xiehe.refresh_from_db()
    assert xiehe.name == "北京协和医院" and xiehe.address == "东城区帅府园1号"
    assert f'name="version" value="{xiehe.version}"' in page
    again = client.post(f"/customers/institutions/{xiehe.pk}/edit/", {**mine, "version": xiehe.version})
    assert again.status_code == 302
    xiehe.refresh_from_db()
    assert xiehe.name == "北京协和医院东院"


def test_an_agent_edits_a_person_without_seeing_or_losing_their_personal_data(client_for, doctor):
    client = client_for("agent")
    page = client.get(f"/customers/people/{doctor.pk}/edit/").content.decode()
    assert "13800138000" not in page and "138 0013 8000" not in page
    assert "138****8000" in page  # shown as a masked placeholder
    data = {"name": "张伟", "role": "doctor", "institution": doctor.institution_id, "department": doctor.department_id,
            "title": "主任医师（教授）", "tier": "vip", "stage": "active", "version": doctor.version}  # fmt: skip
    response = client.post(f"/customers/people/{doctor.pk}/edit/", data)
    assert response.status_code == 302
    doctor.refresh_from_db()
    assert (
        doctor.title == "主任医师（教授）"
        and doctor.mobile == "13800138000"
        and doctor.email == "zhangwei@example.com"
    )
    assert not AuditEntry.objects.filter(action="read_personal", actor__username="agent").exists()


def test_an_agent_removes_a_wrong_email_they_cannot_see(client_for, doctor):
    """Editing blind, empty means "keep": a wrong value could not be taken out. A "remove" box per filled field
    now clears it; the other personal fields stay as they were."""
    client = client_for("agent")
    page = client.get(f"/customers/people/{doctor.pk}/edit/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'name="clear_email"' in page and 'name="clear_mobile"' in page
    assert 'name="clear_home_address"' not in page  # nothing recorded, nothing to remove
    data = {"name": "张伟", "role": "doctor", "institution": doctor.institution_id, "department": doctor.department_id,
            "title": doctor.title, "tier": "new", "stage": doctor.stage, "version": doctor.version,
            "clear_email": "on"}  # fmt: skip
    assert client.post(f"/customers/people/{doctor.pk}/edit/", data).status_code == 302
    doctor.refresh_from_db()
    assert doctor.email == "" and doctor.email_bidx == "" and doctor.mobile == "13800138000"
    entry = AuditEntry.objects.filter(object_type="customers.person", object_id=str(doctor.pk)).latest("seq")
    assert "email" in entry.changes and "zhangwei@example.com" not in str(entry.changes)


def test_a_rep_sees_personal_data_in_the_edit_form_and_that_read_is_audited(client_for, doctor):
    page = client_for("rep").get(f"/customers/people/{doctor.pk}/edit/").content.decode()
    assert 'value="13800138000"' in page
    entry = AuditEntry.objects.filter(action="read_personal", actor__username="rep").get()
    assert entry.extra["purpose"] == "edit form"


def test_deleting_asks_for_confirmation_then_deletes(client_for, admin_user, beijing):
    clinic = services.create_institution(
        admin_user, {"name": "朝阳门诊部", "kind": "clinic", "region": beijing}
    )
    client = client_for("manager")
    confirm = client.get(f"/customers/institutions/{clinic.pk}/delete/")
    assert "朝阳门诊部" in confirm.content.decode() and Institution.objects.filter(pk=clinic.pk).exists()
    response = client.post(f"/customers/institutions/{clinic.pk}/delete/", {"version": clinic.version})
    assert response["Location"] == "/customers/institutions/"
    assert not Institution.objects.filter(pk=clinic.pk).exists()


def test_an_institution_with_people_is_not_deleted_and_the_reason_is_shown(client_for, xiehe):
    client = client_for("manager")
    response = client.post(f"/customers/institutions/{xiehe.pk}/delete/", {"version": _v(xiehe)}, follow=True)
    assert Institution.objects.filter(pk=xiehe.pk).exists()
    assert "has departments" in response.content.decode() or "People belong" in response.content.decode()


def test_the_typing_check_does_not_tell_a_rep_about_phones_outside_their_scope(client_for, ruijin, admin_user):
    """A rep (territory: Beijing) typing a Shanghai doctor's mobile learns nothing; an agent, who sees
    every customer, is warned of the likely duplicate."""
    from pharmacrm.customers import services

    services.create_person(admin_user, {"name": "赵敏", "institution": ruijin, "mobile": "13900139000"})
    form = {"_validate": "mobile", "mobile": "139 0013 9000"}
    rep = client_for("rep").post("/customers/people/new/", form, **HTMX).content.decode()
    assert "Another person already has this phone number" not in rep
    agent = client_for("agent").post("/customers/people/new/", form, **HTMX).content.decode()
    assert "Another person already has this phone number" in agent


def _field(page: str, name: str) -> str:
    return page.split(f'id="field-{name}"')[1].split('id="field-')[0]


def test_every_field_error_shows_in_one_round_even_with_the_name_missing(client_for):
    data = {"name": "", "role": "pharmacist", "mobile": "12345", "email": "foo@", "landline": "abc",
            "id_number": "123456789012345678", "tier": "new", "stage": "potential"}  # fmt: skip
    page = client_for("agent").post("/customers/people/new/", data).content.decode()
    assert "This field is required." in _field(page, "name")
    assert "Enter a valid mainland mobile (11 digits starting with 13–19)" in _field(page, "mobile")
    assert 'value="12345"' in _field(page, "mobile")  # the input is kept
    assert "Enter a valid e-mail address." in _field(page, "email")
    assert "Enter a valid landline with its area code" in _field(page, "landline")
    assert "Enter a valid 18-character resident ID card number." in _field(page, "id_number")
    assert not Person.objects.filter(name="").exists()
    page = client_for("agent").post(
        "/customers/institutions/new/", _institution_form(name="", credit_code="123", phone="12345")
    ).content.decode()
    assert "This field is required." in _field(page, "name")
    assert "must have 18 characters (it has 3)" in _field(page, "credit_code")
    assert "Enter a valid China mobile number, landline with area code" in _field(page, "phone")
    assert not Institution.objects.filter(credit_code="123").exists()


def _v(obj) -> int:
    """The record's version now: what its delete page carries."""
    return type(obj).objects.get(pk=obj.pk).version
