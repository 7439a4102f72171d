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


# --- generalisation: the kinds of message the first lexicon missed -------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # quality: counts, mismatches, counterfeits, smell, moisture, damaged blisters, colour
        ("标签上写60粒，倒出来数了只有57粒", QUALITY),
        ("I counted 27 in a box of 30.", QUALITY),
        ("The second strip had two empty pockets.", QUALITY),
        ("盒子上的批号和药板上的批号对不上", QUALITY),
        ("外盒写的是20mg，药板上印的是10mg", QUALITY),
        ("The box says 100 mcg but the inhaler label says 50 mcg.", QUALITY),
        ("网购的，防伪码一扫显示不存在，是不是假货？", QUALITY),
        ("The hologram is missing and the print looks blurred; I think it's counterfeit.", QUALITY),
        ("开瓶有一股馊味", QUALITY),
        ("The tablets smell like vinegar.", QUALITY),
        ("胶囊都受潮了，捏着发软", QUALITY),
        ("藥水顏色變深咗", QUALITY),
        ("药板上好几个泡是破的", QUALITY),
        # lack of efficacy
        ("止痛片现在吃两片都压不住", LACK_OF_EFFICACY),
        ("血糖控制不住，一直不达标", LACK_OF_EFFICACY),
        ("吃完一个疗程复查还是有虫卵", LACK_OF_EFFICACY),
        ("食咗成個禮拜都冇效", LACK_OF_EFFICACY),
        ("Three weeks on it and it's done nothing for the itch.", LACK_OF_EFFICACY),
        ("The infection hasn't cleared after the full course.", LACK_OF_EFFICACY),
        ("Levels are still subtherapeutic on the standard dose.", LACK_OF_EFFICACY),
        # reactions in clinical words, behaviour, falls, errors, ingestion, Cantonese, vague feelings
        ("肌注后出现颈部扭转、眼球上翻，考虑锥体外系反应", ADVERSE_REACTION),
        ("用药两周复查肌酸激酶明显升高", ADVERSE_REACTION),
        ("Acute dystonia with an oculogyric crisis after the injection.", ADVERSE_REACTION),
        ("ALT 4x ULN at week three, drug held.", ADVERSE_REACTION),
        ("Platelets dropped to 40 on day 6 of heparin.", ADVERSE_REACTION),
        ("Since starting the tablets he's irritable and snapping at everyone.", ADVERSE_REACTION),
        ("She keeps saying she doesn't want to be here since the new medicine.", ADVERSE_REACTION),
        ("外公吃了安眠药，夜里起床摔了一跤", ADVERSE_REACTION),
        ("护士把剂量看错了，多打了十倍", ADVERSE_REACTION),
        ("Gave 5 ml instead of 0.5 ml by mistake.", ADVERSE_REACTION),
        ("孩子把爷爷的降压药吃了两片，暂时还没症状", ADVERSE_REACTION),
        ("食完個藥之後成日肚痛，瞓唔著", ADVERSE_REACTION),
        ("After the first dose I felt weird and foggy all afternoon.", ADVERSE_REACTION),
        ("服药后脑壳昏，走路打飘", ADVERSE_REACTION),
        ("吃咗降壓藥之後一直乾咳，正常嗎？", ADVERSE_REACTION),  # a question that reports an event
    ],
)
def test_differently_worded_signals_are_caught_with_their_kind(text, kind):
    result = screen(text)
    assert result.signal and result.kind == kind, (text, result)


@pytest.mark.parametrize(
    "text",
    [
        "我对头孢过敏，这个药能不能吃？",  # allergy history asked before use
        "Years ago I came out in hives with aspirin — does this contain any salicylate?",
        "孩子咳嗽发烧两天，还没吃药，请问糖浆怎么喂？",  # the illness before any treatment
        "He's had a high temperature since last night; we haven't given him anything yet.",
        "My back pain is why I saw the GP, and she suggested your gel.",
        "我妈失眠好几年了，想问问你们的安眠药适合老人吗？",
        "下周开始吃这个药，会不会掉头发？",  # a question about the future
        "Just asking before I start: can it cause headaches?",
        "网上说吃了会脱发，我还在犹豫要不要买",  # a rumour
        "请发一份关于该药肝损伤的文献",  # a literature request naming a term
        "复查结果都正常，谢谢你们",  # good news
        "请在空格处填写患者姓名",
        "快递给错地址了，麻烦改一下",
        "Can you come back to me with the price for 200 boxes?",
        "I'm worried about getting a rash like last time; should I do a patch test first?",
        "有5mg和10mg两种规格，哪种适合我？",
    ],
)
def test_history_plans_rumours_and_illness_before_treatment_are_not_signals(text):
    assert not screen(text).signal, (text, screen(text))


def test_a_report_that_also_asks_about_further_use_stays_a_signal():
    assert screen("服用阿莫西林出现皮疹，还能不能继续用？").kind == ADVERSE_REACTION
    assert (
        screen("My son took your syrup and got hives; can he have the tablets instead?").kind
        == ADVERSE_REACTION
    )
    assert (
        screen("给孩子喂错药了，目前没发现异常").kind == ADVERSE_REACTION
    )  # an error is not a 过敏药-style name


def test_the_first_character_look_ahead_never_changes_what_the_lexicon_matches():
    from pharmacrm.safety import screen as module

    plain = module.re.compile(f"(?:{module._BODY})")
    assert module._PREFILTER, "every lexicon term has a known first character"
    texts = [r["text"] for r in load_eval_set()]
    for text in texts + [" ".join(texts[i : i + 5]) for i in range(0, len(texts), 5)]:
        norm = module.normalise(text)
        spans = [(m.span(), m.lastgroup) for m in module.TERMS.finditer(norm)]
        assert spans == [(m.span(), m.lastgroup) for m in plain.finditer(norm)], text


# --- what the desk hears that is not a safety signal, next to what is ------------------------------------------
# The net flagged a delivery that did not match its order (到货数量与订单不符) as a quality defect. A count or a
# mismatch set against an order, an invoice, a delivery note or a price is the warehouse's and the desk's; one
# that names what is in or on the pack (tablets, a batch, a strength) stays a defect, and so does every defect of
# the product that arrived with a delivery. The terms are the words PV sees highlighted in the triage queue.

NOT_A_SIGNAL = None


@pytest.mark.parametrize(
    ("text", "kind", "terms"),
    [
        # commercial and logistics complaints: the desk's, not PV's
        ("到货数量与订单不符", NOT_A_SIGNAL, []),
        ("到货数量与订单不符，请尽快核实补发。", NOT_A_SIGNAL, []),
        ("到貨數量與訂單不符，麻煩處理。", NOT_A_SIGNAL, []),
        ("发票数量与实际到货不符", NOT_A_SIGNAL, []),
        ("实收数量和发货单对不上，少了两箱", NOT_A_SIGNAL, []),
        ("这次到货少了两瓶，订单是20瓶", NOT_A_SIGNAL, []),
        ("送货单上的数量和实际收到的不一样", NOT_A_SIGNAL, []),
        ("发货数量不对，麻烦查一下出库记录", NOT_A_SIGNAL, []),
        ("仓库拿错货了，我们订的是别的品种", NOT_A_SIGNAL, []),
        ("送货太慢了，晚了三天才到", NOT_A_SIGNAL, []),
        ("發票金額開錯了，請重開", NOT_A_SIGNAL, []),
        ("单价和合同价不一致，比中标价高", NOT_A_SIGNAL, []),
        ("外箱破损，里面的药没事", NOT_A_SIGNAL, []),
        ("The quantity on the invoice doesn't match what we received.", NOT_A_SIGNAL, []),
        ("The invoice total doesn't match the PO, please send a credit note.", NOT_A_SIGNAL, []),
        ("The price on your invoice doesn't match the quote.", NOT_A_SIGNAL, []),
        ("Short shipment on PO 4471: the delivery doesn't match the packing list.", NOT_A_SIGNAL, []),
        ("The parcel was damaged but the medicines inside are fine.", NOT_A_SIGNAL, []),
        ("The delivery was three days late again.", NOT_A_SIGNAL, []),
        # a defect of the product that came with the delivery: still a defect
        ("到货的药片有裂纹", QUALITY, ["裂纹"]),
        ("到货的一盒里只有20片，少了8片", QUALITY, ["只有20片", "少了8片"]),
        ("到货的药批号和随货单上的不一致", QUALITY, ["批号和随货单上的不一致"]),
        ("收到的这批货，外盒写的是20mg，药板上印的是10mg", QUALITY, ["10mg"]),
        ("到貨的膠囊有幾粒是空的", QUALITY, ["膠囊有幾粒是空的"]),
        ("外箱破损，打开发现药瓶也裂了", QUALITY, ["破损", "裂了"]),  # the damage may have reached it
        ("The tablets in the delivered boxes were crumbling.", QUALITY, ["crumbling"]),
        (
            "We received the order but the lot number on the vials doesn't match the CoA.",
            QUALITY,
            ["doesn't match"],
        ),
        ("Opened a box from the delivery and counted only 26 tablets.", QUALITY, ["counted only 26"]),
        # a missed dose is a dosing question (咨询漏服后如何补服 was flagged as a reaction: 服后 read as "after taking")
        ("漏服了一次怎么办", NOT_A_SIGNAL, []),
        ("忘记吃药了要补吗", NOT_A_SIGNAL, []),
        ("咨询漏服后如何补服", NOT_A_SIGNAL, []),
        ("漏了一次药，要补吗", NOT_A_SIGNAL, []),  # 漏了 is no leak here
        ("昨天漏服了，今天要不要吃双倍？", NOT_A_SIGNAL, []),
        ("漏服後要補服嗎？", NOT_A_SIGNAL, []),
        ("我忘記吃藥了，要補嗎", NOT_A_SIGNAL, []),
        ("I missed a dose yesterday, should I take a double dose today?", NOT_A_SIGNAL, []),
        ("Forgot my evening tablet, can I take it with breakfast?", NOT_A_SIGNAL, []),
        # … unless harm followed, or the catch-up dose was itself too much: a medication error with harm
        ("漏服后补服两片，出现心慌", ADVERSE_REACTION, ["心慌"]),
        ("漏服了一次，补服后嘴歪了", ADVERSE_REACTION, ["嘴歪了"]),  # the frame: the catch-up dose was taken
        ("我漏服了三天，现在又开始咳嗽了", ADVERSE_REACTION, ["现在又开始咳嗽了"]),
        ("孩子漏服了一次抗癫痫药，晚上抽搐了", ADVERSE_REACTION, ["抽搐"]),
        ("漏服後補服兩片，出現心慌", ADVERSE_REACTION, ["心慌"]),
        (
            "My son missed a dose of his epilepsy medicine and had a seizure this morning.",
            ADVERSE_REACTION,
            ["seizure"],
        ),
        ("I missed a dose and took two today, now I have palpitations.", ADVERSE_REACTION, ["palpitations"]),
        # the special situations ICH E2B / GVP have reported even without a reaction: overdose, pregnancy or
        # breast-feeding exposure, off-label use, lack of efficacy, a medication error
        ("孩子把一整瓶退烧药都喝了", ADVERSE_REACTION, ["把一整瓶退烧药都喝了"]),
        ("老人不小心吃了双倍的量", ADVERSE_REACTION, ["不小心", "吃了双倍"]),
        ("He took 20 tablets at once.", ADVERSE_REACTION, ["took 20 tablets at once"]),
        (
            "I accidentally took a double dose this morning.",
            ADVERSE_REACTION,
            ["accidentally", "double dose"],
        ),
        ("懷孕期間服用了這個藥", ADVERSE_REACTION, ["懷孕"]),
        ("I found out I'm pregnant and I've been taking your tablets.", ADVERSE_REACTION, ["pregnant"]),
        ("我在哺乳期，吃了两天这个药", ADVERSE_REACTION, ["哺乳期"]),
        ("医生超说明书给我儿子用了这个药", ADVERSE_REACTION, ["超说明书"]),
        ("The doctor prescribed it off-label for my daughter's migraines.", ADVERSE_REACTION, ["off-label"]),
        ("吃了一个月，血压还是降不下来", LACK_OF_EFFICACY, ["降不下来"]),
        ("给老人拿错药了，吃了以后一直犯困", ADVERSE_REACTION, ["拿错", "犯困"]),
        # … and what only sounds like one
        ("这个药能超说明书用于儿童吗？", NOT_A_SIGNAL, []),
        (
            "答复中提及说明书外用法，属超说明书宣传，已提醒合规要求。",
            NOT_A_SIGNAL,
            [],
        ),  # compliance, not safety
        ("The rep made off-label claims at the meeting.", NOT_A_SIGNAL, []),
        ("不小心把订单删了，能恢复吗", NOT_A_SIGNAL, []),
        # and a reaction told with an order is a reaction
        ("订单的货收到了，不过上次那批吃了以后起了一身皮疹", ADVERSE_REACTION, ["皮疹"]),
        (
            "Please chase the late delivery; also my patient got a rash after the last batch.",
            ADVERSE_REACTION,
            ["rash"],
        ),
    ],
)
def test_the_desks_everyday_sentences_are_screened_as_pv_would(text, kind, terms):
    result = screen(text)
    assert (result.kind, result.terms) == (kind, terms), (text, result)
