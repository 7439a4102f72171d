"""The loyalty pages and API: who sees and does what (per role, scoped to one's own and one's teams' customers), the
Customer 360 block and its join button, the approval inbox's four eyes, the Excel export, errors naming the field,
the pages in each language."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.loyalty import services
from pharmacrm.loyalty.models import (
    EntryKind,
    Level,
    LevelChange,
    Member,
    PointsEntry,
    Redemption,
    RedemptionStatus,
)
from tests.loyalty.test_loyalty import pharmacy

READERS = ("admin", "manager", "kam", "rep", "analyst", "auditor")
NONE = ("agent", "expert", "support", "aftersales", "pv")


@pytest.fixture
def world(users, beijing, team_north):
    shop = pharmacy(users["admin"], beijing, "同仁堂大药房朝阳店", owner=users["rep"], team=team_north)
    theirs = pharmacy(users["admin"], beijing, "金象大药房", owner=users["kam"], kind="distributor")
    ours = services.join(users["rep"], shop)
    kams = services.join(users["kam"], theirs)
    PointsEntry.objects.create(member=ours, kind=EntryKind.EARN, points=500, month=dt.date(2026, 3, 1))
    reward = services.create_reward(users["manager"], {"name": "产品试用装", "kind": "trial", "points_cost": 200,
                                                       "value_cny": "350.00"})  # fmt: skip
    asked = services.request_redemption(users["rep"], ours, reward)
    return {"shop": shop, "ours": ours, "kams": kams, "reward": reward, "asked": asked}


@pytest.mark.parametrize("role", READERS + NONE)
def test_who_opens_the_pages_the_export_and_the_api(world, client_for, role):
    c = client_for(role)
    want = 200 if role in READERS else 403
    for url in ("/loyalty/", "/loyalty/rewards/", "/loyalty/approvals/", "/loyalty/overview/",
                "/loyalty/overview/?format=xlsx", "/api/v1/loyalty/members/", "/api/v1/loyalty/redemptions/",
                "/api/v1/loyalty/referrals/", "/api/v1/loyalty/rewards/"):  # fmt: skip
        assert c.get(url).status_code == want, url


def test_a_rep_sees_their_teams_members_a_kam_their_own_leadership_all(world, client_for):
    def numbers(role):
        return {m["number"] for m in client_for(role).get("/api/v1/loyalty/members/").json()["results"]}

    assert numbers("rep") == {world["ours"].number}
    assert numbers("kam") == {world["kams"].number}
    assert numbers("manager") == numbers("analyst") == {world["ours"].number, world["kams"].number}
    assert client_for("kam").get(f"/loyalty/members/{world['ours'].pk}/").status_code == 404
    page = client_for("rep").get(f"/loyalty/members/{world['ours'].pk}/").content.decode()
    assert 'id="balance">300<' in page and "产品试用装" in page


def test_the_analyst_and_the_auditor_read_but_change_nothing(world, client_for):
    for role in ("analyst", "auditor"):
        c = client_for(role)
        r = c.post("/api/v1/loyalty/redemptions/", {"member": world["ours"].pk, "reward": world["reward"].pk},
                   content_type="application/json")  # fmt: skip
        assert r.status_code == 403
        assert c.post(f"/api/v1/loyalty/redemptions/{world['asked'].pk}/approve/", {},
                      content_type="application/json").status_code == 403  # fmt: skip
        assert c.post("/loyalty/rewards/", {"reward-name": "x"}).status_code == 403
    assert Redemption.objects.count() == 1


def test_the_inbox_lets_another_manager_decide_never_the_requester(world, client_for, users):
    asked = world["asked"]
    mine = services.request_redemption(users["manager"], world["ours"], world["reward"])
    page = client_for("manager").get("/loyalty/approvals/").content.decode()
    assert page.count('name="action" value="approve"') == 1  # the rep's request, not the manager's own
    r = client_for("manager").post(f"/api/v1/loyalty/redemptions/{mine.pk}/approve/", {"version": mine.version},
                                   content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 403 and "another manager" in r.json()["detail"]
    r = client_for("manager").post("/loyalty/approvals/", {"redemption": asked.pk, "version": asked.version,
                                                           "action": "approve"})  # fmt: skip
    assert r.status_code == 302
    asked.refresh_from_db()
    assert asked.status == RedemptionStatus.APPROVED and asked.decided_by == users["manager"]
    r = client_for("rep").post(f"/api/v1/loyalty/redemptions/{asked.pk}/fulfil/",
                               {"delivery_note": "随订单配送", "version": asked.version},
                               content_type="application/json")  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "fulfilled"
    stale = client_for("admin").post(f"/api/v1/loyalty/redemptions/{mine.pk}/reject/",
                                     {"note": "超出预算", "version": mine.version + 5},
                                     content_type="application/json")  # fmt: skip
    assert stale.status_code == 409


def test_the_api_names_the_field_in_the_readers_language(world, client_for, xiehe):
    r = client_for("manager").post("/api/v1/loyalty/members/", {"institution": xiehe.pk},
                                   content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400 and "Hospital customers cannot join" in r.json()["institution"][0]
    r = client_for("rep").post("/api/v1/loyalty/redemptions/", {"member": world["ours"].pk, "reward": world["reward"].pk,
                                                                "quantity": 2},
                               content_type="application/json", HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400 and "积分不足" in r.json()["reward"][0]
    r = client_for("rep").post("/api/v1/loyalty/referrals/", {"referrer": world["ours"].pk,
                                                              "referred": world["kams"].institution_id},
                               content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400 and "金象大药房 is a member already" in r.json()["referred"][0]
    assert (
        client_for("rep").get("/api/v1/loyalty/members/?level=gold&owner=99999999999999999999").status_code
        == 400
    )


def test_the_customer_page_shows_the_level_or_a_join_button(world, client_for, users, beijing, xiehe):
    c = client_for("rep")
    block = c.get(f"/loyalty/customer/{world['shop'].pk}/").content.decode()
    assert world["ours"].number in block and 'id="loyalty-balance">300<' in block
    new = pharmacy(users["admin"], beijing, "新开诊所", owner=users["rep"], kind="clinic")
    block = c.get(f"/loyalty/customer/{new.pk}/").content.decode()
    assert 'id="loyalty-join"' in block
    assert c.post(f"/loyalty/customer/{new.pk}/join/").status_code == 302
    assert Member.objects.filter(institution=new).exists()
    for role in ("manager", "kam"):  # the key-account manager does not own it, and is told why all the same
        block = (
            client_for(role)
            .get(f"/loyalty/customer/{xiehe.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans")
            .content.decode()
        )
        assert 'id="loyalty-join"' not in block and "医院类客户不能加入忠诚度计划" in block
    assert (
        'id="loyalty"'
        in client_for("rep").get(f"/customers/institutions/{world['shop'].pk}/").content.decode()
    )
    assert client_for("agent").get(f"/loyalty/customer/{world['shop'].pk}/").status_code == 403


def test_the_member_page_shows_errors_under_the_field(world, client_for):
    r = client_for("manager").post(f"/loyalty/members/{world['ours'].pk}/", {"action": "adjust", "adjust-points": "x",
                                                                             "adjust-reason": ""},
                                   HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400
    body = r.content.decode()
    assert 'id="id_adjust-points_error"' in body and 'id="id_adjust-reason_error"' in body
    assert PointsEntry.objects.filter(kind=EntryKind.ADJUST).count() == 0


def test_the_overview_export_is_audited(world, client_for, users):
    r = client_for("analyst").get("/loyalty/overview/?format=xlsx")
    book = load_workbook(io.BytesIO(r.content))
    assert book.active.max_row == 13  # a header and twelve months
    assert AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, actor=users["analyst"]).exists()


@pytest.mark.parametrize("lang, words", [("zh-hans", ["会员", "积分", "兑换"]), ("en", ["Loyalty members", "Points"]),
                                         ("zh-hant", ["會員", "積分", "兌換"])])  # fmt: skip
def test_the_pages_in_each_language(world, client_for, lang, words):
    c = client_for("manager")
    for url in ("/loyalty/", f"/loyalty/members/{world['ours'].pk}/", "/loyalty/approvals/", "/loyalty/overview/",
                "/loyalty/rewards/"):  # fmt: skip
        body = c.get(url, HTTP_ACCEPT_LANGUAGE=lang).content.decode()
        assert any(w in body for w in words), (url, lang)
        if lang != "en":
            for english in ("Points balance", "Loyalty members", "Redemptions", "Reward catalogue", "Level"):
                assert f">{english}<" not in body, (url, english)


def test_the_demo_catalogues_rewards_read_in_each_language_until_renamed(world, users, client_for):
    """The demo ships its reward catalogue as data (返利券 ¥500（下单抵扣）…): an English or 繁體 page showed the
    Simplified Chinese names. Until renamed they read in the reader's language; a reward named by a manager (产品试用装)
    and a shipped one renamed read as typed."""
    from django.utils import translation

    from pharmacrm.loyalty.models import SHIPPED_REWARDS

    shipped = "返利券 ¥500（下单抵扣）"
    reward = services.create_reward(users["manager"], {"name": shipped, "kind": "rebate", "points_cost": 100,
                                                       "value_cny": "500.00"})  # fmt: skip
    services.request_redemption(users["rep"], world["ours"], reward)
    with translation.override("zh-hant"):
        traditional_name = str(SHIPPED_REWARDS[shipped])
    c = client_for("manager")
    member = f"/loyalty/members/{world['ours'].pk}/"
    for url in ("/loyalty/rewards/", "/loyalty/approvals/", member, f"/loyalty/rewards/{reward.pk}/"):
        english = c.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert shipped not in english.split("<form")[0] and "Rebate voucher ¥500 (off an order)" in english, url
        assert traditional_name in c.get(url, HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode(), url
        assert shipped in c.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode(), url
    assert "产品试用装" in c.get("/loyalty/rewards/", HTTP_ACCEPT_LANGUAGE="en").content.decode()  # as typed
    services.update_reward(users["manager"], reward, {"name": "返利券 ¥600"}, reward.version)
    assert "返利券 ¥600" in c.get("/loyalty/rewards/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_approve_and_deliver_clicked_twice_act_once_and_a_stale_one_is_refused(world, client_for, users):
    """A double click on Approve (or Delivered) answered the second time with an error (approved already, someone
    else changed it); the second now says it was saved. A colleague's decision in between is still refused."""
    asked = world["asked"]
    manager = client_for("manager")
    sent = {"redemption": asked.pk, "version": asked.version, "action": "approve"}
    assert _said(manager.post("/loyalty/approvals/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")) == ["Saved."]
    again = manager.post("/loyalty/approvals/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert _said(again) == ["Saved."]
    asked.refresh_from_db()
    assert asked.status == RedemptionStatus.APPROVED and asked.version == sent["version"] + 1

    sent = {"redemption": asked.pk, "version": asked.version, "action": "fulfil", "delivery_note": "随订单配送"}
    assert _said(manager.post("/loyalty/approvals/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")) == ["Saved."]
    again = manager.post("/loyalty/approvals/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert _said(again) == ["Saved."] and Redemption.objects.get(pk=asked.pk).status == RedemptionStatus.FULFILLED

    mine = services.request_redemption(users["rep"], world["ours"], world["reward"])
    sent = {"redemption": mine.pk, "version": mine.version, "action": "approve"}
    assert _said(client_for("admin").post("/loyalty/approvals/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")) == [
        "Saved."]  # a colleague decides first
    late = manager.post("/loyalty/approvals/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert _said(late) != ["Saved."]
    without = client_for("admin").post("/loyalty/approvals/", {"redemption": mine.pk, "action": "fulfil",
                                                               "delivery_note": "随订单配送"}, follow=True)  # fmt: skip
    assert Redemption.objects.get(pk=mine.pk).status == RedemptionStatus.APPROVED and _said(without) != ["Saved."]


def _said(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize("lang", ["zh-hans", "en", "zh-hant"])
def test_money_is_written_with_thousands_and_fen_in_every_language(world, client_for, users, lang):
    # ¥{{ value|intcomma }} grouped nothing on a Chinese page (¥12000.00), and the level history rounded its purchases
    # to the yuan (¥123457 for ¥123,456.50)
    reward = services.create_reward(users["manager"], {"name": "学术会议赞助", "kind": "training", "points_cost": 100,
                                                       "value_cny": "12000.00"})  # fmt: skip
    services.request_redemption(users["rep"], world["ours"], reward)
    LevelChange.objects.create(member=world["ours"], old_level=Level.STANDARD, new_level=Level.SILVER,
                               changed_on=dt.date(2026, 4, 1), basis_fen=12_345_650)  # fmt: skip
    rewards = client_for("manager").get("/loyalty/rewards/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    inbox = client_for("manager").get("/loyalty/approvals/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    member = client_for("rep").get(f"/loyalty/members/{world['ours'].pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert "¥12,000.00" in rewards and "¥12,000.00" in inbox and "¥12,000.00" in member
    assert "¥123,456.50" in member and "¥350.00" in member  # the level's basis; the other request's value
