"""Fixtures for the web UI tests: English messages by default, 协和's doctor and department, more customers."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import Region
from pharmacrm.customers import services
from pharmacrm.customers.models import Institution, Person


@pytest.fixture(autouse=True)
def english_by_default(settings, request):
    """The assertions read the English source messages, which stay English after the translation pass;
    the language tests keep the real default (Simplified Chinese)."""
    if not request.module.__name__.endswith("test_i18n"):
        settings.LANGUAGE_CODE = "en"


@pytest.fixture
def doctor(xiehe) -> Person:
    return Person.objects.get(name="张伟", institution=xiehe)


@pytest.fixture
def department(xiehe) -> Institution:
    return Institution.objects.get(parent=xiehe, name="心内科")


@pytest.fixture
def many_customers(admin_user, xiehe):
    """Sixty institutions and sixty people in Beijing: more than one page of each list."""
    region = Region.objects.get(code="110105")
    for i in range(60):
        inst = services.create_institution(
            admin_user, {"name": f"测试诊所{i:02d}", "kind": "clinic", "region": region, "tags": ["测试"]}
        )
        services.create_person(
            admin_user, {"name": f"李{i:02d}", "institution": inst, "mobile": f"139{i:08d}", "tags": ["测试"]}
        )
