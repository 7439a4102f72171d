"""Thirty-fourth session: customer master data as the users meet it — consent dates, the audit page's words for
customer changes and exports, a person's birthday kept by the edit form, a departed owner kept on the record, and
the import's owner column and stray quotes."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from pharmacrm.customers import services
from pharmacrm.customers.models import Consent, Person


def _doctor() -> Person:
    return Person.objects.get(name="张伟")


@pytest.mark.parametrize("typed", ["0001-01-01T00:00", "1900-01-01T00:00", "1999-12-31T23:59"])
def test_a_consent_dated_in_a_mistyped_year_is_refused_on_the_page_naming_the_field(client_for, xiehe, typed):
    """An agent types the consent's date with the year mistyped (0001): the page answered with a server error
    (year 1 in UTC is before year 1 in the database's time), and 1900 was kept as the day the doctor consented."""
    person = _doctor()
    client = client_for("agent")
    answer = client.post(reverse("customers:consent-create", args=[person.pk]), {
        "purpose": "marketing", "channel": "phone", "status": "given", "at": typed,
    })  # fmt: skip
    assert answer.status_code == 400
    assert answer.context["consent_form"].errors["at"] == ["授权同意的日期不能早于 2000-01-01。"]
    assert not Consent.objects.filter(person=person).exists()


def test_the_api_refuses_a_consent_dated_before_2000_naming_the_field(client_for, xiehe):
    person = _doctor()
    client = client_for("agent")
    for at in ("0001-01-01T00:00:00Z", "1900-01-01T00:00:00+08:00"):
        answer = client.post("/api/v1/consents/", {
            "person": person.pk, "purpose": "marketing", "channel": "phone", "status": "given", "at": at,
        }, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
        assert answer.status_code == 400, answer.content
        assert answer.json() == {"at": ["A consent cannot be dated before 2000-01-01."]}
    assert not Consent.objects.filter(person=person).exists()
    answer = client.post("/api/v1/consents/", {
        "person": person.pk, "purpose": "marketing", "channel": "phone", "status": "given",
        "at": "2000-01-01T00:00:00+08:00",
    }, content_type="application/json")  # fmt: skip
    assert answer.status_code == 201, answer.content


def _export_entries_as_the_auditor_reads_them(client_for) -> list[str]:
    page = client_for("auditor").get("/accounts/audit/", {"action": "export"}).content.decode()
    return [re.sub(r"\s+", " ", html.unescape(d)) for d in re.findall(r"<dd>([^<]*)</dd>", page)]


def test_an_exports_filters_read_in_chinese_on_the_audit_page(users, client_for, xiehe):
    """The auditor checks what a key-account manager exported: the people export's filters read "Region: 110000;
    q: 张" on the Chinese page — an English label, the search box's parameter name and a region code — and an
    institution export was recorded as filtered by a role (?role=doctor), which no institution export applies."""
    client = client_for("kam")
    for target in ("people", "institutions"):
        answer = client.get(f"/customers/export/{target}.csv", {"province": "110000", "q": "张", "role": "doctor"})
        b"".join(answer.streaming_content)
    details = _export_entries_as_the_auditor_reads_them(client_for)
    filters = [set(d.split("；")) for d in details if "张" in d]  # in the order the database keeps the keys
    assert filters == [{"行政区划：北京市", "搜索：张"}, {"行政区划：北京市", "搜索：张", "角色：医生"}]


def test_not_the_same_customer_and_a_deleted_persons_consents_read_in_chinese_on_the_audit_page(
    users, client_for, xiehe, ruijin
):
    """A manager marks two hospitals as different customers and deletes a person who had consented: the auditor's
    Chinese audit page named the first change “not_a_duplicate_of” (the key as stored; the customer's history tab
    labels it) and each consent record kept with the deletion “Created at”."""
    manager = client_for("manager")
    answer = manager.post(reverse("customers:not-duplicates", args=["institution", xiehe.pk, ruijin.pk]))
    assert answer.status_code == 302
    person = _doctor()
    services.record_consent(users["agent"], person, {"purpose": "marketing", "channel": "phone", "status": "given"})
    services.delete_customer(users["manager"], person)
    page = client_for("auditor").get("/accounts/audit/").content.decode()
    assert "not_a_duplicate_of" not in page and "Created at" not in page
    assert f"与之非同一客户 — → {ruijin.code}" in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "创建时间：" in page


def _as_a_browser_sends_it(page: str) -> dict:
    """The edit form's fields as a browser sends them back unchanged: a date input whose value is no yyyy-mm-dd date
    is shown empty and sent empty (HTML's value sanitization)."""
    data = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        kind = (re.search(r'type="([^"]+)"', tag) or [None, "text"])[1]
        if name is None or kind in ("checkbox", "submit", "file"):
            continue
        value = html.unescape((re.search(r'value="([^"]*)"', tag) or [None, ""])[1])
        if kind == "date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            value = ""
        data[name[1]] = value
    for select in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select[1])
        data[select[0]] = chosen[1] if chosen else ""
    for name, value in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        data[name] = html.unescape(value).strip("\n")
    return data


def test_saving_a_persons_form_on_the_chinese_page_keeps_their_birthday(client_for, xiehe):
    """A key-account manager corrects 张伟's title: the Chinese edit form wrote his birthday into the date input as
    1975/03/15, which a browser shows as an empty date, so saving the form erased the birthday."""
    person = _doctor()
    client = client_for("kam")
    url = reverse("customers:person-edit", args=[person.pk])
    data = _as_a_browser_sends_it(client.get(url).content.decode())
    assert data["birthday"] == "1975-03-15"
    data["title"] = "副主任医师"
    answer = client.post(url, data)
    assert answer.status_code == 302, answer.context["form"].errors
    person.refresh_from_db()
    assert person.title == "副主任医师"
    assert str(person.birthday) == "1975-03-15"


def test_a_departed_reps_customer_keeps_its_owner_when_someone_edits_it(users, client_for, xiehe):
    """The rep who owned 协和 and 张伟 has left (deactivated). A key-account manager adds a note on each: the
    owner select offered active users only, so saving the form took the owner away unasked (the history said the
    manager had done it), and an API client's PUT of the record as read was refused: “object does not exist”."""
    person = _doctor()
    rep = users["rep"]
    for record in (xiehe, person):
        type(record).objects.filter(pk=record.pk).update(owner=rep)
    rep.is_active = False
    rep.save(update_fields=["is_active"])
    client = client_for("kam")
    for record, url in ((xiehe, reverse("customers:institution-edit", args=[xiehe.pk])),
                        (person, reverse("customers:person-edit", args=[person.pk]))):  # fmt: skip
        data = _as_a_browser_sends_it(client.get(url).content.decode())
        assert data["owner"] == str(rep.pk)
        data["notes"] = "已交接，待分配新负责人"
        answer = client.post(url, data)
        assert answer.status_code == 302, answer.context["form"].errors
        record.refresh_from_db()
        assert record.notes == "已交接，待分配新负责人" and record.owner_id == rep.pk

    read = client.get(f"/api/v1/people/{person.pk}/").json()
    body = {k: read[k] for k in ("name", "role", "institution", "department", "owner", "team", "tier", "stage")}
    answer = client.put(f"/api/v1/people/{person.pk}/", {**body, "notes": "API", "version": read["version"]},
                        content_type="application/json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer.json()["owner"] == rep.pk
    # another departed user is still no owner to choose
    xiehe.refresh_from_db()
    leaver = users["expert"]
    leaver.is_active = False
    leaver.save(update_fields=["is_active"])
    answer = client.patch(f"/api/v1/institutions/{xiehe.pk}/", {"owner": leaver.pk, "version": xiehe.version},
                          content_type="application/json")  # fmt: skip
    assert answer.status_code == 400 and "owner" in answer.json()


def test_the_owner_column_finds_a_user_name_written_in_another_letter_case(users, xiehe, tmp_path, settings):
    """A people list names its owners as the CRM's user names, some with a capital (Rep, KAM): user names are unique
    whatever their letter case and sign in so, but the import refused each row: “no user has the user name Rep”."""
    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path
    path = tmp_path / "people.csv"
    path.write_text("姓名,所属机构,负责人\n李娜,北京协和医院,Rep\n王芳,北京协和医院,ＫＡＭ\n刘洋,北京协和医院,nobody\n",
                    encoding="utf-8")  # fmt: skip
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert (job.created_count, job.error_count) == (2, 1)
    assert [e["column"] for e in job.errors] == ["负责人"]
    owners = dict(Person.objects.filter(name__in=["李娜", "王芳"]).values_list("name", "owner__username"))
    assert owners == {"李娜": "rep", "王芳": "kam"}


def test_a_quote_nothing_closes_in_a_short_csv_is_refused_naming_its_row(users, xiehe, settings, tmp_path):
    """A cell of a people list begins with a stray quotation mark ("主任医师). In a file too short to pass the
    csv module's cell limit, the rest of the file was read as that one cell: the check counted two rows, 李娜's title
    held the rows after hers, and importing it lost them without a word. It is refused as a long file is."""
    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path
    content = '姓名,职称,所属机构,备注\n王芳,主治医师,北京协和医院,"多行\n备注"\n李娜,"主任医师,北京协和医院,\n刘洋,药师,北京协和医院,\n'
    path = tmp_path / "people.csv"
    path.write_text(content, encoding="utf-8")
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert job.status == "failed"
    assert importer.job_messages(job) == ["文件第 3 行无法读取：该行有一个单元格以引号（\"）开头，却没有与之闭合的引号，文件其余部分都被读成了"
                                          "这一个单元格。请更正后重新导入文件。"]  # fmt: skip
    assert not Person.objects.filter(name__in=["王芳", "李娜", "刘洋"]).exists()
    # quotes that close, across lines too, are read as ever
    path.write_text(content.replace('"主任医师', "主任医师"), encoding="utf-8")
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert (job.status, job.created_count) == ("done", 3)
    assert Person.objects.get(name="王芳").notes == "多行\n备注"


def test_the_owner_column_keeps_a_departed_owner_but_gives_none_to_another_customer(users, xiehe, tmp_path, settings):
    """The forms and the API keep a departed (deactivated) rep on the customers they own until someone hands them
    over, and refuse them as anyone's new owner. The import gave a new person, and another customer, to the rep who
    had left; a re-import naming the departed owner of a record as it is still keeps it."""
    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path
    path = tmp_path / "people.csv"
    path.write_text("姓名,所属机构,负责人,外部编号\n李娜,北京协和医院,rep,P-1\n", encoding="utf-8")
    assert importer.import_file(path, "people", users["kam"], mode="good").created_count == 1
    users["rep"].is_active = False
    users["rep"].save(update_fields=["is_active"])

    path.write_text("姓名,所属机构,负责人,外部编号\n李娜,北京协和医院,rep,P-1\n王芳,北京协和医院,Rep,P-2\n", encoding="utf-8")
    job = importer.import_file(path, "people", users["kam"], mode="good")

    assert (job.unchanged_count, job.created_count, job.error_count) == (1, 0, 1), job.errors
    assert [(e["row"], e["column"]) for e in job.errors] == [(3, "负责人")]
    assert importer.error_text(job.errors[0]) == "用户“Rep”已停用：请选择在职用户作为负责人。"
    assert Person.objects.get(name="李娜").owner == users["rep"]
    assert not Person.objects.filter(name="王芳").exists()
