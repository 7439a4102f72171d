"""Session 57, customer master data: a name of punctuation alone is no name (the form, the services, the import),
and a department lies in its hospital's province (the services, the form, the import). The API's side is in
tests/api/test_qa_round57_master_data_api.py."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from pharmacrm.customers import importer, services
from pharmacrm.customers.models import ImportJob, Institution
from tests.customers.test_qa_round35_entry_paths import _csv, _errors

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
NO_WORD = "The name must contain a letter, a Chinese character or a digit: punctuation and symbols alone are not a name."
SYMBOLS = ["（）", "---", "···", "【】", "★☆", "( )"]


# --- a name of punctuation or symbols alone -------------------------------------------------------------------


@pytest.mark.parametrize("name", SYMBOLS)
def test_the_services_refuse_a_name_of_punctuation_alone(admin_user, xiehe, name):
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.create_institution(admin_user, {"name": name, "kind": "clinic"})
    assert refused.value.message_dict == {"name": [NO_WORD]}
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.update_institution(admin_user, xiehe, {"name": name})
    assert refused.value.message_dict == {"name": [NO_WORD]}
    xiehe.refresh_from_db()
    assert xiehe.name == "北京协和医院"


@pytest.mark.parametrize("name", ["（一）门诊部", "3", "A-1", "301医院", "·张氏诊所·"])
def test_a_name_with_a_letter_a_character_or_a_digit_is_taken(admin_user, name):
    assert services.create_institution(admin_user, {"name": name, "kind": "clinic"}).name == name


def test_the_form_refuses_a_name_of_punctuation_alone_on_the_name_field(client_for):
    client = client_for("kam")
    url = reverse("customers:institution-create")
    page = client.post(url, {"name": "（）", "kind": "clinic", "tier": "new", "stage": "potential"}, **EN)
    assert page.status_code == 200
    assert page.context["form"].errors["name"] == [NO_WORD]
    assert not Institution.objects.filter(name="（）").exists()


@pytest.mark.parametrize("mode", ["good", "all"])
def test_the_import_refuses_a_name_of_punctuation_alone(users, tmp_path, settings, mode):
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "institutions.csv", [
        ["机构名称", "机构类型", "外部编号"], ["---", "诊所", "I-1"], ["···", "诊所", "I-2"], ["帅府园诊所", "诊所", "I-3"],
    ])  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"], mode=mode)
    with translation.override("en"):
        assert _errors(job) == [(2, "机构名称", NO_WORD), (3, "机构名称", NO_WORD)]
    assert not Institution.objects.filter(external_id__in=["I-1", "I-2"]).exists()
    if mode == "good":
        assert (job.status, job.created_count) == (ImportJob.Status.DONE, 1)
    else:
        assert (job.status, job.created_count) == (ImportJob.Status.REJECTED, 0)


def test_the_import_reads_a_region_code_in_full_width_digits_as_the_api_does(users, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "institutions.csv", [["机构名称", "机构类型", "行政区划代码", "外部编号"],
                                               ["帅府园诊所", "诊所", "１１０１０１", "I-1"]])  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"])
    assert _errors(job) == []
    assert Institution.objects.get(external_id="I-1").region_id == "110101"
