"""Fixtures shared by the service-desk tests."""

import pytest

from pharmacrm.servicedesk import services as _desk
from tests.api.conftest import api_for  # noqa: F401  (token clients per role)


@pytest.fixture
def english(settings):
    """Pages and messages in English, for tests that read the English source texts
    (`pytestmark = pytest.mark.usefixtures("english")`)."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def raise_ticket(users, xiehe):
    """A phone ticket about drug information at 北京协和医院 (or another institution), raised by the agent."""

    def make(subject="咨询用法", user="agent", institution=None, **extra):
        data = {"subject": subject, "channel": "phone", "category": "drug_info",
                "institution": institution or xiehe, **extra}  # fmt: skip
        return _desk.create_ticket(users[user], data)

    return make


def resolved_ticket(users, institution):
    """A phone ticket handled by the agent and resolved: it takes revisits and improvement actions."""
    from pharmacrm.servicedesk.choices import Status

    t = _desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                             "institution": institution, "assignee": users["agent"]})  # fmt: skip
    _desk.transition(users["agent"], t, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    return t


@pytest.fixture
def caller_ticket(users):
    return _desk.create_ticket(users["agent"], {
        "subject": "询问用法", "channel": "phone", "category": "drug_info", "caller_name": "李女士",
        "caller_phone": "13912345678",
    })  # fmt: skip


def intake(client, **data):
    """The intake page filled in and sent (a phone ticket from a named caller, unless `data` says otherwise)."""
    import re

    html = client.get("/service/new/").content.decode()
    token = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    return client.post("/service/new/", {"form_token": token, "channel": "phone", "category": "drug_info",
                                         "subject": "咨询用法", "description": "", "caller_name": "王先生", **data})  # fmt: skip


def public_form(**overrides) -> dict:
    """The public web form's fields, filled in as a customer sends them (stamped ten seconds ago)."""
    import time

    from pharmacrm.servicedesk import public

    return {
        "name": "王小明", "phone": "138 0013 8000", "email": "", "institution": "北京协和医院",
        "category": "drug_info", "product": "", "batch_number": "", "subject": "用法咨询",
        "description": "请问这个药饭前还是饭后吃？", "website": "", "stamp": public.form_stamp(at=time.time() - 10),
        "privacy": "on", **overrides,
    }  # fmt: skip
