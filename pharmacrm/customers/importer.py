"""Customer import (XLSX and CSV): file checks, streaming validation, dry run, fast chunked writes.

A file becomes an `ImportJob`. The worker first runs a dry run (every row validated with the rules of
`services`, nothing written), then, once the user confirms, the import itself: all-or-nothing in one
transaction, or good rows only, one transaction per chunk. Rows are read as a stream and handled in
chunks: one IN query per chunk resolves institutions and existing customers, validation is pure
Python, new rows go in with one multi-row insert per table (COPY on PostgreSQL), so a million people
import in about a minute with flat memory.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import csv
import datetime
import hashlib
import html
import itertools
import json
import logging
import os
import posixpath
import queue
import re
import socket
import sqlite3
import threading
import unicodedata
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from defusedxml import ElementTree
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import get_language, gettext, ngettext_lazy, override, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import access, audit, crypto
from pharmacrm.core.fields import EncryptedDateField, EncryptedTextField
from pharmacrm.core.models import AuditEntry, Counter, Region, Team, User, region_label
from pharmacrm.core.personal import FREE_TEXT_FIELDS
from pharmacrm.core.regions_en import PROVINCES, SUFFIXES, english_key, english_region_names
from pharmacrm.core.roles import Cap
from pharmacrm.core.wording import aside, listing

from . import normalise, search, services
from .choices import (
    Gender,
    HospitalGrade,
    InstitutionType,
    PersonRole,
    PreferredLanguage,
    Source,
    Stage,
    Tier,
)
from .models import ImportJob, Institution, MergeRecord, Person, SearchTerm, Tag

log = logging.getLogger(__name__)
A = AuditEntry.Action

CHUNK_ROWS = 4000
MAX_KEPT_ERRORS = 1000
PREVIEW_ROWS = 20
CSV_SNIFF_BYTES = 64 * 1024

# --- messages: row errors are stored as a code + params and rendered in the reader's language ----

MESSAGES: dict[str, Any] = {
    "required": _("This column must not be empty."),
    "too_long": _("This value is too long (at most %(max)s characters)."),
    # a free-text cell over its field's length: the forms' and the API's words, naming the field
    **{f"{field}_too_long": text for field, text in normalise.TOO_LONG.items()},
    "invalid_choice": _("“%(value)s” is not an accepted value. Accepted: %(choices)s."),
    "invalid_mobile": normalise.MOBILE_MESSAGE,  # the forms' and the API's words
    "mobile_extension": normalise.MOBILE_EXTENSION_MESSAGE,
    "department_province": services.DEPARTMENT_PROVINCE,
    "name_no_word": normalise.NAME_WITHOUT_WORD,
    "invalid_landline": normalise.LANDLINE_MESSAGE,
    "invalid_phone": normalise.PHONE_MESSAGE,
    "invalid_person_phone": _(
        "Enter a valid mainland China mobile number (11 digits starting with 13–19) or a landline with its area "
        "code, e.g. 010-12345678, or a number from elsewhere with its country code, e.g. +852 9123 4567."
    ),
    "phone_other_number": _(
        "This row's %(column)s column holds another number: keep one of them here, or put the second one in the "
        "remarks."
    ),
    "invalid_email": _("Enter a valid e-mail address."),
    "credit_code_length": _("The unified social credit code must have 18 characters (it has %(n)s)."),
    "credit_code_chars": _(
        "The unified social credit code contains characters it cannot have (I, O, S, V, Z are never used)."
    ),
    "credit_code_checksum": _(
        "The unified social credit code's check character is wrong: please check for a typing error."
    ),
    "invalid_id": _("Enter a valid 18-character resident ID card number."),
    "invalid_date": _("“%(value)s” is not a date. Write dates like 1975-03-15."),
    "impossible_date": _("“%(value)s” is not a day of the calendar: check the month and the day."),
    "nul_character": _(
        "This value contains a NUL character (an invisible control character, often left by a damaged "
        "export): delete it and import the row again."
    ),
    "excel_error": _(
        "The cell holds an Excel error (%(value)s), not a value: correct the formula or enter the value itself."
    ),
    "stored_as_number": _(
        "The cell is stored as a number, which changes codes and phone numbers (digits after the 15th become 0, "
        "leading zeros are dropped): format the column as text in Excel, enter the value again and import the "
        "file again."
    ),
    "future": _("A birthday cannot be in the future."),
    "birthday_too_early": _("A birthday cannot be before %(date)s."),
    # without the date itself: the errors are kept with the job and in its report, which never copy personal values
    "birthday_not_id": _("The birthday differs from the date of birth in the ID card number (its characters 7–14)."),
    "masked": _(
        "This value is masked (from an export): leave the cell empty to keep the stored value, or enter the full "
        "value."
    ),
    "invalid_beds": _("Beds must be a whole number from 0 to 100000."),
    "region_code_unknown": _("“%(value)s” is not an official region code."),
    "region_unknown": _("No region named “%(value)s” was found."),
    "region_ambiguous": _(
        "Several regions are named “%(value)s”. Add the province and city, or give the 6-digit region code."
    ),
    "region_mismatch": _("“%(value)s” does not lie in the province or city given in this row."),
    "institution_not_found": _(
        "No institution has the credit code, external id, internal code or name “%(value)s”."
    ),
    "institution_ambiguous": _(
        "Several institutions are named “%(value)s”. Use its credit code or internal code instead."
    ),
    "parent_required": _("A department belongs to a hospital: give its parent institution."),
    "parent_not_hospital": _("A department belongs to a hospital: “%(value)s” is not one."),
    "has_departments": _("This hospital has departments, and only a hospital has departments: move or delete them first."),
    "cycle": _("An institution cannot be placed under itself."),
    "parent_cycle": _(
        "“%(value)s” lies under this institution, as stored or as an earlier row of this file places it: an "
        "institution cannot be placed under itself."
    ),
    "department_not_found": _("The institution has no department named “%(value)s”."),
    "department_needs_institution": _("Give the institution this department belongs to."),
    "key_tier": _(
        "The key-account tier is granted and withdrawn through the key-account programme (proposal, "
        "cross-department review and leadership approval), not by editing the customer."
    ),
    "department_mismatch": _("This department does not belong to the chosen institution."),
    "user_not_found": _("No user has the user name “%(value)s”."),
    "user_inactive": _("The user “%(value)s” has been deactivated: choose an active user as the owner."),
    "team_not_found": _("No team is named “%(value)s”."),
    "code_not_found": _("No customer has the internal code “%(value)s”."),
    "merged_into": _("“%(value)s” was merged into %(survivor)s (%(survivor_code)s): use that record instead."),
    "freed_key": _(
        "“%(value)s” belonged to a record that was merged into %(survivor)s (%(survivor_code)s), which has a key of "
        "its own: this row would replace it. Update %(survivor_code)s by its own key, or delete this row."
    ),
    "duplicate_in_file": _("The same value already appears in row %(first)s of this file."),
    "duplicate_in_sheet": _("The same value already appears in row %(first)s of the sheet “%(sheet)s” of this file."),
    "key_conflict": _("The keys in this row belong to different existing customers (%(codes)s)."),
    "not_permitted": _("You may not change this customer."),
    "conflict": _(
        "Another record with the same key was saved while the import ran; nothing was written for this row."
    ),
    "changed_meanwhile": _("Someone else changed this customer while the import ran; import the row again."),
    # job-level messages
    "ignored_columns": _("These columns were not recognised and were ignored: %(columns)s."),
    "sheet_read": _("Only the sheet “%(sheet)s” was read; the workbook's other sheets were not: %(others)s."),
    "sheets_read": _(
        "The sheets %(sheets)s have the same header row and were read one after another, as one file; each error "
        "names its sheet and row."
    ),
    "sheets_skipped": _("These sheets were skipped, as their header row is not that of the sheets read: %(sheets)s."),
    "all_or_nothing_rejected": ngettext_lazy(
        "Nothing was imported: %(errors)s row has errors and the mode is all or nothing. "
        "Correct the file and upload it again, or import the good rows only.",
        "Nothing was imported: %(errors)s rows have errors and the mode is all or nothing. "
        "Correct the file and upload it again, or import the good rows only.",
        "errors",
    ),
    "bad_encoding": _(
        "The file is not valid UTF-8 or GB18030 text (near row %(row)s); nothing was imported."
    ),
    "broken_file": _("The file could not be read: it is damaged or not a real CSV or XLSX file."),
    "unreadable_row": _(
        "Row %(row)s of the file cannot be read: a cell there starts with a quotation mark (\") that no other one "
        "closes, so the rest of the file reads as that one cell. Correct it, and import the file again."
    ),
    "text_after_quote": _(
        "Row %(row)s of the file cannot be read: a cell there starts with a quotation mark (\") and has more text "
        "after its closing mark. Correct the quotation marks, and import the file again."
    ),
    "stray_quote": _(
        "Row %(row)s of the file cannot be read: a cell there starts with a quotation mark (\") whose closing mark, "
        "on line %(line)s of the file, is followed by more text, so every line up to there would read as that one "
        "cell. Correct the quotation marks, and import the file again."
    ),
    "failed": _("The import stopped because of an unexpected error; the details are in the server log."),
    "import_conflict": _(
        "Another user saved a customer with the same key while the import ran, so nothing was imported. "
        "Check the file again."
    ),
    "file_changed": _("The uploaded file changed after it was checked; upload it again."),
    "file_missing": _("The uploaded file is no longer available; upload it again."),
    # a job whose worker stopped in the middle (see recover_interrupted)
    "interrupted_check": _(
        "The check was interrupted because the background worker stopped, after about %(rows)s rows. Nothing "
        "was written. Upload the file again to check it."
    ),
    "interrupted_nothing_saved": _(
        "The import was interrupted because the background worker stopped, after about %(rows)s rows had been "
        "read. The mode is all or nothing, so nothing was imported: no row was written. Upload the same file "
        "again to import it."
    ),
    "interrupted_none_saved": _(
        "The import was interrupted because the background worker stopped before any row was saved: nothing "
        "was imported. Upload the same file again to import it."
    ),
    "stopped_saved": _(
        "Before it stopped, the rows up to row %(row)s of the file were handled and saved (%(created)s created, "
        "%(updated)s updated, %(unchanged)s unchanged, %(errors)s with errors); any rows after it were not imported."
    ),
    "interrupted_saved": _(
        "The import was interrupted because the background worker stopped. The rows up to row %(row)s of the "
        "file were handled and saved (%(created)s created, %(updated)s updated, %(unchanged)s unchanged, "
        "%(errors)s with errors); any rows after it were not imported."
    ),
    "last_row_sheet": _(
        "Row %(row)s is on the sheet “%(sheet)s”: the rows of the sheets before it were handled too, those after it "
        "were not."
    ),
    "rerun_institutions": _(
        "To finish, import the same file again: institutions already saved are recognised by their internal "
        "code, credit code or external id, or by the same name in the same region or under the same parent "
        "institution, and are not created twice."
    ),
    "rerun_people": _(
        "To finish, import the same file again: people already saved are recognised by their internal code "
        "or external id, or by the same name and mobile number, and are not created twice."
    ),
    "unkeyed_institutions": _(
        "Institutions created without a credit code, external id, region or parent institution: %(count)s. "
        "A second import cannot recognise them and would create them again: delete the rows up to row "
        "%(row)s from the file (keep the header row) before importing it again."
    ),
    "unkeyed_people": _(
        "People created without an external id or a mobile number: %(count)s. A second import cannot "
        "recognise them and would create them again: delete the rows up to row %(row)s from the file (keep "
        "the header row) before importing it again."
    ),
}


def message(code: str, params: dict | None = None, target: str = "") -> str:
    """A stored code + params rendered in the active language. A message given with ngettext_lazy(…, "key")
    takes its singular or plural form from params["key"]. The accepted words of a choice (`choice_set`) are listed,
    and a column a message names (`column`, with the job's `target`) is named, in the active language too."""
    entry = MESSAGES.get(code, code)
    params = _params_for_reader(params, target)
    text = str(entry)
    try:
        if params and not isinstance(entry, str):  # lazy: a plural one knows its form only from the params
            return str(entry % params)
        return text % (params or {}) if "%(" in text else text
    except (KeyError, TypeError, ValueError):
        return text


def _params_for_reader(params: dict | None, target: str) -> dict | None:
    """A stored error's params with what it names worded for the reader: the accepted words of a choice (kept as
    the choice set's name: they were listed in the Simplified-Chinese words when the file was read, whoever read the
    report), the column it names and a province it names (by its code)."""
    if not params:
        return params
    choices = _CHOICE_SETS.get(params.get("choice_set", ""))
    if choices is not None:
        params = {**params, "choices": listing(choice_label(choices, v) for v in choices.values)}
    if target and params.get("column"):
        params = {**params, "column": column_name(target, params["column"])}
    if params.get("province_code"):  # a province named as the reader's language writes it (Beijing, 北京市)
        params = {**params, "province": region_label(params["province_code"], params.get("province", ""))}
    return params


def job_messages(job: ImportJob) -> list[str]:
    """The job's notes (ignored columns, why it was rejected …) in the active language."""
    try:
        entries = json.loads(job.message) if job.message else []
    except ValueError:
        return [job.message]
    return [message(e.get("code", ""), e.get("params")) for e in entries if isinstance(e, dict)]


def error_text(err: dict, target: str = "") -> str:
    return message(err.get("code", ""), err.get("params"), target)


class FieldError(Exception):
    def __init__(self, code: str, **params):
        super().__init__(code)
        self.code, self.params = code, params
        self.column = ""  # the column at fault, when the error is about another one than the cell parsed

    def at(self, column: str) -> FieldError:
        self.column = column
        return self


def _refuse(text) -> ValidationError:
    return ValidationError(str(text), code="import_refused")


refuse = _refuse


@dataclass
class TargetSpec:
    """Another app's import target (orders …): it reuses the jobs, wizard, progress and error reports.
    `run(job, user, sheet, header, rows)` returns (status, counts, errors, preview, notes)."""

    columns: list
    cap: Any
    run: Callable
    messages: dict
    template_name: str
    check_header: Callable | None = None
    text_columns: tuple[str, ...] = ()
    rerun_note: str = ""  # the message telling how a second import treats the rows an interrupted one saved
    marked_cells: bool = False  # its parser reads Excel error values and numbers' `NumberText` (see `Sheet`)
    # called with a job that wrote rows once it is marked interrupted (its worker stopped): what the import would have
    # done after its last chunk (orders: their rollups' repair, their customers scored again)
    on_interrupted: Callable | None = None
    # (user, job) → [(text, url)]: pages the upload page of this target (job None) and an import's result link to,
    # such as the orders' split orders
    links: Callable | None = None


TARGETS: dict[str, TargetSpec] = {}


def register_target(name: str, spec: TargetSpec) -> None:
    TARGETS[name] = spec
    MESSAGES.update(spec.messages)
    _header_table.cache_clear()


def target_links(user, target: str, job: ImportJob | None = None) -> list[tuple[str, str]]:
    """The links the target's upload page (job None) or an import's result shows (TargetSpec.links)."""
    spec = TARGETS.get(target)
    return spec.links(user, job) if spec is not None and spec.links is not None else []


def target_cap(target: str):
    spec = TARGETS.get(target)
    return spec.cap if spec else Cap.IMPORT_CUSTOMERS


# --- choice values: codes, English labels and the Chinese words people type ----------------------

CHINESE_LABELS: dict[type, dict[str, tuple[str, ...]]] = {
    InstitutionType: {
        "hospital": ("医院", "综合医院", "专科医院", "中医院", "中医医院", "中西医结合医院", "民营医院", "公立医院",
                     "妇幼保健院", "妇幼保健计划生育服务中心"),
        "department": ("科室",),
        "clinic": ("诊所", "门诊部"),
        "township": ("乡镇卫生院", "卫生院"),
        "community": ("社区卫生服务中心", "社区卫生服务站", "社区医院"),
        "pharmacy": ("药店", "药房", "零售药店", "连锁药店", "单体药店", "大药房"),
        "distributor": ("经销商", "医药公司", "配送商", "医药商业公司"),
        "insurance": ("医保局", "医疗保障局"),
        "research": ("研究所", "科研院所", "研究院"),
        "association": ("协会", "学会", "行业协会"),
        "other": ("其他",),
    },
    HospitalGrade: {
        "3A": ("三级甲等", "三甲"),
        "3B": ("三级乙等", "三乙"),
        "3C": ("三级丙等", "三丙"),
        "3": ("三级",),
        "2A": ("二级甲等", "二甲"),
        "2B": ("二级乙等", "二乙"),
        "2": ("二级",),
        "1": ("一级", "一级甲等", "一级乙等", "一级丙等", "一甲", "一乙", "一丙"),
        "0": ("未定级", "未评级", "未定等", "未评审"),
    },
    Tier: {
        "new": ("新客户",),
        "regular": ("普通客户",),
        "vip": ("VIP客户", "贵宾客户"),
        "key": ("重点客户",),
    },
    Stage: {
        "potential": ("潜在客户", "潜在"),
        "intent": ("意向客户", "意向"),
        "decision": ("决策阶段", "决策"),
        "active": ("合作中", "活跃客户", "活跃"),
        "churned": ("已流失", "流失"),
    },
    Source: {
        "research": ("市场调研",),
        "contact": ("商务往来", "业务联系"),
        "inbound": ("客户主动", "客户来电"),
        "industry": ("行业数据",),
        "import": ("批量导入", "导入"),
        "other": ("其他",),
    },
    PersonRole: {
        "doctor": ("医生", "医师", *("主任医师", "副主任医师", "主治医师", "住院医师", "医士")),
        "pharmacist": ("药师", "药剂师", "临床药师", *("主任药师", "副主任药师", "主管药师", "药士")),
        "nurse": ("护士", "护士长", *("主任护师", "副主任护师", "主管护师", "护师")),
        "purchasing": ("采购", "采购人员", "采购员"),
        "dept_head": ("科室主任", "科主任"),
        "admin": ("医院管理者", "院领导", "行政", "院长", "副院长"),
        "patient": ("患者",),
        "other": ("其他",),
    },
    Gender: {"M": ("男", "男性", "male"), "F": ("女", "女性", "female")},
    # 中文 alone is Simplified (the mainland's written Chinese); 繁體 is read as 繁体 (parse_choice), so both scripts
    PreferredLanguage: {
        "zh-hans": ("简体中文", "中文", "简体", "汉语", "普通话", "国语", "chinese", "simplified", "zh", "zh-cn", "zh_cn"),
        "en": ("英文", "英语", "english", "en-us", "en-gb", "en_us"),
        "zh-hant": ("繁体中文", "繁体", "繁体字", "粤语", "traditional", "zh-tw", "zh-hk", "zh_tw", "zh_hk"),
    },
}


# professional titles (职称) that name the role too, when a list writes them in its 角色 column
TITLE_WORDS = frozenset({"主任医师", "副主任医师", "主治医师", "住院医师", "医士", "主任药师", "副主任药师", "主管药师",
                         "药士", "主任护师", "副主任护师", "主管护师", "护师"})  # fmt: skip


def canonical_label(choices: type, value: str) -> str:
    """The Chinese word templates and exports write for a choice value."""
    labels = CHINESE_LABELS[choices].get(value)
    return labels[0] if labels else value


@cache
def _choice_lookup(choices: type) -> dict[str, str]:
    table: dict[str, str] = {}
    for value, label in choices.choices:
        for lang in ("en", "zh-hans", "zh-hant"):
            with override(lang):
                table.setdefault(str(label).strip().lower(), value)
    for value in choices.values:
        table[value.lower()] = value
    for value, words in CHINESE_LABELS[choices].items():
        for word in words:
            table[word.lower()] = value
    return table


def parse_choice(choices: type, raw: str) -> str:
    table, key = _choice_lookup(choices), normalise.clean_text(raw).lower()
    value = table.get(key)
    if value is None:
        value = table.get(normalise.simplified(key))  # 醫院, 三級甲等 as a zh-Hant user writes them
    if value is None and choices is HospitalGrade:
        value = table.get(normalise.simplified(key).removesuffix("医院"))  # 三级甲等医院, 三甲医院
    if value is None:
        # the accepted words are listed when the error is read, in the reader's language (`message`)
        raise FieldError("invalid_choice", value=raw[:50], choice_set=choices.__name__)
    return value


_CHOICE_SETS: dict[str, type] = {choices.__name__: choices for choices in CHINESE_LABELS}


# --- columns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # the Chinese header of the template
    aliases: tuple[str, ...] = ()
    required: bool = False
    personal: bool = False  # never stored in clear outside the encrypted columns (preview, errors)
    choices: type | None = None
    help: Any = ""
    template: bool = True  # False: read on import only, never in the template, its instructions or exports
    # names of the column that win over its other names when the header gives both (含税单价 over 单价 in an ERP's
    # export: the price with tax, which the customer pays); the other copy is ignored rather than the file refused
    prefer: tuple[str, ...] = ()
    # the header exports write in the reader's language (the template's Chinese `header` in Simplified Chinese);
    # the import reads it in each of the product's languages
    label: Any = ""


def _common_columns() -> list[Column]:
    return [
        Column("tier", "客户层级", ("tier", "客户等级", "层级"), choices=Tier, label=_("Tier")),
        Column("stage", "生命周期阶段", ("stage", "lifecycle stage", "生命周期"), choices=Stage, label=_("Lifecycle stage")),
        Column("source", "信息来源", ("source", "information source", "来源"), choices=Source,
               label=_("Information source")),
        Column("owner", "负责人", ("owner", "owner username", "负责人账号"), help=_("User name of the owner."),
               label=_("Owner")),
        Column("team", "所属团队", ("team", "团队"), help=_("Team name."), label=_("Team")),
        Column("external_id", "外部编号", ("external id", "external_id", "外部id", "erp编号"),
               help=_("Your own id for the customer, at most 64 characters; a re-import updates the customer "
                      "with this id."), label=_("External id")),
        Column("tags", "标签", ("tags", "tag"), help=_("Several tags separated by commas, each at most 50 characters."),
               label=_("Tags")),
        Column("needs", "需求", ("needs", "客户需求"), label=_("Needs")),
        Column("notes", "备注", ("notes", "remarks", "note"), label=_("Notes")),
    ]  # fmt: skip


INSTITUTION_COLUMNS: list[Column] = [
    Column("code", "内部编号", ("code", "internal code", "客户编号"),
           help=_("Filled in exports; a re-import updates the customer with this code."), label=_("Internal code")),
    Column("name", "机构名称", ("name", "institution name", "名称", "机构", "医院名称", "单位名称", "客户名称", "机构全称",
                               "终端名称", "药店名称"), required=True, help=_("At most 200 characters."),
           label=pgettext_lazy("import column", "Institution name")),
    Column("kind", "机构类型", ("type", "kind", "institution type", "类型"), required=True, choices=InstitutionType,
           label=_("Institution type")),
    Column("grade", "医院等级", ("grade", "hospital grade", "等级"), choices=HospitalGrade, label=_("Hospital grade")),
    Column("credit_code", "统一社会信用代码", ("credit code", "credit_code", "unified social credit code", "信用代码", "uscc"),
           help=_("18 characters; a re-import updates the institution with this code."),
           label=_("Unified social credit code")),
    Column("province", "省", ("province", "省份"), label=_("Province")),
    Column("city", "市", ("city", "城市", "地市"), label=_("City")),
    Column("district", "区县", ("district", "county", "区/县", "区"), label=pgettext_lazy("import column", "District")),
    Column("region_code", "行政区划代码", ("region code", "region_code", "region", "adcode", "区划代码"),
           help=_("6-digit official code; replaces province, city and district."),
           label=pgettext_lazy("import column", "Region code")),
    Column("address", "地址", ("address", "详细地址"), help=_("At most 255 characters."), label=_("Address")),
    Column("phone", "电话", ("phone", "telephone", "联系电话"),
           help=_("A mobile number (11 digits, without an extension), a landline with its area code (an extension "
                  "after 转: 010-12345678转123), or a 400/800 number; a number from Hong Kong, Macau, Taiwan or "
                  "abroad with its country code: +852 2812 3456."), label=_("Phone")),
    Column("legal_representative", "法定代表人", ("legal representative", "legal_representative", "法人"),
           help=_("At most 50 characters."), label=_("Legal representative")),
    Column("beds", "床位数", ("beds", "床位"), label=_("Beds")),
    Column("specialties", "专科", ("specialties", "specialty", "特色专科"), help=_("Several separated by commas."),
           label=_("Specialties")),
    Column("parent", "上级机构", ("parent", "parent institution", "所属医院"),
           help=_("Credit code, external id or internal code of the parent institution (required for departments)."),
           label=_("Parent institution")),
    Column("short_name", "简称", ("short name", "short_name"), help=_("At most 60 characters."), label=_("Short name")),
    *_common_columns(),
]  # fmt: skip

PERSON_COLUMNS: list[Column] = [
    Column("code", "内部编号", ("code", "internal code", "客户编号"),
           help=_("Filled in exports; a re-import updates the customer with this code."), label=_("Internal code")),
    Column("name", "姓名", ("name", "person name", "名字", "联系人", "联系人姓名", "客户姓名", "医生姓名"), required=True,
           help=_("At most 50 characters."), label=pgettext_lazy("import column", "Name")),
    Column("gender", "性别", ("gender", "sex"), choices=Gender, label=_("Gender")),
    Column("role", "角色", ("role", "身份"), choices=PersonRole, label=_("Role")),
    Column("title", "职称", ("title", "职务", "职位"), help=_("At most 50 characters."), label=_("Title")),
    Column("institution", "所属机构", ("institution", "机构", "医院", "工作单位", "所在医院", "医院名称", "所在单位", "单位名称",
                                       "单位"),
           help=_("Credit code, external id, internal code or exact name of the institution."),
           label=pgettext_lazy("import column", "Institution")),
    Column("department", "科室", ("department", "dept", "所在科室", "科别"), label=_("Department")),
    Column("mobile", "手机", ("mobile", "mobile phone", "手机号", "手机号码"), personal=True,
           help=_("11 digits starting with 13–19, without an extension (extensions belong to the landline); a "
                  "mobile from Hong Kong, Macau, Taiwan or abroad with its country code: +852 9123 4567."),
           label=_("Mobile phone")),
    Column("landline", "座机", ("landline", "固定电话", "办公电话"), personal=True,
           help=_("With the area code: 010-12345678; an extension after 转: 010-12345678转123; a landline from "
                  "Hong Kong, Macau, Taiwan or abroad with its country code: +852 2812 3456."), label=_("Landline")),
    Column("email", "邮箱", ("email", "e-mail", "电子邮箱"), personal=True, label=pgettext_lazy("import column", "E-mail")),
    # one column for every number (电话, 联系电话: what many people lists have): a mobile number is the mobile,
    # any other the landline
    Column("phone", "电话", ("phone", "telephone", "tel", "联系电话", "电话号码", "联系方式", "手机/电话", "电话/手机"),
           personal=True, template=False, label=_("Phone")),
    Column("birthday", "生日", ("birthday", "birth date", "date of birth", "出生日期"), personal=True,
           help=_("A date like 1975-03-15."), label=_("Birthday")),
    Column("home_address", "家庭住址", ("home address", "home_address"), personal=True,
           help=_("At most 255 characters."), label=_("Home address")),
    Column("id_number", "身份证号", ("id number", "id card number", "id_number", "身份证号码"), personal=True,
           label=_("ID card number")),
    Column("preferred_language", "沟通语言", ("preferred language", "preferred_language", "language", "语言",
                                             "首选语言", "偏好语言", "联系语言", "沟通语种"),
           choices=PreferredLanguage,
           help=_("Empty: the service desk answers in the language of their mail."), label=_("Preferred language")),
    *_common_columns(),
]  # fmt: skip

# Columns written by exports only (for people reading the file); an import ignores them, in any language.
EXPORT_ONLY = {"institution_name": "所属机构名称", "parent_name": "上级机构名称"}
EXPORT_ONLY_LABELS = {
    "institution_name": pgettext_lazy("import column", "Name of the institution"),
    "parent_name": pgettext_lazy("import column", "Name of the parent institution"),
}


def _product_languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def chinese_headers() -> bool:
    """Do files written now take the template's Chinese headers and words? In Simplified Chinese (the product's
    default language, and with no language active): what the template, the ERPs and every earlier export write."""
    return (get_language() or settings.LANGUAGE_CODE).lower() == "zh-hans"


def column_label(col: Column) -> str:
    """The header an export writes for a column in the active language: the template's Chinese header in
    Simplified Chinese, the column's translated name in English and Traditional Chinese. Each imports again."""
    return col.header if chinese_headers() or not col.label else str(col.label)


def column_name(target: str, text: str, as_written: bool = True) -> str:
    """A column an import's report names (its error rows, preview, refusals), in the reader's language: the
    column's name in the active language (the template's Chinese header in Simplified Chinese), followed by the
    header as the file wrote it when that is other words (Mobile phone (手机) to an English reader of a file headed
    in Chinese), so that it is found in the file. `as_written` False: the name alone (a preview's columns). A
    column's key (a column the file lacks) or a text that names no column is given as it is stored."""
    text = str(text or "").strip()
    if not text:
        return ""
    key = _column_key(_header_table(target), text)
    col = next((c for c in columns_for(target) if c.key == key), None) if key else None
    if col is None:
        return text
    name = column_label(col)
    if not as_written or text == col.key or _header_key(text) == _header_key(name):
        return name
    return f"{name}{aside(text)}"


def export_only_label(key: str) -> str:
    """The header of a column exports write for people only (所属机构名称), in the active language."""
    return EXPORT_ONLY[key] if chinese_headers() else str(EXPORT_ONLY_LABELS[key])


def choice_label(choices: type, value: str) -> str:
    """The word an export or a template writes for a choice value in the active language: the Chinese word of the
    template in Simplified Chinese (canonical_label: 三级甲等, 重点客户), else the choice's label (Grade III-A, Key
    account; 三級甲等). The import reads each of them."""
    if not value:
        return ""
    if chinese_headers():
        return canonical_label(choices, value)
    try:
        return str(choices(value).label)
    except ValueError:  # a value the choices no longer have: written as it is stored
        return value


@cache
def _export_only_keys() -> frozenset[str]:
    names = set(EXPORT_ONLY.values())
    for lang in _product_languages():
        with override(lang):
            names.update(str(label) for label in EXPORT_ONLY_LABELS.values())
    return frozenset(_header_key(name) for name in names)


# a note in brackets after (or before) a header's words: （必填）, (mobile), 【必填】, [选填]
_NOTE = re.compile(r"[(（【\[]([^)）】\]]*)[)）】\]]")


# Words OpenCC's Taiwan conversion (s2twp: what zh-Hant text is often made with) puts for the template's, after
# `normalise.simplified`: 統一社會信用程式碼 is 统一社会信用代码, 機構型別 is 机构类型, 資訊來源 is 信息来源.
_TAIWAN_WORDS = (("程式码", "代码"), ("型别", "类型"), ("资讯", "信息"))


def _header_key(text: str) -> str:
    """A header as it is compared: Traditional characters read as Simplified (機構名稱 is 机构名称), without
    spaces, notes in brackets and punctuation."""
    text = normalise.simplified(normalise.clean_text(str(text)).lower())
    for taiwan, mainland in _TAIWAN_WORDS:
        text = text.replace(taiwan, mainland)
    text = _NOTE.sub("", text)  # "手机 (mobile)", "机构名称（必填）", "姓名【必填】"
    return re.sub(r"[\s*_\-：:]+", "", text)


@cache
def _header_table(target: str) -> dict[str, str]:
    table = {}
    for col in columns_for(target):
        for name in (col.header, col.key, *col.aliases):
            table.setdefault(_header_key(name), col.key)
    # the headers exports write in each language (Internal code, 內部編號), after the names above: a label never
    # takes a name from the column that had it
    for lang in _product_languages():
        with override(lang):
            for col in columns_for(target):
                if col.label:
                    table.setdefault(_header_key(str(col.label)), col.key)
    return table


def _column_key(table: dict[str, str], text: str) -> str | None:
    """The column a header names: by its words without the note in brackets (手机（必填）), else by the note
    itself when that names a column (电话（手机）, 联系方式（座机）)."""
    key = table.get(_header_key(text))
    if key is None:
        for note in _NOTE.findall(str(text)):
            key = table.get(_header_key(note)) if note.strip() else None
            if key is not None:
                break
    return key


def columns_for(target: str) -> list[Column]:
    if target in TARGETS:
        return TARGETS[target].columns
    return INSTITUTION_COLUMNS if target == ImportJob.Target.INSTITUTIONS else PERSON_COLUMNS


def map_headers(target: str, headers: list[str]) -> tuple[list[tuple[int, Column]], list[str], list[str]]:
    """(index → column pairs, missing required headers, ignored headers) for a header row. A column given
    twice (the same header, or two names of one column) keeps its first copy here: `duplicate_headers` names
    it, and `take_header` refuses such a file."""
    table = _header_table(target)
    by_key = {c.key: c for c in columns_for(target)}
    chosen = _preferred_copies(target, headers)
    mapping, seen, ignored = [], set(), []
    for idx, text in enumerate(headers):
        if not str(text).strip():
            continue
        key = _column_key(table, text)
        if key is not None and chosen.get(key, idx) != idx:
            key = None  # 单价 beside 含税单价: the price with tax is read
        if key is None:
            ignored.append(str(text).strip())
            continue
        if key in seen:
            continue
        seen.add(key)
        mapping.append((idx, by_key[key]))
    missing = [c.header for c in columns_for(target) if c.required and c.key not in seen]
    ignored = [h for h in ignored if _header_key(h) not in _export_only_keys()]
    return mapping, missing, ignored


def _header_places(target: str, headers: list[str]) -> dict[str, list[int]]:
    """column key → the positions of the headers that name it."""
    table = _header_table(target)
    places: dict[str, list[int]] = {}
    for idx, text in enumerate(headers):
        key = _column_key(table, text) if str(text).strip() else None
        if key is not None:
            places.setdefault(key, []).append(idx)
    return places


def _preferred_copies(target: str, headers: list[str]) -> dict[str, int]:
    """column key → the position of its preferred copy, for the columns the header gives twice, once by a name the
    column prefers (Column.prefer: 含税单价 beside 单价, 价税合计 beside 金额, as 金蝶 exports an order list)."""
    places = _header_places(target, headers)
    by_key = {c.key: c for c in columns_for(target)}
    out = {}
    for key, indexes in places.items():
        prefer = {_header_key(name) for name in by_key[key].prefer}
        if len(indexes) > 1 and prefer:
            preferred = [i for i in indexes if _header_key(headers[i]) in prefer]
            if len(preferred) == 1:
                out[key] = preferred[0]
    return out


def column_letter(index: int) -> str:
    """A spreadsheet's name of a column: 0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def duplicate_headers(target: str, headers: list[str]) -> list[str]:
    """Each column the header row gives more than once, as “header” (letters of its copies): 机构名称 twice,
    or 机构名称 and 名称 (two names of one column). Which copy holds the data cannot be guessed."""
    places = _header_places(target, headers)
    chosen = _preferred_copies(target, headers)
    out = []
    for key, indexes in places.items():
        if len(indexes) > 1 and key not in chosen:
            names = " / ".join(dict.fromkeys(str(headers[i]).strip() for i in indexes))
            out.append(f"“{names}” ({', '.join(column_letter(i) for i in indexes)})")
    return out


# --- reading files -----------------------------------------------------------------------------


@dataclass
class FileInfo:
    kind: str  # "csv" | "xlsx"
    encoding: str = ""
    delimiter: str = ","
    has_nul: bool = True  # may a cell hold a NUL character (a row error)? Known for CSV; assumed for XLSX
    error_parts: frozenset[str] = frozenset()  # XLSX: the worksheet parts holding Excel error values (#N/A …)
    part_rows: dict[str, int] = field(default_factory=dict)  # XLSX: the rows of each worksheet part (its <row> elements)


def sniff(path: Path) -> FileInfo:
    """Decide what the file really is from its bytes; raise ValidationError for anything else."""
    with open(path, "rb") as fh:
        head = fh.read(CSV_SNIFF_BYTES)
    if not head.strip():
        raise _refuse(_("The file is empty."))
    if head.startswith(b"PK\x03\x04"):
        error_parts, part_rows = _check_xlsx(path)
        return FileInfo("xlsx", error_parts=error_parts, part_rows=part_rows)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        if _contains(path, _ENCRYPTED_PACKAGE):  # an .xlsx saved with a password (Excel, WPS): not an old .xls
            raise _refuse(_(
                "The workbook is protected by a password (encrypted), so it cannot be read. Open it in Excel or "
                "WPS, remove the password (File → Info → Protect Workbook → Encrypt with Password, in WPS File → "
                "Document Encryption), save it and upload it again."
            ))
        raise _refuse(
            _("Old Excel (.xls) files are not accepted: save the file as .xlsx or CSV and upload it again.")
        )
    kind = _other_kind(head)
    if Path(path).suffix.lower() == ".xlsx":  # named .xlsx, but no workbook inside: say so, not "columns missing"
        if not kind:
            text = head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" not in head
            kind = str(_("plain text") if text else _("data of another kind"))
        raise _refuse(
            _("This is not an Excel (.xlsx) file: it contains %(kind)s. Open the data in Excel, save it as .xlsx "
              "or CSV and upload it again.") % {"kind": kind}
        )  # fmt: skip
    named_text = Path(path).suffix.lower() == ".txt"
    if kind:
        if named_text:
            raise _not_text(kind)
        raise _refuse(_("This is not a CSV or Excel (.xlsx) file: it contains %(kind)s.") % {"kind": kind})
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _utf16_info(path, head)
    nuls = head.count(b"\x00")
    if nuls * 20 > len(head):  # NULs all through: binary data (or UTF-16 text without its mark), not a CSV
        if named_text:
            raise _not_text(str(_("data of another kind")))
        raise _refuse(_("The file is not a CSV or XLSX file."))
    try:
        encoding = _csv_encoding(path)
    except ValidationError:
        if nuls and named_text:
            raise _not_text(str(_("data of another kind"))) from None
        if nuls:
            raise _refuse(_("The file is not a CSV or XLSX file.")) from None
        raise
    # a stray NUL in a text file (a damaged export) is an error of its row and column, not of the file
    has_nul = bool(nuls) or _contains(path, b"\x00")
    first_line = head.decode(encoding if encoding != "utf-8-sig" else "utf-8", errors="ignore").lstrip(
        "\ufeff"
    )
    first_line = first_line.splitlines()[0] if first_line else ""
    counts = {d: first_line.count(d) for d in (",", "\t", ";")}
    delimiter = max(counts, key=counts.get) if any(counts.values()) else ","
    return FileInfo("csv", encoding=encoding, delimiter=delimiter, has_nul=has_nul)


def _not_text(kind: str) -> ValidationError:
    """A file named .txt whose bytes are no text: said so, with how Excel saves a sheet as text."""
    return _refuse(
        _("This is not a text (.txt) file: it contains %(kind)s. Save the sheet in Excel as “Unicode Text” or "
          "“Text (Tab delimited)”, or as .xlsx or CSV, and upload it again.") % {"kind": kind}
    )  # fmt: skip


def _utf16_info(path: Path, head: bytes) -> FileInfo:
    """Excel's "Unicode text" (Unicode 文本 (*.txt): UTF-16 with its byte-order mark, tab-separated), as Excel saves
    a sheet for an ERP and some ERPs export their lists: read as the CSV it is. It was refused, to be saved again
    as CSV in UTF-8."""
    if not _decodes(path, "utf-16"):
        raise _refuse(_("The file is UTF-16 text: save it as CSV in UTF-8 and upload it again."))
    decoder, has_nul = codecs.getincrementaldecoder("utf-16")(errors="strict"), False
    with open(path, "rb") as fh:
        while not has_nul and (block := fh.read(1 << 20)):
            has_nul = "\x00" in decoder.decode(block)
    # tab-separated as Excel writes it, unless no tab at all begins the file (a CSV saved in UTF-16 by hand)
    text = head[: len(head) // 2 * 2].decode("utf-16", errors="ignore")
    first_line = text.splitlines()[0] if text else ""
    delimiter = "\t" if "\t" in text or "," not in first_line else ","
    return FileInfo("csv", encoding="utf-16", delimiter=delimiter, has_nul=has_nul)


# An encrypted Office Open XML file (ECMA-376 agile or standard encryption, as Excel and WPS write an .xlsx saved
# with a password) is a compound file like an old .xls, whose directory names its EncryptedPackage stream
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


def _contains(path: Path, needle: bytes) -> bool:
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            if needle in block:
                return True
    return False


_SIGNATURES = (
    (b"%PDF-", _("a PDF document")),
    (b"\x89PNG\r\n\x1a\n", _("an image")),
    (b"\xff\xd8\xff", _("an image")),
    (b"GIF87a", _("an image")),
    (b"GIF89a", _("an image")),
    (b"{\\rtf", _("a Word (RTF) document")),
)


def _other_kind(head: bytes) -> str:
    """A document or image type recognised from a file's first bytes ("" when none is)."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return str(kind)
    return ""


_OFFICE_PARTS = (
    ("word/document.xml", _("a Word document")),
    ("ppt/presentation.xml", _("a PowerPoint presentation")),
    ("content.xml", _("an OpenDocument file")),
)


# a formula cell without a value; t="str" with an empty value is a formula whose result is "" (Excel writes it so)
_NO_RESULT = re.compile(rb"<c\b([^>]*)>\s*<f\b[^>]*(?:/>|>[^<]*</f>)\s*(?:<v>\s*</v>\s*|<v\s*/>\s*)?</c>")


_ERROR_TYPE = (b't="e"', b"t='e'")  # a cell holding an Excel error value (#N/A, #REF! …)


def _scan_sheet(zf: zipfile.ZipFile, name: str) -> tuple[bool, bool, int]:
    """(uncalculated formulas, error values, rows) of a worksheet part, in one streamed pass (a sheet may be hundreds
    of megabytes); the rows are its <row> elements, for the progress bar of an import going on in further sheets. A cell with a formula and no cached value (<c><f>…</f></c>): openpyxl and pandas write them
    so, and a reader that takes values (calamine) sees an empty cell. calamine reads an error value (#N/A) as
    an empty cell too: the parts holding one are read again for them (`_error_cells`)."""
    tail, errors, rows = b"", False, 0
    with zf.open(name) as fh:
        while block := fh.read(1 << 20):
            rows += (tail[-4:] + block).count(b"<row ") + (tail[-4:] + block).count(b"<row>")  # 4 bytes: none twice
            chunk = tail + block
            if b"<f" in chunk and any(b't="str"' not in m.group(1) for m in _NO_RESULT.finditer(chunk)):
                return True, errors, rows
            errors = errors or any(marker in chunk for marker in _ERROR_TYPE)
            tail = chunk[-256:]
    return False, errors, rows


XLSX_MAX_EXPANDED = 1 << 30  # what the parts of an accepted workbook may expand to, all together
XLSX_MAX_RATIO = 100  # a worksheet's XML compresses 5–20 times; 100 times is repeated filler
XLSX_RATIO_FROM = 8 << 20  # parts smaller than this are never a danger, whatever their ratio


def _check_xlsx(path: Path) -> tuple[frozenset[str], dict[str, int]]:
    """Refuse a workbook that cannot be imported as it is; return its worksheet parts that hold error values, and
    the rows of each part."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "xl/workbook.xml" not in names or "[Content_Types].xml" not in names:
                other = next((kind for part, kind in _OFFICE_PARTS if part in names), None)
                if other is not None:  # another Office document: name it, as a PDF is named
                    raise _refuse(
                        _("This is not an Excel (.xlsx) file: it contains %(kind)s. Open the data in Excel, save it "
                          "as .xlsx or CSV and upload it again.") % {"kind": other}
                    )  # fmt: skip
                raise _refuse(_("The file is a ZIP archive but not an Excel workbook (.xlsx)."))
            # a "zip bomb": a small file whose parts expand to gigabytes. The sizes the archive declares bound
            # what reading it yields (the reader stops there), so they are checked before anything is expanded
            infos = zf.infolist()
            expanded = sum(i.file_size for i in infos)
            inflated = any(i.file_size > XLSX_RATIO_FROM and i.file_size > XLSX_MAX_RATIO * max(i.compress_size, 1)
                           for i in infos)  # fmt: skip
            if expanded > XLSX_MAX_EXPANDED or inflated:
                raise _refuse(_(
                    "The Excel workbook would expand to %(size)s MB when opened, far more than a worksheet of its "
                    "size holds: it is refused. Open it in Excel or WPS, save it again (or save it as CSV) and "
                    "upload it again."
                ) % {"size": f"{expanded / 2**20:,.0f}"})  # fmt: skip
            bad = zf.testzip()
            if bad is not None:
                raise _refuse(_("The Excel workbook is damaged (%(part)s cannot be read).") % {"part": bad})
            sheets = sorted(n for n in names if n.startswith("xl/worksheets/") and n.endswith(".xml"))
            with_errors, part_rows = set(), {}
            for name in sheets:
                uncalculated, errors, part_rows[name] = _scan_sheet(zf, name)
                if uncalculated:
                    raise _refuse(_(
                        "Some cells hold formulas whose results the file does not contain (it was written by a "
                        "program, not saved by Excel or WPS), so they would be imported empty. Open the file in "
                        "Excel or WPS, save it, and upload it again."
                    ))
                if errors:
                    with_errors.add(name)
            return frozenset(with_errors), part_rows
    except zipfile.BadZipFile:
        raise _refuse(_("The Excel workbook is damaged and cannot be opened.")) from None


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _csv_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or GB18030, checked over the whole file before anything is read."""
    with open(path, "rb") as fh:
        bom = fh.read(3) == codecs.BOM_UTF8
    if _decodes(path, "utf-8"):
        return "utf-8-sig" if bom else "utf-8"
    if not bom and _decodes(path, "gb18030"):
        return "gb18030"
    raise _refuse(
        _("The CSV file is not valid UTF-8 or GB18030 text: save it as CSV (UTF-8) and upload it again.")
    )


class _Lines:
    """A text file's lines for csv.reader, noting when they run out. The reader asks for a line past a row's end
    only while a quoted cell is still open, so a row it ends after the lines ran out is one whose opening quote
    nothing closed."""

    def __init__(self, fh):
        self.fh, self.ended = fh, False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            return next(self.fh)
        except StopIteration:
            self.ended = True
            raise


class UnreadableRow(Exception):
    """A CSV row the file cannot be read past: a cell opened by a quotation mark that nothing closes runs to the end
    of the file, longer than a cell can be. The import stopped with "an unexpected error", naming no row.
    With `line`: a cell opened by a quotation mark whose closing mark, on that line of the file, is followed by more
    text (a stray quote that a later cell's quote closed, the rows between read as that one cell)."""

    def __init__(self, row: int, line: int | None = None, same_line: bool = False):
        super().__init__(row)
        self.row, self.line, self.same_line = row, line, same_line

    def note(self) -> tuple[str, dict]:
        """The job's note (and refusal) naming the row."""
        if self.line is None:
            return "unreadable_row", {"row": self.row}
        if self.same_line:  # "主治"医师: closed on its own line, with text after the closing mark
            return "text_after_quote", {"row": self.row}
        return "stray_quote", {"row": self.row, "line": self.line}


def csv_records(fh, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(row number as a spreadsheet shows it, cells) of a CSV text, read strictly: a quoted cell's closing mark must
    end the cell. Read leniently, a stray quote at a cell's start that a later cell's quote closed made one cell of the
    rows between, and they were lost without a word (李娜's title held 刘洋's and 赵敏's rows). Such a file, and one
    whose opening quote nothing closes, stops with UnreadableRow naming the row (and the line where the quote closed)."""
    number = 0
    lines = _Lines(fh)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:
        begin = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if lines.ended or "field limit" in str(e):
                # the row ran to the end of the file inside a quoted cell, or past the longest cell the csv module
                # reads: an opening quote nothing closes. Read on, the rest of the file was one cell of this row
                raise UnreadableRow(number + 1) from None
            raise UnreadableRow(number + 1, line=reader.line_num, same_line=reader.line_num == begin) from None
        number += 1
        yield number, cells


class NumberText(str):
    """The text of an XLSX cell stored as a number (what `Sheet` gives when asked to mark them): a code or a phone
    number in such a cell has lost its leading zeros or its digits after the 15th."""

    __slots__ = ()


# what Excel (and WPS) show in a cell whose formula failed; calamine reads such a cell as empty
EXCEL_ERRORS = frozenset({
    "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA", "#SPILL!", "#CALC!",
    "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!",
})  # fmt: skip


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _cell_marked(value: Any) -> str:
    """`_cell_text`, a number's text marked as such (`NumberText`)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float or kind is int:
        return NumberText(_cell_text(value))
    return _cell_text(value)


_CELL_REF = re.compile(rb"\br\s*=\s*[\"']([A-Z]{1,3})(\d+)[\"']")
_ERROR_CELL = re.compile(rb"<c\b([^>]*?\bt\s*=\s*[\"']e[\"'][^>]*?)(?:/>|>(.*?)</c>)", re.S)
_CELL_VALUE = re.compile(rb"<v>([^<]*)</v>")


def _error_cells(path: Path, part: str) -> dict[tuple[int, int], str]:
    """{(row, column), 0-based: error text} of a worksheet part's cells holding an error value. Streamed over
    the XML, as `_scan_sheet` found some (rare: the others pay nothing). A cell without its reference (r="D7",
    which Excel and WPS always write) cannot be placed and is passed over."""
    found: dict[tuple[int, int], str] = {}
    tail = b""
    with zipfile.ZipFile(path) as zf, zf.open(part) as fh:
        while block := fh.read(1 << 20):
            chunk = tail + block
            end = chunk.rfind(b"</c>") + 4 if b"</c>" in chunk else 0  # whole cells only: the rest waits
            whole, tail = chunk[:end], chunk[end:]
            if len(tail) > 1 << 20:  # a megabyte of empty styled cells (<c r="A1" s="2"/>): no value is cut
                tail = tail[-(64 << 10) :]
            if not any(marker in whole for marker in _ERROR_TYPE):
                continue
            for m in _ERROR_CELL.finditer(whole):
                ref = _CELL_REF.search(m.group(1))
                value = _CELL_VALUE.search(m.group(2) or b"")
                if ref and value:
                    letters, row = ref.group(1).decode(), int(ref.group(2))
                    column = 0
                    for ch in letters:
                        column = column * 26 + ord(ch) - 64
                    found[(row - 1, column - 1)] = html.unescape(value.group(1).decode("utf-8", "replace"))
    return found


def _sheet_parts(path: Path) -> list[str]:
    """The worksheet part (xl/worksheets/sheet1.xml …) of each sheet, in the workbook's order (calamine's)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    rel_ns = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path) as zf:
        book = ElementTree.fromstring(zf.read("xl/workbook.xml"))
        try:
            rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
        except KeyError:
            return []
    targets = {r.get("Id"): r.get("Target", "") for r in rels}
    parts = []
    for sheet in book.iterfind("m:sheets/m:sheet", ns):
        target = targets.get(sheet.get(f"{{{rel_ns}}}id"), "")
        parts.append(target.lstrip("/") if target.startswith("/") else posixpath.normpath("xl/" + target))
    return parts


class Sheet:
    """The rows of a file as text, header first: a stream for CSV, one loaded sheet at a time for XLSX.

    Of a workbook, the first visible sheet whose header row is the target's (an instructions sheet or a hidden
    one placed first is passed over), else the first visible sheet. `continued` goes on, after its rows, in the
    visible sheets after it whose header row names the same columns in the same places (an export of more rows
    than a sheet holds: 联系人, 联系人 (2) …); the others are skipped. With `marks`, a cell holding an Excel error
    value reads as its text (#N/A: calamine reads it as empty) and a number's text is a `NumberText`."""

    def __init__(self, path: Path, info: FileInfo, target: str = "", marks: bool = False):
        self.path, self.info, self.marks = path, info, marks
        self._workbook = self._sheet = None
        self.name = ""  # of the sheet read (the one being read, once `continued` goes on)
        self.names: list[str] = []  # of all the workbook's sheets
        self.read: list[str] = []  # of the sheets read so far, in order (the first one, then those `continued` took)
        self.skipped: list[str] = []  # of the sheets `continued` passed over (another header row, hidden)
        self.matched = True  # False: no visible sheet has the target's header row; the first one is read
        self.several = False  # more than one visible sheet to choose from
        self._index = 0
        self._visible: list[int] = []
        self._errors: dict[tuple[int, int], str] = {}
        if info.kind == "xlsx":
            from python_calamine import CalamineWorkbook

            self._workbook = CalamineWorkbook.from_path(str(path))
            self._open_sheet(target)

    def _open_sheet(self, target: str) -> None:
        from python_calamine import SheetTypeEnum, SheetVisibleEnum

        metadata = self._workbook.sheets_metadata
        self.names = [m.name for m in metadata]
        visible = [i for i, m in enumerate(metadata)
                   if m.typ == SheetTypeEnum.WorkSheet and m.visible == SheetVisibleEnum.Visible]  # fmt: skip
        candidates = visible or [0]
        self._visible = candidates
        self.several = len(candidates) > 1
        chosen = None
        if target and self.several:
            for index in candidates:
                sheet = self._workbook.get_sheet_by_index(index)
                lines = ((n, [_cell_text(v) for v in row]) for n, row in enumerate(sheet.iter_rows(), start=1))
                header = _header_row(lines, target)
                if header is not None and not map_headers(target, [str(c).strip() for c in header[1]])[1]:
                    chosen = (index, sheet)
                    break
        if chosen is None:
            self.matched = not (target and self.several)
            chosen = (candidates[0], None)
        self._load(*chosen)
        self.read = [self.name]

    def _load(self, index: int, loaded=None) -> None:
        """Make sheet `index` the one `rows` reads (the one read before is let go first: one sheet in memory)."""
        self._sheet, self._errors = None, {}
        self._sheet = loaded if loaded is not None else self._workbook.get_sheet_by_index(index)
        self._index = index
        self.name = self.names[index] if index < len(self.names) else ""
        if self.marks and self.info.error_parts:
            parts = _sheet_parts(self.path)
            if index < len(parts) and parts[index] in self.info.error_parts:
                self._errors = _error_cells(self.path, parts[index])

    def other_sheets(self) -> list[str]:
        return [n for n in self.names if n not in self.read]

    def close(self) -> None:
        if self._workbook is not None:
            self._workbook.close()
            self._workbook = self._sheet = None

    def continued(self, rows: Iterator[tuple[int, list[str]]], header: Header, target: str
                  ) -> Iterator[tuple[int, list[str], int]]:  # fmt: skip
        """(row number, cells, sheet number — its place in `read`, 0 for the first) of `rows`, the first sheet's
        after its header, then of each later visible sheet whose header row names the same columns in the same
        places as `header`, read one after another under that header (its own header row and the title lines
        above it passed over). A sheet with another header row (notes, a pivot table), or none, is skipped and
        named in `skipped`, as are the sheets before the first one read and the hidden ones."""
        for number, cells in rows:
            yield number, cells, 0
        if self._workbook is None:
            return
        first = self._index
        self.skipped = [n for i, n in enumerate(self.names) if i != first and (i < first or i not in self._visible)]
        wanted = [(idx, col.key) for idx, col in header.mapping]
        for index in [i for i in self._visible if i > first]:
            self._load(index)
            own = self.rows()
            try:
                found = take_header(own, target, sheet=self)
            except ValidationError:
                found = None
            if found is None or [(idx, col.key) for idx, col in found.mapping] != wanted:
                self.skipped.append(self.name)
                continue
            self.read.append(self.name)
            sheet_number = len(self.read) - 1
            for number, cells in itertools.chain(found.given_back, own):
                yield number, cells, sheet_number
        self._sheet = None

    def later_rows_estimate(self) -> int:
        """The data rows of the visible sheets after the one read, counted from their parts' XML as the file was
        checked (`FileInfo.part_rows`): for the progress bar, without loading them. A sheet skipped later counts too."""
        if self._workbook is None or not self.info.part_rows:
            return 0
        parts = _sheet_parts(self.path)
        return sum(max(self.info.part_rows.get(parts[i], 0) - 1, 0)
                   for i in self._visible if i > self._index and i < len(parts))  # fmt: skip

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(row number as a spreadsheet shows it, cells as text) for every row."""
        if self._sheet is None:
            with open(self.path, encoding=self.info.encoding, newline="", errors="strict") as fh:
                yield from csv_records(fh, self.info.delimiter)
            return
        first = self._sheet.start[0] if self._sheet.start else 0
        col0 = self._sheet.start[1] if self._sheet.start else 0
        # a cell merged down over several rows (一家医院 over its doctors' rows, as Chinese offices lay lists out)
        # holds its value in the first row only: the rows below read it too, instead of an empty cell
        tops: dict[int, list[int]] = {}  # row → columns whose value the rows below share
        below: dict[int, list[tuple[int, int]]] = {}  # row → (column, row holding the value)
        for (r0, c0), (r1, _c1) in self._sheet.merged_cell_ranges or ():
            if r1 > r0:
                tops.setdefault(r0, []).append(c0 - col0)
                for r in range(r0 + 1, r1 + 1):
                    below.setdefault(r, []).append((c0 - col0, r0))
        held: dict[tuple[int, int], str] = {}
        errors: dict[int, list[tuple[int, str]]] = {}  # row → (column, error text)
        for (r, c), text in self._errors.items():
            if c >= col0:
                errors.setdefault(r, []).append((c - col0, text))
        text_of = _cell_marked if self.marks else _cell_text
        for offset, row in enumerate(self._sheet.iter_rows()):
            cells = [text_of(v) for v in row]
            number = first + offset
            for c, text in errors.pop(number, ()):
                if c >= len(cells):
                    cells.extend([""] * (c + 1 - len(cells)))
                cells[c] = text
            for c, source in below.pop(number, ()):
                if 0 <= c < len(cells) and not cells[c]:
                    cells[c] = held.get((source, c), "")
            for c in tops.pop(number, ()):
                held[(number, c)] = cells[c] if 0 <= c < len(cells) else ""
            yield number + 1, cells

    def header_depth(self, number: int) -> int:
        """How many rows below header row `number` (as `rows` numbers them) its merged cells reach: a two-level
        header (联系方式 merged across 手机 | 座机 on the row below, 姓名 merged down over both rows) is 1."""
        if self._sheet is None:
            return 0
        top = (self._sheet.start[0] if self._sheet.start else 0) + number - 1
        depth = 0
        for (r0, c0), (r1, c1) in self._sheet.merged_cell_ranges or ():
            if r0 == top and (r1 > r0 or c1 > c0):
                depth = max(depth, r1 - r0, 1)
        return min(depth, 2)

    def data_rows_estimate(self, further: bool = False) -> int:
        """For the progress bar: exact unless CSV cells span several lines; `further`: with the rows of the later
        sheets `continued` may read."""
        if self._sheet is not None:
            return max(self._sheet.height - 1, 0) + (self.later_rows_estimate() if further else 0)
        if self.info.encoding == "utf-16":  # a byte 0x0A is in many a character (上 is 0A 4E): count the text's
            lines, last = 0, "\n"
            with open(self.path, encoding="utf-16", newline="") as fh:
                while block := fh.read(1 << 20):
                    lines += block.count("\n")
                    last = block[-1:]
            return max(lines + (last != "\n") - 1, 0)
        lines, last = 0, b"\n"
        with open(self.path, "rb") as fh:
            while block := fh.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
        return max(lines + (last != b"\n") - 1, 0)


@dataclass
class Header:
    row: int
    cells: list[str]
    mapping: list[tuple[int, Column]]
    ignored: list[str]
    given_back: list = field(default_factory=list)  # rows read after the header to see whether it has two levels

    def text_of(self, key: str) -> str:
        """The header of a column as the user wrote it (reports name the user's own columns)."""
        for idx, col in self.mapping:
            if col.key == key:
                return self.cells[idx].strip() or col.header
        return ""


_UNREADABLE = _("The file could not be read: it is damaged or not a real CSV or XLSX file.")
_BAD_TEXT = _("The CSV file is not valid UTF-8 or GB18030 text: save it as CSV (UTF-8) and upload it again.")


TITLE_ROWS = 5  # at most this many title or note lines above the header row are passed over


def _header_row(rows: Iterator[tuple[int, list[str]]], target: str) -> tuple[int, list[str]] | None:
    """The header row: the first non-empty row, after any title lines above it (机构导入表（2026年12月）: a
    line that names no column), as Chinese spreadsheets often carry — and as ERPs' reports put their query
    conditions above the columns (起始日期：| 2026-03-01 | 截止日期：| 2026-03-31, 用友 and 金蝶: a line of several
    cells, which was taken for the header, the file refused as missing every column). Without a header below
    them, the first line is taken, and its check says what is missing."""
    first = None
    for number, cells in rows:
        texts = [str(c).strip() for c in cells]
        filled = [t for t in texts if t]
        if not filled:
            continue
        first = first or (number, cells)
        titles = number - first[0]
        if titles < TITLE_ROWS and not map_headers(target, texts)[0]:
            continue
        if titles >= TITLE_ROWS and not map_headers(target, texts)[0]:
            return first  # no header in sight: the first line's check says what is missing
        return number, cells
    return first


def _two_level(rows: Iterator[tuple[int, list[str]]], header: tuple[int, list[str]], depth: int, target: str):
    """A header of two (or three) rows, as merged cells lay it out: each column is named by its lowest header
    cell that holds text (联系方式 over 手机 | 座机 gives 手机, 座机; 姓名 merged down stays 姓名). The rows below
    count as header rows only when they name columns the top row does not; otherwise they are data and are
    given back."""
    below = list(itertools.islice(rows, depth))
    cells = [str(c) for c in header[1]]
    for _number, lower in below:
        cells = [low if str(low).strip() else up for up, low in itertools.zip_longest(cells, lower, fillvalue="")]
    known = {col.key for _idx, col in map_headers(target, [str(c).strip() for c in header[1]])[0]}
    combined = {col.key for _idx, col in map_headers(target, [c.strip() for c in cells])[0]}
    tall = all(not str(low).strip() or str(low) == str(up)
               for _number, lower in below for up, low in zip(header[1], lower, strict=False))  # fmt: skip
    if below and (combined - known or tall and len(below[0][1]) <= len(header[1])):
        return (below[-1][0], cells), []  # two levels, or one header row merged down to make it taller
    return header, below


def take_header(rows: Iterator[tuple[int, list[str]]], target: str, need_data: bool = False,
                sheet: Sheet | None = None) -> Header:
    """Read the header row off `rows` and check it; ValidationError names what is wrong. The header is checked
    before the data rows are looked for, so a file whose one line is no header says so; `need_data` (a first
    check of the whole file) consumes the first data row. Of a workbook (`sheet`), a header of two rows laid out
    with merged cells is read as one."""
    header = _header_row(rows, target)
    if header is None:
        raise _refuse(_("The file is empty."))
    depth = sheet.header_depth(header[0]) if sheet is not None else 0
    given_back = []
    if depth:
        header, given_back = _two_level(rows, header, depth, target)
    cells = [str(c) for c in header[1]]
    if any("\x00" in c for c in cells):
        raise _refuse(
            _("The header row (row %(row)s) contains a NUL character (an invisible control character): delete "
              "it and upload the file again.") % {"row": header[0]}
        )  # fmt: skip
    duplicates = duplicate_headers(target, cells)
    if duplicates:
        raise _refuse(
            _("These columns appear more than once in the header row: %(columns)s. Which copy holds the data "
              "cannot be known: keep one copy of each column and upload the file again.")
            % {"columns": listing(duplicates)}
        )  # fmt: skip
    mapping, missing, ignored = map_headers(target, cells)
    if missing:  # named in the reader's language, as the template in the page's language heads them
        raise _refuse(
            _("Required columns are missing: %(columns)s. Download the template to see the expected headers.")
            % {"columns": listing(column_name(target, header, as_written=False) for header in missing)}
        )
    result = Header(header[0], cells, mapping, ignored, given_back)
    spec = TARGETS.get(target)
    if spec and spec.check_header:
        spec.check_header(result)
    if need_data and next((r for _n, r in itertools.chain(given_back, rows) if any(c.strip() for c in r)), None) is None:
        raise _refuse(_("The file has a header row but no data rows."))
    return result


def open_checked(path: Path, target: str, need_data: bool = False) -> tuple[Sheet, Header, Iterator]:
    """Open a file for reading after checking its type, encoding and header row."""
    info = sniff(path)
    sheet = None
    try:
        marks = TARGETS[target].marked_cells if target in TARGETS else True
        sheet = Sheet(path, info, target, marks=marks)
        rows = sheet.rows()
        header = take_header(rows, target, need_data=need_data, sheet=sheet)
        if header.given_back:
            rows = itertools.chain(header.given_back, rows)
    except ValidationError as e:
        if sheet:
            sheet.close()
            if sheet.info.kind == "xlsx":  # a workbook has several sheets: say which one this is about
                raise _refuse(_in_sheet(sheet, " ".join(e.messages))) from None
        raise
    except UnicodeDecodeError:
        raise _refuse(_BAD_TEXT) from None
    except UnreadableRow as e:
        if sheet:
            sheet.close()
        raise _refuse(message(*e.note())) from None
    except Exception as exc:  # calamine raises its own error types for damaged workbooks
        if sheet:
            sheet.close()
        log.info("unreadable import file %s: %s", path, exc)
        raise _refuse(_UNREADABLE) from None
    return sheet, header, rows


def _in_sheet(sheet: Sheet, error: str) -> str:
    """A refusal of a workbook's header row, naming the sheet that was read."""
    if not sheet.matched:
        return _(
            "No visible sheet of the workbook has the template's header row, so the first one, “%(sheet)s”, "
            "was read: %(error)s"
        ) % {"sheet": sheet.name, "error": error}
    return _("Sheet “%(sheet)s”: %(error)s") % {"sheet": sheet.name, "error": error}


def sheet_note(sheet: Sheet) -> list[tuple[str, dict]]:
    """The job notes naming the sheet read, when the workbook has others; the sheets read and those skipped, when
    the import went on in further sheets (`Sheet.continued`)."""
    if sheet.info.kind != "xlsx":
        return []
    named = lambda names: listing(f"“{n}”" for n in names)  # noqa: E731
    if len(sheet.read) > 1:
        notes = [("sheets_read", {"sheets": named(sheet.read), "count": len(sheet.read), "names": sheet.read})]
        if sheet.skipped:
            notes.append(("sheets_skipped", {"sheets": named(sheet.skipped)}))
        return notes
    others = sheet.other_sheets()
    return [("sheet_read", {"sheet": sheet.read[0], "others": named(others)})] if others else []


def job_sheets(job: ImportJob) -> list[str]:
    """The sheets an import read one after another, when it read more than one (its note says so): its errors and
    preview then name each row's sheet."""
    try:
        entries = json.loads(job.message) if job.message else []
    except ValueError:
        return []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("code") == "sheets_read":
            return list((entry.get("params") or {}).get("names") or [])
    return []


# --- regions -----------------------------------------------------------------------------------

_REGION_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "自治州", "地区", "盟",
                    "省", "市", "区", "县", "旗")  # fmt: skip


def _short(name: str) -> str:
    for suffix in _REGION_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


_EN = "en:"  # English names' keys in Regions.by_name, apart from the Chinese ones
_PROVINCE_WORDS = ("province", "municipality", "autonomous region", "special administrative region", "sar")


def _english_keys(code: str, name: str) -> set[str]:
    """What an English reader may write for a region: its English name (Chaoyang District, Hong Kong SAR), and
    without the suffix (Chaoyang, Guangzhou; Guangdong Province, Hong Kong)."""
    names = {name}
    for _suffix, english in SUFFIXES:
        if name.endswith(f" {english}") and len(name) > len(english) + 1:
            names.add(name[: -len(english) - 1])
            break
    if code in PROVINCES:
        stem = name.removesuffix(" SAR")
        names |= {stem, *(f"{stem} {word}" for word in _PROVINCE_WORDS)}
        names |= {"Macau", "Macau SAR"} if code == "820000" else set()
    return {_EN + english_key(n) for n in names}


class Regions:
    """The official region list in memory: look-ups by code and by province/city/district names."""

    def __init__(self):
        rows = list(Region.objects.values_list("code", "name", "parent_id", "level"))
        self.by_code = {code: (name, parent, level) for code, name, parent, level in rows}
        self.by_name: dict[str, list[str]] = {}
        for code, name, _parent, _level in rows:
            for key in {name, _short(name)}:
                self.by_name.setdefault(key, []).append(code)
        # the English names English exports write (Chaoyang District, Inner Mongolia), and without their suffix
        english, _full = english_region_names()
        for code, name in english.items():
            if code in self.by_code:
                for key in _english_keys(code, name):
                    self.by_name.setdefault(key, []).append(code)

    def name(self, code: str | None) -> str:
        return self.by_code[code][0] if code in self.by_code else ""

    def parts(self, code: str | None) -> tuple[str, str, str]:
        """(province, city, district) names of a region code, for exports: in the reader's script, as the pages
        write them (廣東省 for a zh-Hant reader; the import reads either, and the region code beside them first)."""
        if not code or code not in self.by_code:
            return "", "", ""
        level = self.by_code[code][2]
        province = code[:2] + "0000"
        city = code[:4] + "00" if level >= 2 else ""
        district = code if level == 3 else ""
        if self.name(city) in ("市辖区", "县"):
            city = province
        elif self.name(city) == "直辖县" and district:
            # 海南省 / 琼海市, 湖北省 / 仙桃市: a county-level city directly under its province is its own city (as
            # the import reads it), not "直辖县" — which lumped every such city together in a pivot by city
            city = district
        shown = lambda at: region_label(at, self.name(at)) if at else ""  # noqa: E731
        return shown(province), shown(city), shown(district)

    def _within(self, code: str, ancestor: str) -> bool:
        while code:
            if code == ancestor:
                return True
            code = self.by_code[code][1]
        return False

    def _find(self, column: str, name: str, level: int, within: str | None) -> str:
        """The code of the region `name` (given in `column`) at `level`, inside `within`; Traditional characters
        are read as Simplified (廣東省 is 广东省). A FieldError names the column."""
        key = normalise.simplified(name)
        found = self.by_name.get(key, []) + self.by_name.get(_short(key), [])
        if not found:  # an English name (Chaoyang District, Lüchun County), as English exports write it
            found = self.by_name.get(_EN + english_key(key), [])
        candidates = [c for c in found
                      if self.by_code[c][2] == level and (within is None or self._within(c, within))]  # fmt: skip
        candidates = list(dict.fromkeys(candidates))
        if not candidates:
            known = self.by_name.get(key) or self.by_name.get(_EN + english_key(key))
            code = "region_mismatch" if within and known else "region_unknown"
            raise FieldError(code, value=name).at(column)
        if len(candidates) > 1:
            raise FieldError("region_ambiguous", value=name).at(column)
        return candidates[0]

    def resolve(self, code: str, province: str, city: str, district: str) -> str | None:
        """The region code from a 6-digit code or from names; FieldError when not found, its `column` the one
        whose value is not found or does not fit the others."""
        if code:
            found = unicodedata.normalize("NFKC", code).strip()  # １１０１０１ typed full-width is 110101, as in the API
            if not re.fullmatch(r"[0-9]{6}", found) or found not in self.by_code:
                raise FieldError("region_code_unknown", value=code[:20]).at("region_code")
            return found
        found = None
        if province:
            found = self._find("province", province, 1, None)
        if city:
            # 北京市 / 北京市 / 朝阳区: a municipality's city is its only second-level division
            if found and _short(normalise.simplified(city)) == _short(normalise.simplified(province)):
                children = [c for c, v in self.by_code.items() if v[1] == found and v[2] == 2]
                found = children[0] if len(children) == 1 else found
            else:
                try:
                    found = self._find("city", city, 2, found)
                except FieldError:
                    # 海南省 / 琼海市, 新疆 / 石河子市: a county-level city directly under the province (省直辖县)
                    # is written as the city; the table files it under a "直辖县" division
                    if not found:
                        raise
                    found = self._find("city", city, 3, found)
                    if district:
                        same = normalise.simplified(district) == normalise.simplified(city)
                        return found if same else self._find("district", district, 3, found)
                    return found
        if district:
            found = self._find("district", district, 3, found)
        return found


# --- per-row parsing ---------------------------------------------------------------------------


class Item:
    """One data row on its way through a chunk."""

    __slots__ = ("row", "sheet", "raw", "values", "refs", "keys", "errors", "tags", "existing", "action", "changes",
                 "pending_parent", "terms", "row_params", "before", "province_before", "name_key")  # fmt: skip

    def __init__(self, row: int, raw: dict[str, str], sheet: int = 0):
        self.row, self.raw = row, raw
        self.sheet = sheet  # the row's sheet: its place among the sheets read (`Run.sheets`), 0 for the first
        self.values: dict[str, Any] = {}
        self.refs: dict[str, str] = {}
        self.keys: dict[str, str] = {}
        self.errors: list[tuple[str, str, dict]] = []  # (column key, code, params)
        self.tags: list[str] | None = None
        self.existing = None
        self.action = ""  # create | update | unchanged | error
        self.changes: dict[str, Any] = {}
        self.pending_parent = ""  # a parent institution that is new in this import
        self.terms: tuple[str, ...] = ()
        self.row_params: list | None = None
        self.before: dict | None = None  # the existing customer's fields before an update
        self.province_before = ""  # and its province (derived: not among the fields)
        self.name_key: str | None = None  # _row_name_key's, worked out once


    def fail(self, key: str, code: str, **params) -> None:
        self.errors.append((key, code, params))

    @property
    def position(self) -> int:
        """The row's place in the file, sheets in order: its row number on the first sheet (as for a CSV)."""
        return self.sheet << SHEET_SHIFT | self.row


SHEET_SHIFT = 21  # an Excel sheet has at most 1,048,576 rows, under 2**21


_MOBILE_FAST = re.compile(r"1[3-9]\d{9}")
_EMAIL_FAST = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_TAG_SPLIT = re.compile(r"[,，、;；|]")
# as Chinese Excel and ERPs write them: 2026-1-5, 2026/1/5 0:00 (a date cell saved as CSV), 2026-01-05T00:00:00
_DATE_FORMATS = (
    "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日",
    *(f"{day}{sep}{time}" for day in ("%Y-%m-%d", "%Y/%m/%d") for sep in (" ", "T") for time in ("%H:%M:%S", "%H:%M")),
)  # fmt: skip


def _long_text(value: str) -> str:
    return value.strip()


def _limited(field: str, limit: int, clean: Callable[[str], str]) -> Callable[[str], str]:
    """A text column whose field the forms and the API hold to `limit` characters as stored: the same rule, the
    same message naming the field (normalise.check_length); a longer value fails its row, never cut to fit."""

    def check(value: str) -> str:
        value = clean(value)
        try:
            return normalise.check_length(field, value, limit)
        except ValidationError as e:
            raise FieldError(e.code, max=limit, n=len(value)) from None

    return check


def _with_word(check: Callable[[str], str]) -> Callable[[str], str]:
    """A name column: besides `check`, it holds a letter, a Chinese character or a digit (as the forms and the API)."""

    def named(value: str) -> str:
        value = check(value)
        try:
            return normalise.check_has_word(value)
        except ValidationError as e:
            raise FieldError(e.code) from None

    return named


def _mobile(value: str) -> str:
    if _MOBILE_FAST.fullmatch(value):
        return value  # already what normalise.validate_mobile would return
    return _validated(normalise.validate_mobile, value)


def _email(value: str) -> str:
    lowered = value.strip().lower()
    if len(lowered) <= 254 and _EMAIL_FAST.fullmatch(lowered) and "xn--" not in lowered:
        return lowered  # a strict subset of what Django's validator accepts
    return _validated(normalise.validate_email_address, value)


def _validated(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except ValidationError as e:
        raise FieldError(e.code or "invalid") from None


# full-width forms of ASCII (１９７５－０３－１５, ／, ．) and the ideographic space, as ASCII
_FULL_WIDTH_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_CJK_DATE_SPACES = re.compile(r"\s*([年月日号號])\s*")
_MIDNIGHT_FRACTION = re.compile(r"( 0{1,2}:00:00)\.0{1,6}$")


def parse_date(value: str) -> datetime.date:
    # digits typed in a Chinese input method's full-width mode (１９７５年３月１５日) are the ordinary ones; 1975 年 3 月 15 日
    # (spaced, as WPS and Word lay it out) is 1975年3月15日, and 3月15号 as people say it is 3月15日; a date as a
    # database exports it (1975-03-15 00:00:00.000) is that day. They were refused, the full-width one as "a date
    # that does not exist"
    value = _CJK_DATE_SPACES.sub(r"\1", value.translate(_FULL_WIDTH_ASCII)).strip()
    value = _MIDNIGHT_FRACTION.sub(r"\1", value.replace("号", "日").replace("號", "日"))
    if not _ISO_WEEK.search(value):  # 2026-W40 (an ISO week, which fromisoformat reads as its Monday) is no day
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    if re.fullmatch(r"\d{5}(\.0+)?", value):  # an Excel serial day number pasted as text
        return datetime.date(1899, 12, 30) + datetime.timedelta(days=int(float(value)))
    if _DATE_SHAPE.fullmatch(value):  # written as a date, but 2025-02-30 or 2025-13-01
        raise FieldError("impossible_date", value=value[:30])
    raise FieldError("invalid_date", value=value[:30])


_ISO_WEEK = re.compile(r"\d{4}-?W\d", re.I)
_DATE_SHAPE = re.compile(r"\d{4}(?:[-/.]\d{1,2}[-/.]\d{1,2}|年\d{1,2}月\d{1,2}日|\d{4})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?")


def _birthday(today: datetime.date) -> Callable[[str], datetime.date]:
    def clean(value: str) -> datetime.date:
        day = parse_date(value)
        try:
            return normalise.validate_birthday(day, today)
        except ValidationError as e:
            raise FieldError(e.code, date=normalise.EARLIEST_BIRTHDAY.isoformat()) from None

    return clean


def _credit_code(value: str) -> str:
    code = normalise.credit_code(value)
    try:
        return normalise.validate_credit_code(code)
    except ValidationError as e:
        raise FieldError(e.code, n=len(code)) from None


def _id_number(value: str) -> str:
    idn = normalise.credit_code(value)
    if not normalise.valid_id_card(idn):
        raise FieldError("invalid_id")
    return idn


def _beds(value: str) -> int:
    text = value.replace(",", "").replace("，", "").removesuffix("张").strip()
    try:
        beds = int(float(text)) if re.fullmatch(r"\d+(\.0+)?", text) else -1
    except ValueError:
        beds = -1
    if beds < 0 or beds > 100000:
        raise FieldError("invalid_beds")
    return beds


def _phone(value: str) -> str:
    _validated(normalise.validate_any_phone, value)
    if len(value.strip()) > 32:
        raise FieldError("too_long", max=32)
    return value.strip()  # services keep the number as typed; phone_norm holds the digits


def _external_id(value: str) -> str:  # as the form and the API read it: ZW\u200b1 is ZW1
    return _limited("external_id", _max(Institution, "external_id"), lambda v: normalise.visible(v).strip())(value)


def _split_list(value: str) -> list[str]:
    return list(dict.fromkeys(s.strip() for s in _TAG_SPLIT.split(value) if s.strip()))


def _max(model, name: str) -> int:
    return model._meta.get_field(name).max_length


def _value_handlers(target: str) -> dict[str, tuple[str, Callable[[str], Any]]]:
    """column key → (model attribute, cleaner) for the columns that map straight onto a field."""
    model = Institution if target == ImportJob.Target.INSTITUTIONS else Person
    common = {
        "tier": ("tier", lambda v: parse_choice(Tier, v)),
        "stage": ("stage", lambda v: parse_choice(Stage, v)),
        "source": ("source", lambda v: parse_choice(Source, v)),
        "external_id": ("external_id", _external_id),
        "needs": ("needs", _long_text),
        "notes": ("notes", _long_text),
    }
    if model is Institution:
        return {
            **common,
            "name": ("name", _with_word(_limited("name", _max(Institution, "name"), normalise.clean_text))),
            "short_name": ("short_name", _with_word(_limited("short_name", _max(Institution, "short_name"),
                                                             normalise.clean_text))),
            "kind": ("kind", lambda v: parse_choice(InstitutionType, v)),
            "grade": ("grade", lambda v: parse_choice(HospitalGrade, v)),
            "credit_code": ("credit_code", _credit_code),
            "address": ("address", _limited("address", _max(Institution, "address"), normalise.clean_text)),
            "phone": ("phone", _phone),
            "legal_representative": (
                "legal_representative",
                _limited("legal_representative", _max(Institution, "legal_representative"), normalise.clean_text),
            ),
            "beds": ("beds", _beds),
            "specialties": ("specialties", _split_list),
        }
    return {
        **common,
        "name": ("name", _with_word(_limited("person_name", _max(Person, "name"), normalise.clean_text))),
        "gender": ("gender", lambda v: parse_choice(Gender, v)),
        "role": ("role", lambda v: parse_choice(PersonRole, v)),
        "title": ("title", _limited("title", _max(Person, "title"), normalise.clean_text)),
        "mobile": ("mobile", _mobile),
        "landline": ("landline", lambda v: _validated(normalise.validate_landline_with_extension, v)),
        "email": ("email", _email),
        "birthday": ("birthday", _birthday(timezone.localdate())),
        "home_address": ("home_address", _limited("home_address", Person.HOME_ADDRESS_MAX_LENGTH, _long_text)),
        "id_number": ("id_number", _id_number),
        "preferred_language": ("preferred_language", lambda v: parse_choice(PreferredLanguage, v)),
    }


REF_COLUMNS = {"institution", "department", "parent", "owner", "team"}
REGION_COLUMNS = ("region_code", "province", "city", "district")


# --- a run: one pass over the file, dry or writing ---------------------------------------------


@dataclass
class Counts:
    total: int = 0
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0  # rows with at least one error


@dataclass
class Saved:
    """What the finished chunks of a run hold (in a good-rows import, what is committed). The job row carries
    it while the job runs, written in each chunk's own transaction, so that a job whose worker stops tells
    what was really written (`mark_interrupted`)."""

    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    last_row: int = 0  # the file row through which rows were handled
    last_sheet: str = ""  # and its sheet, when it is not the first one read (`Sheet.continued`)
    last_position: int = 0  # (sheet, row) as `Item.position`: chunks of several sheets are compared by it
    unkeyed: int = 0  # rows created that a second import would not recognise (`_recognisable`)


class ChunkItems(list):
    """A prepared chunk's items, with the file row the chunk ends on (and its sheet, `Item.sheet`)."""

    last_row = 0
    last_sheet = 0


PERSONAL_KEYS = frozenset(c.key for c in PERSON_COLUMNS if c.personal)
DERIVED = ("name_norm", "name_key", "phone_norm", "mobile_bidx", "landline_bidx", "email_bidx", "id_number_bidx", "province",
           "city", "region_id")
REF_CACHE_SIZE = 200_000


class SeenKeys:
    """The keys met so far in a file (digest → first row), for the in-file duplicate check. Kept in a
    private temporary SQLite file that SQLite deletes on close, not in a dict: a million rows' keys took
    about 100 MB of memory as Python objects, and an import's memory must stay flat whatever the size.

    A key is stored as a 128-bit BLAKE2b digest under a key of this run's own, never as its value: a key may be a
    mobile number or a name, and the temporary file is on disk, so it holds nothing a reader could take back to the
    value. 128 bits, not the 64 of Python's `hash()` the store kept before: two different keys of one file sharing a
    digest would refuse a good row as a repeat of a row it does not repeat."""

    def __init__(self):
        self.secret = os.urandom(32)
        self.db = sqlite3.connect("", cached_statements=4)  # "" = a temporary on-disk database
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE seen (h BLOB PRIMARY KEY, row INTEGER NOT NULL) WITHOUT ROWID")

    def digest(self, column: str, value: str) -> bytes:
        return hashlib.blake2b(f"{column}\x1f{value}".encode(), digest_size=16, key=self.secret).digest()

    def first_rows(self, digests: Iterable[bytes]) -> dict[bytes, int]:
        """The first row of each of these digests that was met before."""
        wanted, found = sorted(set(digests)), {}
        for i in range(0, len(wanted), 30_000):  # under SQLite's 32,766 parameters
            part = wanted[i : i + 30_000]
            sql = f"SELECT h, row FROM seen WHERE h IN ({', '.join('?' * len(part))})"
            found.update(self.db.execute(sql, part).fetchall())
        return found

    def add(self, pairs: Iterable[tuple[bytes, int]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", sorted(pairs))  # in the b-tree's order

    def close(self) -> None:
        self.db.close()


class Run:
    """State of one pass over a file: caches, counters, the error report, in-file duplicate keys."""

    def __init__(self, job: ImportJob, user, header: Header, write: bool):
        self.job, self.user, self.write = job, user, write
        self.all_or_nothing = job.mode == ImportJob.Mode.ALL_OR_NOTHING
        self.mapping = header.mapping
        self.model = Institution if job.target == ImportJob.Target.INSTITUTIONS else Person
        self.handlers = _value_handlers(job.target)
        self.personal_keys = PERSONAL_KEYS if self.model is Person else frozenset()
        self.headers: dict[str, str] = {col.key: header.text_of(col.key) for _idx, col in header.mapping}
        self.counts = Counts(total=job.total_rows)
        self.saved = Saved()
        self.last_row = header.row
        self.kept_errors: list[dict] = []
        self.preview: list[dict] = []
        self.seen = SeenKeys()  # digest of a key (external id, credit code …) → first row
        self.pending: dict[str, int] = {}  # keys of institutions new in this run → id (0 in a dry run)
        # names (_name_key) that two institutions new in this run share: 上级机构 by that name is ambiguous
        self.pending_ambiguous: set[str] = set()
        self.regions = Regions() if self.model is Institution else None
        self.institution_ids: dict[str, int] = {}  # reference as written → institution id
        self.institution_kinds: dict[int, str] = {}  # parent institution id → its type
        self.pending_kinds: dict[str, str] = {}  # keys of institutions new in this run → their type
        # parent institution id → its region and name (a department lies in its hospital's province)
        self.parent_regions: dict[int, tuple[str | None, str]] = {}
        self.pending_regions: dict[str, str | None] = {}  # keys of institutions new in this run → their region
        # the parent each row of the file gives (an existing institution's id, a new row's credit code and external
        # id → the parent's id, or the key of a new row): with the stored parents, what a loop is looked for in
        self.parents: dict[int | str, int | str] = {}
        # the credit codes and external ids merges freed (_freed_keys)
        self.freed: dict[tuple[int, str], set[str]] = {}
        self.institution_regions: dict[int, str | None] = {}  # institution id → its region (people's copy)
        self.department_ids: dict[tuple[int, str], int] = {}
        self.users: dict[str, int | None] = {}
        self.teams: dict[str, int | None] = {}
        self.tags: dict[str, int] = {}
        self.all_scope = access.institution_scope_q(user) is None
        # a role that sees personal data masked: a row's birthday is not compared with a stored ID number (services)
        self.sees_personal = access.can(user, Cap.VIEW_PERSONAL_DATA)
        self.changeable: set[int] = set()
        self.default_owner = None if access.can(user, Cap.ALL_CUSTOMERS) else user.pk
        self.stop_writing = False  # all-or-nothing: once a row fails, only keep checking
        self.updates_audit: list[dict] = []  # recorded when the transaction ends (short audit-chain lock)
        self.codes: CodeBlock | None = None
        self.inserter = FastInserter(self.model)
        # a person's region is derived (their institution's); an institution's is its own column
        derived = DERIVED if self.model is Person else tuple(a for a in DERIVED if a != "region_id")
        self.derived = [a for a in derived if a in {f.attname for f in self.inserter.fields}]
        self.lock = threading.Lock()  # the writer thread reports errors too
        self.error_file = None
        self.error_writer = None
        self.sheets: list[str] = []  # of a workbook: the sheets read so far (`Sheet.read`), that errors name

    def sheet_of(self, item_or_number) -> str:
        number = item_or_number if isinstance(item_or_number, int) else item_or_number.sheet
        return self.sheets[number] if number < len(self.sheets) else ""

    def open_report(self, path: Path) -> None:
        self.error_file = open(path, "w", encoding="utf-8", newline="")
        self.error_writer = csv.writer(self.error_file)
        self.error_writer.writerow(["row", "column", "code", "params", "value", "sheet"])

    def close_report(self) -> None:
        if self.error_file:
            self.error_file.close()
            self.error_file = None
        self.seen.close()

    def record_errors(self, item: Item) -> None:
        """Count a bad row and write its errors to the report; personal values are never copied."""
        with self.lock:
            self.counts.errors += 1
            sheet = self.sheet_of(item)
            for key, code, params in item.errors:
                column = self.headers.get(key, "")
                value = "" if key in PERSONAL_KEYS else shown(item.raw.get(key, "")[:100])
                err = {"row": item.row, "column": column, "code": code, "params": params}
                if sheet:  # a workbook's: the row is found on its sheet (an import may read several)
                    err["sheet"] = sheet
                if value:
                    err["value"] = value
                if len(self.kept_errors) < MAX_KEPT_ERRORS:
                    self.kept_errors.append(err)
                if self.error_writer:
                    params_json = json.dumps(params, ensure_ascii=False)
                    self.error_writer.writerow([item.row, column, code, params_json, value, sheet])

    def add_preview(self, item: Item) -> None:
        if len(self.preview) >= PREVIEW_ROWS:
            return
        cells = []
        for _idx, col in self.mapping:
            value = item.raw.get(col.key, "")
            cells.append([col.header, _mask_cell(col.key, value) if col.personal else shown(value[:100])])
        errors = [{"column": self.headers.get(k, ""), "code": c, "params": p} for k, c, p in item.errors]
        row = {"row": item.row, "action": item.action, "cells": cells, "errors": errors}
        if sheet := self.sheet_of(item):
            row["sheet"] = sheet
        self.preview.append(row)


def shown(value: str) -> str:
    """A cell's text as reports and previews show it: a NUL character (which PostgreSQL cannot store) as ␀."""
    return value.replace("\x00", "\u2400") if "\x00" in value else value


def _mask_cell(key: str, value: str) -> str:
    if not value:
        return ""
    if key in ("mobile", "landline", "phone"):
        return normalise.mask_phone(normalise.phone(value))
    if key == "email":
        return normalise.mask_email(value)
    return normalise.MASK


# Codes and phone numbers: a cell of these stored as a number (an XLSX number cell, or its text in scientific
# notation, 9.1110108E+17, as Excel saves it to CSV) has lost digits, and its check is said so
NUMBER_SENSITIVE = frozenset({"credit_code", "id_number", "phone", "mobile", "landline", "external_id"})
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+")
EXCEL_PRECISION = 15  # significant digits Excel keeps of a number; the rest become 0


def _stored_as_number(value: str, numeric: bool) -> bool | None:
    """True when a code column's value certainly lost digits as a number (more digits than Excel keeps, a decimal,
    scientific notation); None when it was a number that may be intact (a mobile 13800138000): its own check
    decides, and its failure is then put down to the number; False for text."""
    if numeric:
        return True if not value.isdigit() or len(value) > EXCEL_PRECISION else None
    return ("E" in value or "e" in value) and _SCIENTIFIC.fullmatch(value) is not None


_MASK_FIELD = {"phone": "mobile"}  # a people file's phone column is masked as a mobile is (138****8000)


def _parse(run: Run, number: int, cells: list[str], sheet: int = 0) -> Item | None:
    raw = {}
    numbers = None  # keys whose cell is an XLSX number (`NumberText`)
    for idx, col in run.mapping:
        if idx < len(cells):
            cell = cells[idx]
            value = cell.strip()
            if value:
                raw[col.key] = normalise.csv_unescape(value) if value[0] == "'" else value
                if type(cell) is NumberText:
                    numbers = numbers or set()
                    numbers.add(col.key)
    if not raw:
        return None  # an empty line
    item = Item(number, raw, sheet)
    handlers = run.handlers
    personal = run.personal_keys
    for key, value in raw.items():
        if "\x00" in value:
            item.fail(key, "nul_character")
            continue
        if value[0] == "#" and value in EXCEL_ERRORS:
            item.fail(key, "excel_error", value=value)  # a failed formula (calamine reads it as empty)
            continue
        if key in personal and ("*" in value or "＊" in value) and normalise.is_masked(_MASK_FIELD.get(key, key), value):
            item.fail(key, "masked")  # read back from a masked export: never replaces the real value
            continue
        as_number = False
        if key in NUMBER_SENSITIVE and (numbers is not None or "e" in value or "E" in value):
            as_number = _stored_as_number(value, numbers is not None and key in numbers)
            if as_number:
                item.fail(key, "stored_as_number")
                continue
        handler = handlers.get(key)
        if handler is not None:
            try:
                item.values[handler[0]] = handler[1](value)
            except FieldError as e:
                if as_number is None:  # a number cell that fails its check: 010… without its 0
                    item.fail(key, "stored_as_number")
                else:
                    item.fail(key, e.code, **e.params)
        elif key == "phone":
            _route_phone(run, item, value, as_number)
        elif key == "code":
            item.keys["code"] = value.upper()
        elif key == "tags":
            names = [normalise.clean_text(t) for t in _split_list(value)]
            longest = max(map(len, names), default=0)
            if longest > normalise.TAG_MAX_LENGTH:  # as the forms and the API refuse it: never cut to fit
                item.fail(key, "tag_too_long", max=normalise.TAG_MAX_LENGTH, n=longest)
            else:
                item.tags = list(dict.fromkeys(t for t in map(normalise.tag_name, names) if t))
        elif key in REF_COLUMNS:
            item.refs[key] = normalise.clean_text(value)
    if "role" in raw and "title" not in raw and "role" in item.values:
        # 角色 filled with a professional title (主任医师, 主管药师 …), as many lists do: the person is a doctor (a
        # pharmacist, a nurse) with that title — kept as the title, not lost. They were refused as no role
        written = normalise.simplified(normalise.clean_text(raw["role"]))
        if written in TITLE_WORDS:
            item.values["title"] = written
    if "external_id" in item.values:
        item.keys["external_id"] = item.values["external_id"]
    if "credit_code" in item.values:
        item.keys["credit_code"] = item.values["credit_code"]
    if run.regions is not None and any(k in raw for k in REGION_COLUMNS):
        try:
            item.values["region_id"] = run.regions.resolve(*(raw.get(k, "") for k in REGION_COLUMNS))
        except FieldError as e:
            item.fail(e.column or next(k for k in REGION_COLUMNS if raw.get(k)), e.code, **e.params)
    return item


def _route_phone(run: Run, item: Item, value: str, as_number: bool | None) -> None:
    """A people file's one phone column (电话, 联系电话): a mobile number is the person's mobile, any other their
    landline. A row that gives that field in its own column too (手机, 座机) keeps it; the same number twice is
    no error, two different ones are."""
    try:
        attname, number = "mobile", _mobile(value)
    except FieldError as not_mobile:
        try:
            attname, number = "landline", _validated(normalise.validate_landline_with_extension, value)
        except FieldError:
            if as_number is None:
                code = "stored_as_number"
            else:  # a mobile with an extension is said to be so, as in the 手机 column
                code = "mobile_extension" if not_mobile.code == "mobile_extension" else "invalid_person_phone"
            item.fail("phone", code)
            return
    own = item.raw.get(attname)
    if own is not None and normalise.phone_key(own) != normalise.phone_key(number):
        item.fail("phone", "phone_other_number", column=run.headers.get(attname, ""))
        return
    if own is None:
        item.values[attname] = number


# --- resolving references, one query per chunk (and a cache across chunks) ----------------------


def _active(model):
    return model.objects.filter(merged_into__isnull=True)


def _find_institutions(run: Run, refs: set[str]) -> dict[str, list[int]]:
    """Ids of active institutions whose code, credit code, external id or (failing those) exact name
    is one of `refs`. One indexed IN query per key; merged records are dropped in Python so that the
    planner never prefers the merged_into index."""
    found: dict[str, list[int]] = {}
    upper = {r.upper() for r in refs}
    for key, wanted in (("code", upper), ("credit_code", upper), ("external_id", refs)):
        # no ORDER BY: sorting a chunk's matches by name cost more than finding them
        for pk, value, merged in Institution.objects.filter(**{f"{key}__in": wanted}).order_by().values_list(
            "id", key, "merged_into_id"
        ):
            if merged is None:
                found.setdefault(value, []).append(pk)
            else:  # merged away (its internal code stays its own): the row is told where it lives on
                found.setdefault("\x00merged:" + value, []).append(merged)
    # a credit code or external id the merge freed names the institution it was merged into, as in the order import
    # and the KOL sheet: a people list taken before the merge still names the duplicate's code
    unfound = {r for r in refs if not {r, r.upper(), "\x00merged:" + r.upper()} & found.keys()}
    codes = {r.upper() for r in unfound if len(r) == 18}
    for key, wanted in (("credit_code", codes), ("external_id", unfound)):
        for value, pk in _freed_keys(run, Institution, key, wanted).items():
            found.setdefault(value, []).append(pk)
    names = {r for r in unfound if r not in found and r.upper() not in found}
    if names:
        for pk, name in _active(Institution).filter(name__in=names).order_by().values_list("id", "name"):
            found.setdefault("\x00name:" + name, []).append(pk)
        # a name written otherwise — in Traditional characters (北京協和醫院), other brackets or spaces — is the name
        # as search, duplicate detection and the 科室 column read it
        folded: dict[str, list[str]] = {}
        for ref in names - {n for n in names if "\x00name:" + n in found}:
            if normalise.name(ref):
                folded.setdefault(normalise.name(ref), []).append(ref)
        if folded:
            rows = _active(Institution).filter(name_norm__in=list(folded)).order_by().values_list("id", "name_norm")
            for pk, norm in rows:
                for ref in folded[norm]:
                    found.setdefault("\x00name:" + ref, []).append(pk)
    return found


def _freed_keys(run: Run, model, key: str, values: set[str]) -> dict[str, int]:
    """Credit codes or external ids (`key`) that a merge took from the record merged away (the survivor kept its own)
    → the active record they lead to now, after merges of the survivor too (services.survivors_of_freed_codes)."""
    kind = SearchTerm.Kind.INSTITUTION if model is Institution else SearchTerm.Kind.PERSON
    # read once: most rows of a big file are new, and few keys were ever freed
    if (kind, key) not in run.freed:
        merges = MergeRecord.objects.filter(kind=kind).values_list(f"snapshot__{key}", flat=True)
        run.freed[kind, key] = {value for value in merges if value and isinstance(value, str)}
    out: dict[str, int] = {}
    values = sorted(v for v in values if v in run.freed[kind, key])
    for start in range(0, len(values), 900):  # below SQLite's old 999-parameter limit
        part = values[start : start + 900]
        if model is Institution:
            out.update(services.survivors_of_freed_codes(key, part))
            continue
        merges = MergeRecord.objects.filter(kind=kind, **{f"snapshot__{key}__in": part})
        for snapshot, survivor in merges.order_by("pk").values_list("snapshot", "survivor_id"):
            value, seen = (snapshot or {}).get(key), set()
            while survivor and survivor not in seen:  # to the end of the chain of merges
                seen.add(survivor)
                onward = Person.objects.filter(pk=survivor).values_list("merged_into_id", flat=True).first()
                if not onward:
                    break
                survivor = onward
            if value in part:
                out[value] = survivor
    if not out:
        return out
    active = set(_active(model).filter(pk__in=set(out.values())).values_list("pk", flat=True))
    return {value: pk for value, pk in out.items() if pk in active}  # not one deleted since


def _survivor_params(model, pk: int | None) -> dict[str, str]:
    """The name and code of the active record a merged one lives on in (after merges of merges), {} for none."""
    seen: set[int] = set()
    while pk is not None and pk not in seen:
        seen.add(pk)
        row = model.objects.filter(pk=pk).values_list("merged_into_id", "name", "code").first()
        if row is None:
            return {}
        if row[0] is None:
            return {"survivor": row[1], "survivor_code": row[2]}
        pk = row[0]
    return {}


def _pick_institution(found: dict[str, list[int]], ref: str) -> int:
    for key in (ref.upper(), ref):
        if key in found:
            return found[key][0]
    for key in (ref.upper(), ref):
        survivor = _survivor_params(Institution, found.get("\x00merged:" + key, [None])[0])
        if survivor:
            raise FieldError("merged_into", value=ref[:100], **survivor)
    by_name = found.get("\x00name:" + ref, [])
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise FieldError("institution_ambiguous", value=ref[:100])
    raise FieldError("institution_not_found", value=ref[:100])


def _resolve_institution_column(run: Run, items: list[Item], column: str, attname: str) -> list[Item]:
    """Fill `attname` from the `column` reference; return the rows whose institution was not found."""
    cache = run.institution_ids
    unknown = {it.refs[column] for it in items if column in it.refs and it.refs[column] not in cache}
    found = _find_institutions(run, unknown) if unknown else {}
    missing = []
    for it in items:
        ref = it.refs.get(column)
        if not ref:
            continue
        pk = cache.get(ref)
        if pk is None:
            try:
                pk = _pick_institution(found, ref)
            except FieldError as e:
                if e.code == "institution_not_found":
                    missing.append(it)
                else:
                    it.fail(column, e.code, **e.params)
                continue
            if len(cache) < REF_CACHE_SIZE:
                cache[ref] = pk
        it.values[attname] = pk
    return missing


def _resolve_people_refs(run: Run, items: list[Item]) -> None:
    for it in _resolve_institution_column(run, items, "institution", "institution_id"):
        it.fail("institution", "institution_not_found", value=it.refs["institution"][:100])
    # a department given as 所属机构: the person works at its hospital, in that department (as services.clean_person)
    ids = {it.values["institution_id"] for it in items if it.values.get("institution_id")}
    departments = dict(
        Institution.objects.filter(pk__in=ids, kind=InstitutionType.DEPARTMENT, parent__isnull=False)
        .values_list("pk", "parent_id")
    ) if ids else {}  # fmt: skip
    for it in items:
        dept = it.values.get("institution_id")
        if dept in departments:
            it.values["institution_id"] = departments[dept]
            if not it.refs.get("department"):
                it.values["department_id"] = dept
    _resolve_users_teams(run, items)


def _resolve_institution_refs(run: Run, items: list[Item]) -> None:
    """上级机构: an existing institution, or one new in this file (an earlier row)."""
    missing = set(_resolve_institution_column(run, items, "parent", "parent_id"))
    wanted = {it.values["parent_id"] for it in items if it.values.get("parent_id")} - set(run.institution_kinds)
    if wanted:  # a department's parent must be a hospital: the parents' types, one query per chunk
        parents = Institution.objects.filter(pk__in=wanted).values_list("pk", "kind", "region_id", "name")
        for pk, kind, region, name in parents:
            run.institution_kinds[pk], run.parent_regions[pk] = kind, (region, name)
    earlier: set[str] = set()
    for it in items:
        if it in missing:
            ref = it.refs["parent"]
            if {ref, ref.upper()} & earlier or ref in run.pending or ref.upper() in run.pending:
                it.pending_parent = ref
            elif _name_key(ref) in run.pending_ambiguous:
                it.fail("parent", "institution_ambiguous", value=ref[:100])
            elif _name_key(ref) in earlier or _name_key(ref) in run.pending:  # by the name of an earlier row
                it.pending_parent = ref
            else:
                it.fail("parent", "institution_not_found", value=ref[:100])
        if not it.errors:
            keys = [k for k in (it.values.get("credit_code"), it.values.get("external_id")) if k]
            name = _row_name_key(run, it)
            if name:
                if name in earlier or name in run.pending:  # two rows of the file give one name
                    run.pending_ambiguous.add(name)
                keys.append(name)
            earlier.update(keys)
            run.pending_kinds.update(dict.fromkeys(keys, it.values.get("kind") or ""))
            run.pending_regions.update(dict.fromkeys(keys, it.values.get("region_id")))
    _resolve_users_teams(run, items)


def _name_key(name: str) -> str:
    """The key under which an institution new in this import is found by its name (as the name lookup compares
    names: 北京協和醫院 is 北京协和医院); it cannot be a credit code, external id or internal code."""
    return "\x00name:" + normalise.name(name)


def _row_name_key(run: Run, it: Item) -> str:
    """The key a new institution of this row is found by when a later row's 上级机构 gives its name; "" when the file
    has no 上级机构 column (no row can name it: the name is not normalised for nothing, the bench's files)."""
    if it.name_key is None:
        it.name_key = _name_key(it.values["name"]) if it.values.get("name") and "parent" in run.headers else ""
    return it.name_key


def _pending(mapping: dict, ref: str):
    """What `mapping` holds for the institution new in this import that 上级机构 `ref` names: by a key as written
    or in capitals (credit codes and internal codes), else by its name."""
    for key in (ref, ref.upper(), _name_key(ref)):
        if key in mapping:
            return mapping[key]
    return None


def _check_parent_names(run: Run, items: list[Item]) -> None:
    """上级机构 by a name that a stored institution and an institution new in this import (an earlier row) share is
    ambiguous, as two stored institutions of that name are: the row is refused rather than placed under either."""
    new: set[str] = set()
    for it in items:
        ref, pk = it.refs.get("parent"), it.values.get("parent_id")
        if ref and pk and not it.errors and not it.pending_parent:
            key = _name_key(ref)
            if key in new or run.pending.get(key, pk) != pk:  # found by that name, not by a code?
                if _name_key(run.parent_regions.get(pk, (None, ""))[1]) == key:
                    it.fail("parent", "institution_ambiguous", value=ref[:100])
        if it.existing is None and not it.errors:
            new.add(_row_name_key(run, it))


def _resolve_departments(run: Run, items: list[Item]) -> None:
    """科室 by name under the row's institution (given, or the existing person's)."""
    wanted: dict[Item, tuple[int, str]] = {}
    for it in items:
        name = it.refs.get("department")
        if not name:
            continue
        inst_id = it.values.get("institution_id") or (it.existing.institution_id if it.existing else None)
        if inst_id is None:
            it.fail("department", "department_needs_institution")
        else:
            # compared as duplicate detection compares names: 心内科（一病区） is 心内科(一病区)
            wanted[it] = (inst_id, normalise.name(name))
    unknown = {key for key in wanted.values() if key not in run.department_ids}
    if unknown:
        qs = _active(Institution).filter(
            parent_id__in={i for i, _n in unknown},
            kind=InstitutionType.DEPARTMENT,
            name_norm__in={n for _i, n in unknown},
        )
        for pk, parent_id, name in qs.order_by("id").values_list("id", "parent_id", "name_norm"):
            run.department_ids.setdefault((parent_id, name), pk)
    for it, key in wanted.items():
        if key in run.department_ids:
            it.values["department_id"] = run.department_ids[key]
        else:
            it.fail("department", "department_not_found", value=it.refs["department"][:100])


def _resolve_users_teams(run: Run, items: list[Item]) -> None:
    for ref, known, model, lookup, code in (
        ("owner", run.users, User, "username", "user_not_found"),
        ("team", run.teams, Team, "name", "team_not_found"),
    ):
        unknown = {it.refs[ref] for it in items if ref in it.refs and it.refs[ref] not in known}
        if unknown:
            found = dict(model.objects.filter(**{f"{lookup}__in": unknown}).values_list(lookup, "id"))
            if model is User and unknown - set(found):
                # user names are unique whatever their letter case, and sign in so (Zhanghao is zhanghao): the
                # owner column said “no user has the user name Zhanghao” of a user who has it
                for name in unknown - set(found):
                    ids = list(User.objects.filter(username__iexact=name).values_list("id", flat=True)[:2])
                    if len(ids) == 1:
                        found[name] = ids[0]
            if model is Team and unknown - set(found):
                # 華北團隊 is the team 华北团队 (Traditional characters, other spaces or brackets): a team named so once
                folded: dict[str, list[int]] = {}
                for team in Team.objects.only("id", "name", "generated", "generated_params"):
                    names = {team.name}
                    if team.generated:  # a key account's service team, as an export in another language names it
                        for language, _n in settings.LANGUAGES:
                            with override(language):
                                names.add(team.shown_name)
                    for name in {normalise.name(n) for n in names}:
                        folded.setdefault(name, []).append(team.pk)
                for name in unknown - set(found):
                    ids = folded.get(normalise.name(name), [])
                    if len(ids) == 1:
                        found[name] = ids[0]
            known.update({name: found.get(name) for name in unknown})
        for it in items:
            name = it.refs.get(ref)
            if name:
                if known.get(name) is None:
                    it.fail(ref, code, value=name[:100])
                else:
                    it.values[f"{ref}_id"] = known[name]


# --- matching existing customers ----------------------------------------------------------------

KEY_COLUMNS = ("code", "credit_code", "external_id")


def _load_existing(model, qs):
    return qs.prefetch_related("tags")


def _existing_keys(model, key: str, values: set[str]) -> list[str]:
    """Which of these key values exist: a bare indexed look-up, as most rows of a big file are new
    and building thousands of ORM lookup parameters costs more than the query."""
    column = model._meta.get_field(key).column
    qn = connection.ops.quote_name
    values = list(values)
    found = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), 900):  # below SQLite's old 999-parameter limit
            part = values[start : start + 900]
            marks = ", ".join(["%s"] * len(part))
            cursor.execute(
                f"SELECT {qn(column)} FROM {qn(model._meta.db_table)} WHERE {qn(column)} IN ({marks})", part
            )
            found.extend(row[0] for row in cursor.fetchall())
    return found


def _match_existing(run: Run, items: list[Item]) -> None:
    """Attach the existing customer each row updates (by internal code, credit code, external id)."""
    model = run.model
    wanted: dict[str, set[str]] = {}
    for it in items:
        for key, value in it.keys.items():
            wanted.setdefault(key, set()).add(value)
    found: dict[tuple[str, str], Any] = {}
    merged: dict[str, int] = {}  # internal code of a merged-away record → the record it was merged into
    for key, values in wanted.items():
        hits = _existing_keys(model, key, values)
        if hits:
            for obj in _load_existing(model, model.objects.filter(**{f"{key}__in": hits})):
                if obj.merged_into_id is None:
                    found[(key, getattr(obj, key))] = obj
                elif key == "code":
                    merged[obj.code] = obj.merged_into_id
    # a credit code or external id a merge freed leads to the survivor: the row is that customer's, not a new one
    freed = {
        (key, value): pk
        for key in ("credit_code", "external_id") if key in wanted
        for value, pk in _freed_keys(run, model, key, {v for v in wanted[key] if (key, v) not in found}).items()
    }  # fmt: skip
    survivors = {o.pk: o for o in _load_existing(model, model.objects.filter(pk__in=set(freed.values())))}
    for it in items:
        hits = {}
        for key, value in it.keys.items():
            obj = found.get((key, value)) or survivors.get(freed.get((key, value)))
            if obj is not None and getattr(obj, key) not in (None, "", value):
                # the survivor keeps a key of its own, that this row would overwrite: the next import of the
                # survivor's own row would then create it again
                it.fail(key, "freed_key", value=value[:100], survivor=obj.name, survivor_code=obj.code)
            elif obj is not None:
                hits[obj.pk] = obj
            elif key == "code" and (survivor := _survivor_params(model, merged.get(value))):
                it.fail("code", "merged_into", value=value[:40], **survivor)
            elif key == "code":
                it.fail("code", "code_not_found", value=value[:40])
        if len(hits) > 1:
            it.fail(next(iter(it.keys)), "key_conflict", codes=listing(o.code for o in hits.values()))
        elif hits:
            it.existing = next(iter(hits.values()))
    _match_fallback(run, [it for it in items if it.existing is None and not it.keys and not it.errors])


def _match_fallback(run: Run, items: list[Item]) -> None:
    """Rows without keys: the same person (name + mobile) or institution (same name under the same
    parent or in the same region) is updated rather than duplicated."""
    if run.model is Person:
        by_bidx: dict[str, list[Item]] = {}
        for it in items:
            if it.values.get("mobile") and it.values.get("name"):
                by_bidx.setdefault(crypto.blind_index(it.values["mobile"], "phone"), []).append(it)
        if by_bidx:
            for obj in _load_existing(Person, _active(Person).filter(mobile_bidx__in=list(by_bidx))):
                for it in by_bidx.get(obj.mobile_bidx, []):
                    if it.existing is None and obj.name_norm == normalise.name(it.values["name"]):
                        it.existing = obj
        return
    by_name: dict[str, list[Item]] = {}
    for it in items:
        if it.values.get("name") and (it.values.get("parent_id") or it.values.get("region_id")):
            by_name.setdefault(normalise.name(it.values["name"]), []).append(it)
    if not by_name:
        return
    parents = {it.values.get("parent_id") for its in by_name.values() for it in its} - {None}
    regions = {it.values.get("region_id") for its in by_name.values() for it in its} - {None}
    qs = _active(Institution).filter(
        Q(parent_id__in=parents) | Q(region_id__in=regions), name_norm__in=list(by_name)
    )
    for obj in _load_existing(Institution, qs):
        for it in by_name.get(obj.name_norm, []):
            same_parent = (it.values.get("parent_id") or None) == obj.parent_id
            if it.existing is None and same_parent and it.values.get("region_id") in (None, obj.region_id):
                it.existing = obj


def _file_keys(run: Run, it: Item) -> list[tuple[str, str]]:
    """(column key, value) pairs no two rows of one file may share."""
    keys = list(it.keys.items())
    if it.existing is not None:
        keys.append((next(iter(it.keys), "name"), f"\x00pk{it.existing.pk}"))
    elif not it.keys and it.values.get("name"):
        name = normalise.name(it.values["name"])
        if run.model is Person:
            place = it.values.get("mobile", "")
        else:
            place = str(it.values.get("parent_id") or it.pending_parent or it.values.get("region_id") or "")
        if place:
            keys.append(("name", f"{name}\x00{place}"))
    return keys


def _check_duplicates_in_file(run: Run, items: list[Item]) -> None:
    """A key met twice is an error on the second row, naming the first (only digests are kept)."""
    digest = run.seen.digest
    keyed = [(it, [(column, digest(column, value)) for column, value in _file_keys(run, it)]) for it in items]
    earlier = run.seen.first_rows(h for _it, keys in keyed for _column, h in keys)
    new: dict[bytes, int] = {}
    for it, keys in keyed:
        clash = next(((column, earlier.get(h) or new[h]) for column, h in keys if h in earlier or h in new), None)
        if clash:
            column, first = clash
            sheet, row = first >> SHEET_SHIFT, first & ((1 << SHEET_SHIFT) - 1)
            if sheet or it.sheet:  # the file goes on in further sheets: say on which the first row is
                it.fail(column, "duplicate_in_sheet", first=row, sheet=run.sheet_of(sheet))
            else:
                it.fail(column, "duplicate_in_file", first=row)
            continue
        for _column, h in keys:
            new[h] = it.position
    run.seen.add(new.items())


# --- deciding what each row does -------------------------------------------------------------


def _classify(run: Run, it: Item) -> None:
    """create / update / unchanged (or an error), with the fields an update changes."""
    if it.existing is None:
        _check_new(run, it)
        if run.model is Person:
            _check_birthday_id(run, it)
        it.action = "create"
        return
    obj = it.existing
    if not run.all_scope and obj.pk not in run.changeable:
        it.fail(next(iter(it.keys), "name"), "not_permitted")
        return
    if run.model is Institution:
        _check_institution_update(run, it)
    else:
        _check_person_update(it)
        _check_birthday_id(run, it)
    for name in FREE_TEXT_FIELDS:  # needs / notes read back from a masked export: 请回电 138****8000
        value = it.values.get(name)
        if value and "*" in value:  # only such rows pay for it
            it.values[name] = normalise.restore_contacts(value, getattr(obj, name))  # the masks put back as stored
    changes = {a: value for a, value in it.values.items() if _differs(a, getattr(obj, a), value)}
    if run.model is Institution and (changes.get("kind") or obj.kind) != InstitutionType.HOSPITAL:
        changes.pop("grade", None)  # as services do: a grade only means something for a hospital
    if it.pending_parent:
        changes["parent_id"] = None  # the parent is new in this import; its id is known when writing
    if it.tags is not None and sorted({t.casefold() for t in it.tags}) != sorted(
        {t.name.casefold() for t in obj.tags.all()}
    ):  # KOL in the file is the tag KOL stored as kol: no change
        changes["tags"] = it.tags
    it.changes = changes
    it.action = "update" if changes else "unchanged"


# Compared as the services store them: a landline kept as 0311-62916057 equals 031162916057 read from a file.
_SAME_WHEN_NORMALISED = {"mobile": normalise.phone, "landline": normalise.phone_key, "phone": normalise.phone_key,
                         "email": normalise.email}  # fmt: skip


def _differs(attname: str, stored, value) -> bool:
    if stored == value:
        return False
    norm = _SAME_WHEN_NORMALISED.get(attname)
    if norm is not None and isinstance(stored, str) and isinstance(value, str):
        return norm(stored) != norm(value)
    return True


def _what_a_new_row_lacks(run: Run, it: Item) -> None:
    """A row in error with neither a key nor a name can only be a new record: say at once what else it lacks
    (an empty name beside a wrong type), not after the next upload. Other rows may be updates, which need
    neither."""
    if it.keys or it.values.get("name"):
        return
    failed = {key for key, _code, _params in it.errors}
    for key in ("name",) if run.model is Person else ("name", "kind"):
        if key not in failed and not it.values.get(key):
            it.fail(key, "required")


def _check_new(run: Run, it: Item) -> None:
    """What services.clean_* require of a new customer."""
    if not it.values.get("name"):
        it.fail("name", "required")
    if run.model is Person:
        return
    kind = it.values.get("kind")
    if not kind:
        it.fail("kind", "required")
    elif kind == InstitutionType.DEPARTMENT and not it.values.get("parent_id") and not it.pending_parent:
        it.fail("parent" if "parent" in run.headers else "kind", "parent_required")
    elif kind == InstitutionType.DEPARTMENT:
        _check_department_parent(run, it)
        parent = it.pending_parent or it.values.get("parent_id")
        if it.values.get("region_id"):
            _check_department_province(run, it, it.values["region_id"], parent)
        elif parent and not it.errors:
            # a department lies where its hospital does, as the form creates one: without a region, no rep of that
            # territory saw it
            it.values["region_id"] = _parent_region(run, parent)[0]
    if it.values.get("grade") and kind != InstitutionType.HOSPITAL:
        it.values["grade"] = ""


def _check_department_parent(run: Run, it: Item) -> None:
    """A department's parent given in this row is a hospital (services.clean_institution's rule)."""
    if it.pending_parent:
        ref = it.pending_parent
        kind = _pending(run.pending_kinds, ref) or None
    elif it.values.get("parent_id"):
        kind = run.institution_kinds.get(it.values["parent_id"])
    else:
        return
    if kind is not None and kind != InstitutionType.HOSPITAL:
        it.fail("parent", "parent_not_hospital", value=it.refs.get("parent", "")[:100])


def _parent_region(run: Run, parent: int | str) -> tuple[str | None, str]:
    """A parent's region and name: as stored, or as an earlier row of the file gives it (`parent` its key there)."""
    if isinstance(parent, str):  # a new row's key, as 上级机构 wrote it
        return _pending(run.pending_regions, parent), parent
    if parent not in run.parent_regions:  # a department's own parent, not named in the row
        run.parent_regions[parent] = Institution.objects.filter(pk=parent).values_list("region_id", "name").first()
    return run.parent_regions[parent] or (None, "")


def _check_department_province(run: Run, it: Item, region: str | None, parent: int | str | None) -> None:
    """A department lies in its hospital's province (services.clean_institution's rule): the region this row gives it
    is in the province of its parent — as stored, or as an earlier row of the file gives it."""
    if not region or not parent:
        return
    found, hospital = _parent_region(run, parent)
    if found and found[:2] != region[:2]:
        column = next((k for k in REGION_COLUMNS if it.raw.get(k)), "region_code")
        province = found[:2] + "0000"  # its code kept too: the reader's language names it (Beijing, 北京市)
        it.fail(column, "department_province", hospital=str(hospital or "")[:100],
                province=run.regions.name(province) or found, province_code=province)  # fmt: skip


def _check_institution_update(run: Run, it: Item) -> None:
    obj = it.existing
    parent_id = it.values.get("parent_id")
    kind = it.values.get("kind") or obj.kind
    moved = bool(it.pending_parent or (parent_id and parent_id != obj.parent_id))
    region_given = "region_id" in it.values and it.values["region_id"] != obj.region_id
    if kind == InstitutionType.DEPARTMENT and (region_given or (not moved and obj.kind != kind)):
        # moved to another hospital without a region of its own, it follows that hospital's (_update_rows)
        _check_department_province(run, it, it.values.get("region_id", obj.region_id),
                                   it.pending_parent or parent_id or obj.parent_id)  # fmt: skip
    if kind == InstitutionType.DEPARTMENT and not (parent_id or obj.parent_id or it.pending_parent):
        it.fail("parent", "parent_required")
    elif kind == InstitutionType.DEPARTMENT and (it.pending_parent or (parent_id and parent_id != obj.parent_id)):
        _check_department_parent(run, it)
    if obj.kind == InstitutionType.HOSPITAL and kind != InstitutionType.HOSPITAL and _active(Institution).filter(
        parent_id=obj.pk, kind=InstitutionType.DEPARTMENT
    ).exists():  # as services.clean_institution: its departments would hang under a pharmacy
        it.fail("kind", "has_departments")
    if (it.pending_parent or parent_id and parent_id != obj.parent_id) and _lies_under(
        run, it.pending_parent or parent_id, obj.pk
    ):
        it.fail("parent", "parent_cycle", value=it.refs.get("parent", "")[:100])


def _lies_under(run: Run, node: int | str | None, pk: int) -> bool:
    """Whether the institution `pk` is `node` or one of its parents, each parent as the file's rows so far give it
    (`Run.parents`: a new row's parent, an existing institution moved) or else as stored. A loop closes at its
    last row, when the others are known: both rows of a pair each naming the other as parent (the database checked
    alone saw neither under the other), a new row under A followed by A's row naming it."""
    seen: set[int | str] = set()
    while node and node not in seen:
        if node == pk:
            return True
        seen.add(node)
        if isinstance(node, str):  # a new row's key, as 上级机构 wrote it
            node = run.parents.get(node) or run.parents.get(node.upper())
        elif node in run.parents:
            node = run.parents[node]
        else:
            node = Institution.objects.filter(pk=node).values_list("parent_id", flat=True).first()
    return False


def _note_parent(run: Run, it: Item) -> None:
    """Keep the parent a classified row gives (see `_lies_under`)."""
    parent = it.pending_parent or it.values.get("parent_id")
    if not parent:
        return
    if it.action == "create":
        for key in (it.values.get("credit_code"), it.values.get("external_id")):
            if key:
                run.parents[key] = parent
    elif it.action == "update" and "parent_id" in it.changes:
        run.parents[it.existing.pk] = parent


def _check_birthday_id(run: Run, it: Item) -> None:
    """The birthday is the date of birth the ID card number encodes (services.birthday_id_error's rule: a stored
    person whose two already disagree is refused only when the row changes one of them)."""
    pair = {f: it.values[f] for f in ("birthday", "id_number") if f in it.values}
    if pair:
        error = services.birthday_id_error(pair, it.existing, stored_hidden=not run.sees_personal)
        if error is not None:
            it.fail("birthday" if "birthday" in run.headers else "id_number", error.code)


def _check_person_update(it: Item) -> None:
    """A person moved to another institution cannot keep a department of the old one."""
    obj = it.existing
    moved = it.values.get("institution_id") not in (None, obj.institution_id)
    if moved and obj.department_id and "department_id" not in it.values:
        it.fail("institution", "department_mismatch")


# --- new rows: built on the reading side, written on the writing side -----------------------------


class _Derived(dict):
    """A row's values seen as attributes: what `refresh_derived` and the search-term builders read and
    write, without the cost of a model instance. Missing attributes read as ""."""

    def __getattr__(self, name: str):
        return self.get(name, "")

    __setattr__ = dict.__setitem__


@lru_cache(maxsize=50_000)
def _person_terms(name: str) -> tuple[str, ...]:
    """search.person_terms, once per distinct name (names repeat a lot in a million people)."""
    return tuple(search.person_terms(_Derived({"name": name})))


class FastInserter:
    """Rows of one model as parameter lists, inserted with one statement per chunk (COPY on PostgreSQL).

    Bypasses model instances (too slow at a million rows) but not the model: columns, defaults,
    encryption contexts and derived columns all come from the model's own definitions."""

    def __init__(self, model):
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        self.columns = [f.column for f in self.fields]
        self.code_index = [f.attname for f in self.fields].index("code")
        self.defaults: list[tuple[str, Any]] = []  # (attribute, value when the row has none)
        self.encrypted: list[tuple[int, str, bool]] = []  # (position, context, is a date)
        self.timestamps: list[int] = []
        self.json: list[int] = []
        for i, f in enumerate(self.fields):
            default = (
                None
                if (f.null and not f.has_default()) or isinstance(f, models.DateTimeField)
                else f.get_default()
            )
            self.defaults.append((f.attname, default))
            if isinstance(f, EncryptedTextField):
                self.encrypted.append((i, f.context(), isinstance(f, EncryptedDateField)))
            elif isinstance(f, models.DateTimeField):
                self.timestamps.append(i)
            elif isinstance(f, models.JSONField):
                self.json.append(i)

    def row(self, values: dict, now) -> list:
        get = values.get
        out = [get(attname, default) for attname, default in self.defaults]
        for i, context, is_date in self.encrypted:
            value = out[i]
            out[i] = crypto.encrypt(value.isoformat() if is_date else value, context) if value else ""
        for i in self.timestamps:
            out[i] = now
        for i in self.json:
            out[i] = json.dumps(out[i])
        return out

    def insert(self, rows: list[list]) -> None:
        insert_rows(self.model._meta.db_table, self.columns, rows)


def insert_rows(table: str, columns: list[str], rows: list) -> None:
    if not rows:
        return
    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in columns)
    # the driver's own cursor, for COPY and long statements; errors still come out as Django's
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {qn(table)} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            _sqlite_insert(cursor.cursor, f"INSERT INTO {qn(table)} ({cols}) VALUES ", len(columns), rows)


SQLITE_BATCH_PARAMS = 10_000  # SQLite allows 32,766 parameters per statement since 3.32


def _sqlite_insert(raw_cursor, head: str, width: int, rows: list) -> None:
    """Many rows per INSERT statement: SQLite releases the GIL for the whole statement, so a writer
    thread works while the reading thread runs (row-by-row executemany re-takes the GIL for every
    row, waiting behind the other thread each time), and it costs less.

    Batch sizes come from a fixed ladder (n, n/10, n/100, 1): every distinct statement stays in the
    driver's statement cache, and one shape per possible remainder would fill memory."""
    full = max(1, SQLITE_BATCH_PARAMS // width)
    ladder = sorted({full, max(1, full // 10), max(1, full // 100), 1}, reverse=True)
    group = "(" + ", ".join(["?"] * width) + ")"
    start = 0
    while start < len(rows):
        size = next(n for n in ladder if n <= len(rows) - start)
        batch = rows[start : start + size]
        sql = head + ", ".join([group] * size)
        sqlite3.Cursor.execute(raw_cursor, sql, [value for row in batch for value in row])
        start += size


def _db_now():
    now = timezone.now()
    return now if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(now)


def _load_regions(run: Run, items: list[Item]) -> None:
    """The regions of the institutions these people rows belong to (new or existing), in one query."""
    cache = run.institution_regions
    if len(cache) > REF_CACHE_SIZE:
        cache.clear()
    ids = {
        it.values.get("institution_id") or (it.existing.institution_id if it.existing else None) for it in items
    } - {None} - cache.keys()
    if ids:
        cache.update(Institution.objects.filter(pk__in=ids).values_list("id", "region_id"))


def _refresh_derived(run: Run, target) -> None:
    """The model's refresh_derived on a model instance or a _Derived row; people get their institution's
    region from the run's cache (loaded per chunk by _load_regions) instead of a query per row."""
    if run.model is Person:
        Person.refresh_derived(target, run.institution_regions.get(target.institution_id or 0))
    else:
        run.model.refresh_derived(target)


def _build(run: Run, it: Item, now) -> None:
    """Everything a new row needs except its code: defaults, derived columns, ciphertexts, terms."""
    values = it.values
    values.setdefault("source", Source.IMPORT)
    if run.default_owner and not values.get("owner_id"):
        values["owner_id"] = run.default_owner  # as services do: a scoped user creates inside their scope
    derived = _Derived(values)
    _refresh_derived(run, derived)
    for attr in run.derived:
        values[attr] = derived[attr]
    it.terms = (
        _person_terms(values["name"]) if run.model is Person else tuple(search.institution_terms(derived))
    )
    it.row_params = run.inserter.row(values, now)


class CodeBlock:
    """Internal codes reserved up front: allocating per chunk inside a long transaction would hold
    the counter row (PostgreSQL) and block everyone creating customers until the import ends."""

    def __init__(self, model, expected: int):
        self.model, self.next, self.end = model, 0, 0
        if expected > 0:
            self._reserve(expected)

    def _reserve(self, count: int) -> None:
        self.next = Counter.allocate(f"code:{self.model.CODE_PREFIX}", count)
        self.end = self.next + count

    def take(self, count: int) -> list[str]:
        if self.next + count > self.end:
            self._reserve(max(count, CHUNK_ROWS * 5))
        first, self.next = self.next, self.next + count
        return [
            f"{self.model.CODE_PREFIX}{n:08d}" for n in range(first, first + count)
        ]  # as services.next_codes


def _tag_ids(run: Run, names: Iterable[str]) -> list[int]:
    """The tags' ids, each once: an existing tag written in another letter case is that tag (services.tag_names)."""
    ids = []
    for name in names:
        if name not in run.tags:
            canonical = services.tag_names([name])
            run.tags[name] = Tag.objects.get_or_create(name=canonical[0])[0].pk if canonical else None
        if run.tags[name] is not None and run.tags[name] not in ids:
            ids.append(run.tags[name])
    return ids


def _create(run: Run, items: list[Item]) -> None:
    """Insert new rows with their search terms and tags (writing side)."""
    if not items:
        return
    model = run.model
    now = _db_now()
    for it in items:
        if it.row_params is None:
            _build(run, it, now)
    codes = run.codes.take(len(items)) if run.codes else services.next_codes(model, len(items))
    for it, code in zip(items, codes, strict=True):
        it.values["code"] = code
        it.row_params[run.inserter.code_index] = code
    run.inserter.insert([it.row_params for it in items])
    ids = dict(model.objects.filter(code__gte=codes[0], code__lte=codes[-1]).values_list("code", "id"))
    kind = SearchTerm.Kind.INSTITUTION if model is Institution else SearchTerm.Kind.PERSON
    terms = [
        (t, kind, ids[it.values["code"]], search.province_number(it.values.get("province")))
        for it in items for t in it.terms
    ]  # fmt: skip
    insert_rows(SearchTerm._meta.db_table, ["term", "kind", "obj_id", "province"], terms)
    links = [(ids[it.values["code"]], tag) for it in items if it.tags for tag in _tag_ids(run, it.tags)]
    if links:
        through = model.tags.through
        own = next(f for f in through._meta.concrete_fields if f.related_model is model)
        insert_rows(through._meta.db_table, [own.column, through._meta.get_field("tag").column], links)
    if model is Institution:
        for it in items:
            name = _row_name_key(run, it)
            if name and run.pending.get(name, ids[it.values["code"]]) != ids[it.values["code"]]:
                run.pending_ambiguous.add(name)  # a second new institution of that name
            for key in (it.values.get("credit_code"), it.values.get("external_id"), it.values["code"], name):
                if key:
                    run.pending[key] = ids[it.values["code"]]
                    run.pending_kinds[key] = it.values.get("kind") or ""
                    run.pending_regions[key] = it.values.get("region_id")


def _create_guarded(run: Run, items: list[Item]) -> None:
    """Insert; on a unique clash (a concurrent edit) bisect to find the rows at fault."""
    if not items:
        return
    try:
        with transaction.atomic():
            _create(run, items)
    except IntegrityError:
        if len(items) == 1:
            items[0].fail(next(iter(items[0].keys), "name"), "conflict")
            return
        half = len(items) // 2
        _create_guarded(run, items[:half])
        _create_guarded(run, items[half:])


def _create_in_levels(run: Run, items: list[Item]) -> None:
    """Institutions whose parent is new in this import go in after that parent."""
    waiting = items
    while waiting:
        ready = [it for it in waiting if not it.pending_parent or _pending_id(run, it)]
        if not ready:
            for it in waiting:
                it.fail("parent", "institution_not_found", value=it.pending_parent[:100])
            return
        for it in ready:
            if it.pending_parent:
                it.values["parent_id"] = _pending_id(run, it)
        _create_guarded(run, ready)
        waiting = [it for it in waiting if it not in ready]


def _pending_id(run: Run, it: Item) -> int | None:
    return _pending(run.pending, it.pending_parent) or None


def _update(run: Run, items: list[Item], careful: bool = False) -> None:
    """Write the changed fields of existing rows (optimistic version check) and note them for the audit."""
    for it in items:
        if careful:
            try:
                with transaction.atomic():
                    _update_rows(run, [it])
            except IntegrityError:
                it.fail(next(iter(it.keys), "name"), "conflict")
    if not careful:
        _update_rows(run, items)


def _update_rows(run: Run, items: list[Item]) -> None:
    model = run.model
    fields = services.INSTITUTION_FIELDS if model is Institution else services.PERSON_FIELDS
    reindex = []
    owners = {}  # customer id → (old owner, new owner): their open stage tasks follow
    now = timezone.now()
    for it in items:
        obj = it.existing
        if it.before is None:  # kept: a retry after a clash sees the object already changed
            it.before = services.snapshot(obj, fields)
            it.province_before = obj.province
        before = it.before
        changes = dict(it.changes)
        tags = changes.pop("tags", None)
        if "parent_id" in changes and it.pending_parent:
            changes["parent_id"] = _pending_id(run, it)
            if changes["parent_id"] is None:
                it.fail("parent", "institution_not_found", value=it.pending_parent[:100])
                continue
        if model is Institution and "parent_id" in changes and "region_id" not in changes:
            # a department moved to another hospital lies where the new one does, as in the form
            follows = services.region_after_parent_move(obj, before.get("parent"), changes["parent_id"])
            if follows is not False:
                changes["region_id"] = follows
        for attname, value in changes.items():
            setattr(obj, attname, value)
        _refresh_derived(run, obj)
        values = {a: getattr(obj, a) for a in [*changes, *run.derived]}
        done = model.objects.filter(pk=obj.pk, version=obj.version).update(
            version=F("version") + 1, updated_at=now, **values
        )
        if done != 1:
            it.fail(next(iter(it.keys), "name"), "changed_meanwhile")
            continue
        diff = audit.diff(before, services.snapshot(obj, fields))
        if tags is not None:
            before_tags = sorted(t.name for t in obj.tags.all())
            ids = _tag_ids(run, tags)
            obj.tags.set(ids)
            diff["tags"] = [before_tags, sorted(Tag.objects.filter(pk__in=ids).values_list("name", flat=True))]
        if {"name", "short_name"} & set(changes) or obj.province != it.province_before:
            reindex.append(obj)  # the postings hold the name's terms and the province
        run.updates_audit.append({"id": obj.pk, "code": obj.code, "row": it.row, "changes": diff})
        if "owner" in diff:
            owners[obj.pk] = tuple(diff["owner"])
        if model is Institution and "parent_id" in changes and obj.is_department:
            services.people_follow_department(run.user, obj)
        if model is Institution and "kind" in changes:
            services.people_follow_kind(run.user, obj, before.get("kind") == InstitutionType.DEPARTMENT)
    if reindex:
        search.reindex(reindex)
    if owners:
        services.owner_changed.send(sender=model, moves=owners, user=run.user)
    if model is Institution:
        moved = [it for it in items if "region_id" in it.changes and not it.errors]
        if moved:
            services.sync_people_region([it.existing.pk for it in moved])
        for it in moved:  # a hospital that moves takes its departments along, as in the form
            services.departments_follow(it.existing, it.before.get("region"), run.user)


def _flush_update_audit(run: Run) -> None:
    """One UPDATE audit entry per chunk of updated rows, listing each row's changed fields."""
    label = run.model._meta.label_lower
    while run.updates_audit:
        rows, run.updates_audit = run.updates_audit[:CHUNK_ROWS], run.updates_audit[CHUNK_ROWS:]
        audit.record(A.UPDATE, (label, "", f"{len(rows)}"), user=run.user, import_job=run.job.pk, rows=rows)


# --- one chunk: prepared on the reading side, committed on the writing side ------------------------


def _check_key_tier(items: list[Item]) -> None:
    """重点客户 comes and goes only with the key-account programme: a row may not give it to a customer
    without an active key-account file, nor take it from a listed one (the forms and the API refuse the
    same). Rows that neither name nor hold the key tier cost nothing here."""
    from pharmacrm.keyaccounts.services import tier_change_error

    for it in items:
        tier = it.values.get("tier")
        current = it.existing.tier if it.existing is not None else None
        if tier and Tier.KEY in (tier, current) and tier_change_error(it.existing, tier):
            it.fail("tier", "key_tier")


def _check_departed_owners(items: list[Item]) -> None:
    """A deactivated user (someone who left) stays the owner of the customers they still own until someone hands them
    over, as on the forms and in the API: a row may keep such an owner on its record, but not give one to a new
    record or another customer (the file was imported with the departed rep as their new owner)."""
    wanted = {it.values["owner_id"] for it in items if it.values.get("owner_id")}
    if not wanted:
        return
    departed = set(User.objects.filter(pk__in=wanted, is_active=False).values_list("pk", flat=True))
    for it in items:
        owner = it.values.get("owner_id")
        if owner in departed and (it.existing is None or it.existing.owner_id != owner):
            it.fail("owner", "user_inactive", value=it.refs.get("owner", "")[:100])


def _prepare(run: Run, raw_rows: list[tuple[int, list[str], int]]) -> list[Item]:
    """Parse, validate, resolve and classify a chunk (rows of one sheet or of several: row number, cells, sheet)
    and build its new rows; reads the database only."""
    run.last_row = raw_rows[-1][0]
    items = ChunkItems(it for it in (_parse(run, n, cells, sh) for n, cells, sh in raw_rows) if it is not None)
    items.last_row, items.last_sheet = run.last_row, raw_rows[-1][2]
    if not items:
        return items
    if run.model is Person:
        _resolve_people_refs(run, items)
    else:
        _resolve_institution_refs(run, items)
    _match_existing(run, [it for it in items if not it.errors])
    if run.model is Institution and "parent" in run.headers:
        _check_parent_names(run, items)
    if run.model is Person:
        _resolve_departments(run, [it for it in items if not it.errors])
        _load_regions(run, [it for it in items if not it.errors])
    if not run.all_scope:
        ids = [it.existing.pk for it in items if it.existing is not None]
        qs = access.institutions_for(run.user) if run.model is Institution else access.people_for(run.user)
        run.changeable = set(qs.filter(pk__in=ids).values_list("pk", flat=True))
    _check_duplicates_in_file(run, [it for it in items if not it.errors])
    _check_key_tier([it for it in items if not it.errors])
    _check_departed_owners([it for it in items if not it.errors])
    for it in items:
        if not it.errors:
            _classify(run, it)
            if run.model is Institution and not it.errors:
                _note_parent(run, it)  # a later row of the chunk may close a loop through it
    for it in items:
        if it.errors:
            _what_a_new_row_lacks(run, it)
            it.action = "error"
            run.record_errors(it)
        elif it.action == "unchanged":
            run.counts.unchanged += 1
        elif it.action == "create" and run.model is Institution and not run.write:
            name = _row_name_key(run, it)
            if name and name in run.pending:
                run.pending_ambiguous.add(name)  # a second new institution of that name
            for key in (it.values.get("credit_code"), it.values.get("external_id"), name):
                if key:
                    run.pending[key] = 0  # a later row may name it (or its name) as its parent
                    run.pending_kinds[key] = it.values.get("kind") or ""
                    run.pending_regions[key] = it.values.get("region_id")
        run.add_preview(it)
    if run.all_or_nothing and any(it.errors for it in items):
        run.stop_writing = True
    if run.write and not run.stop_writing and run.model is Person:
        now = _db_now()
        for it in items:
            if it.action == "create":
                _build(run, it, now)
    return items


def _write(run: Run, creates: list[Item], updates: list[Item], careful: bool) -> None:
    """Insert and update. People go in without savepoints: on SQLite each savepoint keeps a copy of
    every page the chunk touches in memory; a key clash (another user saving the same external id
    meanwhile) then fails the transaction, and the writer redoes the chunk `careful`ly, row by row."""
    if run.model is Institution:
        _create_in_levels(run, creates)  # parents first, each level with its own savepoint
    elif careful:
        _create_guarded(run, creates)
    else:
        _create(run, creates)
    _update(run, updates, careful)


def _commit(run: Run, items: list[Item], in_transaction: bool, careful: bool = False) -> None:
    """Write a prepared chunk (unless this is a dry run or an all-or-nothing import already failed),
    count what happened and publish the progress."""
    creates = [it for it in items if it.action == "create"]
    updates = [it for it in items if it.action == "update"]
    if run.write and not (run.all_or_nothing and run.stop_writing):
        _write(run, creates, updates, careful)
        if not in_transaction:
            _flush_update_audit(run)
        failed = [it for it in creates + updates if it.errors]
        for it in failed:
            it.action = "error"
            run.record_errors(it)
        if failed and run.all_or_nothing:
            run.stop_writing = True  # a row failed while writing (a concurrent edit): roll everything back
    run.counts.created += sum(1 for it in creates if it.action == "create")
    run.counts.updated += sum(1 for it in updates if it.action == "update")
    run.counts.processed += len(items)
    saved = run.saved
    saved.processed, saved.created, saved.updated = run.counts.processed, run.counts.created, run.counts.updated
    saved.unchanged += sum(1 for it in items if it.action == "unchanged")
    saved.errors += sum(1 for it in items if it.action == "error")
    last = getattr(items, "last_sheet", 0) << SHEET_SHIFT | getattr(items, "last_row", 0)
    if last > saved.last_position:
        saved.last_position, saved.last_row = last, items.last_row
        saved.last_sheet = run.sheet_of(items.last_sheet) if items.last_sheet else ""
    saved.unkeyed += sum(1 for it in creates if it.action == "create" and not _recognisable(run, it))
    _progress(run, in_transaction)


def _recognisable(run: Run, it: Item) -> bool:
    """Whether a second import of a row that created a customer finds that customer again (`_match_existing`,
    `_match_fallback`) rather than creating it twice."""
    if it.keys:
        return True
    if run.model is Person:
        return bool(it.values.get("mobile"))
    return bool(it.values.get("parent_id") or it.pending_parent or it.values.get("region_id"))


# --- the writing side ----------------------------------------------------------------------------


class Writer:
    """Commits prepared chunks in order: in this thread, or in a second one with its own database
    connection, so that SQLite's or PostgreSQL's work on one chunk overlaps the Python work on the
    next (SQLite releases the GIL while it steps; PostgreSQL works in its own process).

    All-or-nothing imports run in one transaction; good-rows imports commit chunk by chunk."""

    def __init__(self, run: Run, threaded: bool):
        self.run, self.threaded = run, threaded
        self.one_transaction = run.write and run.all_or_nothing
        self.error: BaseException | None = None
        self.abort = False
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=2)
            context = contextvars.copy_context()  # the audit context (who imports) goes along
            self.thread = threading.Thread(
                target=context.run, args=(self._loop,), name="import-writer", daemon=True
            )
            self.thread.start()
        elif self.one_transaction:
            self.atomic = transaction.atomic()
            self.atomic.__enter__()

    def submit(self, items: list[Item]) -> None:
        if not self.threaded:
            self._commit(items)
            return
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(items, timeout=1)
                return
            except queue.Full:
                continue

    def close(self, failed: bool) -> None:
        """Finish: commit (or roll back an all-or-nothing import with bad rows, or after a failure)."""
        self.abort = failed
        if self.threaded:
            while self.thread.is_alive():
                try:
                    self.queue.put(None, timeout=1)
                    break
                except queue.Full:
                    continue
            self.thread.join()
            if self.error is not None and not failed:
                raise self.error
            return
        if self.one_transaction:
            try:
                self._end_transaction()
            except BaseException:
                transaction.set_rollback(True)
                raise
            finally:
                self.atomic.__exit__(None, None, None)

    def _commit(self, items: list[Item]) -> None:
        if not self.run.write or self.one_transaction:
            _commit(self.run, items, in_transaction=self.one_transaction)
            return
        try:
            with transaction.atomic():
                _commit(self.run, items, in_transaction=False)
        except IntegrityError:
            self.run.tags.clear()  # tags created in the rolled-back transaction are gone
            self.run.updates_audit.clear()
            with transaction.atomic():
                _commit(self.run, items, in_transaction=False, careful=True)

    def _end_transaction(self) -> None:
        if self.abort or self.run.stop_writing:
            transaction.set_rollback(True)
            self.run.updates_audit.clear()
        else:
            _flush_update_audit(self.run)

    def _loop(self) -> None:
        try:
            _lean_sqlite()
            if self.one_transaction:
                with transaction.atomic():
                    self._drain()
                    self._end_transaction()
            else:
                self._drain()
        except BaseException as e:  # reported to the reading side, which stops
            self.error = e
            while self.queue.get() is not None:  # unblock the reader until it says it is done
                pass
        finally:
            connection.close()

    def _drain(self) -> None:
        while (items := self.queue.get()) is not None:
            if not self.abort:
                self._commit(items)


def writer_thread_possible() -> bool:
    """A second connection must see what this one sees and may write while this one reads: not
    inside a transaction (tests, a caller's atomic block), not on an in-memory SQLite database
    (its shared cache locks whole tables)."""
    if not getattr(settings, "IMPORT_WRITER_THREAD", True) or connection.in_atomic_block:
        return False
    return not (connection.vendor == "sqlite" and connection.is_in_memory_db())


def _threaded(run: Run) -> bool:
    # institutions stay in one thread: a later row may name an earlier one as its parent
    return run.write and run.model is Person and writer_thread_possible()


READER_CACHE_KB = 16 * 1024


@contextlib.contextmanager
def lean_connection(reader_only: bool):
    """Keep the import's memory flat on SQLite: pages read through mmap count as the process's own
    memory, and an import touches the whole database, so read them through the page cache instead;
    a connection that only reads (a writer thread does the rest) needs a small cache."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA mmap_size")
        mmap = cursor.fetchone()  # no row for an in-memory database
        cursor.execute("PRAGMA cache_size")
        cache = cursor.fetchone()[0]
        cursor.execute("PRAGMA mmap_size=0")
        if reader_only:
            cursor.execute(f"PRAGMA cache_size=-{READER_CACHE_KB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size={int(cache)}")
            if mmap:
                cursor.execute(f"PRAGMA mmap_size={int(mmap[0])}")


WRITER_CACHE_KB = 64 * 1024  # the import writer gets a bigger page cache than a web connection: its index inserts need it


def _lean_sqlite() -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA mmap_size=0")
            cursor.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KB}")


# --- running a job -------------------------------------------------------------------------------


def imports_dir() -> Path:
    path = Path(settings.VAR_DIR) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def error_report_path(job: ImportJob) -> Path:
    return imports_dir() / f"job-{job.pk}-errors.csv"


def progress_path(job: ImportJob) -> Path:
    return imports_dir() / f"job-{job.pk}.progress"


def read_progress(job: ImportJob) -> int:
    """Rows processed so far: the job row, or the side file an all-or-nothing import writes (its
    transaction hides the job row's updates from other connections until it commits)."""
    done = job.processed_rows
    if job.status == ImportJob.Status.RUNNING:
        try:
            done = max(done, int(progress_path(job).read_text() or 0))
        except (OSError, ValueError):
            pass
    return done


def _progress(run: Run, in_transaction: bool) -> None:
    write_progress(run.job, run.counts.processed, in_transaction, run.saved)


def write_progress(job: ImportJob, processed: int, in_transaction: bool, saved: Saved | None = None) -> None:
    """Publish a job's progress after a chunk: in a side file, and — unless an all-or-nothing import's
    transaction would hide it — on the job row with the heartbeat and what the chunks saved (a good-rows
    import calls this inside the chunk's transaction, so the row says exactly what is committed)."""
    path = progress_path(job)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(processed))
    os.replace(tmp, path)
    if not in_transaction:
        values = {"processed_rows": processed, "heartbeat_at": timezone.now()}
        if saved is not None:
            values.update(_saved_values(saved))
        ImportJob.objects.filter(pk=job.pk).update(**values)


def checkpoint(job: ImportJob, saved: Saved) -> None:
    """Record on the job row what a run saved: after an all-or-nothing import's transaction commits (until
    then the row says nothing is saved, which is what a stopped worker leaves)."""
    ImportJob.objects.filter(pk=job.pk).update(
        processed_rows=saved.processed, heartbeat_at=timezone.now(), **_saved_values(saved)
    )


def _saved_values(saved: Saved) -> dict:
    return {
        "created_count": saved.created, "updated_count": saved.updated, "unchanged_count": saved.unchanged,
        "error_count": saved.errors, "last_row": saved.last_row, "unkeyed_count": saved.unkeyed,
        "last_sheet": saved.last_sheet,
    }  # fmt: skip


# --- jobs whose worker stopped ---------------------------------------------------------------------

HEARTBEAT_SECONDS = 30
# A job silent for this long has no worker any more: ten times the heartbeat, which a thread keeps up
# whatever a chunk is waiting for (a lock, a large commit, the rollups at the end).
STALE_AFTER = datetime.timedelta(minutes=5)


def alive_path(job: ImportJob) -> Path:
    return imports_dir() / f"job-{job.pk}.alive"


def _start_time(pid: int | str) -> str | None:
    """A process's start time (clock ticks after boot), None when no such process runs: a PID used again by a
    later process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]  # field 22; the command name before it may hold spaces


def _process_mark() -> dict | None:
    """This process as another process of the same machine can recognise it: host name, PID namespace, PID
    and start time."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return {"host": socket.gethostname(), "ns": namespace, "pid": os.getpid(), "start": _start_time(os.getpid())}


def _worker_gone(job: ImportJob) -> bool:
    """Whether the process that runs the job, by its `.alive` file, is certainly gone: it ran on this machine
    in this PID namespace and no such process runs now. Unknown (another machine or container, no file, a
    file of an older version) is False: the five-minute silence decides then."""
    try:
        mark = json.loads(alive_path(job).read_text())
        host, namespace, pid, start = mark["host"], mark["ns"], int(mark["pid"]), mark["start"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    here = _process_mark()
    if here is None or start is None or (host, namespace) != (here["host"], here["ns"]):
        return False
    return _start_time(pid) != start


class Heartbeat:
    """While a job runs in this process, a thread touches the job's `.alive` file every HEARTBEAT_SECONDS, so a
    slow chunk still shows the job alive; only a stopped worker falls silent. A file rather than the job row:
    an all-or-nothing import on SQLite holds the database's write lock until it ends. The file names the
    process (`_process_mark`): a worker killed on this machine is noticed at once (`_worker_gone`), not after
    STALE_AFTER."""

    def __init__(self, job: ImportJob, every: float = HEARTBEAT_SECONDS):
        self.path, self.every = alive_path(job), every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"import-heartbeat-{job.pk}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._beat()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.path.unlink(missing_ok=True)

    def _beat(self) -> None:
        try:
            if self.path.exists():
                self.path.touch()
            else:
                self.path.write_text(json.dumps(_process_mark()))
        except OSError:
            log.warning("cannot touch the import heartbeat %s", self.path, exc_info=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self._beat()


def last_beat(job: ImportJob) -> datetime.datetime | None:
    """When a running job last showed it was alive: its row's heartbeat, its progress or its `.alive` file."""
    beats = [job.heartbeat_at or job.started_at or job.created_at]
    for path in (alive_path(job), progress_path(job)):
        try:
            beats.append(datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.UTC))
        except OSError:
            continue
    beats = [b for b in beats if b is not None]
    return max(beats) if beats else None


def recover_interrupted(now: datetime.datetime | None = None) -> list[int]:
    """Mark as interrupted the running jobs whose worker stopped (killed, restarted, the machine went down):
    silent for STALE_AFTER, or at once when their worker ran on this machine and is gone. Returns their ids. Nothing is run again: a second import may create rows twice,
    so it is the user's decision, and the job's page says what was written and what to do."""
    now = now or timezone.now()
    cutoff = now - STALE_AFTER
    out = []
    # a few running jobs at most: each one's files tell whether it is silent or its worker gone
    for job in ImportJob.objects.filter(status=ImportJob.Status.RUNNING).select_related("created_by"):
        if _silent(job, cutoff) and mark_interrupted(job, now):
            out.append(job.pk)
    return out


def _silent(job: ImportJob, cutoff: datetime.datetime) -> bool:
    if _worker_gone(job):
        return True
    beat = last_beat(job)
    return beat is None or beat < cutoff  # a slow chunk of a live job still beats (its heartbeat thread)


def notice_interruption(job: ImportJob) -> ImportJob:
    """The job as its page shows it: a running job whose worker stopped is marked interrupted here too, so the
    page stops waiting even while no worker runs the periodic check."""
    if job.status == ImportJob.Status.RUNNING:
        now = timezone.now()
        if _silent(job, now - STALE_AFTER):
            mark_interrupted(job, now)
    return job


def _rerun_note(target: str) -> str:
    if target in TARGETS:
        return TARGETS[target].rerun_note
    return "rerun_institutions" if target == ImportJob.Target.INSTITUTIONS else "rerun_people"


def interruption_notes(job: ImportJob, rows_read: int) -> list[tuple[str, dict]]:
    """What the page of an interrupted job says: what happened, what was written, what to do."""
    if job.dry_run:
        return [("interrupted_check", {"rows": rows_read})]
    if job.last_row:  # chunks were committed (all of them, in an all-or-nothing import)
        notes = [("interrupted_saved", {
            "row": job.last_row, "created": job.created_count, "updated": job.updated_count,
            "unchanged": job.unchanged_count, "errors": job.error_count,
        })]  # fmt: skip
        if rerun := _rerun_note(job.target):
            notes.append((rerun, {}))
        if job.unkeyed_count:
            notes.append((f"unkeyed_{job.target}", {"count": job.unkeyed_count, "row": job.last_row}))
        if job.last_sheet:
            notes.append(("last_row_sheet", {"row": job.last_row, "sheet": job.last_sheet}))
        return notes
    if job.mode == ImportJob.Mode.ALL_OR_NOTHING:
        return [("interrupted_nothing_saved", {"rows": rows_read})]
    return [("interrupted_none_saved", {})]


def mark_interrupted(job: ImportJob, now: datetime.datetime | None = None) -> bool:
    """Fail a running job that stopped midway, with the counts of what was really written and the notes of
    `interruption_notes`. A conditional update: only while it is still running with the heartbeat read, so
    a job that finishes or beats meanwhile is left alone. False when it was."""
    now = now or timezone.now()
    rows_read = read_progress(job)
    values: dict[str, Any] = {
        "status": ImportJob.Status.FAILED, "finished_at": now, "errors": [],
        "message": _notes(*interruption_notes(job, rows_read)),
    }  # fmt: skip
    if job.dry_run or not job.last_row:  # nothing written (a check, or no chunk committed)
        values.update(processed_rows=rows_read, created_count=0, updated_count=0, unchanged_count=0,
                      error_count=0, unkeyed_count=0)  # fmt: skip
    current = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING)
    if job.heartbeat_at is None:
        current = current.filter(heartbeat_at__isnull=True)
    else:
        current = current.filter(heartbeat_at=job.heartbeat_at)
    with transaction.atomic():
        if not current.update(**values):
            return False
        job.refresh_from_db()
        if not job.dry_run:
            _audit_import(job, job.created_by, interrupted=True)
    log.warning("import job %s was interrupted (no heartbeat since %s); marked failed", job.pk, job.heartbeat_at)
    for path in (progress_path(job), alive_path(job), error_report_path(job)):
        path.unlink(missing_ok=True)  # the report may hold rows of chunks never saved: a second import redoes it
    spec = TARGETS.get(job.target)
    if spec and spec.on_interrupted and not job.dry_run and (job.created_count or job.updated_count):
        try:
            spec.on_interrupted(job)
        except Exception:  # the job is marked; what follows is a repair the periodic tasks make as well
            log.exception("import job %s: the follow-up of its interruption failed", job.pk)
    return True


def _chunks(rows: Iterator[tuple[int, list[str]]], size: int) -> Iterator[list[tuple[int, list[str]]]]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _execute(run: Run, rows: Iterator[tuple[int, list[str]]]) -> None:
    threaded = _threaded(run)
    with lean_connection(reader_only=threaded):
        writer = Writer(run, threaded=threaded)
        failed = True
        try:
            for chunk in _chunks(rows, CHUNK_ROWS):
                writer.submit(_prepare(run, chunk))
            failed = False
        finally:
            writer.close(failed=failed)
    if run.write and run.all_or_nothing and run.stop_writing:
        run.counts.created = run.counts.updated = 0


def _claim(job_id: int) -> ImportJob | None:
    """Take a waiting job; with several workers exactly one gets it."""
    now = timezone.now()
    taken = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.PENDING).update(
        status=ImportJob.Status.RUNNING, started_at=now, finished_at=None, processed_rows=0, heartbeat_at=now,
        last_row=0, last_sheet="", unkeyed_count=0,
    )  # fmt: skip
    return ImportJob.objects.select_related("created_by").get(pk=job_id) if taken else None


def _notes(*entries: tuple[str, dict]) -> str:
    return json.dumps([{"code": c, "params": p} for c, p in entries], ensure_ascii=False)


def run_job(job_id: int) -> ImportJob:
    """Run a waiting job (dry run or import) in this process; what the worker task calls. An import (not a dry run)
    first waits for the writing import running (`writing_lock`), its job still waiting: on SQLite it wrote nothing
    meanwhile, where claiming the job and starting its transaction failed with "database is locked" once the other
    import had held the database for 20 s."""
    waiting = ImportJob.objects.filter(pk=job_id).values("target", "dry_run", "status").first()
    with contextlib.ExitStack() as held:
        if waiting and not waiting["dry_run"] and waiting["status"] == ImportJob.Status.PENDING:
            held.enter_context(writing_lock(waiting["target"]))
        job = _claim(job_id)
        if job is None:
            return ImportJob.objects.get(pk=job_id)
        user = job.created_by
        token = audit.set_context(audit.RequestContext(user=user))
        try:
            with Heartbeat(job):
                return _run(job, user)
        except BaseException:  # stopped midway (Ctrl-C, the worker shutting down, the database gone)
            _interrupted_here(job.pk)
            raise
        finally:
            audit.reset_context(token)


def _interrupted_here(job_id: int) -> None:
    """Mark at once a job this process stopped running (the periodic check would, minutes later)."""
    try:
        job = ImportJob.objects.select_related("created_by").filter(pk=job_id).first()
        if job is not None and job.status == ImportJob.Status.RUNNING:
            mark_interrupted(job)
    except Exception:
        log.exception("import job %s: could not record its interruption", job_id)


_WRITING_LOCK_KEYS = {
    ImportJob.Target.INSTITUTIONS: 0x1A90_0001, ImportJob.Target.PEOPLE: 0x1A90_0002, ImportJob.Target.ORDERS: 0x1A90_0003,
}  # fmt: skip
_held_locks = threading.local()  # the writing locks this thread holds (taken again inside: no second wait)


def _lock_scope(target: str) -> str:
    """What one writing lock covers: on PostgreSQL one kind of data (other writes go on beside an import), on SQLite
    the whole database, which has one writer: an all-or-nothing import holds its write lock until it ends."""
    return target if connection.vendor == "postgresql" else "database"


@contextlib.contextmanager
def writing_lock(target: str, on_wait: Callable[[], object] | None = None):
    """One writing import at a time: of institutions (of people, of orders) on PostgreSQL, of anything on SQLite.
    Each run matches its rows against what is stored before it writes them: two users importing the same list at once
    (the worker runs jobs side by side) both found the people missing and created every one twice. And on SQLite a
    second all-or-nothing import of orders gave up after the database's 20 s busy timeout ("database is locked")
    while the first held the write lock. The second import waits here until the first ends — before it writes
    anything, its job still waiting (`waiting_for_another`) — then recognises its rows. PostgreSQL: a session
    advisory lock; SQLite (one machine): a lock file, which the system releases when the process holding it dies.
    Re-entrant in a thread: the worker takes it before it claims the job, the run again. `on_wait` is called once
    when the lock is taken by another import, before waiting for it (the command line says it waits)."""
    scope = _lock_scope(target)
    held = _held_locks.__dict__.setdefault("scopes", set())
    if scope in held:
        yield
        return
    if connection.vendor == "postgresql":
        key = _WRITING_LOCK_KEYS.get(target, 0x1A90_0000)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cursor.fetchone()[0]:
                if on_wait is not None:
                    on_wait()
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        held.add(scope)
        try:
            yield
        finally:
            held.discard(scope)
            with contextlib.suppress(Exception), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    import fcntl

    with open(imports_dir() / f"writing-{scope}.lock", "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        held.add(scope)
        try:
            yield
        finally:
            held.discard(scope)
            fcntl.flock(fh, fcntl.LOCK_UN)


def waiting_for_another(job: ImportJob) -> bool:
    """A confirmed import waiting for another one to finish (`writing_lock`): what its progress area says."""
    if job.status != ImportJob.Status.PENDING or job.dry_run:
        return False
    others = ImportJob.objects.filter(status=ImportJob.Status.RUNNING, dry_run=False).exclude(pk=job.pk)
    if connection.vendor == "postgresql":
        others = others.filter(target=job.target)
    return others.exists()


def _run(job: ImportJob, user) -> ImportJob:
    path = Path(job.file_path)
    if not path.exists():
        return _finish(job, ImportJob.Status.FAILED, Counts(), notes=[("file_missing", {})])
    if _sha256(path) != job.file_sha256:
        return _finish(job, ImportJob.Status.FAILED, Counts(), notes=[("file_changed", {})])
    try:
        sheet, header, rows = open_checked(path, job.target)
    except ValidationError:
        return _finish(job, ImportJob.Status.FAILED, Counts(), notes=[("broken_file", {})])
    if job.target in TARGETS:
        return _run_other(job, user, sheet, header, rows)
    notes: list[tuple[str, dict]] = []
    if header.ignored:
        notes.append(("ignored_columns", {"columns": listing(header.ignored)}))
    run = Run(job, user, header, write=not job.dry_run)
    if sheet.info.kind == "xlsx":
        run.sheets = sheet.read  # grows as `continued` goes on in further sheets
    rows = sheet.continued(rows, header, job.target)
    held = contextlib.ExitStack()
    try:
        if run.write:
            held.enter_context(writing_lock(job.target))
        job.total_rows = run.counts.total = sheet.data_rows_estimate(further=True)
        ImportJob.objects.filter(pk=job.pk).update(total_rows=job.total_rows)
        if run.write:  # the dry run's count when there was one, else every row
            run.codes = CodeBlock(run.model, job.created_count or job.total_rows)
        run.open_report(error_report_path(job))
        _execute(run, rows)
        if run.write and run.all_or_nothing and not run.stop_writing:
            checkpoint(job, run.saved)  # committed: from now on the job row says so
        status = _outcome(run, notes)
    except UnicodeDecodeError:
        notes.append(("bad_encoding", {"row": run.last_row + 1}))
        status = ImportJob.Status.FAILED
    except UnreadableRow as e:
        notes.append(e.note())
        status = ImportJob.Status.FAILED
    except IntegrityError:
        notes.append(("import_conflict", {}))
        status = ImportJob.Status.FAILED
    except Exception:
        log.exception("import job %s failed", job.pk)
        notes.append(("failed", {}))
        status = ImportJob.Status.FAILED
    finally:
        held.close()
        run.close_report()
        sheet.close()
    notes[:0] = sheet_note(sheet)  # the sheets read and skipped are known once they are read
    if status == ImportJob.Status.FAILED and run.write:
        run.counts = _saved_before_failure(job, run.counts, notes)
    job = _finish(job, status, run.counts, run.kept_errors, run.preview, notes)
    if not job.dry_run:
        _audit_import(job, user)
        if status != ImportJob.Status.FAILED:
            _discard_upload(job)
        if job.started_at and (job.created_count or job.updated_count):  # the lifecycle's stage tasks follow
            services.stage_changed.send(sender=run.model, since=job.started_at, user=user, source="import")
    return job


def _run_other(job: ImportJob, user, sheet, header, rows) -> ImportJob:
    job.total_rows = sheet.data_rows_estimate()
    ImportJob.objects.filter(pk=job.pk).update(total_rows=job.total_rows)
    counts, errors, preview, notes = Counts(total=job.total_rows), [], [], []
    try:
        status, counts, errors, preview, notes = TARGETS[job.target].run(job, user, sheet, header, rows)
    except UnicodeDecodeError:
        notes.append(("bad_encoding", {"row": counts.processed + 1}))
        status = ImportJob.Status.FAILED
    except UnreadableRow as e:
        notes.append(e.note())
        status = ImportJob.Status.FAILED
    except Exception:  # an IntegrityError too: a database error, not another user's customer (import_conflict)
        log.exception("import job %s failed", job.pk)
        notes.append(("failed", {}))
        status = ImportJob.Status.FAILED
    finally:
        sheet.close()
    if status == ImportJob.Status.FAILED and not job.dry_run:
        counts = _saved_before_failure(job, counts, notes)
    job = _finish(job, status, counts, errors, preview, [*sheet_note(sheet), *notes])
    if not job.dry_run:
        _audit_import(job, user)
        if status != ImportJob.Status.FAILED:
            _discard_upload(job)
    return job


def _saved_before_failure(job: ImportJob, counts: Counts, notes: list) -> Counts:
    """What an import that stopped on an error had saved: a good-rows import commits chunk by chunk, and the job
    row says what is committed (`write_progress`; an all-or-nothing import's row says nothing until it commits).
    Its counts and a note say so, with how to finish: left at 0, the page said nothing was imported while the
    rows of the first chunks were in."""
    saved = ImportJob.objects.filter(pk=job.pk).values(
        "processed_rows", "created_count", "updated_count", "unchanged_count", "error_count", "last_row", "last_sheet"
    ).first()  # fmt: skip
    if not saved or not saved["last_row"]:
        return counts
    notes.append(("stopped_saved", {
        "row": saved["last_row"], "created": saved["created_count"], "updated": saved["updated_count"],
        "unchanged": saved["unchanged_count"], "errors": saved["error_count"],
    }))  # fmt: skip
    if rerun := _rerun_note(job.target):
        notes.append((rerun, {}))
    if saved["last_sheet"]:
        notes.append(("last_row_sheet", {"row": saved["last_row"], "sheet": saved["last_sheet"]}))
    return Counts(
        total=counts.total, processed=saved["processed_rows"], created=saved["created_count"],
        updated=saved["updated_count"], unchanged=saved["unchanged_count"], errors=saved["error_count"],
    )  # fmt: skip


def _outcome(run: Run, notes: list) -> str:
    run.counts.total = run.counts.processed
    if run.job.dry_run:
        return ImportJob.Status.PREVIEWED
    if run.stop_writing:
        notes.append(("all_or_nothing_rejected", {"errors": run.counts.errors}))
        return ImportJob.Status.REJECTED
    return ImportJob.Status.DONE


def _finish(job, status, counts: Counts, errors=(), preview=(), notes=()) -> ImportJob:
    now = timezone.now()
    values = dict(
        status=status, total_rows=counts.total or job.total_rows, processed_rows=counts.processed,
        created_count=counts.created, updated_count=counts.updated, unchanged_count=counts.unchanged,
        error_count=counts.errors, errors=list(errors), preview=list(preview), message=_notes(*notes),
        finished_at=now,
    )  # fmt: skip
    ImportJob.objects.filter(pk=job.pk).update(**values)
    try:
        progress_path(job).unlink()
    except OSError:
        pass
    job.refresh_from_db()
    return job


def _audit_import(job: ImportJob, user, **extra) -> None:
    audit.record(
        A.IMPORT, job.audit_name, user=user,
        target=job.target, mode=job.mode, file_name=job.file_name, sha256=job.file_sha256, size=job.file_size,
        status=job.status, rows=job.processed_rows, created=job.created_count, updated=job.updated_count,
        unchanged=job.unchanged_count, errors=job.error_count, **extra,
    )  # fmt: skip


def _discard_upload(job: ImportJob) -> None:
    """The uploaded file holds personal data in clear: drop it once the import is over."""
    path = Path(job.file_path)
    if path.parent == imports_dir():
        path.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- public entry points -------------------------------------------------------------------------


def _check_request(user, target: str, mode: str) -> None:
    if target not in ImportJob.Target.values:
        raise ValidationError({"target": [gettext("Choose what to import.")]})
    access.require(user, target_cap(target))
    if mode not in ImportJob.Mode.values:
        raise ValidationError({"mode": [gettext("Choose all or nothing, or good rows only.")]})


def _too_large(size: int) -> ValidationError:
    limit = settings.IMPORT_MAX_BYTES
    return _refuse(
        _("The file is too large (%(size)s MB); the limit is %(limit)s MB. Split it into smaller files.")
        % {"size": f"{size / 1048576:.1f}", "limit": f"{limit / 1048576:g}"}
    )


# .txt: what Excel's Save As writes as "Unicode Text" (UTF-16 with its byte-order mark, tab-separated) and as
# "Text (Tab delimited)" (GB18030 or UTF-8, tab-separated); read as the CSV it is, its separator sniffed
UPLOAD_SUFFIXES = (".csv", ".txt", ".xlsx")


def _store_upload(uploaded_file) -> tuple[Path, str, int]:
    """Copy the upload under var/imports/ (never served), hashing it and enforcing the size limit."""
    limit = settings.IMPORT_MAX_BYTES
    if uploaded_file.size is not None and uploaded_file.size > limit:
        raise _too_large(uploaded_file.size)
    suffix = Path(uploaded_file.name or "").suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise _refuse(_("Only .csv, .txt and .xlsx files can be imported."))
    path = imports_dir() / f"{uuid.uuid4().hex}{suffix}"
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "wb") as out:
            for block in uploaded_file.chunks():
                size += len(block)
                if size > limit:
                    raise _too_large(size)
                digest.update(block)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest(), size


def _check_file(path: Path, target: str) -> None:
    sheet, _header, _rows = open_checked(path, target, need_data=True)
    sheet.close()


def start_import(user, uploaded_file, target: str, mode: str, dry_run: bool = True) -> ImportJob:
    """Store an upload, check it can be read, create its job and queue the dry run (or the import).

    Raises ValidationError with a message in the user's language for a file that is too large, of
    the wrong type, damaged, empty or missing required columns; nothing is kept then."""
    _check_request(user, target, mode)
    path, sha, size = _store_upload(uploaded_file)
    try:
        _check_file(path, target)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    job = ImportJob.objects.create(
        target=target, mode=mode, dry_run=dry_run, file_name=Path(uploaded_file.name).name[:255],
        file_path=str(path), file_sha256=sha, file_size=size, created_by=user,
    )  # fmt: skip
    _enqueue(job)
    return job


def awaits_confirmation(job: ImportJob) -> bool:
    """Whether a job is a checked upload waiting to be imported or cancelled: a dry run of the wizard (or of
    POST /api/v1/imports/), whose upload is kept under var/imports/. A dry run of the command line or of the
    order API (`import_file`) read a file kept elsewhere, or deleted already: it is finished, and cannot be
    confirmed."""
    return (
        job.status == ImportJob.Status.PREVIEWED and job.dry_run and bool(job.file_path)
        and Path(job.file_path).parent == imports_dir()
    )  # fmt: skip


def status_label(job: ImportJob) -> str:
    """The job's status for the wizard's pages: a finished dry run of the command line or the API is not
    "checked" in the sense of waiting for someone to confirm it."""
    if job.status == ImportJob.Status.PREVIEWED and not awaits_confirmation(job):
        return gettext("Dry run (command line or API): nothing imported")
    return job.get_status_display()


def confirm_import(user, job: ImportJob, mode: str | None = None) -> ImportJob:
    """Queue the real import of a checked file (optionally switching the mode first)."""
    _check_request(user, job.target, mode or job.mode)
    if job.status == ImportJob.Status.PREVIEWED and not awaits_confirmation(job):
        raise ValidationError(gettext("This was a dry run from the command line or the API: it cannot be "
                                      "imported from here. Upload the file to import it."))  # fmt: skip
    if job.status != ImportJob.Status.PREVIEWED or not job.dry_run:
        raise ValidationError(gettext("Only a checked file that has not been imported yet can be imported."))
    mode = mode or job.mode
    if job.error_count and not (job.created_count or job.updated_count):
        raise ValidationError(gettext("No row can be imported: every row has errors or changes nothing. "
                                      "Correct the file and upload it again."))  # fmt: skip
    if not (job.created_count or job.updated_count):
        raise ValidationError(gettext("Nothing to import: every row is the same as what is stored already."))
    updated = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEWED, dry_run=True).update(
        dry_run=False, mode=mode, status=ImportJob.Status.PENDING, processed_rows=0
    )
    if not updated:
        raise ValidationError(gettext("This import has already been confirmed."))
    job.refresh_from_db()
    _enqueue(job)
    return job


def cancel_import(user, job: ImportJob) -> ImportJob:
    """Drop a checked file that was not imported: it can no longer be confirmed (by anyone who sees the job),
    and its upload is deleted."""
    _check_request(user, job.target, job.mode)
    cancelled = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEWED, dry_run=True).update(
        status=ImportJob.Status.CANCELLED, finished_at=timezone.now()
    )
    if not cancelled:
        raise ValidationError(gettext("Only a checked file that has not been imported yet can be cancelled."))
    audit.record(A.UPDATE, job.audit_name, user=user,
                 changes={"status": [ImportJob.Status.PREVIEWED, ImportJob.Status.CANCELLED]})  # fmt: skip
    path = Path(job.file_path) if job.file_path else None
    if path is not None and path.parent == imports_dir() and path.exists():
        path.unlink()
    job.refresh_from_db()
    return job


def _enqueue(job: ImportJob) -> None:
    from . import tasks

    tasks.run_import(job.pk)


def import_file(path, target: str, user, mode: str = "all", dry_run: bool = False,
                on_wait: Callable[[], object] | None = None) -> ImportJob:  # fmt: skip
    """Import a file on disk synchronously in this process (command line and benchmarks).

    The upload size limit does not apply; the file is read where it is and left in place. An import (not a dry run)
    waits for another writing import to end (`writing_lock`), calling `on_wait` first when it has to."""
    _check_request(user, target, mode)
    path = Path(path).resolve()
    _check_file(path, target)
    with contextlib.ExitStack() as held:
        if not dry_run:  # its turn before its job row is written: on SQLite a writing import holds the database
            held.enter_context(writing_lock(target, on_wait))
        job = ImportJob.objects.create(
            target=target, mode=mode, dry_run=dry_run, file_name=path.name[:255], file_path=str(path),
            file_sha256=_sha256(path), file_size=path.stat().st_size, created_by=user,
        )  # fmt: skip
        return run_job(job.pk)


def importable_targets(user) -> list[str]:
    """The import targets (institutions, people, orders …) this user may import."""
    return [t for t in ImportJob.Target.values if access.can(user, target_cap(t))]


def visible_jobs(user):
    """Import jobs a user may look at: everyone who may import a kind of data sees its imports (they hold
    all of it)."""
    targets = importable_targets(user)
    if not targets:
        raise PermissionDenied(gettext("You do not have permission to do this."))
    return ImportJob.objects.select_related("created_by").filter(target__in=targets)


def purge_stale_uploads(days: int = 7) -> int:
    """Delete uploads of checked-but-never-imported jobs older than `days`; returns how many."""
    cutoff = timezone.now() - datetime.timedelta(days=days)
    count = 0
    idle = ImportJob.objects.filter(created_at__lt=cutoff).exclude(
        status__in=[ImportJob.Status.PENDING, ImportJob.Status.RUNNING]
    )
    for job in idle.exclude(file_path=""):
        path = Path(job.file_path)
        if path.parent == imports_dir() and path.exists():
            path.unlink()
            count += 1
    return count


# --- templates -----------------------------------------------------------------------------------


def template_headers(target: str) -> list[str]:
    return [c.header for c in columns_for(target) if c.key != "code" and c.template]


def export_headers(target: str) -> list[str]:
    """The template's headers in the active language (what an export of the target writes)."""
    return [column_label(c) for c in columns_for(target) if c.key != "code" and c.template]


def template_file(target: str, fmt: str, page_language: bool = False) -> tuple[bytes, str, str]:
    """(content, content type, file name) of the empty template with the Chinese headers, or (`page_language`) with
    the headers and choice words in the active language, as an export in it writes them (the import reads both)."""
    headers = export_headers(target) if page_language else template_headers(target)
    if target in TARGETS:
        name = TARGETS[target].template_name
    else:
        name = _("institution import template") if target == ImportJob.Target.INSTITUTIONS else _("contact import template")
    name = "-".join(str(name).split())  # in the page's language, as the exports are named
    if fmt == "csv":
        text = "\ufeff" + ",".join(headers) + "\r\n"
        return text.encode("utf-8"), "text/csv; charset=utf-8", f"{name}.csv"
    return _template_xlsx(target, headers, page_language), XLSX_TYPE, f"{name}.xlsx"


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _template_xlsx(target: str, headers: list[str], page_language: bool = False) -> bytes:
    import io

    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    ws.title = gettext("Import data")[:31] if page_language else "导入数据"  # the Chinese template: all in Chinese
    ws.append(headers)
    cols = [c for c in columns_for(target) if c.key != "code" and c.template]
    word = choice_label if page_language else canonical_label  # 三级甲等, or Grade III-A for an English page
    bold, required_fill = Font(bold=True), PatternFill("solid", fgColor="FFF2CC")
    for i, col in enumerate(cols, start=1):
        cell = ws.cell(row=1, column=i)
        cell.font = bold
        if col.required:
            cell.fill = required_fill
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = max(12, len(headers[i - 1]) * (1 if headers[i - 1].isascii() else 2) + 4)
        if col.key in (
            "mobile",
            "landline",
            "credit_code",
            "id_number",
            "external_id",
            "phone",
            "region_code",
            *(TARGETS[target].text_columns if target in TARGETS else ()),
        ):
            for row in range(2, 1002):  # keep long numbers as text so Excel does not round them
                ws.cell(row=row, column=i).number_format = "@"
        if col.choices is not None:
            words = ",".join(word(col.choices, v) for v in col.choices.values)
            if len(words) < 250:
                dv = DataValidation(type="list", formula1=f'"{words}"', allow_blank=True)
                dv.add(f"{letter}2:{letter}10000")
                ws.add_data_validation(dv)
    ws.freeze_panes = "A2"
    help_sheet = wb.create_sheet(gettext("Instructions")[:31])
    help_sheet.append([gettext("Column"), gettext("Required"), gettext("Accepted values and notes")])
    for header, col in zip(headers, cols, strict=True):
        accepted = (
            listing(word(col.choices, v) for v in col.choices.values) if col.choices else ""
        )
        note = " ".join(str(x) for x in (accepted, col.help) if x)
        help_sheet.append([header, gettext("yes") if col.required else "", note])
    help_sheet.column_dimensions["A"].width = 20
    help_sheet.column_dimensions["C"].width = 90
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
