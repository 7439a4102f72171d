"""The interaction form tells the rep, before saving, that the person chosen withdrew their consent to marketing
through the channel chosen — not only on the interaction's page once it is recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.customers import services as customers
from pharmacrm.engagement.models import Interaction

WITHDRAWN_WECHAT = "张伟 已于 {day} 撤回通过微信接收营销沟通的同意"


def _withdraw(admin_user, person, channel: str) -> str:
    at = timezone.now() - dt.timedelta(days=3)
    customers.record_consent(admin_user, person, {"purpose": "marketing", "channel": channel, "status": "withdrawn",
                                                 "at": at, "evidence": "微信回复：请勿再推送"})  # fmt: skip
    return timezone.localtime(at).date().isoformat()


@pytest.fixture
def doctor(xiehe):
    return xiehe.people.get(name="张伟")


def test_choosing_a_person_and_a_channel_whose_marketing_consent_was_withdrawn_shows_the_note(
    client_for, admin_user, xiehe, doctor
):
    day = _withdraw(admin_user, doctor, "wechat")
    client = client_for("rep")

    # the form opened from the person's page: a visit (the default channel) is not what was withdrawn
    page = client.get(f"/interactions/new/?institution={xiehe.pk}&person={doctor.pk}").content.decode()
    assert 'id="form-consent-warning"' not in page
    # the rep switches the channel to WeChat: the form asks for the note
    note = client.get(
        f"/interactions/new/?_options=consent&person={doctor.pk}&channel=wechat"
    ).content.decode()
    assert WITHDRAWN_WECHAT.format(day=day) in note
    assert (
        client.get(f"/interactions/new/?_options=consent&person={doctor.pk}&channel=visit").content.strip()
        == b""
    )
    # a form sent back for a correction keeps telling it
    response = client.post("/interactions/new/", {"institution": xiehe.pk, "person": doctor.pk, "channel": "wechat",
                                                  "subject": ""})  # fmt: skip
    assert response.status_code == 400
    assert WITHDRAWN_WECHAT.format(day=day) in response.content.decode()
    assert not Interaction.objects.exists()


def test_the_note_says_nothing_about_a_person_the_rep_may_not_see(client_for, admin_user, ruijin):
    lisi = customers.create_person(admin_user, {"name": "李四", "institution": ruijin, "title": "主任医师"})
    _withdraw(admin_user, lisi, "wechat")

    note = client_for("rep").get(f"/interactions/new/?_options=consent&person={lisi.pk}&channel=wechat")

    assert note.status_code == 200 and note.content.strip() == b""
    # an agent, who sees every customer, is told
    assert (
        "李四 已于"
        in client_for("agent")
        .get(f"/interactions/new/?_options=consent&person={lisi.pk}&channel=wechat")
        .content.decode()
    )


def test_the_note_needs_the_right_to_record_interactions(client_for, admin_user, xiehe, doctor):
    _withdraw(admin_user, doctor, "wechat")

    response = client_for("auditor").get(
        f"/interactions/new/?_options=consent&person={doctor.pk}&channel=wechat"
    )

    assert response.status_code == 403


def test_the_rep_reads_that_a_hand_off_time_counted_into_a_year_without_holidays_may_move(
    client_for, users, xiehe
):
    """The interaction's page told the rep "a PV officer will look at it by 2027-01-01 10:00" as firm while 2027's
    holidays (元旦 among them) were not entered; PV's own pages already said it was provisional."""
    from pharmacrm.safety.models import SafetyClock
    from pharmacrm.servicedesk import calendars
    from pharmacrm.servicedesk.models import BusinessCalendar

    client = client_for("rep")
    local = timezone.localtime(timezone.now())
    client.post("/interactions/new/", {"institution": xiehe.pk, "channel": "visit", "subject": "科室拜访",
                                       "received_at": local.strftime("%Y-%m-%dT%H:%M"),
                                       "notes": "患者用药后出现皮疹"})  # fmt: skip
    interaction = Interaction.objects.get()
    clock = SafetyClock.objects.get(flag__interaction=interaction, met_at__isnull=True)
    assert clock.calendar_id  # a working-day hand-off
    SafetyClock.objects.filter(pk=clock.pk).update(
        due_at=dt.datetime(2027, 1, 1, 10, tzinfo=timezone.get_current_timezone())
    )

    def state() -> str:
        return (
            client.get(f"/interactions/{interaction.pk}/")
            .content.decode()
            .split('id="flag-state"')[1]
            .split("</p>")[0]
        )

    assert (
        "2027-01-01 10:00" in state()
        and 'data-uncovered="2027"' in state()
        and "2027 年的法定节假日尚未录入" in state()
    )
    for day in (dt.date(2027, 2, 6), dt.date(2027, 10, 1)):  # the Spring Festival and National Day entered
        calendars.set_override(
            users["admin"], BusinessCalendar.objects.get(pk=clock.calendar_id), day, False, ""
        )
    assert "data-uncovered" not in state()
