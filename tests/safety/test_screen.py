"""The net: recall and precision of the safety-signal screen on the labelled evaluation set, and the rules a
call-centre agent would notice — negation scopes, information requests, Traditional characters, English
inflections, and the shape the screening API returns."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pharmacrm.safety.choices import SignalKind
from pharmacrm.safety.screen import ADVERSE_REACTION, LACK_OF_EFFICACY, QUALITY, Result, screen

EVAL_SET = Path(__file__).parent / "data" / "screen_eval.jsonl"
RECALL_TARGET, PRECISION_TARGET = 0.95, 0.70


def load_eval_set() -> list[dict]:
    with EVAL_SET.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- the evaluation set --------------------------------------------------------------------------------


def test_the_evaluation_set_is_large_and_mixed_enough_to_mean_something():
    rows = load_eval_set()
    assert len(rows) >= 320
    assert len({r["text"] for r in rows}) == len(rows), "duplicate messages inflate the figures"
    langs = {lang: sum(r["lang"] == lang for r in rows) / len(rows) for lang in ("zh", "zh-Hant", "en")}
    assert langs["zh"] >= 0.45 and langs["zh-Hant"] >= 0.10 and langs["en"] >= 0.20, langs
    assert 0.35 <= sum(r["signal"] for r in rows) / len(rows) <= 0.60
    for r in rows:
        assert r["signal"] == (r["kind"] is not None), r
        assert r["kind"] in {None, ADVERSE_REACTION, QUALITY, LACK_OF_EFFICACY}, r
        assert r["note"], r


def test_the_screen_catches_at_least_95_percent_of_signals_with_precision_above_70_percent():
    rows = load_eval_set()
    missed, false_flags = [], []
    tp = fp = 0
    for r in rows:
        result = screen(r["text"])
        if r["signal"] and result.signal:
            tp += 1
        elif r["signal"]:
            missed.append(r["text"])
        elif result.signal:
            fp += 1
            false_flags.append(f"{r['text']}  {result.terms}")
    recall, precision = tp / (tp + len(missed)), tp / (tp + fp)
    report = (
        f"recall {recall:.3f} ({tp}/{tp + len(missed)}), precision {precision:.3f} ({tp}/{tp + fp})\n"
        "missed:\n  " + "\n  ".join(missed) + "\nfalse flags:\n  " + "\n  ".join(false_flags)
    )
    print(report)
    assert recall >= RECALL_TARGET, report
    assert precision >= PRECISION_TARGET, report


def test_a_flagged_message_usually_gets_the_kind_pv_would_give_it():
    rows = [r for r in load_eval_set() if r["signal"]]
    flagged = [(r, screen(r["text"])) for r in rows]
    flagged = [(r, res) for r, res in flagged if res.signal]
    wrong = [f"{r['text']}: {r['kind']} ≠ {res.kind}" for r, res in flagged if res.kind != r["kind"]]
    assert len(wrong) / len(flagged) <= 0.05, "\n".join(wrong)


# --- negation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "没有不良反应",
        "用药后未见明显不良反应。",
        "患者服药期间未出现皮疹、瘙痒等过敏症状。",  # the negation covers the whole list
        "我吃了没有头晕也没有恶心",
        "病人否认用药后有任何不适。",  # 否认 reaches across the clause
        "服藥後並無不適。",
        "孩子也不吐了",
        "She denies nausea, vomiting or dizziness.",  # and across an English list
        "I've been on it for six months without any side effects.",
        "No rash, no itching, just wanted to ask about refills.",
        "Follow-up call: patient doing well, no side effects, BP controlled.",
    ],
)
def test_a_negated_reaction_is_not_a_signal(text):
    assert screen(text) == Result(False), text


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("没有过敏，但是有点头晕", "头晕"),  # the negation ends with its clause
        ("没有过敏但有点头晕", "头晕"),  # … and at 但 even without a comma
        ("不过敏，不过头晕得厉害", "头晕"),
        ("Not allergic to anything, but I got a rash after the second dose.", "rash"),
        ("吃了没几天就起了皮疹", "皮疹"),  # 没 binds only the word after it
        ("孕妇不知道自己怀孕，服用了两周。", "怀孕"),  # 不知道 negates knowing, not the pregnancy
        ("全身无力、头晕", "头晕"),  # 无力 is a symptom, not a negator
    ],
)
def test_a_negation_does_not_reach_past_its_clause_or_its_word(text, term):
    result = screen(text)
    assert result.signal and term in result.terms, (text, result)


def test_no_effect_is_itself_the_lack_of_efficacy_signal_not_a_negation():
    assert screen("吃了半个月，一点效果都没有。").kind == LACK_OF_EFFICACY
    assert screen("用了你们的药完全无效").kind == LACK_OF_EFFICACY
    assert screen("Been taking it for a month, no effect on my blood pressure.").kind == LACK_OF_EFFICACY


# --- information requests and near-misses ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "这个药有什么副作用？",
        "请问长期吃这个药会不会有不良反应？",
        "这个药会不会引起头晕？我要开车。",
        "如果出现皮疹怎么办？",
        "What are the side effects of this medicine?",
        "What should I do if I get a rash?",
        "我有青霉素过敏史，能用这个药吗？",  # allergy history
        "孩子是过敏体质，吃这个药要注意什么？",
        "请问这个药能预防过敏吗？",
        "你们的抗过敏药氯雷他定片还有货吗？",
        "我想买点头孢克肟。",  # 头孢 is not 头晕
        "我想给我爸买点治头晕的药。",  # an indication
        "医生说我需要住院做手术。",  # a planned admission
        "患者住院期间使用本品，疗效良好。",
        "烦死了，电话一直打不通。",
        "你们发的优惠券显示无效。",  # 无效 about a coupon, not the drug
        "The discount code didn't work on the online shop.",
        "Thanks, the medication is working well and I feel much better.",
    ],
)
def test_questions_and_near_misses_are_not_signals(text):
    assert not screen(text).signal, (text, screen(text))


@pytest.mark.parametrize(
    "text",
    [
        "吃了药有点头昏，正常吗",  # a question that reports something
        "我一次吃了六粒，吃多了会不会有事？",
        "皮肤上起了好多小红点，是不是药物过敏？",
        "Feeling dizzy and a bit sick after each dose, is that normal?",
    ],
)
def test_a_question_that_also_reports_an_event_stays_a_signal(text):
    assert screen(text).signal, text


def test_a_change_after_taking_the_drug_is_a_signal_even_without_a_lexicon_word():
    result = screen("爷爷吃了药以后说话含糊，嘴歪了，我们打了120。")
    assert result == Result(True, ADVERSE_REACTION, ["说话含糊"])
    assert screen("Ever since the new prescription I've had pins and needles in my fingers.").signal
    assert not screen("患者用药两周后复查，各项指标正常，未诉不适。").signal


# --- kinds, characters, inflections --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("胶囊里面有黑色的异物", QUALITY),
        ("盒子上的批号和铝箔板上的批号不一致", QUALITY),
        ("The bottle was leaking when it arrived", QUALITY),
        ("止痛片吃了根本不管用", LACK_OF_EFFICACY),
        ("The painkillers didn't work at all", LACK_OF_EFFICACY),
        ("药片变色了，吃了以后恶心", ADVERSE_REACTION),  # a reaction outranks the defect
        ("我儿子误服了我的降压药", ADVERSE_REACTION),  # medication errors go to PV as reactions
        ("我怀孕两个月的时候吃了你们的感冒药", ADVERSE_REACTION),  # so do pregnancy exposures
    ],
)
def test_each_signal_has_the_kind_pv_triages_it_as(text, kind):
    assert screen(text).kind == kind


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("服藥後頭暈、噁心，還吐了兩次。", ["頭暈", "噁心", "吐了"]),
        ("用藥後皮膚搔癢，起疹子。", ["皮膚搔癢", "起疹"]),  # the longest match, as written
        ("病人用藥後出現過敏反應，呼吸困難。", ["過敏反應", "呼吸困難"]),
        ("包裝破損，鋁箔也破了。", ["破損", "破了"]),
        ("吃了一個月完全無效。", ["無效"]),
    ],
)
def test_traditional_characters_are_screened_and_reported_as_written(text, terms):
    assert screen(text).terms == terms


def test_full_width_and_upper_case_text_is_screened():
    assert screen("ＲＡＳＨ after the first dose").terms == ["ＲＡＳＨ"]
    assert screen("Patient HOSPITALISED yesterday").signal


@pytest.mark.parametrize(
    "text",
    [
        "a rash on her arm",
        "rashes everywhere",
        "she was hospitalised",
        "he was hospitalized",
        "admitted to hospital on Monday",
        "I vomited twice",
        "started vomiting",
        "she keeps vomiting",
        "felt dizzy",
        "the dizziness is bad",
        "terrible diarrhoea",
        "diarrhea since Monday",
        "itching all night",
        "my face swelled up",
    ],
)
def test_english_inflections_and_spellings_are_caught(text):
    assert screen(text).kind == ADVERSE_REACTION, text


def test_an_english_term_is_found_next_to_chinese_characters():
    assert screen("我吃了两片之后rash了").terms == ["rash"]


# --- the result the API returns -------------------------------------------------------------------------


def test_the_result_has_the_shape_of_the_screening_api_response():
    result = screen("吃了以后头晕，又头晕又恶心，Nausea 也有")
    assert dataclasses.asdict(result) == {
        "signal": True,
        "kind": SignalKind.ADVERSE_REACTION.value,
        "terms": ["头晕", "恶心", "Nausea"],  # in order, each once
    }
    json.dumps(dataclasses.asdict(result))  # serialisable as is
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.signal = False  # type: ignore[misc]


def test_kinds_are_the_signal_kinds_of_the_safety_flags():
    assert {ADVERSE_REACTION, QUALITY, LACK_OF_EFFICACY} == set(SignalKind.values)


@pytest.mark.parametrize("text", ["", "   ", "请问你们周六送货吗？", "Please cancel order 77120."])
def test_ordinary_or_empty_text_is_no_signal(text):
    assert screen(text) == Result(False, None, [])
