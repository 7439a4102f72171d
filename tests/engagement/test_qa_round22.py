"""Review round 22: interactions as reps and KAMs log them from the mobile app (the API) and on the pages."""

from __future__ import annotations

from pharmacrm.customers import services as customers
from pharmacrm.engagement.models import Interaction
from pharmacrm.safety.models import Flag
from pharmacrm.servicedesk.models import Product


def _product() -> Product:
    return Product.objects.create(brand_name="络活喜", generic_name="苯磺酸氨氯地平片", dosage_form="片剂",
                                  strength="5mg×7片", approval_number="国药准字H10950224")  # fmt: skip


def test_the_app_sends_back_a_visit_made_before_the_rep_moved_and_its_correction_saves(
    api_for, xiehe, team_north, shanghai
):
    api = api_for("rep")
    doctor = xiehe.people.get(name="张伟")
    product = _product()
    made = api.post("/api/v1/interactions/", {"institution": xiehe.pk, "person": doctor.pk, "channel": "visit",
                                              "subject": "科室拜访", "notes": "张主任询问用法", "product": product.pk},
                    format="json").json()  # fmt: skip
    team_north.territory.set([shanghai])  # the rep now works in Shanghai; 协和 is another rep's customer
    Product.objects.filter(pk=product.pk).update(active=False)  # and the product was taken off the catalogue
    # the app sends the visit back as it loaded it, with the notes corrected
    change = {k: made[k] for k in ("institution", "person", "channel", "subject", "product", "version")}

    answer = api.patch(f"/api/v1/interactions/{made['id']}/", {**change, "notes": "张主任询问用法，患者用药后出现皮疹"},
                       format="json")  # fmt: skip

    assert answer.status_code == 200, answer.json()
    interaction = Interaction.objects.get()
    assert "皮疹" in interaction.notes and interaction.person == doctor and interaction.product == product
    assert Flag.objects.filter(interaction=interaction).exists()  # PV hears of it


def test_the_app_cannot_move_a_visit_to_a_customer_or_product_it_could_not_choose(
    api_for, admin_user, xiehe, team_north, shanghai, beijing
):
    api = api_for("rep")
    made = api.post("/api/v1/interactions/", {"institution": xiehe.pk, "channel": "visit", "subject": "科室拜访"},
                    format="json").json()  # fmt: skip
    other = customers.create_institution(admin_user, {"name": "北京大学第一医院", "kind": "hospital", "region": beijing})
    old = _product()
    Product.objects.filter(pk=old.pk).update(active=False)
    team_north.territory.set([shanghai])

    moved = api.patch(f"/api/v1/interactions/{made['id']}/", {"institution": other.pk, "version": 1}, format="json")
    discontinued = api.patch(f"/api/v1/interactions/{made['id']}/", {"product": old.pk, "version": 1}, format="json")

    assert moved.status_code == 400 and "institution" in moved.json()
    assert discontinued.status_code == 400 and "product" in discontinued.json()
    interaction = Interaction.objects.get()
    assert interaction.institution == xiehe and interaction.product is None and interaction.version == 1


def test_the_app_is_told_when_a_doctor_withdrew_consent_to_marketing_through_the_channel_used(
    api_for, admin_user, xiehe
):
    import datetime as dt

    from django.utils import timezone

    doctor = xiehe.people.get(name="张伟")
    withdrawn = timezone.now() - dt.timedelta(days=3)
    customers.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "wechat", "status": "withdrawn",
                                                 "at": withdrawn, "evidence": "微信回复：请勿再推送"})  # fmt: skip
    api = api_for("rep")

    made = api.post("/api/v1/interactions/", {"person": doctor.pk, "channel": "wechat", "subject": "新品推送"},
                    format="json").json()  # fmt: skip
    visit = api.post("/api/v1/interactions/", {"person": doctor.pk, "channel": "visit", "subject": "科室拜访"},
                     format="json").json()  # fmt: skip

    assert made["consent_warning"] == (
        f"张伟 withdrew their consent to marketing communication by WeChat on "
        f"{timezone.localtime(withdrawn).date().isoformat()}: do not promote products to them this way."
    )
    assert api.get(f"/api/v1/interactions/{made['id']}/").json()["consent_warning"] == made["consent_warning"]
    assert visit["consent_warning"] == ""  # consent for visits was not withdrawn
    listed = {r["id"]: r["consent_warning"] for r in api.get("/api/v1/interactions/").json()["results"]}
    assert listed == {made["id"]: made["consent_warning"], visit["id"]: ""}


def test_a_withdrawal_on_a_paper_form_covers_every_channel_until_given_again_on_one(api_for, admin_user, xiehe):
    """Marketing given by WeChat, then withdrawn on a paper form: the person page said "withdrawn", but a WeChat
    interaction carried no warning, because the warning read the WeChat records only."""
    import datetime as dt

    from django.utils import timezone

    doctor = xiehe.people.get(name="张伟")
    now = timezone.now()
    for days, channel, status in ((30, "wechat", "given"), (10, "paper", "withdrawn")):
        customers.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": channel, "status": status,
                                                     "at": now - dt.timedelta(days=days)})  # fmt: skip
    api = api_for("rep")

    def warning(channel):
        return api.post("/api/v1/interactions/", {"person": doctor.pk, "channel": channel, "subject": f"拜访 {channel}"},
                        format="json", HTTP_ACCEPT_LANGUAGE="en").json()["consent_warning"]  # fmt: skip

    day = timezone.localtime(now - dt.timedelta(days=10)).date().isoformat()
    assert warning("wechat") == (f"张伟 withdrew their consent to marketing communication on {day} (recorded by Paper "
                                 "form, for every channel): do not promote products to them this way.")  # fmt: skip
    assert warning("phone").startswith("张伟 withdrew") and warning("meeting") == ""
    customers.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "wechat", "status": "given",
                                                 "at": now - dt.timedelta(days=1)})  # fmt: skip
    assert warning("wechat") == ""  # given again by WeChat: WeChat only
    assert warning("email").startswith("张伟 withdrew")
    listed = {r["subject"]: r["consent_warning"] for r in api.get("/api/v1/interactions/").json()["results"]}
    assert bool(listed["拜访 email"]) and listed["拜访 email"] == warning("email")


def test_a_corrected_visit_note_reaches_pv_once_not_as_two_mentions(client_for, users, xiehe):
    from pharmacrm.engagement import services as engagement

    rep = users["rep"]
    visit = engagement.record_interaction(rep, {"institution": xiehe, "channel": "visit", "subject": "科室拜访",
                                                "notes": "张主任说有患着用药后出现皮疹"})  # fmt: skip
    # the rep corrects a typo (患着 → 患者) before PV looked at it
    engagement.update_interaction(rep, visit, {"notes": "张主任说有患者用药后出现皮疹，已停药"})

    flag = Flag.objects.get()
    assert flag.excerpt == "张主任说有患者用药后出现皮疹，已停药"
    triage = client_for("pv").get("/safety/triage/").content.decode()
    assert triage.count("张主任说有患") == 1


def test_a_reaction_edited_out_of_a_visit_note_stays_in_front_of_pv(users, xiehe):
    from pharmacrm.engagement import services as engagement

    rep = users["rep"]
    visit = engagement.record_interaction(rep, {"institution": xiehe, "channel": "visit", "subject": "科室拜访",
                                                "notes": "有患者用药后出现皮疹"})  # fmt: skip
    engagement.update_interaction(rep, visit, {"notes": "有患者用药后头晕"})  # the rep rewrote the sentence

    flag = Flag.objects.get()
    assert flag.excerpt.splitlines() == ["有患者用药后出现皮疹", "有患者用药后头晕"]
    assert set(flag.terms) >= {"皮疹", "头晕"}


def test_the_app_corrects_a_flagged_visit_sending_its_time_back_to_the_millisecond(api_for, xiehe):
    import datetime as dt

    from django.utils import timezone

    api = api_for("rep")
    heard = (timezone.now() - dt.timedelta(hours=1)).replace(microsecond=123456)
    made = api.post("/api/v1/interactions/", {"institution": xiehe.pk, "channel": "visit", "subject": "科室拜访",
                                              "notes": "有患者用药后出现皮疹", "received_at": heard.isoformat()},
                    format="json").json()  # fmt: skip
    assert made["flagged"]
    # the app's JavaScript Date keeps milliseconds: 10:15:42.123456+08:00 comes back as 02:15:42.123Z
    loaded = dt.datetime.fromisoformat(made["received_at"])
    sent_back = loaded.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert dt.datetime.fromisoformat(sent_back) != loaded  # the microseconds are lost on the way

    answer = api.patch(f"/api/v1/interactions/{made['id']}/", {"received_at": sent_back, "version": made["version"],
                                                               "notes": "有患者用药后出现皮疹，已停药"}, format="json")  # fmt: skip

    assert answer.status_code == 200, answer.json()
    interaction = Interaction.objects.get()
    assert interaction.received_at == loaded and "已停药" in interaction.notes  # day 0 to the microsecond


def test_a_visit_form_sent_twice_records_one_visit_and_pv_gets_one_flag(client_for, xiehe):
    from django.utils import timezone

    client = client_for("rep")
    form = {"institution": xiehe.pk, "channel": "visit", "subject": "科室拜访", "notes": "有患者用药后出现皮疹",
            "received_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M")}  # fmt: skip
    first = client.post("/interactions/new/", form)
    again = client.post("/interactions/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # a double click

    interaction = Interaction.objects.get()
    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/interactions/{interaction.pk}/"
    assert "This form was already sent: the interaction was recorded then, and not a second time." in (
        again.content.decode()
    )
    assert Flag.objects.count() == 1


def test_the_app_retrying_a_visit_gets_the_one_recorded_not_a_second(api_for, xiehe):
    api = api_for("rep")
    visit = {"institution": xiehe.pk, "channel": "visit", "subject": "科室拜访", "notes": "有患者用药后出现皮疹"}

    first = api.post("/api/v1/interactions/", visit, format="json")
    retry = api.post("/api/v1/interactions/", visit, format="json")  # the answer was lost on a weak signal

    assert first.status_code == 201 and retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]
    assert Interaction.objects.count() == 1 and Flag.objects.count() == 1
    # another visit (other words) to the same hospital the same day is recorded
    other = api.post("/api/v1/interactions/", {**visit, "notes": "介绍新适应症"}, format="json")
    assert other.status_code == 201 and Interaction.objects.count() == 2


def test_the_list_reads_the_consents_once_for_the_whole_page(api_for, admin_user, xiehe, django_assert_max_num_queries):
    from pharmacrm.engagement import services as engagement

    doctor = xiehe.people.get(name="张伟")
    customers.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "wechat", "status": "withdrawn"})
    for i in range(10):
        engagement.record_interaction(admin_user, {"person": doctor, "channel": ("wechat", "visit")[i % 2],
                                                   "subject": f"沟通{i}"})  # fmt: skip
    api = api_for("agent")

    with django_assert_max_num_queries(11):
        rows = api.get("/api/v1/interactions/").json()["results"]

    assert sum(bool(r["consent_warning"]) for r in rows) == 5
