"""Every page the navigation reaches, in each of the three languages, holds no text of another language outside
the customers' data: no English on a Simplified Chinese page, no Chinese on an English one, no Simplified
characters on a Traditional one.

tests/core/test_translations.py checks eight customer pages in Simplified Chinese; this walks the demo (scale
0.05, loaded once for the module as in tests/core/test_demo_contents.py) as several roles, following every link
and every panel a page loads (hx-get) from the home page, one page per kind (/service/tickets/12/ stands for every
ticket), and reads each page in zh-hans, en and zh-hant. What the database holds — names, addresses, ticket
subjects, answer templates, codes — is data and may be in any language; so may the Chinese examples the English
texts give on purpose (调休, 国药准字 …) and the language menu's own names."""

from __future__ import annotations

import functools
import html
import re
import zoneinfo
from collections import deque

import opencc
import pytest
from django.apps import apps
from django.db import models
from django.test import Client

from pharmacrm.core.models import User
from pharmacrm.core.setup import hant_region_names
from tests.conftest import demo_loaded, otp_verify
from tests.core.test_translations import ALLOWED, NOT_WORDS, USERNAMES, VisibleText, catalogue

pytestmark = pytest.mark.django_db

ROLES = ("admin", "pv", "kam", "manager", "agent", "rep", "auditor")
LANGUAGES = ("zh-hans", "en", "zh-hant")
# links that are no page to read: files, downloads, the language switch, signing out, the API
SKIP = re.compile(r"/logout|/i18n/|export|download|/pdf|\.pdf|xlsx|\.csv|/xml|/api/|/static/|/media/|signed-copy|"
                  r"/files?/|/attachments?/|/template/|/mail-open/|/print")  # fmt: skip
MAX_PAGES = 220

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
WORD = re.compile(r"[A-Za-z]{3,}")
# words a Chinese page rightly shows: formats, standards and product names, keyboard keys, codes of regulations
TECHNICAL = {
    "pdf", "png", "jpeg", "jpg", "word", "docx", "utf", "gbk", "json", "post", "markdown", "sec", "schema", "icsr",
    "meddra", "llt", "susar", "eudravigilance", "mcci", "cfr", "directive", "gvp", "module", "art", "kol", "kols",
    "enter", "esc", "ctrl", "yyyy", "http", "https", "ich", "nmpa", "fda", "ema", "capa", "sla", "csat", "nps",
    "imap", "smtp", "erp", "url", "ucum", "iso", "lot", "mbps", "webhook", "hmac", "sha", "dingtalk", "wecom",
}  # fmt: skip
# webhook events (ticket.created), a package's name (chinese-calendar): identifiers, not words
IDENTIFIERS = re.compile(r"\b[a-z_]+(?:\.[a-z_-]+)+\b|\bchinese-calendar\b")
# OpenCC's s2tw "corrects" these Taiwan spellings: 游標 (cursor), 核准, and the 表 of 簽名表示
TAIWAN_AS_WRITTEN = {("游", "遊"), ("准", "準"), ("表", "錶")}


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, tmp_path_factory):
    with demo_loaded(django_db_blocker, tmp_path_factory.mktemp("demo-var")):
        yield


def _chinese_leaves(value) -> list[str]:
    """The Chinese texts inside a JSON value (a comment kept in an audit entry, a file's column headers)."""
    if isinstance(value, str):
        return [value] if CJK.search(value) else []
    if isinstance(value, dict):
        value = list(value.keys()) + list(value.values())
    if isinstance(value, list):
        return [text for item in value for text in _chinese_leaves(item)]
    return []


def _data() -> tuple[str, set[str]]:
    """What the database holds as text (joined, to look pieces up in) and its words: every string of every
    model's text fields, decrypted as the pages show them, the Chinese inside JSON details, the region names
    as Traditional pages show them and the calendars' time zones — but not choice codes nor the codes of JSON
    details, which the pages must translate."""
    texts: list[str] = sorted(zoneinfo.available_timezones())
    names, full_names = hant_region_names()
    texts += [*names.values(), *full_names.values()]
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if not f.choices and not f.is_relation]
        if not fields:
            continue
        for obj in model._base_manager.all().iterator():
            for field in fields:
                value = getattr(obj, field.attname, None)
                if isinstance(field, models.JSONField):
                    texts += _chinese_leaves(value)
                elif isinstance(value, str) and value.strip():
                    texts.append(value)
    joined = "\n".join(" ".join(text.split()) for text in texts)  # as the pages show it: spaces collapsed
    return joined, {w.lower() for w in WORD.findall(joined)}


def _meant_chinese() -> str:
    """The Chinese the English texts hold on purpose (调休, 国药准字, 三级甲等 …) and the language menu's names."""
    return "\n".join([e.msgid for e in catalogue("zh_Hans") if CJK.search(e.msgid)] + ["简体中文", "繁體中文"])


def _links(page: str) -> list[str]:
    found = re.findall(r'(?:href|hx-get)="(/[^"#]*)"', page)
    return [html.unescape(u) for u in found if not SKIP.search(u)]


def _kind(url: str) -> str:
    path, _, query = url.partition("?")
    keys = sorted({p.split("=")[0] for p in query.split("&") if p})
    return re.sub(r"\d+", "N", path) + ("?" + ",".join(keys) if keys else "")


def _chunks(page: str) -> list[str]:
    parser = VisibleText()
    parser.feed(page)
    return parser.chunks


def _walk() -> dict[str, dict[str, str]]:
    """{"role url": {language: page}} for one page of each kind, the first role that reaches it reading it (the
    administrator reaches most; the others add their home pages and what only they see)."""
    pages: dict[str, dict[str, str]] = {}
    kinds: set[str] = set()
    for role in ROLES:
        user = User.objects.get(username=role)
        client = Client()
        client.force_login(user)
        otp_verify(client, user)
        queue = deque(["/"])
        while queue and len(pages) < MAX_PAGES:
            url = queue.popleft()
            kind = f"{role} /" if url == "/" else _kind(url)  # each role's home page is its own
            if kind in kinds:
                continue
            kinds.add(kind)
            read = {}
            for language in LANGUAGES:
                User.objects.filter(pk=user.pk).update(language=language)  # the account's language wins
                response = client.get(url, HTTP_HX_REQUEST="true" if "/panel" in url else None)
                if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
                    break
                read[language] = response.content.decode()
            else:
                pages[f"{role} {url}"] = read
                queue.extend(_links(read["zh-hans"]))
        User.objects.filter(pk=user.pk).update(language="")
    return pages


def test_every_page_speaks_the_readers_language(demo):
    data, data_words = _data()
    meant = _meant_chinese()
    s2tw = opencc.OpenCC("s2tw").convert
    msgids = {e.msgid.lower() for e in catalogue("zh_Hans")  # an English message left untranslated
              if re.search("[A-Za-z]{2}", e.msgid) and e.msgstr != e.msgid} - ALLOWED  # fmt: skip
    allowed = ALLOWED | USERNAMES | TECHNICAL
    pages = _walk()
    assert len(pages) > 100, sorted(pages)  # the walk reached the whole application, not a sign-in page

    wrong = []

    @functools.cache  # the same chunks (menus, headings) come back on every page; each look-up reads all the data
    def is_data(chunk: str) -> bool:  # as stored, or cut short by the page
        chunk = " ".join(chunk.split())
        return chunk in data or (chunk.endswith(("...", "…")) and chunk.rstrip(".…") in data)

    for where, read in pages.items():
        for chunk in _chunks(read["zh-hans"]):
            if is_data(chunk):
                continue
            text = IDENTIFIERS.sub("", NOT_WORDS.sub("", chunk))
            words = {w.lower() for w in WORD.findall(text)} - allowed - data_words
            if words or chunk.lower().rstrip(":：") in msgids:
                wrong.append(("zh-hans", where, chunk))
        for chunk in _chunks(read["en"]):
            if not is_data(chunk) and any(run not in data and run not in meant for run in CJK.findall(chunk)):
                wrong.append(("en", where, chunk))
        for chunk in _chunks(read["zh-hant"]):
            for run in CJK.findall(chunk):
                simplified = {(a, b) for a, b in zip(run, s2tw(run), strict=False) if a != b} - TAIWAN_AS_WRITTEN
                if simplified and not is_data(chunk) and run not in data and run not in meant:
                    wrong.append(("zh-hant", where, chunk))
                    break
    assert wrong == [], "\n".join(" | ".join(w) for w in wrong)
