"""The compact phrase dictionary (pharmacrm/customers/pinyin.py): polyphones in names still read right, and
the shipped file is what tools/pinyin_phrases.py makes from the installed pypinyin."""

import json
import subprocess
import sys

import pytest

from pharmacrm.customers import pinyin, search


@pytest.mark.parametrize("name, syllables", [
    ("重庆长安医院", "chong qing chang an yi yuan"),
    ("中国银行", "zhong guo yin hang"),
    ("北京市朝阳区", "bei jing shi chao yang qu"),
    ("一心堂苏州长江路店", "yi xin tang su zhou chang jiang lu dian"),
    ("长沙市第一医院", "chang sha shi di yi yi yuan"),
])  # fmt: skip
def test_polyphones_in_names_read_right(name, syllables):
    assert " ".join(pinyin.lazy_pinyin(name)) == syllables
    assert " ".join(search.syllables(name)) == syllables


def test_pypinyin_runs_on_the_compact_dictionary_only():
    code = ("import pharmacrm.customers.pinyin; from pypinyin.constants import PHRASES_DICT; "
            "import sys; print(len(PHRASES_DICT), 'pypinyin.phrases_dict' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(json.loads(pinyin.PHRASES.read_text(encoding="utf-8")))), "False"]


def test_the_shipped_file_is_what_the_tool_makes():
    sys.path.insert(0, str(pinyin.PHRASES.parents[3] / "tools"))
    try:
        import pinyin_phrases
    finally:
        sys.path.pop(0)
    assert json.loads(pinyin.PHRASES.read_text(encoding="utf-8")) == pinyin_phrases.compact()
