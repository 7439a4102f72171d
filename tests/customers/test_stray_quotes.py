"""A stray quotation mark at the start of a CSV cell ("主任医师) that a later cell's quote closes: read leniently, the
rows between became one cell — 李娜's title held 刘洋's and 赵敏's rows, and the import said "3 created, 0 errors"
while two people were lost. The file is refused, naming the row and the line where the quote closed, before any
row of it is written when checked first, and as a failed job with nothing written when all or nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob, Person

HEADER = "姓名,职称,所属机构,备注\n"
STRAY = (
    HEADER + "王芳,主治医师,北京协和医院,\n"
    '李娜,"主任医师,北京协和医院,\n'
    "刘洋,药师,北京协和医院,\n"
    '赵敏,药师,"北京协和医院",\n'
    "孙丽,药师,北京协和医院,\n"
)
PEOPLE = ["王芳", "李娜", "刘洋", "赵敏", "孙丽"]


@pytest.fixture
def csv_file(settings, tmp_path):
    settings.VAR_DIR = tmp_path

    def write(text: str):
        path = tmp_path / "people.csv"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.mark.parametrize("mode", ["good", "all"])
def test_a_stray_quote_closed_rows_later_fails_the_import_naming_the_row_and_the_line(users, xiehe, csv_file, mode):
    job = importer.import_file(csv_file(STRAY), "people", users["kam"], mode=mode)
    assert job.status == ImportJob.Status.FAILED
    assert importer.job_messages(job) == [
        "文件第 3 行无法读取：该行有一个单元格以引号（\"）开头，其闭合引号在文件第 5 行，后面却还有其他文字，"
        "因此直到那里的各行都会被读成这一个单元格。请更正引号后重新导入文件。"
    ]
    # a file shorter than a chunk is read through before any row is written: nothing of it, in either mode
    assert not Person.objects.filter(name__in=PEOPLE).exists()
    assert job.created_count == 0


def test_the_upload_check_refuses_the_file_before_anything_is_written(users, xiehe, csv_file):
    path = csv_file(STRAY.replace(HEADER + "王芳,主治医师,北京协和医院,\n", HEADER))
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        sheet, _header, rows = importer.open_checked(path, "people", need_data=True)
        list(rows)
    assert refused.value.messages == [
        'Row 2 of the file cannot be read: a cell there starts with a quotation mark (") whose closing mark, on line 4 '
        "of the file, is followed by more text, so every line up to there would read as that one cell. Correct the "
        "quotation marks, and import the file again."
    ]
    assert not Person.objects.filter(name__in=PEOPLE).exists()


def test_a_closing_quote_with_text_after_it_on_the_same_line_is_refused_too(users, xiehe, csv_file):
    with pytest.raises(ValidationError) as refused:
        importer.import_file(csv_file(HEADER + '王芳,"主治"医师,北京协和医院,\n'), "people", users["kam"], mode="all")
    assert refused.value.messages == [
        "文件第 2 行无法读取：该行有一个以引号（\"）开头的单元格，其闭合引号之后还有其他文字。请更正引号后重新导入文件。"
    ]
    assert not Person.objects.filter(name="王芳").exists()


def test_well_formed_quotes_are_read_as_ever(users, xiehe, csv_file):
    """Quoted cells with commas, doubled quotes and line breaks, and a quote inside an unquoted cell (5"), all good."""
    text = (
        HEADER + '王芳,"主治医师",北京协和医院,"多行\n备注, 带逗号"\n'
        '李娜,主任医师,北京协和医院,"他说""好"""\n'
        '刘洋,药师,北京协和医院,屏幕 5" 宽\n'
    )
    job = importer.import_file(csv_file(text), "people", users["kam"], mode="all")
    assert (job.status, job.created_count, job.error_count) == (ImportJob.Status.DONE, 3, 0)
    notes = dict(Person.objects.filter(name__in=PEOPLE).values_list("name", "notes"))
    assert notes == {"王芳": "多行\n备注, 带逗号", "李娜": '他说"好"', "刘洋": '屏幕 5" 宽'}


def test_the_market_influence_import_reads_quotes_as_strictly(users, xiehe):
    """The KOL list (a small CSV of its own) read a stray quote leniently: 协和's KOL names held the next rows, which were
    never saved. It is refused, naming the row, as the customer and order imports refuse it."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from pharmacrm.keyaccounts import influence
    from pharmacrm.keyaccounts.models import MarketInfluence

    text = (
        "统一社会信用代码,KOL人数,KOL名单\n"
        f'{xiehe.credit_code},2,"张三\n'
        "B002,3,李四\n"
        'C003,4,"王五"\n'
    )
    upload = SimpleUploadedFile("kol.csv", text.encode("utf-8"), content_type="text/csv")
    with pytest.raises(ValidationError) as refused:
        influence.import_kols(users["analyst"], upload)
    assert "文件第 2 行无法读取" in refused.value.messages[0] and "文件第 4 行" in refused.value.messages[0]
    assert not MarketInfluence.objects.filter(institution=xiehe).exclude(kol_names="").exists()
