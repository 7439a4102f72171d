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
    note = client.get(f"/interactions/new/?_options=consent&person={doctor.pk}&channel=wechat").content.decode()
    assert WITHDRAWN_WECHAT.format(day=day) in note
    assert client.get(f"/interactions/new/?_options=consent&person={doctor.pk}&channel=visit").content.strip() == b""
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
    assert "李四 已于" in client_for("agent").get(
        f"/interactions/new/?_options=consent&person={lisi.pk}&channel=wechat"
    ).content.decode()


def test_the_note_needs_the_right_to_record_interactions(client_for, admin_user, xiehe, doctor):
    _withdraw(admin_user, doctor, "wechat")

    response = client_for("auditor").get(f"/interactions/new/?_options=consent&person={doctor.pk}&channel=wechat")

    assert response.status_code == 403
