"""Fixtures for safety cases: a case factory through the services, and one-time codes for signatures."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm.safety import services


def sign_code(user) -> str:
    """A current one-time code from the user's authenticator (the device client_for() set up), for an
    electronic signature. Each code works once: call again after a short wait for another."""
    device, _created = TOTPDevice.objects.get_or_create(user=user, name="default", defaults={"confirmed": True})
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def next_code(user) -> str:
    """The code of the next 30-second step (accepted within the device's tolerance of one step): a second
    signature in the same test without waiting."""
    device = TOTPDevice.objects.get(user=user, name="default")
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift + 1):0{device.digits}d}"


COMPLETE = {
    "kind": "adverse_reaction",
    "patient_name": "王XX", "patient_sex": "2", "patient_age": "45", "patient_age_unit": "a",
    "patient_weight_kg": "60", "patient_history": "高血压病史 5 年",
    "reporter_name": "张伟", "reporter_contact": "13800138000", "reporter_institution": "北京协和医院",
    "reporter_qualification": "1",
    "narrative": "患者静脉滴注头孢曲松后 30 分钟出现全身皮疹、瘙痒，停药并给予抗过敏治疗后好转。",
    "expectedness": "expected", "causality_reporter": "probable", "causality_company": "possible",
    "drugs": [{"role": "1", "brand_name": "罗氏芬", "generic_name": "注射用头孢曲松钠", "approval_number": "国药准字H20033446",
               "dosage_form": "注射剂", "batch": "B20260901", "dose": "2", "dose_unit": "g", "route": "静脉滴注",
               "frequency": "每日一次", "indication": "社区获得性肺炎", "action_taken": "1", "dechallenge": "yes",
               "rechallenge": "not_done"}],
    "reactions": [{"verbatim": "全身皮疹伴瘙痒", "meddra_version": "27.1", "meddra_llt": "10037844",
                   "outcome": "2"}],
}  # fmt: skip


@pytest.fixture
def web(client_for):
    """web("pv") → that role's client, in English (the messages the tests look for)."""

    def make(role: str):
        client = client_for(role)
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        return client

    return make


@pytest.fixture
def make_case(users):
    """make_case(**overrides) → a case opened by the PV officer through the services (complete and valid
    unless the overrides take something away)."""

    def make(**overrides):
        data = {**COMPLETE, **overrides}
        data.setdefault("received_at", timezone.now() - dt.timedelta(days=1))
        return services.create_case(users["pv"], data)

    return make


def reopen(client, case, how: str) -> None:
    """Reopen a closed case through the API as an officer would: by the status change ("status") or by a follow-up
    ("follow-up", the autopsy report)."""
    if how == "status":
        response = client.post(f"/api/v1/safety/cases/{case.pk}/status/",
                               {"status": "assessing", "reason": "总部要求重新评估", "version": case.version},
                               format="json")  # fmt: skip
        assert response.status_code == 200, response.content
    else:
        response = client.post(f"/api/v1/safety/cases/{case.pk}/follow-ups/",
                               {"follow_up_received_at": timezone.now().replace(microsecond=0).isoformat(),
                                "summary": "尸检报告", "narrative": "尸检报告：过敏性休克", "version": case.version},
                               format="json")  # fmt: skip
        assert response.status_code == 201, response.content
