"""Translation catalogues: complete, compiled, in step with the code, and pages without English left in them."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import warnings
from html.parser import HTMLParser
from pathlib import Path

import polib
import pytest
from django.utils import translation

from pharmacrm.customers import choices
from pharmacrm.customers.models import Person

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w*\}")


def load_i18n_tool():
    """tools/i18n.py is a script, not a package: load a fresh copy so monkeypatching it stays local."""
    spec = importlib.util.spec_from_file_location("pharmacrm_i18n_tool", REPO / "tools" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def catalogue(lang: str) -> polib.POFile:
    return polib.pofile(str(REPO / "pharmacrm" / "locale" / lang / "LC_MESSAGES" / "django.po"))


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


# --- the catalogues themselves ------------------------------------------------------------------


def test_both_chinese_catalogues_are_complete():
    assert load_i18n_tool().problems() == [], "run tools/i18n.py check and translate what it lists"


@pytest.mark.parametrize("lang", ["zh_Hans", "zh_Hant"])
def test_translations_keep_every_placeholder(lang):
    """A lost or renamed %(name)s breaks the message at run time (KeyError) or hides the value."""
    broken = []
    for e in catalogue(lang):
        pairs = [(e.msgid, e.msgstr)] if not e.msgid_plural else [(e.msgid_plural, e.msgstr_plural[0])]
        for source, text in pairs:
            if sorted(PLACEHOLDER.findall(source)) != sorted(PLACEHOLDER.findall(text)):
                broken.append((source, text))
    assert broken == []


def test_traditional_catalogue_has_no_programmer_words():
    """OpenCC's s2twp writes 程式碼 (program code) for 代码, 型別 (data type) for 类型 and 質量 (mass, in
    Taiwan) for 质量: a 統一社會信用程式碼 or a 質量投訴 reads wrong to every zh-Hant user."""
    wrong = [(e.msgid, t) for e in catalogue("zh_Hant") for t in [e.msgstr, *e.msgstr_plural.values()]
             if any(w in t for w in ("程式碼", "型別", "質量"))]  # fmt: skip
    assert wrong == []


def test_traditional_catalogue_writes_as_taiwan_does():
    """Taiwan quotes with 「」 (『』 inside), writes 帳號 / 帳戶 / 帳齡 with 帳, and a partner is a 夥伴: the
    catalogue had “”, 賬號 beside 帳號, and 合作伙伴 (伙 is a mess hall's), which OpenCC's phrase list keeps."""
    wrong = [(e.msgid, t) for e in catalogue("zh_Hant") for t in [e.msgstr, *e.msgstr_plural.values()]
             if any(w in t for w in ("“", "”", "‘", "’", "賬", "伙伴"))]  # fmt: skip
    assert wrong == []


def test_the_hant_tool_corrects_what_opencc_gets_wrong(monkeypatch, tmp_path):
    """`tools/i18n.py hant` re-derives every auto entry: the corrections must come from the tool, not from hand."""
    tool = load_i18n_tool()
    for lang in ("zh_Hans", "zh_Hant"):
        (tmp_path / lang / "LC_MESSAGES").mkdir(parents=True)
    hans, hant = polib.POFile(), polib.POFile()
    for msgid, text in (("Credit code", "信用代码"), ("Kind of case", "病例类型"), ("Quality complaint", "质量投诉"),
                        ("Licensing partner", "许可合作伙伴"), ("Account locked", "账号已锁定"),
                        ("“%(value)s” is not a hospital.", "“%(value)s”不是医院。")):  # fmt: skip
        hans.append(polib.POEntry(msgid=msgid, msgstr=text))
        hant.append(polib.POEntry(msgid=msgid, msgstr=""))
    hans.save(str(tmp_path / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    hant.save(str(tmp_path / "zh_Hant" / "LC_MESSAGES" / "django.po"))
    monkeypatch.setattr(tool, "LOCALE", tmp_path)
    assert tool.hant() == 6
    derived = {e.msgid: e.msgstr for e in polib.pofile(str(tmp_path / "zh_Hant" / "LC_MESSAGES" / "django.po"))}
    assert derived == {"Credit code": "信用代碼", "Kind of case": "病例類型", "Quality complaint": "品質投訴",
                       "Licensing partner": "許可合作夥伴", "Account locked": "帳號已鎖定",
                       "“%(value)s” is not a hospital.": "「%(value)s」不是醫院。"}  # fmt: skip


def test_the_hant_tool_writes_purchases_weeks_and_days_after_as_taiwan_does(monkeypatch, tmp_path):
    """OpenCC's s2twp left 有采購 (采, "flair") in a dozen purchase labels, wrote "in 3 days" as 3 天后 (the
    goddess), kept 周 for a week (Taiwan writes 週), made "Extra actions" a software 擴充套件 and the people a course is for
    (适用对象) a programmer's 物件."""
    tool = load_i18n_tool()
    for lang in ("zh_Hans", "zh_Hant"):
        (tmp_path / lang / "LC_MESSAGES").mkdir(parents=True)
    hans, hant = polib.POFile(), polib.POFile()
    for msgid, text in (("Months with purchases", "有采购的月数"), ("No purchases.", "本期没有目标，也没有采购。"),
                        ("In %(n)s day", "%(n)s 天后"), ("weeks", "周"), ("Period", "每个周期；有周期将结束"),
                        ("Working days", "当年的周工作日"), ("Extra Actions", "扩展操作"),
                        ("For", "适用对象"), ("Object", "对象")):  # fmt: skip
        hans.append(polib.POEntry(msgid=msgid, msgstr=text))
        hant.append(polib.POEntry(msgid=msgid, msgstr=""))
    hans.save(str(tmp_path / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    hant.save(str(tmp_path / "zh_Hant" / "LC_MESSAGES" / "django.po"))
    monkeypatch.setattr(tool, "LOCALE", tmp_path)
    assert tool.hant() == 9
    derived = {e.msgid: e.msgstr for e in polib.pofile(str(tmp_path / "zh_Hant" / "LC_MESSAGES" / "django.po"))}
    assert derived == {"Months with purchases": "有採購的月數", "No purchases.": "本期沒有目標，也沒有採購。",
                       "In %(n)s day": "%(n)s 天後", "weeks": "週", "Period": "每個週期；有週期將結束",
                       "Working days": "當年的週工作日", "Extra Actions": "擴充操作", "For": "適用對象",
                       "Object": "物件"}  # fmt: skip


def test_safety_criteria_say_what_e2b_means():
    """E2B's congenital-anomaly criterion is about birth defects: a label adding 致癌 (carcinogenic) would have
    cancer cases ticked, and exported, as congenital anomalies."""
    with translation.override("zh-hans"):
        assert str(translation.gettext("congenital anomaly / birth defect")) == "先天性异常 / 出生缺陷"
        assert str(translation.gettext("decades")) == "十年"


def _messages(entries) -> dict:
    return {
        (e.msgctxt, e.msgid, e.msgid_plural): (e.msgstr, sorted(e.msgstr_plural.items()))
        for e in entries
        if e.msgid
    }


@pytest.mark.parametrize("lang", ["zh_Hans", "zh_Hant", "en"])
def test_compiled_catalogues_match_the_po_files(lang):
    """Django reads the .mo files: a .po edited without `tools/i18n.py compile` would not show."""
    po_path = REPO / "pharmacrm" / "locale" / lang / "LC_MESSAGES" / "django.po"
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.exists(), f"{mo_path} is missing: run tools/i18n.py compile"
    po, mo = polib.pofile(str(po_path)), polib.mofile(str(mo_path))
    translated = [e for e in po if not e.obsolete and not e.fuzzy and e.translated()]  # what .mo files hold
    assert _messages(mo) == _messages(translated), f"{mo_path.name} is stale: run tools/i18n.py compile"
    assert mo.metadata.get("Plural-Forms") == po.metadata.get("Plural-Forms")


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_choice_labels_stay_distinct_in_chinese(language):
    """The importer maps the Chinese label a user types back to its value, so two choices must never share one."""
    for name in ("InstitutionType", "HospitalGrade", "Tier", "Stage", "Source", "PersonRole", "Gender"):
        kind = getattr(choices, name)
        with translation.override(language):
            labels = [str(label) for label in kind.labels]
        assert len(set(labels)) == len(labels), (name, labels)
        assert all(re.search(r"[\u4e00-\u9fff]", label) for label in labels), (name, labels)


def test_the_import_columns_simplified_names_are_the_templates_headers():
    """An export in Simplified Chinese writes the template's headers; the column names its other languages write are
    translated from the Simplified ones (zh-Hant by `tools/i18n.py hant`): they must be the same words, or a
    Traditional-Chinese export reads 客戶 where the template says 客户名称."""
    import pharmacrm.sales.importer  # noqa: F401 (registers the orders target)
    from pharmacrm.customers import importer

    different = []
    with translation.override("zh-hans"):
        for target in ("institutions", "people", "orders"):
            for col in importer.columns_for(target):
                if col.label and str(col.label) != col.header:
                    different.append((target, col.key, str(col.label), col.header))
        for key, label in importer.EXPORT_ONLY_LABELS.items():
            if str(label) != importer.EXPORT_ONLY[key]:
                different.append(("export only", key, str(label), importer.EXPORT_ONLY[key]))
    assert different == []


def test_every_string_in_the_code_is_in_the_catalogue(tmp_path, monkeypatch):
    """Extract the messages of a copy of the code (the real catalogues stay untouched) and find none new or stale."""
    if not shutil.which("xgettext"):
        assert not on_ci(), "GNU gettext (xgettext) must be installed on CI: make test installs it"
        warnings.warn("xgettext is not installed: the catalogue was not compared with the code", stacklevel=1)
        return
    copy = tmp_path / "src"
    copy.mkdir()
    shutil.copy2(REPO / "manage.py", copy)
    shutil.copytree(
        REPO / "pharmacrm", copy / "pharmacrm", ignore=shutil.ignore_patterns("vendor", "__pycache__", "*.mo")
    )
    tool = load_i18n_tool()
    monkeypatch.setattr(tool, "ROOT", copy)
    monkeypatch.setattr(tool, "LOCALE", copy / "pharmacrm" / "locale")
    monkeypatch.setattr(tool, "LANGS", ("zh_Hans", "zh_Hant"))
    tool.extract()

    for lang in ("zh_Hans", "zh_Hant"):
        fresh = polib.pofile(str(tool.po_path(lang)))
        untranslated = [e.msgid for e in fresh if not e.obsolete and (e.fuzzy or not e.translated())]
        assert untranslated == [], "new strings: run tools/i18n.py extract, translate them, hant, compile"
        stale = {e.msgid for e in catalogue(lang)} - {e.msgid for e in fresh}
        assert stale == set(), "strings no longer in the code: run tools/i18n.py extract"
        # hant re-derives only the entries still marked as derived: extraction must keep the marks
        derived = {e.msgid for e in catalogue(lang) if tool.AUTO in e.tcomment}
        assert derived == {e.msgid for e in fresh if tool.AUTO in e.tcomment}


# --- rendered pages -----------------------------------------------------------------------------


class VisibleText(HTMLParser):
    """The text a user reads: text nodes plus placeholders, titles, labels for screen readers and alt texts."""

    ATTRIBUTES = {"placeholder", "title", "aria-label", "alt"}

    def __init__(self):
        super().__init__()
        self.chunks: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._hidden += 1
        for name, value in attrs:
            # a submit input shows its value; a button's value is sent, not shown
            if value and (name in self.ATTRIBUTES or (name == "value" and tag == "input" and ("type", "submit") in attrs)):
                self.chunks.append(value.strip())

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden and data.strip():
            self.chunks.append(" ".join(data.split()))


# Words that are right in a Chinese page: product and format names, the English option of the language switch.
ALLOWED = {
    "pharmacrm", "english", "vip", "excel", "csv", "xlsx", "api", "otp", "totp", "google", "microsoft",
    "authenticator", "freeotp", "txt", "unicode",  # .txt: Excel's "Unicode 文本" file, as Chinese Excel names it
}  # fmt: skip
USERNAMES = {"admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep", "pv", "analyst", "auditor"}  # fmt: skip
# e-mail addresses and the hex digests shown in place of masked values are not words
NOT_WORDS = re.compile(r"\S+@\S+|(?=[0-9a-f]*\d)[0-9a-f]{6,}")


def english_left(page: str, also_allowed: set[str] = frozenset()) -> list[str]:
    """Chunks of visible text that still hold English words (or an untranslated message of ours)."""
    parser = VisibleText()
    parser.feed(page)
    msgids = {e.msgid.lower() for e in catalogue("zh_Hans") if re.search("[A-Za-z]{2}", e.msgid)}
    msgids -= ALLOWED
    allowed = ALLOWED | USERNAMES | {w.lower() for w in also_allowed}
    found = []
    for chunk in parser.chunks:
        if chunk.lower() in USERNAMES:  # the signed-in user's name, even where it spells a msgid ("Agent")
            continue
        words = {w.lower() for w in re.findall(r"[A-Za-z]{3,}", NOT_WORDS.sub("", chunk))}
        if chunk.lower().rstrip(":：") in msgids or words - allowed:
            found.append(chunk)
    return found


def test_the_check_finds_english_when_the_page_is_english(client_for, xiehe):
    """Guards the checks below against passing vacuously."""
    page = client_for("agent").get("/customers/institutions/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="en">' in page
    assert {"Institutions", "Search customers"} <= set(english_left(page))


def test_sign_in_page_is_in_simplified_chinese_by_default(client):
    page = client.get("/accounts/login/").content.decode()
    assert '<html lang="zh-hans">' in page
    assert english_left(page) == []
    for label in ("登录", "用户名", "密码"):
        assert label in page


@pytest.mark.parametrize(
    ("url", "labels"),
    [
        ("/", ["首页", "我的客户", "新建机构"]),
        ("/customers/institutions/", ["机构", "客户层级", "负责人", "筛选条件"]),
        ("/customers/people/", ["联系人", "手机", "角色"]),
        ("/customers/institutions/new/", ["统一社会信用代码", "医院等级", "三级甲等", "保存"]),
        ("/customers/people/new/", ["新建联系人", "职称", "科室", "保存"]),
        ("/customers/search/?q=bjxh", ["搜索结果", "北京协和医院", "匹配依据"]),
        ("/customers/import/", ["导入客户", "全部成功才导入", "上传并预检"]),
        ("/customers/duplicates/", ["疑似重复"]),
    ],
)
def test_pages_show_no_english_to_a_chinese_user(client_for, xiehe, url, labels):
    page = client_for("admin").get(url).content.decode()
    assert '<html lang="zh-hans">' in page
    assert english_left(page, also_allowed={"bjxh"}) == []
    for label in labels:
        assert label in page, label


def test_customer_360_pages_are_all_chinese(client_for, xiehe):
    """Profile, hierarchy, people and history: choice values in the history read as their Chinese labels."""
    client = client_for("kam")
    doctor = Person.objects.get(name="张伟", institution=xiehe)
    for url, labels in (
        (f"/customers/institutions/{xiehe.pk}/", ["基本信息", "组织层级", "历史记录", "三级甲等", "医院"]),
        (f"/customers/people/{doctor.pk}/", ["联系方式", "授权同意", "历史记录", "医生"]),
    ):
        page = client.get(url).content.decode()
        assert english_left(page) == [], url
        for label in labels:
            assert label in page, (url, label)


def test_traditional_chinese_pages_use_traditional_wording(client_for, xiehe):
    client = client_for("agent")
    client.post("/i18n/setlang/", {"language": "zh-hant", "next": "/"})
    page = client.get("/customers/institutions/").content.decode()
    assert '<html lang="zh-hant">' in page
    assert english_left(page) == []
    for label in ("機構", "客戶層級", "負責人", "篩選條件"):
        assert label in page
    form = client.get("/customers/institutions/new/").content.decode()
    # OpenCC turns 代码 into 程式碼 (program code), which is wrong for a credit code
    assert "統一社會信用代碼" in form and "程式碼" not in form
