"""Forty-first session: the note a form gives while a phone number is typed ("Another … already has this phone number:
check for a duplicate") follows the duplicate rule. A department's doctors share its line, each on their own
extension, and a hospital's departments are reached through its switchboard: the duplicate list and the likely
duplicates on a record's page never pair them, but the note told every new doctor and every new department to check
for a duplicate of each colleague. The same number with the same extension (or none) is still noted."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.customers import services


@pytest.fixture
def department_line(admin_user, xiehe):
    """心内科 of 北京协和医院 on the switchboard's extension 8021, and a doctor there on extension 8001."""
    cardiology = xiehe.children.get(name="心内科")
    services.update_institution(admin_user, cardiology, {"phone": "010-69156114转8021"}, version=cardiology.version)
    services.create_person(admin_user, {"name": "李明", "institution": xiehe, "department": cardiology,
                                        "landline": "010-69156114转8001"})  # fmt: skip
    return cardiology


def _note(client, url: str, field: str, value: str, **form) -> str:
    answer = client.post(url, {"_validate": field, field: value, **form}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    return answer.content.decode()


PERSON_NOTE = "已有其他联系人使用此电话号码"
INSTITUTION_NOTE = "已有其他机构使用此电话号码"


def test_a_doctor_on_another_extension_of_the_department_line_is_no_likely_duplicate(client_for, department_line):
    url = reverse("customers:person-create")
    kam = client_for("kam")
    assert PERSON_NOTE not in _note(kam, url, "landline", "010-69156114转8002")
    assert PERSON_NOTE in _note(kam, url, "landline", "010 6915 6114 转 8001")  # the colleague's own extension
    assert PERSON_NOTE in _note(kam, url, "mobile", "13800138000")  # 张伟's mobile


def test_a_department_on_another_extension_of_the_switchboard_is_no_likely_duplicate(client_for, xiehe,
                                                                                     department_line):  # fmt: skip
    url = reverse("customers:institution-create")
    kam = client_for("kam")
    department = {"kind": "department", "parent": xiehe.pk}
    assert INSTITUTION_NOTE not in _note(kam, url, "phone", "010-69156114转8022", **department)
    assert INSTITUTION_NOTE in _note(kam, url, "phone", "010-69156114-8021", **department)
    # another hospital on the same switchboard number is one to check
    assert INSTITUTION_NOTE in _note(kam, url, "phone", "010-69156114", kind="hospital")


def test_editing_a_record_does_not_note_its_own_number(client_for, department_line):
    kam = client_for("kam")
    url = reverse("customers:institution-edit", args=[department_line.pk])
    assert INSTITUTION_NOTE not in _note(kam, url, "phone", "010-69156114转8021", kind="department")
