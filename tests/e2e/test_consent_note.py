"""A rep recording a WeChat message is told on the form, as soon as they choose the channel, that the doctor
withdrew their consent to marketing by WeChat."""

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.customers import services as customers

from .conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_consent_note_appears_and_goes_with_the_channel_chosen(page, users, admin_user, xiehe):
    doctor = xiehe.people.get(name="张伟")
    customers.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "wechat", "status": "withdrawn",
                                                 "at": timezone.now() - dt.timedelta(days=3)})  # fmt: skip
    sign_in(page, "rep")
    page.goto(f"/interactions/new/?institution={xiehe.pk}&person={doctor.pk}")
    note = page.locator("#form-consent-warning")
    assert note.count() == 0

    page.select_option("#id_channel", "wechat")
    note.wait_for()
    assert "张伟 已于" in note.inner_text() and "微信" in note.inner_text()

    page.select_option("#id_channel", "visit")
    note.wait_for(state="detached")
    page.select_option("#id_channel", "wechat")
    note.wait_for()
    page.select_option("#id_person", "")  # nobody chosen: nothing to say
    note.wait_for(state="detached")
