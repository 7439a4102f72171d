"""Thirty-fifth session: one rule per field whichever way a customer record comes in — the import (its fast write
path too), the web forms and the API (tests/api/test_qa_round35_entry_paths_api.py) — with the same message naming
the field and the reason, and nothing cut to fit."""

from __future__ import annotations

import csv
import re

import pytest
from django.urls import reverse

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob, Institution, Person

LONG_ADDRESS = "北京市东城区帅府园" + "一" * 247  # 256 characters: one more than an address holds
# pasted from a web page with its spaces: 341 characters as typed, 255 once the spaces are collapsed (as stored)
SPACED_ADDRESS = "北京市东城区帅府园1号" + "  楼" * 85 + "  " + "室" * 73


def _csv(tmp_path, name: str, rows: list[list[str]]):
    path = tmp_path / name
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def _errors(job) -> list[tuple[int, str, str]]:
    return [(e["row"], e["column"], importer.error_text(e)) for e in job.errors]


def _input(page: str, name: str) -> str:
    return re.search(rf'<(?:input|textarea)[^>]*name="{name}"[^>]*>', page)[0]


# --- an address: at most 255 characters as stored, on every path ---------------------------------------------


def test_sanity_of_the_addresses():
    from pharmacrm.customers import normalise

    assert len(LONG_ADDRESS) == 256
    assert len(SPACED_ADDRESS) > 255 and len(normalise.clean_text(SPACED_ADDRESS)) == 255


@pytest.mark.parametrize("mode", ["good", "all"])
def test_the_import_refuses_an_address_or_home_address_over_255_characters_naming_the_column(
    users, xiehe, tmp_path, settings, mode
):
    """A people list's 家庭住址 of 300 characters was imported whole, while the form and the API refused anything over
    255; an institution's 地址 counted as stored was taken by the import and refused by the form. Now each path
    counts the address as stored and refuses a longer one with the same words: the row (good rows only) or the
    file (all or nothing), as for any bad cell."""
    settings.VAR_DIR = tmp_path
    institutions = _csv(tmp_path, "institutions.csv", [
        ["机构名称", "机构类型", "地址", "外部编号"],
        ["东城社区卫生服务中心", "社区卫生服务中心", LONG_ADDRESS, "I-1"],
        ["帅府园诊所", "诊所", SPACED_ADDRESS, "I-2"],
    ])  # fmt: skip
    job = importer.import_file(institutions, "institutions", users["kam"], mode=mode)
    assert _errors(job) == [(2, "地址", "地址过长：最多 255 个字符（当前为 256 个）。")]
    assert not Institution.objects.filter(external_id="I-1").exists()
    if mode == "good":
        assert (job.status, job.created_count) == (ImportJob.Status.DONE, 1)
        assert len(Institution.objects.get(external_id="I-2").address) == 255
    else:
        assert (job.status, job.created_count) == (ImportJob.Status.REJECTED, 0)
        assert not Institution.objects.filter(external_id="I-2").exists()

    people = _csv(tmp_path, "people.csv", [
        ["姓名", "所属机构", "家庭住址", "外部编号"],
        ["李娜", "北京协和医院", LONG_ADDRESS, "P-1"],
        ["王芳", "北京协和医院", "北京市东城区帅府园1号", "P-2"],
    ])  # fmt: skip
    job = importer.import_file(people, "people", users["kam"], mode=mode)
    assert _errors(job) == [(2, "家庭住址", "家庭住址过长：最多 255 个字符（当前为 256 个）。")]
    assert not Person.objects.filter(external_id="P-1").exists()
    assert Person.objects.filter(external_id="P-2").exists() == (mode == "good")


def test_a_reimported_record_keeps_its_address_when_the_new_one_is_too_long(users, xiehe, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    Institution.objects.filter(pk=xiehe.pk).update(address="东城区帅府园1号")
    path = _csv(tmp_path, "institutions.csv", [
        ["内部编号", "机构名称", "机构类型", "地址"], [xiehe.code, xiehe.name, "医院", LONG_ADDRESS],
    ])
    job = importer.import_file(path, "institutions", users["kam"], mode="good")
    assert (job.updated_count, job.error_count) == (0, 1)
    assert _errors(job) == [(2, "地址", "地址过长：最多 255 个字符（当前为 256 个）。")]
    assert Institution.objects.get(pk=xiehe.pk).address == "东城区帅府园1号"


def test_the_forms_refuse_an_address_over_255_characters_with_the_imports_words_and_never_cut_it(
    client_for, xiehe
):
    """The forms counted the address as typed, spaces and all, where the import counts it as stored; and the
    browser, told maxlength="255", cut a longer address pasted in without a word."""
    client = client_for("kam")
    url = reverse("customers:institution-create")
    assert "maxlength" not in _input(client.get(url).content.decode(), "address")
    form = {"name": "东城社区卫生服务中心", "kind": "community", "tier": "new", "stage": "potential"}
    page = client.post(url, {**form, "address": LONG_ADDRESS})
    assert page.status_code == 200
    assert page.context["form"].errors["address"] == ["地址过长：最多 255 个字符（当前为 256 个）。"]
    assert "地址过长：最多 255 个字符（当前为 256 个）。" in page.content.decode()
    assert not Institution.objects.filter(name="东城社区卫生服务中心").exists()
    # with another field in error too, both are said in one round
    page = client.post(url, {**form, "address": LONG_ADDRESS, "phone": "12345"})
    assert set(page.context["form"].errors) == {"address", "phone"}
    # an address that fits once its spaces are collapsed is taken, as the import takes it
    answer = client.post(url, {**form, "address": SPACED_ADDRESS})
    assert answer.status_code == 302
    assert len(Institution.objects.get(name="东城社区卫生服务中心").address) == 255

    url = reverse("customers:person-create")
    assert "maxlength" not in _input(client.get(url).content.decode(), "home_address")
    person = {"name": "李娜", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential"}
    page = client.post(url, {**person, "home_address": LONG_ADDRESS, "email": "not an address"})
    assert page.status_code == 200
    assert page.context["form"].errors["home_address"] == ["家庭住址过长：最多 255 个字符（当前为 256 个）。"]
    assert "email" in page.context["form"].errors
    assert not Person.objects.filter(name="李娜").exists()


# --- a consent's evidence: at most 5000 characters (the import takes no consents) ----------------------------------


def test_the_consent_form_refuses_evidence_over_5000_characters_as_the_api_does(client_for, xiehe):
    """The API refused evidence over 5000 characters with words naming no field, while the web form stored any
    length: the same limit and the same message naming the field now. (No import reads consent records.)"""
    from pharmacrm.customers.models import Consent

    person = Person.objects.get(name="张伟")
    client = client_for("agent")
    assert "maxlength" not in _input(client.get(reverse("customers:person", args=[person.pk])).content.decode(),
                                     "evidence")  # fmt: skip
    url = reverse("customers:consent-create", args=[person.pk])
    consent = {"purpose": "marketing", "channel": "phone", "status": "given"}
    page = client.post(url, {**consent, "evidence": "录音编号 " + "证" * 4996})
    assert page.status_code == 400
    assert page.context["consent_form"].errors["evidence"] == ["凭证过长：最多 5000 个字符（当前为 5001 个）。"]
    assert "凭证过长：最多 5000 个字符（当前为 5001 个）。" in page.content.decode()
    # said together with another field's error
    page = client.post(url, {**consent, "channel": "", "evidence": "证" * 5001})
    assert set(page.context["consent_form"].errors) == {"channel", "evidence"}
    assert not Consent.objects.filter(person=person).exists()
    assert client.post(url, {**consent, "evidence": "证" * 5000}).status_code == 302
    assert len(Consent.objects.get(person=person).evidence) == 5000


# --- an empty birthday: no birthday (the API takes "" so too) ----------------------------------------------------


def test_an_empty_birthday_on_the_form_is_no_birthday_and_an_edit_removes_the_stored_one(client_for, xiehe):
    client = client_for("kam")
    person = {"name": "李娜", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential"}
    assert client.post(reverse("customers:person-create"), {**person, "birthday": ""}).status_code == 302
    assert Person.objects.get(name="李娜").birthday is None
    zhang = Person.objects.get(name="张伟")
    url = reverse("customers:person-edit", args=[zhang.pk])
    form = client.get(url).context["form"]
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    answer = client.post(url, {**data, "birthday": ""})
    assert answer.status_code == 302, answer.context["form"].errors
    assert Person.objects.get(pk=zhang.pk).birthday is None


def test_an_empty_birthday_cell_is_no_birthday_for_a_new_person_and_keeps_a_stored_one(
    users, xiehe, tmp_path, settings
):
    """The import's rule for every column: an empty cell is nothing for a new row (as the form's empty birthday) and
    leaves an existing customer's value as it is (docs/import.md); it is never an error."""
    settings.VAR_DIR = tmp_path
    zhang = Person.objects.get(name="张伟")
    path = _csv(tmp_path, "people.csv", [
        ["内部编号", "姓名", "所属机构", "生日"], ["", "李娜", "北京协和医院", ""], [zhang.code, "张伟", "北京协和医院", ""],
    ])  # fmt: skip
    job = importer.import_file(path, "people", users["kam"], mode="all")
    assert (job.status, job.created_count, job.error_count) == (ImportJob.Status.DONE, 1, 0), job.errors
    assert Person.objects.get(name="李娜").birthday is None
    assert str(Person.objects.get(pk=zhang.pk).birthday) == "1975-03-15"


# --- a mobile number with an extension: refused everywhere (a landline keeps its extension) ------------------------

NO_EXTENSION = "手机号码不带分机号：请只填写号码本身。分机号（转123）只用于座机。"


@pytest.mark.parametrize("mode", ["good", "all"])
def test_the_import_refuses_a_mobile_with_an_extension_and_keeps_a_landlines(users, xiehe, tmp_path, settings, mode):
    """13800138000转123 in a people list's 手机 (or its one 电话 column) was imported as 13800138000: the extension was
    dropped without a word, as on the form and in the API. A mobile has no extension: the row is refused, saying so;
    a landline's extension is kept as before."""
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "people.csv", [
        ["姓名", "所属机构", "手机", "座机", "电话"],
        ["李娜", "北京协和医院", "13800138000转123", "", ""],
        ["王芳", "北京协和医院", "", "", "139 0013 9000 分机 8"],
        ["刘洋", "北京协和医院", "13700137000", "010-12345678转123", ""],
    ])  # fmt: skip
    job = importer.import_file(path, "people", users["kam"], mode=mode)
    assert _errors(job) == [(2, "手机", NO_EXTENSION), (3, "电话", NO_EXTENSION)]
    assert not Person.objects.filter(name__in=["李娜", "王芳"]).exists()
    if mode == "good":
        liu = Person.objects.get(name="刘洋")
        assert (liu.mobile, liu.landline) == ("13700137000", "01012345678转123")
    else:
        assert job.status == ImportJob.Status.REJECTED and not Person.objects.filter(name="刘洋").exists()


def test_the_person_form_refuses_a_mobile_with_an_extension_while_typed_and_when_saved(client_for, xiehe):
    client = client_for("kam")
    url = reverse("customers:person-create")
    typed = client.post(url, {"_validate": "mobile", "mobile": "13800138000转123"}, HTTP_HX_REQUEST="true")
    assert NO_EXTENSION in typed.content.decode()
    person = {"name": "李娜", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential"}
    page = client.post(url, {**person, "mobile": "13800138000转123"})
    assert page.status_code == 200
    assert page.context["form"].errors["mobile"] == [NO_EXTENSION]
    assert not Person.objects.filter(name="李娜").exists()
    # a landline keeps its extension
    assert client.post(url, {**person, "mobile": "13800138001", "landline": "010-12345678转123"}).status_code == 302
    assert Person.objects.get(name="李娜").landline == "01012345678转123"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["good", "all"])
def test_the_imports_fast_write_path_applies_the_same_checks(users, tmp_path, settings, monkeypatch, mode):
    """Chunks of 25 rows written by the import's writer thread where it can run (outside a transaction, not on an
    in-memory database): the cells of a late chunk are checked with the same rules as the forms' and the API's."""
    import threading

    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(importer, "CHUNK_ROWS", 25)
    threads, commit = [], importer._commit

    def spy(run, items, in_transaction):
        threads.append(threading.current_thread().name)
        return commit(run, items, in_transaction)

    monkeypatch.setattr(importer, "_commit", spy)
    rows = [["姓名", "手机", "家庭住址", "外部编号"]]
    rows += [[f"测试{n:03d}", f"139{n:08d}", "北京市东城区帅府园1号", f"T-{n}"] for n in range(80)]
    rows[61][1] = "13900000060转123"
    rows[71][2] = LONG_ADDRESS
    job = importer.import_file(_csv(tmp_path, "people.csv", rows), "people", users["kam"], mode=mode)
    assert _errors(job) == [(62, "手机", NO_EXTENSION), (72, "家庭住址", "家庭住址过长：最多 255 个字符（当前为 256 个）。")]
    assert not Person.objects.filter(external_id__in=["T-60", "T-70"]).exists()
    expected = 78 if mode == "good" else 0
    assert Person.objects.filter(external_id__startswith="T-").count() == expected == job.created_count
    if mode == "good":  # four chunks, each committed by the writer thread where it can run
        writer = "import-writer" if importer.writer_thread_possible() else threading.main_thread().name
        assert threads == [writer] * 4


def test_the_templates_instructions_give_the_address_limit_and_the_phone_rules(client_for):
    """The rules the import applies to addresses and phones are written where the user fills the file in."""
    import io

    from openpyxl import load_workbook

    client = client_for("kam")
    notes = {}
    for target in ("institutions", "people"):
        response = client.get(reverse("customers:import-template", args=[target, "xlsx"]))
        sheet = load_workbook(io.BytesIO(response.content)).worksheets[1]
        notes[target] = {row[0].value: row[2].value for row in sheet.iter_rows(min_row=2)}
    assert notes["institutions"]["地址"] == "最多 255 个字符。"
    assert notes["people"]["家庭住址"] == "最多 255 个字符。"
    assert notes["people"]["手机"].startswith("以 13–19 开头的 11 位号码，不带分机号（分机号填在座机中）")
    assert "+852 9123 4567" in notes["people"]["手机"]  # a mobile from elsewhere, with its country code
    assert "010-12345678转123" in notes["people"]["座机"]
