"""Translation catalogues: extract, derive Traditional from Simplified Chinese, compile, check.

    python tools/i18n.py extract   # makemessages for zh_Hans and zh_Hant (needs GNU gettext)
    python tools/i18n.py hant      # fill zh_Hant from zh_Hans with OpenCC (s2twp), keeping hand edits
    python tools/i18n.py compile   # write the .mo files with polib (no gettext needed)
    python tools/i18n.py check     # list untranslated or fuzzy entries; exit 1 if any

zh_Hans is edited by people; zh_Hant entries are derived unless a translator removed the
`# auto-hant` comment, which marks an entry as hand-checked and leaves it alone. (A translator
comment, not a `#.` one: msgmerge replaces `#.` comments with the source's on every extract.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "pharmacrm" / "locale"
LANGS = ("zh_Hans", "zh_Hant", "en")
AUTO = "auto-hant"


def po_path(lang: str, domain: str = "django") -> Path:
    return LOCALE / lang / "LC_MESSAGES" / f"{domain}.po"


def extract() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pharmacrm.settings"}
    for domain, extra in (("django", ["-e", "html,txt,py"]), ("djangojs", ["-e", "js"])):
        if domain == "djangojs" and not any((ROOT / "pharmacrm" / "static").rglob("*.js")):
            continue
        args = [sys.executable, "manage.py", "makemessages", "-d", domain, "--no-obsolete", "--no-location"]
        args += [a for lang in LANGS for a in ("-l", lang)] + extra
        for skipped in ("pharmacrm/static/vendor/*", ".venv/*", "node_modules/*", "tests/*", "bench/*"):
            args += ["-i", skipped]  # patterns match a whole path or one name, so vendor/ needs its full path
        subprocess.run(args, cwd=ROOT, env=env, check=True)


def hant() -> int:
    import opencc

    phrases = opencc.OpenCC("s2twp").convert

    def convert(text: str, msgid: str = "") -> str:
        # s2twp turns every 项目 into 專案 ("project"); an item of a plan or a list is 項目
        text = phrases(text)
        if "project" in msgid.lower():
            text = text.replace("專案經理", "\0").replace("專案", "項目").replace("\0", "專案經理")
        else:
            text = text.replace("專案", "項目")
        # s2twp speaks of programs: 代码 (a code: credit, region, calendar) is not 程式碼, 类型 (a kind)
        # is not the programmer's 型別, and 质量 is 品質 in Taiwan (質量 there is "mass")
        for wrong, right in (("程式碼", "代碼"), ("型別", "類型"), ("質量", "品質"), ("籤署", "簽署")):
            text = text.replace(wrong, right)
        # its phrase list keeps 合作伙伴 (a licensing partner is a 合作夥伴) and writes 賬號, 賬戶, 賬期 where
        # Taiwan's standard form is 帳; and Taiwan quotes with 「」 and 『』, not “” and ‘’
        for wrong, right in (("伙伴", "夥伴"), ("賬", "帳"), ("“", "「"), ("”", "」"), ("‘", "『"), ("’", "』")):
            text = text.replace(wrong, right)
        # its phrases split 有采购 / 没有采购 as 有采 ("has flair") + 购, leaving 采購 for 採購; read 天后 (N 天后,
        # "in N days") as the goddess 天后; keep 周 (a week) where Taiwan writes 週; and make 扩展 a software
        # 擴充套件 ("extension package") where it means extra
        for wrong, right in (("采購", "採購"), ("天后", "天後"), ("周期", "週期"), ("周工作日", "週工作日"),
                             ("擴充套件", "擴充")):  # fmt: skip
            text = text.replace(wrong, right)
        # and it makes every 对象 a programmer's 物件 (an object): the people a survey, a course or a contact is for
        # are its 對象 (a JSON object and the audit's object type stay 物件)
        for wrong, right in (("調查物件", "調查對象"), ("適用物件", "適用對象"), ("溝通物件", "溝通對象"),
                             ("接觸的物件", "接觸的對象"), ("計數物件", "計數對象"), ("分配物件", "分配對象")):  # fmt: skip
            text = text.replace(wrong, right)
        if text == "周":  # "weeks", a unit on its own
            text = "週"
        return text

    hans = {(e.msgctxt, e.msgid): e for e in polib.pofile(str(po_path("zh_Hans")))}
    target = polib.pofile(str(po_path("zh_Hant")))
    changed = 0
    for entry in target:
        source = hans.get((entry.msgctxt, entry.msgid))
        if source is None or (entry.translated() and AUTO not in entry.tcomment and not entry.fuzzy):
            continue
        if source.msgstr_plural:
            entry.msgstr_plural = {k: convert(v, entry.msgid) for k, v in source.msgstr_plural.items()}
        else:
            entry.msgstr = convert(source.msgstr, entry.msgid)
        if "fuzzy" in entry.flags:
            entry.flags.remove("fuzzy")
        entry.tcomment = AUTO
        changed += 1
    target.metadata["Language"] = "zh_Hant"
    target.metadata["Plural-Forms"] = "nplurals=1; plural=0;"
    target.save()
    return changed


def compile_all() -> None:
    for path in LOCALE.glob("*/LC_MESSAGES/*.po"):
        polib.pofile(str(path)).save_as_mofile(str(path.with_suffix(".mo")))


def problems() -> list[str]:
    out = []
    for lang in ("zh_Hans", "zh_Hant"):
        for path in (LOCALE / lang / "LC_MESSAGES").glob("*.po"):
            for e in polib.pofile(str(path)):
                if e.obsolete:
                    continue
                if e.fuzzy or not e.translated():
                    out.append(f"{lang}: {e.msgid!r}")
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    cmd = sys.argv[1] if len(sys.argv) > 1 else "check"
    if cmd == "extract":
        extract()
    elif cmd == "hant":
        print(f"{hant()} zh_Hant entries derived")
    elif cmd == "compile":
        compile_all()
    elif cmd == "check":
        found = problems()
        print("\n".join(found) or "all catalogues complete")
        sys.exit(1 if found else 0)
    else:
        sys.exit(__doc__)
