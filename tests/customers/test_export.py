"""Customer export: the access policy decides the rows, personal data is masked for roles that may not
see it, clear exports are audited, and an export can be imported again unchanged."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import exporter, importer, search, services
from pharmacrm.customers.models import Institution


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def export(client, target: str, fmt: str = "csv", **params) -> list[list]:
    response = client.get(reverse("customers:export", args=[target, fmt]), params)
    assert response.status_code == 200, response.status_code
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    if fmt == "csv":
        return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    return [[c.value for c in row] for row in load_workbook(io.BytesIO(body)).worksheets[0].iter_rows()]


def column(rows: list[list], header: str) -> list:
    i = rows[0].index(header)
    return [r[i] for r in rows[1:]]


def test_a_rep_exports_only_the_institutions_of_their_territory(client_for, xiehe, ruijin):
    names = column(export(client_for("rep"), "institutions"), "机构名称")
    assert sorted(names) == ["北京协和医院", "心内科"]
    everything = column(export(client_for("analyst"), "institutions"), "机构名称")
    assert "上海交通大学医学院附属瑞金医院" in everything


def test_the_export_uses_the_import_templates_headers_and_words(client_for, xiehe):
    rows = export(client_for("kam"), "institutions", "xlsx")
    assert rows[0][:4] == ["内部编号", "机构名称", "机构类型", "医院等级"]
    hospital = dict(zip(rows[0], next(r for r in rows[1:] if r[1] == "北京协和医院"), strict=True))
    assert (hospital["机构类型"], hospital["医院等级"], hospital["省"], hospital["区县"]) == (
        "医院",
        "三级甲等",
        "北京市",
        "朝阳区",
    )
    assert hospital["统一社会信用代码"] == xiehe.credit_code and hospital["专科"] == "内科,心内科"
    dept = dict(zip(rows[0], next(r for r in rows[1:] if r[1] == "心内科"), strict=True))
    assert dept["上级机构"] == xiehe.credit_code and dept["上级机构名称"] == "北京协和医院"


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_roles_that_may_not_see_personal_data_get_it_masked(client_for, xiehe, role):
    rows = export(client_for(role), "people")
    assert column(rows, "姓名") == ["张伟"]
    assert column(rows, "手机") == ["138****8000"]
    assert column(rows, "邮箱") == ["z***@example.com"]
    assert column(rows, "生日") == ["****-03-15"]
    entry = AuditEntry.objects.filter(action="export").latest("seq")
    assert entry.extra["masked"] is True and entry.extra["count"] == 1
    assert not AuditEntry.objects.filter(action="read_personal").exists()


def test_an_agent_may_not_export_at_all(client_for, xiehe):
    assert client_for("agent").get(reverse("customers:export", args=["people", "csv"])).status_code == 403


def test_a_clear_export_is_audited_as_a_read_of_personal_data(client_for, users, xiehe):
    rows = export(client_for("kam"), "people", "xlsx", tier="new", q="张伟")
    assert column(rows, "手机") == ["138 0013 8000"] and column(rows, "邮箱") == ["zhangwei@example.com"]
    export_entry = AuditEntry.objects.get(action="export")
    read = AuditEntry.objects.get(action="read_personal")
    assert export_entry.actor == users["kam"] and export_entry.extra["masked"] is False
    assert (
        export_entry.extra["filters"] == {"tier": "new", "q": "张伟"}
        and export_entry.extra["format"] == "xlsx"
    )
    assert read.extra["count"] == 1 and read.extra["purpose"] == "export" and "mobile" in read.extra["fields"]


def test_filters_narrow_the_export_like_the_lists(client_for, xiehe, ruijin):
    client = client_for("kam")
    assert column(export(client, "institutions", type="department"), "机构名称") == ["心内科"]
    assert column(export(client, "institutions", province="310000"), "机构名称") == [
        "上海交通大学医学院附属瑞金医院"
    ]
    assert column(export(client, "institutions", q="xiehe"), "机构名称") == ["北京协和医院"]
    assert column(export(client, "people", institution=str(ruijin.pk)), "姓名") == []


def test_an_exported_file_imports_again_without_changes(client_for, users, xiehe, ruijin, tmp_path):
    for target in ("institutions", "people"):
        response = client_for("kam").get(reverse("customers:export", args=[target, "xlsx"]))
        path = tmp_path / f"{target}.xlsx"
        path.write_bytes(b"".join(response.streaming_content))
        job = importer.import_file(path, target, users["kam"])
        assert (job.created_count, job.updated_count, job.error_count) == (0, 0, 0), job.errors
        assert job.unchanged_count == (3 if target == "institutions" else 1)


def test_cells_that_look_like_formulas_stay_text(client_for, admin_user):
    services.create_institution(admin_user, {"name": '=HYPERLINK("http://x")', "kind": "clinic"})
    client = client_for("kam")
    assert column(export(client, "institutions"), "机构名称") == ['\'=HYPERLINK("http://x")']
    response = client.get(reverse("customers:export", args=["institutions", "xlsx"]))
    cell = load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0]["B2"]
    assert cell.data_type == "s" and cell.value == '=HYPERLINK("http://x")'
    assert Institution.objects.count() == 1


def test_an_export_with_a_search_term_writes_every_match(client_for, monkeypatch):
    # the search ranks the best few thousand; the export of "every 北京 pharmacy" stopped at 10,000 rows without a
    # word. It writes every match, and only the matches, whatever the search's cuts (made small here, so that the
    # test need not create 10,000 customers)
    monkeypatch.setattr(exporter, "SEARCH_LIMIT", 50, raising=False)
    for name in ("RANGE_LIMIT", "NARROWED_READ", "POSTINGS_LIMIT"):
        monkeypatch.setattr(search, name, 50)
    shops = []
    for n, name in enumerate(
        [*(f"北京第{n}大药房" for n in range(120)), "天津第1大药房", "北京协和医院心内科"]
    ):
        shop = Institution(name=name, kind="pharmacy", code=f"I{n + 1:08d}")
        shop.refresh_derived()
        shops.append(shop)
    search.reindex(Institution.objects.bulk_create(shops))
    client = client_for("analyst")
    names = column(export(client, "institutions", q="北京"), "机构名称")
    assert len(names) == 121 and "天津第1大药房" not in names
    assert len(column(export(client, "institutions", q="beijing"), "机构名称")) == 121
    assert len(column(export(client, "institutions", q="bjd"), "机构名称")) == 120
    assert len(column(export(client, "institutions", q="大药房"), "机构名称")) == 121
    assert column(export(client, "institutions", q="协和 心内科"), "机构名称") == ["北京协和医院心内科"]
    assert AuditEntry.objects.filter(action="export").latest("seq").extra["count"] == 1


def test_an_export_by_a_merged_records_phone_writes_the_customer_it_was_merged_into(
    client_for, admin_user, xiehe
):
    survivor = xiehe.people.get()
    dup = services.create_person(admin_user, {"name": "张伟", "institution": xiehe, "mobile": "13900139000"})
    services.merge(admin_user, survivor, dup)
    rows = export(client_for("kam"), "people", q="139 0013 9000")
    assert column(rows, "手机") == ["138 0013 8000"]


def test_a_nul_character_in_the_filters_is_no_server_error(client_for, xiehe):
    # a link pasted with %00 in it (PostgreSQL refuses NUL in text) answered 500; it is refused by name, as on every
    # page (core.middleware.NulCharacterMiddleware), and nothing is exported
    client = client_for("kam")
    for name, value in (("q", "协和\x00"), ("tag", "\x00核心")):
        response = client.get(reverse("customers:export", args=["institutions", "csv"]), {name: value},
                              HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
        assert response.status_code == 400
        assert f"“{name}” contains a NUL character" in response.content.decode()
    assert not AuditEntry.objects.filter(action="export").exists()


def test_a_phone_or_address_typed_to_find_the_people_is_masked_in_the_audit_trail(client_for, xiehe):
    """The export's entries kept the search text as typed: a doctor's mobile, e-mail address or ID card number stood
    in clear in the audit trail — append-only, kept after the person's deletion, and read by the auditor, who sees
    personal data masked. A name stays as typed: it is what the entry is read for."""
    client = client_for("kam")
    for typed, kept in (
        ("138 0013 8000", "138****8000"),
        ("zhangwei@example.com", "z***@example.com"),
        ("张伟 13800138000", "张伟 138****8000"),
        ("110101197503150019", "110***********0019"),
        ("张伟", "张伟"),
    ):
        export(client, "people", q=typed)
        entry = AuditEntry.objects.filter(action="export").latest("seq")
        assert entry.extra["filters"]["q"] == kept, typed
    reads = AuditEntry.objects.filter(action="read_personal", extra__purpose="export")
    found = {"138****8000", "z***@example.com", "张伟"}  # the searches that found him
    assert {r.extra["filters"]["q"] for r in reads} >= found
    text = str(list(AuditEntry.objects.values_list("extra", flat=True)))
    assert "13800138000" not in text and "0013 8000" not in text and "zhangwei@" not in text
    assert "110101197503150019" not in text
