"""The net: a lexicon screen that flags adverse-reaction, quality and lack-of-efficacy signals in free text
(Simplified and Traditional Chinese, English) so that no reaction a customer mentions slips past PV.

It is deliberately recall-first: a false flag costs a PV officer a click, a missed reaction costs a late
report. A matched term is dropped only when it is negated in its clause (没有不良反应, "denies nausea"),
when the sentence clearly asks for information (这个药有什么副作用？ "what should I do if I get a rash?"),
when the word right before it makes it an indication, a prevention or a plan (治头晕的药, 抗过敏, 需要住院),
or when a quality/efficacy word is about a website or a coupon (优惠券无效). No lexicon lists every way
people describe a symptom, so a text with no term at all still gets the exposure frame: something that
changed after taking the drug (吃了药以后嘴歪了) is a possible reaction unless it is positive or negated.
Pure Python, no database: the same function serves ticket saves, interactions and the screening API.

How a text is read: normalised (NFKC folds full-width forms — ，becomes , — lower case, Traditional →
Simplified for the characters the lexicons use), matched once against one precompiled alternation of all
terms, and only the matches are examined against their clause (split on ，。；！？,.;!? and
但/但是/不过/but/however) and sentence.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field

ADVERSE_REACTION = (
    "adverse_reaction"  # = choices.SignalKind values; kept literal so this module needs no Django
)
QUALITY = "quality"
LACK_OF_EFFICACY = "lack_of_efficacy"
PRIORITY = (ADVERSE_REACTION, QUALITY, LACK_OF_EFFICACY)  # a reaction outranks a defect outranks "no effect"


@dataclass(frozen=True)
class Result:
    signal: bool
    kind: str | None = None
    terms: list[str] = field(default_factory=list)


NOTHING = Result(False)

# --- normalisation ---------------------------------------------------------------------------------------

# Traditional → Simplified for the characters that occur in the lexicons, negators and markers below (and
# their everyday neighbours); one str.translate in C, no dictionary conversion needed.
_HANT_HANS = (
    "過过頭头暈晕嘔呕噁恶惡恶瀉泻難难應应無无變变異异損损結结塊块發发黴霉顏颜癢痒紅红腫肿膚肤錯错誤误懷怀"
    "針针視视燒烧蕁荨藥药對对沒没並并還还數数兩两濕湿後后問问請请會会麼么嗎吗萬万體体質质預预祕秘痙痉攣挛"
    "驚惊檢检療疗壞坏減减腎肾嚴严緊紧悶闷聽听鳴鸣淚泪潰溃瘍疡氣气點点髮发輸输靜静脈脉轉转壓压臟脏腦脑"
    "膿脓膠胶顆颗裡里鋁铝漿浆劑剂週周醫医師师說说經经們们這这個个從从現现時时間间來来為为與与見见處处"
    "劇剧傷伤亂乱虛虚熱热顫颤喪丧適适續续關关係系狀状況况險险診诊搶抢歲岁餵喂嬰婴兒儿寶宝產产婦妇媽妈"
    "爺爷嬤嬷蓋盖渾浑濁浊澱淀雜杂塗涂癒愈覺觉聲声動动頻频陣阵號号標标籤签書书碼码優优驗验證证網网頁页"
    "統统鏈链錄录腸肠脹胀燙烫腳脚臉脸頸颈嚨咙齒齿帶带給给讓让種种類类貨货擔担憂忧聞闻據据設设於于會会話话歷历試试該该斷断識识導导較较員员報报銷销庫库存存補补運运"
    "單单開开張张貼贴噴喷壺壶黃黄寫写邊边穩稳"
)
_TRANSLATE = str.maketrans({a: b for a, b in zip(_HANT_HANS[::2], _HANT_HANS[1::2], strict=True) if a != b})


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case, Traditional → Simplified for the lexicon characters."""
    return unicodedata.normalize("NFKC", text).lower().translate(_TRANSLATE)


# --- lexicons --------------------------------------------------------------------------------------------
# Patterns are written against normalised text, one term per word; `_` is white space. English terms get
# letter guards instead of \b, because \b does not separate "rash" from a Chinese character ("之后rash了").

_ZH_AR = r"""
过敏反应 药物过敏 过敏 皮疹 红疹 疹子 起疹 荨麻疹 风团 红点 红斑 红疙瘩 疙瘩 瘙痒 搔痒 痒
头晕 头昏 眩晕 晕倒 晕厥 昏倒 昏厥 发晕 头重脚轻
恶心 想吐 呕吐 干呕 吐了 一直吐 又吐 反胃
腹泻 拉肚子 拉稀 腹痛 肚子疼 肚子痛 胃疼 胃痛 肚子胀 腹胀 反酸 便秘 黑便 便血
心悸 心慌 发慌 心跳(?:很|特别|非常|有点|有些)?(?:快|加速) 心律失常 心律不齐 胸闷 胸痛 qt间期延长
呼吸困难 喘不上气 喘不过气 气短 气喘 呼吸急促 憋气
休克 昏迷 抽搐 惊厥 癫痫发作 意识丧失 不省人事
住院 入院 急诊 icu 抢救 死亡 去世 过世 身亡 死了 猝死
不良反应 副作用 不良事件 药物反应 不舒服 不适 难受
水肿 浮肿 红肿 肿 水泡 水疱 脱皮 皮肤[^,;!?。]{0,4}脱落 发红 潮红 灼烧 烧灼 刺痛 硬结 静脉炎
头痛 头疼 视物模糊 视力模糊 视力下降 重影 耳鸣 听力下降
发烧 发热 高热 寒战 药物热
失眠 睡不着 嗜睡 乏力 无力 没劲 没精神 犯困
低血糖 血压下降 肝功能异常 肝损伤 肝损害 转氨酶 黄疸 肾功能 血小板减少 白细胞减少 出血 流鼻血
掉头发 脱发 溃疡 金属味 味觉 口干 幻觉 说胡话 手抖 震颤 冷汗 月经不调 体重增加 摔倒 跌倒 骨折
干咳 尿[^,;!?。]{0,3}(?:红|黑|褐|茶)色
吃错 用错 拿错 服错 误服 误食 误用 剂量过大 过量 超量 吃多了 多吃了 用多了 多用了
把(?:一|整|半)(?:瓶|盒|板)[^,;!?。]{0,8}(?:吃|喝)(?:了|掉|光) 当糖 偷吃 偷偷吃 够到 趁[^,;!?。]{0,6}不注意
怀孕 孕期 妊娠 哺乳期 喂奶期间
药疹 神志不清 意识不清 没力气 虚弱 发飘 打嗝 声音嘶哑 抽筋 麻木 发麻 瘀斑 淤青 紫癜
吐(?:了|得|个|出|完|奶) 喘(?:气|不)[^,;!?。]{0,3}(?:费劲|困难|上来|过来)
(?:嘴唇|脸|面部|皮肤|身上|全身|手|脚|腿|眼睛|眼皮|舌头|嗓子|喉咙|胸口|嘴|口腔|牙龈)[^,;!?。、没无不未]{0,4}(?:发紫|发青|发黄|发白|发黑|红|肿|紫|痒|哑|闷|疼|痛)
(?:血压|血糖|心率|体温|脉搏)[^,;!?。]{0,3}(?:骤降|骤升|低到|高到|太低|很低|偏低|过低|一百[一二三四五六七八九])
(?:送|赶紧|连夜|紧急|马上)[^,;!?。]{0,5}医院
"""

_EN_AR = r"""
rash(?:es)? hives urticaria itch(?:ing|y|es|ed)? pruritus allerg\w* anaphyla\w*
dizz\w* light-?headed vertigo faint(?:ed|ing)? passed_out syncope
nause\w* vomit\w* threw_up throwing_up (?:feel|feeling|felt|bit|been)_sick
diarr?h\w* loose_stools? stomach_(?:pain|ache|upset|cramps?) abdominal_pain constipat\w*
palpitations? heart_rac\w* racing_heart (?:rapid|fast|irregular)_heart\w* chest_(?:pain|tightness)
short(?:ness)?_of_breath breathless\w* (?:difficulty|trouble)_breathing wheez\w*
shock seizures? convuls\w* unconscious coma collapsed?
hospitali[sz]\w* admitted_(?:to_(?:the_)?hospital|with) (?:was|were|got|been)_admitted a&e
emergency_room intensive_care icu died death dead passed_away fatal resuscitat\w* life-threatening
side(?:-|_)effects? adverse_(?:drug_)?(?:event|reaction|effect)s? adrs? (?:drug_)?reactions?
swell\w* swollen o?edema blister(?:ing|ed) blisters_on peeling injection_site
headaches? blurr\w*_vision vision_(?:loss|problems?) tinnitus
fever chills rigors insomnia drows\w* sleepy somnolence fatigue exhausted weakness anxiety agitation
hallucinat\w* confus\w* tremors? shaking sweating
jaundice liver_(?:enzymes|injury|damage|failure|problems?) kidney_(?:injury|failure) bleed\w* bruis\w*
hair_loss weight_gain puff\w* cramp\w* turned_(?:red|blue|yellow|purple) went_(?:red|blue|purple) fell broke_(?:his|her|my|their)_\w+ fractured?
overdos\w* double_dose too_many_(?:tablets|pills|capsules)
wrong_(?:medicine|medication|drug|dose|pills?|tablets?) by_mistake accidental\w* swallowed ingested
got_into_(?:the|my|his|her)_(?:bottle|pills|medicine|tablets) grabbed chewed got_hold_of
pregnan\w* breast-?feeding
"""

_ZH_QUALITY = r"""
变色 颜色(?:不一样|不对|异常|变了|发黄|发黑) 发黄 发黑 异物 杂质 头发丝 毛发 絮状物 沉淀 浑浊 混浊
玻璃碎屑 碎屑 破损 破了 压破 碎了 裂缝 裂开 裂了 漏液 漏了 渗漏 结块 结晶 发霉 霉点 霉变 长毛
少片 缺片 少了?[一两二三四五六七八九十\d]*(?:片|粒|颗|支|袋|瓶) 数量不对
批号不符 批号不一致 批号[^,;!?。]{0,12}不(?:一致|符|对) 变质 怪味 异味 味道不对 粘在一起 粘连 瘪了
碎 破洞 漏出 封[^,;!?。]{0,3}(?:开|破|松) 被人动过 拆封过 温度超标 超温 印刷模糊 假药 假冒 说明书缺失 缺少说明书 黑点 斑点 空板 空胶囊
"""

_EN_QUALITY = r"""
discolou?r\w* chang\w*_colou?r colou?r_change foreign_(?:particle|body|matter|object)s? particles?
leak\w* broken cracked crushed damaged torn clump\w* caked caking mou?ld\w*
missing_(?:tablets?|pills|capsules|leaflet|hologram) only_\d+\s*(?:tablets?|pills?|capsules?|inside)
(?:doesn't|does_not|don't|do_not)_match mismatch\w* smell\w*_(?:strange|odd|bad|funny|off)
crumbl\w* seal\w*_(?:was_)?(?:already_)?(?:open|broken|missing) strange_(?:smell|odou?r|taste) counterfeit fake contaminat\w* tamper\w*
"""

_ZH_EFFICACY = r"""
无效 没(?:有)?(?:什么)?效果 效果(?:都|也)?没有 不起作用 不管用 没用 不顶用 没作用 不见效 不见好
没(?:有)?(?:任何)?(?:好转|改善|缓解|减轻|变化) 不(?:太|怎么)?(?:管用|起作用|见效|顶用) 无改善 降不下来 没降 控制(?:得)?不好 没控制住 不退 加重 恶化
药效[^,;!?。]{0,4}差 效果[^,;!?。]{0,4}(?:差|不好) 还是(?:一样|很)?(?:痛|疼|咳|高|难受|烧)
"""

_EN_EFFICACY = r"""
(?:didn't|did_not|doesn't|does_not|isn't|is_not|not|stopped)_work\w* no_effect not_effective
ineffective less_effective (?:didn't|did_not)_respond no_improvement not_improv\w* (?:didn't|did_not)_help
still_in_(?:a_lot_of_)?pain useless (?:does|did|do)_nothing worse worsen\w* no_better
"""

# Spans that look like a term but are not one: listed first, so at the same position they win and hide it.
_NOT_TERMS = r"""
过敏史 过敏体质 过敏性鼻炎 过敏的人 过敏人群 过敏患者 过敏者 肿瘤 住院部 住院期间 住院患者 住院病人 急诊科 (?:烦|累|气|急|热|冷|忙|笑|饿|困|吓|闷|懒|想)死了
"""
_EN_NOT_TERMS = r"""
history_of_(?:drug_)?allerg\w* allergy_(?:history|prevention) known_allerg\w*
"""


def _alternation(block: str, english: bool) -> str:
    """One alternation of a lexicon block; `_` in a term stands for any run of white space."""
    terms = sorted(
        (t.replace("_", r"\s+") for t in block.split()), key=len, reverse=True
    )  # 过敏反应 before 过敏
    body = "|".join(terms)
    return rf"(?<![a-z])(?:{body})(?![a-z])" if english else f"(?:{body})"


TERMS = re.compile(
    "|".join(
        f"(?P<{name}>{_alternation(zh, False)}|{_alternation(en, True)})"
        for name, zh, en in (
            ("x", _NOT_TERMS, _EN_NOT_TERMS),
            ("a", _ZH_AR, _EN_AR),
            ("q", _ZH_QUALITY, _EN_QUALITY),
            ("e", _ZH_EFFICACY, _EN_EFFICACY),
        )
    )
)
_KIND = {"a": ADVERSE_REACTION, "q": QUALITY, "e": LACK_OF_EFFICACY}

# --- context ---------------------------------------------------------------------------------------------

CLAUSE_END = re.compile(
    r"[，。；！？,.;!?\n]|但是|但|不过|然而|可是|\b(?:but|however|although|though|whereas)\b"
)
SENTENCE_END = re.compile(r"[。！？.!?\n]")

# Negators that reach up to ~10 characters forward in their clause, unless a turn (就/才/却…) intervenes.
_NEG_ZH_WINDOW = re.compile(
    r"(?:没有|没出现|没发生|没什么|没啥|没见|没感觉|没觉得|没再|并无|并未|从未|从没|不曾|毫无|均无|均未|未见|未出现|"
    r"未发生|未发现|未诉|无(?!法|论|关|奈|意|误|力|效|聊|改善)|未(?!成年|来|婚|满))"
)
_NEG_ZH_TURN = re.compile(r"就|才|却|结果|然后|后来|又")
# Negators that bind only to the next word: 不痒, 不会头晕, 没吐.
_NEG_ZH_ADJACENT = re.compile(r"(?:不|没|别)(?:会|再|是|曾|太|有|出现)?(?:什么)?$")
_DENY_CLAUSE = re.compile(r"否认|\bden(?:y|ies|ied)\b|negative for")
_NEG_EN = re.compile(r"\b(?:no|not|without|never|none|nor|nothing|neither|free of)\b|n't\b")
_NEG_EN_TURN = re.compile(r"\b(?:until|then|after|except)\b")
ZH_WINDOW, EN_WINDOW = 10, 40
# Between the items of a negated list the negation carries on: "denies nausea, vomiting or dizziness".
_LIST_GAP = re.compile(r"(?:[\s,，、]|and|or|nor|和|或者?|以及|及|与)*")

# What a question that only asks for information looks like — and what a report of something that
# happened looks like, which keeps a question like "吃多了会不会有事？" a signal.
_QUESTION = re.compile(r"[?？]|(?:吗|呢|么)\s*$")
_INQUIRY = re.compile(
    r"吗|呢|会不会|是不是|会|能不能|能否|可不可以|可以|是否|有没有|有什么|什么|哪些|怎么|如何|为什么|多大|请问|想问|想了解|"
    r"\b(?:what|which|does|do|can|could|will|would|should|is it|are there|were there|any|how|whether|may|might)\b"
)
_HYPOTHETICAL = re.compile(r"如果|万一|假如|要是|假设|听说|据说|\b(?:if|in case|what if|heard)\b")
_EVENT = re.compile(
    r"了|后|出现|起了|开始|一直|已经|现在|昨天|今天|刚才|正在|"
    r"\b(?:after|since|started|starting|developed|got|had|took|taken|been|now|today|yesterday|ago|felt|feeling|"
    r"experienc\w*|i have|i've|has)\b"
)
# Immediately before a term, these make it an indication, a prevention or a worry, not a reaction:
# 治头晕的药, 抗过敏药, 预防过敏, 担心会过敏, 需要住院做手术, "help with itching".
_NOT_A_REACTION_BEFORE = re.compile(
    r"(?:治疗?|缓解|止|抗|防止?|预防|用于|针对|以免|避免|担心会?|害怕会?|怕会|需要|准备|打算|计划|安排|将要|"
    r"(?<![a-z])(?:treat\w*|reliev\w*|help with|prevent\w*|anti-?))\s*$"
)
# Quality and efficacy words about a website, an app or a coupon are not about the product.
_NOT_THE_PRODUCT = re.compile(
    r"网站|网页|页面|链接|app|登录|验证码|优惠券|系统|二维码|\b(?:website|link|login|app|code|coupon|portal|checkout|"
    r"password|email)\b"
)


# The exposure frame: whatever a customer says changed after taking the drug ("吃了药以后嘴歪了", "since
# starting it I've had pins and needles") is a possible reaction even when no lexicon word names it — the
# lexicon can never list every way people describe a symptom. Positive or negated follow-ups are not.
_FRAME_ZH = re.compile(
    r"(?:吃|服|用|喝|打(?!开|算|电话|折)|输|注射|喷|滴|涂|擦|贴|换)(?:了|完|过)?"
    r"(?:[^,;!?。]{0,12}?(?:以后|之后|后)|(?:了)?(?:[一两二三四五六七八九十几半]|\d+)(?:个)?(?:天|周|星期|礼拜|月)[^,;!?。]{0,8}?)"
    r"[,，\s]*"
)
_FRAME_EN = re.compile(
    r"\b(?:ever since|(?:after|since) (?:taking|starting|using|switching|being (?:given|put on)|i started|"
    r"(?:he|she) started|(?:the|each|every|my|his|her) (?:first |second |last |new )?(?:dose|injection|infusion|"
    r"prescription|switch|tablets?|pills?|inhaler|capsules?|medicine|medication|drug|treatment))|"
    r"on (?:it|them|these|this|the new \w+)(?: (?:for|so far))?)\b"
)
_POSITIVE = re.compile(
    r"很好|挺好|好了|好多了|好些|变好|正常|平稳|稳定|改善|好转|缓解|消失|没事|不错|满意|有效|管用|退了|谢谢|感谢|"
    r"\b(?:well|better|fine|great|good|improv\w*|working|helped|no problems?|thanks?)\b"
)
_FOLLOW_UP_QUESTION = re.compile(r"要|需要|能|可以|应该|该|多久|怎么|\b(?:should|can|could|how long|do i)\b")
_CLAUSE_SPLIT = re.compile(r"[,;，；]")
_TURN = re.compile(r"但是|但|不过|可是|然而|\bbut\b")


def _frame(norm: str, text: str, source: str | None) -> str | None:
    """The first complaint after an exposure, as written, or None."""
    for sentence_match in re.finditer(r"[^。!?.\n]+[。!?.\n]?", norm):
        sentence = sentence_match.group()
        offset = sentence_match.start()
        if _HYPOTHETICAL.search(sentence):
            continue
        question = bool(_QUESTION.search(sentence))
        m = _FRAME_ZH.search(sentence)
        if m and not _negated(sentence[: m.start()]):
            pos = m.end()
            turns = list(_TURN.finditer(sentence, pos))
            if turns:  # "体温是降了，可是手心脱了一层皮": what follows the last turn is what counts
                pos = turns[-1].end()
            elif _POSITIVE.search(sentence, pos):  # "用药两周后复查，各项指标正常"
                continue
            for part in _CLAUSE_SPLIT.split(sentence[pos:]):
                content = part.strip(" 。!?.")
                if len(content) < 2 or _POSITIVE.search(content) or _negated(content):
                    continue
                if question and _FOLLOW_UP_QUESTION.search(content):
                    continue
                start = offset + pos + sentence[pos:].index(part) + part.index(content)
                return _span(text, source, start, start + min(len(content), 24))
        m = _FRAME_EN.search(sentence)
        if (
            m
            and not _POSITIVE.search(sentence)
            and not _NEG_EN.search(sentence)
            and not _DENY_CLAUSE.search(sentence)
        ):
            if question and _FOLLOW_UP_QUESTION.search(sentence) and not _EVENT.search(sentence[: m.start()]):
                continue
            return _span(text, source, offset + m.start(), offset + m.end())
    return None


def _span(text: str, source: str | None, start: int, end: int) -> str:
    return source[start:end] if source is not None else _original_span(text, start, end)


def screen(text: str) -> Result:
    """Screen one free text; `terms` are the matched words as the text writes them, in order, once each."""
    if not text:
        return NOTHING
    norm = normalise(text)
    matches = [m for m in TERMS.finditer(norm) if m.lastgroup != "x"]
    source = text if len(norm) == len(text) else None  # NFKC kept offsets (the usual case)
    clause_starts = [0] + [m.end() for m in CLAUSE_END.finditer(norm)]
    sentence_bounds = [0] + [m.end() for m in SENTENCE_END.finditer(norm)] + [len(norm) + 1]
    kinds: set[str] = set()
    terms: list[str] = []
    negated_at_end = -1  # end offset of a negated term, for lists: "denies nausea, vomiting or dizziness"
    for m in matches:
        start, end = m.span()
        ci = bisect_right(clause_starts, start) - 1
        c_start = clause_starts[ci]
        c_end = clause_starts[ci + 1] if ci + 1 < len(clause_starts) else len(norm)
        before = norm[c_start:start]
        kind = _KIND[m.lastgroup]
        if _negated(before) or (negated_at_end >= 0 and _LIST_GAP.fullmatch(norm, negated_at_end, start)):
            negated_at_end = end
            continue
        if _NOT_A_REACTION_BEFORE.search(before):
            continue
        if kind != ADVERSE_REACTION and _NOT_THE_PRODUCT.search(norm, c_start, c_end):
            continue
        si = bisect_right(sentence_bounds, start) - 1
        sentence = norm[sentence_bounds[si] : sentence_bounds[si + 1]]
        if _asks_for_information(sentence, norm[c_start:c_end]):
            continue
        kinds.add(kind)
        written = _span(text, source, start, end)
        if written not in terms:
            terms.append(written)
    if not kinds and not matches:  # nothing named (or everything negated is also a "no"): try the frame
        complaint = _frame(norm, text, source)
        if complaint:
            kinds.add(ADVERSE_REACTION)
            terms.append(complaint)
    if not kinds:
        return NOTHING
    return Result(True, next(k for k in PRIORITY if k in kinds), terms)


def _negated(before: str) -> bool:
    if _DENY_CLAUSE.search(before) or _NEG_ZH_ADJACENT.search(before):
        return True
    tail = before[-ZH_WINDOW - 4 :]
    for neg in _NEG_ZH_WINDOW.finditer(tail):
        gap = tail[neg.end() :]
        if len(gap) <= ZH_WINDOW and not _NEG_ZH_TURN.search(gap):
            return True
    tail = before[-EN_WINDOW:]
    last = None
    for last in _NEG_EN.finditer(tail):  # noqa: B007 — the last negator is the one in scope
        pass
    return last is not None and not _NEG_EN_TURN.search(tail, last.end())


def _asks_for_information(sentence: str, clause: str) -> bool:
    """A question about what might happen (这个药会不会引起头晕？ / what should I do if I get a rash?) —
    not a report. A question that also says something happened (吃多了会不会有事？) stays a signal."""
    if not _QUESTION.search(sentence) or not _INQUIRY.search(clause):
        return False
    return bool(_HYPOTHETICAL.search(clause)) or not _EVENT.search(clause)


def _original_span(text: str, start: int, end: int) -> str:
    """Map a span of the normalised text back to the original when NFKC changed lengths (㎎ → mg)."""
    offsets = []
    for i, ch in enumerate(text):
        offsets.extend([i] * len(normalise(ch)))
    offsets.append(len(text))
    return text[offsets[start] : offsets[min(end, len(offsets) - 1) - 1] + 1] if end > start else ""
