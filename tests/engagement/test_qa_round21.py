"""Review round 21: interactions as reps and KAMs log them — a mistyped year, a doctor of another hospital."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone, translation

from pharmacrm.customers import services as customers
from pharmacrm.engagement.models import Interaction
from pharmacrm.safety.models import Flag


def _form(institution, **extra) -> dict:
    local = timezone.localtime(timezone.now())
    return {"institution": institution.pk if institution else "", "channel": "visit",
            "received_at": local.strftime("%Y-%m-%dT%H:%M"), "subject": "科室拜访", "notes": "", **extra}  # fmt: skip


def test_a_visit_with_a_mistyped_year_is_refused_on_the_field_not_given_day_0_centuries_ago(client_for, xiehe):
    # the date picker takes any year: 0226 instead of 2026 would start PV's clock in the year 226, breached at once
    response = client_for("rep").post(
        "/interactions/new/", _form(xiehe, received_at="0226-12-01T10:00", notes="患者用药后出现皮疹")
    )

    assert response.status_code == 400
    assert "时间过早，请检查互动日期。" in response.content.decode()
    assert not Interaction.objects.exists() and not Flag.objects.exists()


@pytest.fixture
def lisi(admin_user, ruijin):
    """A doctor of 瑞金医院 (Shanghai: outside the North team's territory)."""
    return customers.create_person(admin_user, {"name": "李四", "institution": ruijin, "title": "主任医师"})


def test_a_doctor_of_another_hospital_is_not_filed_under_the_hospital_visited(api_for, xiehe, lisi):
    answer = api_for("agent").post(
        "/api/v1/interactions/", {"institution": xiehe.pk, "person": lisi.pk, "channel": "visit", "subject": "会议"},
        format="json", HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip

    assert answer.status_code == 400
    assert answer.json()["person"] == [
        "李四 works at 上海交通大学医学院附属瑞金医院: choose that institution, or leave the institution empty."
    ]
    assert not Interaction.objects.exists()
    # so the Beijing rep, who sees 协和's interactions, never reads the name of a Shanghai doctor
    assert "李四" not in api_for("rep").get("/api/v1/interactions/").content.decode()


def test_leaving_the_institution_empty_files_the_doctor_under_their_own_hospital(client_for, xiehe, ruijin, lisi):
    response = client_for("agent").post("/interactions/new/", _form(None, person=lisi.pk))

    assert response.status_code == 302
    assert Interaction.objects.get().institution == ruijin


def test_a_doctor_seen_in_a_department_of_their_hospital_is_accepted(client_for, xiehe):
    dept = xiehe.children.get(name="心内科")
    doctor = xiehe.people.get(name="张伟")

    for institution in (xiehe, dept):
        response = client_for("rep").post("/interactions/new/", _form(institution, person=doctor.pk))
        assert response.status_code == 302, response.content.decode()

    assert Interaction.objects.filter(person=doctor).count() == 2


def test_an_edit_cannot_move_a_visit_to_a_doctor_of_another_hospital(client_for, users, xiehe, lisi):
    client = client_for("agent")
    client.post("/interactions/new/", _form(xiehe, person=xiehe.people.get(name="张伟").pk))
    interaction = Interaction.objects.get()

    response = client.post(f"/interactions/{interaction.pk}/", _form(xiehe, person=lisi.pk, version=1))

    assert response.status_code == 400
    interaction.refresh_from_db()
    assert interaction.person.name == "张伟" and interaction.version == 1


def test_a_rep_moved_to_another_region_still_corrects_a_visit_made_before(client_for, users, xiehe, team_north, shanghai):
    client = client_for("rep")
    doctor = xiehe.people.get(name="张伟")
    client.post("/interactions/new/", _form(xiehe, person=doctor.pk, notes="张主任询问用法"))
    interaction = Interaction.objects.get()
    team_north.territory.set([shanghai])  # the rep now works in Shanghai; 协和 is another rep's customer

    page = client.get(f"/interactions/{interaction.pk}/")
    assert page.status_code == 200 and 'id="interaction-form"' in page.content.decode()
    edit = _form(xiehe, person=doctor.pk, notes="张主任询问用法，患者用药后出现皮疹", version=1)
    edit["received_at"] = timezone.localtime(interaction.received_at).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/interactions/{interaction.pk}/", edit)

    assert response.status_code == 302, response.content.decode()
    interaction.refresh_from_db()
    assert "皮疹" in interaction.notes and interaction.version == 2
    assert Flag.objects.filter(interaction=interaction).exists()  # PV hears of it


def test_a_rep_moved_to_another_region_cannot_move_a_visit_to_a_customer_outside_the_territory(
    client_for, users, xiehe, team_north, shanghai, beijing, admin_user
):
    client = client_for("rep")
    client.post("/interactions/new/", _form(xiehe))
    interaction = Interaction.objects.get()
    other = customers.create_institution(admin_user, {"name": "北京大学第一医院", "kind": "hospital", "region": beijing})
    team_north.territory.set([shanghai])

    response = client.post(f"/interactions/{interaction.pk}/", _form(other, version=1))

    assert response.status_code == 400
    interaction.refresh_from_db()
    assert interaction.institution == xiehe


def test_a_wechat_message_to_a_doctor_who_withdrew_wechat_marketing_consent_is_marked_on_its_page(
    client_for, admin_user, xiehe
):
    doctor = xiehe.people.get(name="张伟")
    withdrawn = timezone.now() - dt.timedelta(days=3)
    customers.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "wechat", "status": "given",
                                                 "at": withdrawn - dt.timedelta(days=300)})  # fmt: skip
    customers.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "wechat", "status": "withdrawn",
                                                 "at": withdrawn, "evidence": "微信回复：请勿再推送"})  # fmt: skip
    client = client_for("rep")

    response = client.post("/interactions/new/", _form(xiehe, person=doctor.pk, channel="wechat"), follow=True)

    with translation.override("en"):
        page = client.get(response.redirect_chain[-1][0], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert (f"张伟 withdrew their consent to marketing communication by WeChat on "
            f"{timezone.localtime(withdrawn).date().isoformat()}: do not promote products to them this way.") in page  # fmt: skip
    # a visit (consent not withdrawn for visits) says nothing
    client.post("/interactions/new/", _form(xiehe, person=doctor.pk, channel="visit"))
    visit = Interaction.objects.get(channel="visit")
    assert 'id="consent-warning"' not in client.get(f"/interactions/{visit.pk}/").content.decode()


def test_a_consent_given_again_clears_the_warning(client_for, admin_user, xiehe):
    doctor = xiehe.people.get(name="张伟")
    now = timezone.now()
    for status, days in (("withdrawn", 5), ("given", 1)):
        customers.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "wechat", "status": status,
                                                     "at": now - dt.timedelta(days=days)})  # fmt: skip
    client = client_for("rep")
    client.post("/interactions/new/", _form(xiehe, person=doctor.pk, channel="wechat"))

    page = client.get(f"/interactions/{Interaction.objects.get().pk}/").content.decode()

    assert 'id="consent-warning"' not in page


def test_a_visit_that_mentions_a_death_tells_its_author_pv_looks_within_four_hours_not_a_working_day(
    client_for, xiehe
):
    client = client_for("rep")
    heard = timezone.localtime(timezone.now() - dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    form = _form(xiehe, received_at=heard.strftime("%Y-%m-%dT%H:%M"), notes="张主任说有患者用药后出现过敏性休克死亡")
    client.post("/interactions/new/", form)
    interaction = Interaction.objects.get()

    page = client.get(f"/interactions/{interaction.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    due = (heard + dt.timedelta(hours=4)).strftime("%Y-%m-%d %H:%M")
    assert f"Flagged for pharmacovigilance: a PV officer will look at it by {due}." in page
    assert "within one working day" not in page


def test_a_visit_about_a_product_discontinued_since_can_still_be_corrected(client_for, xiehe):
    from pharmacrm.servicedesk.models import Product

    product = Product.objects.create(brand_name="络活喜", generic_name="苯磺酸氨氯地平片", dosage_form="片剂",
                                     strength="5mg×7片", approval_number="国药准字H10950224")  # fmt: skip
    client = client_for("rep")
    client.post("/interactions/new/", _form(xiehe, product=product.pk, notes="介绍产品"))
    interaction = Interaction.objects.get()
    Product.objects.filter(pk=product.pk).update(active=False)  # taken off the catalogue

    assert "络活喜" in client.get(f"/interactions/{interaction.pk}/").content.decode()
    edit = _form(xiehe, product=product.pk, notes="介绍产品；主任反映有患者服药后踝部水肿", version=1)
    edit["received_at"] = timezone.localtime(interaction.received_at).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/interactions/{interaction.pk}/", edit)

    assert response.status_code == 302, response.context["form"].errors
    interaction.refresh_from_db()
    assert interaction.product == product and "水肿" in interaction.notes
    assert client.get("/interactions/new/").content.decode().count("络活喜") == 0  # not offered for new visits
