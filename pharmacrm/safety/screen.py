"""The net: a lexicon screen that flags adverse-reaction, quality and lack-of-efficacy signals in free text
(Simplified and Traditional Chinese, English) so that no reaction a customer mentions slips past PV.

It is deliberately recall-first: a false flag costs a PV officer a click, a missed reaction costs a late
report. A matched term is dropped only when it is negated in its clause (没有不良反应, "denies nausea"),
when the sentence clearly asks for information (这个药有什么副作用？ "what should I do if I get a rash?"),
when the word right before it makes it an indication, a prevention or a plan (治头晕的药, 抗过敏, 需要住院),
or when a quality/efficacy word is about a website or a coupon (优惠券无效). A symptom is not a reaction
either when the message is about someone who has not taken the drug: the illness before any treatment
(还没吃药, "haven't given him anything yet"), an allergy history or a symptom asked about before use
(我对青霉素过敏，能不能用…？), a rumour, a leaflet, an article or a training — unless the message also says
the drug was taken (吃了以后…, "after taking"). No lexicon lists every way
people describe a symptom, so a text with no term at all still gets the exposure frame: something that
changed after taking the drug (吃了药以后嘴歪了) is a possible reaction unless it is positive or negated.
Pure Python, no database: the same function serves ticket saves, interactions and the screening API.

How a text is read: normalised (NFKC folds full-width forms — ，becomes , — lower case, Traditional →
Simplified for the characters the lexicons use), matched once against one precompiled alternation of all
terms (behind a look-ahead on the characters a term can start with, so most positions are skipped at once), and only the matches are examined against their clause (split on ，。；！？,.;!? and
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
    "單单開开張张貼贴噴喷壺壶黃黄寫写邊边穩稳當当著着乾干樣样軟软額额縫缝廁厕鐵铁讀读響响興兴奮奋"
    "鬱郁殺杀夢梦緒绪溫温鬧闹擾扰訂订價价購购遞递遲迟費费賬账帳账貴贵記记"
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
水肿 浮肿 红肿 肿 水泡 水疱 脱皮 脱[^,;!?。]{0,3}皮 皮肤[^,;!?。]{0,4}脱落 发红 潮红 灼烧 烧灼 刺痛 硬结 静脉炎
头痛 头疼 视物模糊 视力模糊 视力下降 重影 耳鸣 听力下降
发烧 高烧 发热 高热 寒战 药物热
失眠 睡不着 嗜睡 乏力 无力 没劲 没精神 犯困
低血糖 血压下降 肝功能异常 肝损伤 肝损害 转氨酶 黄疸 肾功能(?:异常|损害|损伤|衰竭|下降|恶化|变差) 肾损害 肾损伤 急性肾 血小板减少 白细胞减少 出血 流鼻血
掉头发 脱发 溃疡 金属味 味觉 口干 幻觉 说胡话 手抖 震颤 冷汗 月经不调 体重增加 摔倒 跌倒 骨折
干咳 尿[^,;!?。]{0,3}(?:红|黑|褐|茶)色
吃错 用错 拿错 服错 误服 误食 误用 剂量过大 过量 超量 吃多了 多吃了 用多了 多用了
把(?:一整?|整|半)(?:瓶|盒|板)[^,;!?。]{0,8}(?:吃|喝)(?:了|掉|光) 当糖 偷吃 偷偷吃 够到 趁[^,;!?。]{0,6}不注意
怀孕 孕期 妊娠 哺乳期 喂奶期间
药疹 神志不清 意识不清 没力气 虚弱 发飘 打嗝 声音嘶哑 抽筋 麻木 发麻 瘀斑 淤青 紫癜
吐(?:了|得|个|出|完|奶) 喘(?:气|不)[^,;!?。]{0,3}(?:费劲|困难|上来|过来)
(?:嘴唇|脸|面部|皮肤|身上|全身|手|脚|腿|眼睛|眼皮|舌头|嗓子|喉咙|胸口|嘴|口腔|牙龈|胳膊|胳臂|手臂|屁股|臀部)[^,;!?。、没无不未]{0,4}(?:发紫|发青|发黄|发白|发黑|发凉|冰凉|红|肿|紫|痒|哑|闷|疼|痛|泡|疱|麻|刺痛)
(?:血压|血糖|心率|体温|脉搏)[^,;!?。]{0,3}(?:骤降|骤升|低到|高到|降到|降至|掉到|升到|飙到|太低|很低|偏低|过低|一百[一二三四五六七八九])
(?:送|赶紧|连夜|紧急|马上)[^,;!?。]{0,5}医院
(?:昏|晕)了?过去 锥体外系 肌张力障碍 静坐不能 颈部(?:扭转|僵|歪) 斜颈 (?:双眼|眼球|眼睛)上翻 角弓反张 横纹肌溶解 肌酸激酶 ck(?:升高|偏高|高|\d)
(?:肝酶|转氨酶|肌酐|尿素氮|胆红素|血钾|血钠|血红蛋白|inr|alt|ast)[^,;!?。]{0,4}(?:升高|偏高|高了|下降|降低|异常|超标|翻倍|倍) 肝功(?:能)?[^,;!?。]{0,3}(?:异常|升高|不好|坏)
误(?:服|食|用|喝|吞|吃) 肌肉(?:酸痛|疼|痛|无力) 浑身酸痛 肌痛 (?:跟腱|肌腱|关节)[^,;!?。]{0,3}(?:痛|疼|炎|断) 血小板[^,;!?。]{0,3}(?:下降|降低|减少|低)
大便[^,;!?。]{0,3}(?:黑|带血|发白) 心动过(?:速|缓) 低钾 低钠 史蒂文斯 表皮坏死
摔(?:了|倒|伤|跤) 跌(?:了一?跤|伤) 缝了[^,;!?。]{0,3}针 撞到头
(?:喂|给|吃|服|用|拿|打|注射|输|配)错(?!地址|号|单|货|电话|了地址|人了) (?:看|读)错[^,;!?。]{0,4}(?:剂量|说明|标签|药|单位) 错(?:药|剂量) 剂量错 多喂 多打了 喂多了 打多了 当糖 把[^,;!?。]{0,6}的[^,;!?。]{0,8}(?:吃|喝|吞)(?:了|掉|下)
特别兴奋 异常兴奋 亢奋 烦躁 易怒 暴躁 乱发脾气 情绪(?:低落|不稳|波动|激动|失控) 想死(?!你|他|她|我们) 轻生 自杀 不想活 噩梦 做恶梦
脑壳(?:昏|疼|痛|晕) 昏沉 晕乎乎 打飘 飘飘 迷迷糊糊 恍惚 反应迟钝 脑子(?:不清|转不动|一片空白)
肚痛 屙(?:咗|了)?[^,;!?。]{0,3}(?:次|水|稀|血|黑) 屙肚 肚屙 心跳(?:好|很)快 瞓唔(?:着|到|落) (?:好|成身|周身|全身)痕 痕痒 想呕 作呕 唔舒服 头痕
(?<![^,;!?。\s天上晨后果终里来])人(?:已经|就|也|都)?(?:走了|没了|不在了)(?=[,;!?。.\s]|$) 没(?:能)?(?:抢救|救)(?:过来|回来|活) 抢救无效 离世 不幸(?:去世|离世|身故) 身故
尿血 血尿 (?:注射|输液|穿刺|打针|扎针)(?:部位|处|的地方|的位置)[^,;!?。没无不未]{0,4}(?:疼|痛|硬|青|紫|麻|热|红|肿|痒)
把[^,;!?。]{0,10}当(?:成|做|作)?[^,;!?。]{0,10}(?:吃|喝|吞|用|滴|喷|涂|服|打)(?:了|掉|下) 外用[^,;!?。]{0,8}(?:吃|喝|吞|口服|内服)(?:了|掉|下|进)
(?:吃|喝|用|服|喂|给|打)了?[^,;!?。]{0,4}(?:成人|大人)的?(?:剂量|量)
食欲(?:减退|下降|不振|差|不好|很差|没了) (?:没|冇)(?:有)?(?:什么|一点)?胃口 胃口[^,;!?。]{0,3}(?:差|不好|没了|都没) 厌食 纳差
(?:吃|服|用|喝|食)(?:了|咗)(?:双倍|两倍|2倍|三倍|加倍) 不小心(?=吃|喝|服|食|吞|误)
超说明书 超适应症 超适应证 超范围用药 说明书外(?:用法|用药|使用)
(?:红|肿|紫|青)(?:了)?一大?片 胡言乱语 打瞌睡 瞌睡 想睡 攰 起泡 尿不出 排尿困难 看东西(?:发黄|发绿|模糊|重影) 视物(?:发黄|模糊|重影)
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
(?:took|taken|swallowed)_\w+_(?:tablets|pills|capsules)_(?:at_once|in_one_go|all_at_once|together) off-?label unlicensed_(?:use|indication)
wrong_(?:medicine|medication|drug|dose|pills?|tablets?) by_mistake accidental\w* swallowed ingested
got_into_(?:the|my|his|her)_(?:bottle|pills|medicine|tablets) grabbed chewed got_hold_of
pregnan\w* breast-?feeding
dystoni\w* oculogyric extrapyramidal akathisia tardive_dyskinesia torticollis rhabdomyolysis myalgia myopath\w* myositis
creatine_kinase (?:ck|cpk|alt|ast|inr)_(?:of_)?(?:\d|raised|elevated|up|rose|high) uln platelets?_(?:dropp\w*|fell|fall\w*|decreas\w*|low|count_dropp\w*)
(?:hb|ha?emoglobin|sodium|potassium|neutrophils?|wbc|egfr|creatinine|lfts?)_(?:dropp\w*|fell|fall\w*|rose|rising|raised|elevated|deranged)
mela?ena ha?ematemesis ha?ematuria ate_(?:some|one|two|three|a_few|several|all|half|\d+)_(?:of_)?(?:my|his|her|the|your)_(?:tablets|pills|capsules|medicine|medication|gummies|vitamins)
thrombocytop\w* heparin-induced stevens-johnson sjs toxic_epidermal tendon\w* tendin\w* achilles neutropeni\w* agranulocyt\w*
pancreatitis qt_prolong\w* torsades? arrhythmi\w* bradycardi\w* tachycardi\w* hypotensi\w* hypoglyc\w* angioedema
(?:glucose|sugar)_(?:dropped|fell|crashed|plummeted) cough\w*_since dry_cough
medication_error dosing_error dispensing_error misread\w* (?:medication|medicine|drug|dose|dosing|prescription|pill)_mix-?up \d+\s*(?:units?|mg|mcg|ml|tablets?|doses?)_instead_of
irritab\w* aggression (?:very|more|really|so|became|becoming|getting)_aggressive mood_swings? suicid\w* self-harm (?:doesn't|does_not|don't|do_not)_want_to_be_here nightmares?
hyperactive restless(?:ness)? panic_attacks? depressed low_mood behaviou?r_chang\w* personality_chang\w*
(?:feel|feels|feeling|felt)_(?:weird|strange|odd|funny|foggy|off|spacey|wired|drunk|high|woozy|out_of_it|unwell|awful|terrible)
balloon\w* by_accident (?:dose|doses|tablets?|pills?|it)_twice given_twice double_dosed
muscle_(?:pain|aches?|weakness|cramps?) dark_urine (?:urine|pee)_(?:is_|was_)?(?:dark|brown|red|pink)
spaced_out foggy brain_fog woozy groggy out_of_it zombie-?like had_a_fall
"""

_ZH_QUALITY = r"""
变色 颜色(?:不一样|不对|异常|变了|发黄|发黑) 发黄 发黑 异物 杂质 头发丝 毛发 絮状物 沉淀 浑浊 混浊
玻璃碎屑 碎屑 破损 破了 压破 碎了 裂缝 裂开 裂了 漏液 漏了 渗漏 结块 结晶 发霉 霉点 霉变 长毛
(?:药|片|液|水|胶囊|粉|颗粒|膏|糖浆|针剂)[^,;!?。]{0,6}变成了?[^,;!?。]{0,2}(?:棕|褐|黄|黑|红|绿|灰|白|紫|粉)色
(?:药片|胶囊|片子|丸|颗粒|包装|瓶子|盒子)[^,;!?。]{0,4}比(?:以前|之前|上次|原来)的?(?:小|大|薄|厚|轻|重|短|细|粗)
(?:没有|缺少?|找不到)(?:防伪|批号|有效期|生产日期)
少片 缺片
(?:有|发现|混(?:有|着|进)?|夹(?:着|有)?|粘(?:着|有))(?:一|几|两)?(?:根|些|个|条|只|块|粒)?(?:头发|毛发|虫子|小虫|沙子|沙粒|石子|小石头|玻璃渣|铁屑|金属屑|塑料片|脏东西|杂物)(?![掉脱少])
批号不符 批号不一致 批号[^,;!?。]{0,12}不(?:一致|符|对) 变质 怪味 异味 味道不对 粘在一起 粘连 瘪了
碎 破洞 漏出 封[^,;!?。]{0,3}(?:开|破|松) 被人动过 拆封过 温度超标 超温 印刷模糊 假药 假冒 说明书缺失 缺少说明书 黑点 斑点 空板 空胶囊
(?:板|泡|格|胶囊|瓶|盒)[^,;!?。]{0,4}是?空的 空泡
假货 假的 山寨 仿冒 防伪[^,;!?。]{0,10}(?:查不到|扫不出|查无|无效|不对|失败|异常|没有|不存在|错误|是假|重复) 印刷[^,;!?。]{0,3}(?:模糊|不清|重影)
(?:酸|臭|霉|馊|焦|哈喇|怪|异|刺鼻的?)味 (?:很|好|特别|有点)冲的?味 味道[^,;!?。]{0,3}(?:怪|冲|奇怪|不一样|变了) 怪怪的?味
裂纹 裂痕 (?:拧|打|按|推|挤|倒)不(?:开|动|出来|下去) (?:无法|不能)(?:正常)?(?:出药|给药|喷出|按压|注射) 出药不畅 不出药 喷不出 粘住 (?:印|字|有效期|批号|日期)[^,;!?。]{0,4}(?:看不清|模糊|不清) 纤维(?!化) 丝状物 毛絮 漂浮物 悬浮物 不溶物 颗粒物 (?:没有|缺|少了?|找不到)说明书 浑的 发浑 变浑 受潮 (?<!腿|脚|手|身)发软 潮解 变软 粘手 破的 裂的 颜色[^,;!?。]{0,3}(?:变|深|浅|不一样|不同) (?:糖浆|药水|溶液|液体|药液|注射液|混悬液|口服液)[^,;!?。]{0,4}(?:变深|变浅|变稠|变稀|变色|分层)
"""

_EN_QUALITY = r"""
discolou?r\w* chang\w*_colou?r colou?r_change foreign_(?:particle|body|matter|object)s? particles?
leak\w* broken cracked crushed damaged torn clump\w* caked caking mou?ld\w*
missing_(?:tablets?|pills|capsules|leaflet|hologram)
smell\w*_(?:strange|odd|bad|funny|off)
crumbl\w* seal\w*[^.,;!?]{0,40}?(?:open(?:ed)?|broken|missing|torn|damaged) strange_(?:smell|odou?r|taste) counterfeit fake contaminat\w* tamper\w*
(?:odd|strange|funny|weird|bad|sour|musty|rancid|chemical|vinegar\w*)_(?:smell|odou?r|taste) smells?_(?:like_)?(?:vinegar|sour|musty|rancid|weird)
tastes?_(?:odd|strange|funny|different|weird|off) no_hologram hologram_(?:is_)?missing print\w*_(?:is_|was_|looks_)?(?:blurry|blurred|smudged|faded)
looks?_different different_(?:colou?r|shape|size|markings?|imprint|logo) nothing_(?:comes|came)_out (?:won't|doesn't|does_not|didn't)_(?:spray|pump|click|dispense|open) jammed clogged specks? flecks? (?:is|was|got|gets|keeps_getting)_stuck blurry_print empty_(?:pockets?|blisters?|capsules?|slots?|bottle) split_(?:open|at) (?:were|was|are|is|felt|feel|feels|look|looks|looked|arrived|got|gone)_damp damp_(?:tablets|pills|capsules) soggy went_(?:cloudy|darker|brown) darker_than
"""

# Counts and mismatches: a defect when they are about what is in or on the pack (盒里只有57粒, the batch on the box
# and the blister differ), a commercial matter when they set a delivery against its order, invoice or price
# (到货数量与订单不符) — see _commercial.
_ZH_COUNT = r"""
少了?[一两二三四五六七八九十\d]*(?:片|粒|颗|支|袋|瓶|板|贴|管) 数量不对
(?:批号|规格|剂量|含量|数量|片数|粒数|mg|毫克)[^,;!?。]{0,16}(?:不一致|不符|不对|对不上|不一样|唔一样)
(?:只有|才|只剩)(?:[一两二三四五六七八九十\d]+)(?:片|粒|颗|支|袋)
"""

_EN_COUNT = r"""
only_\d+\s*(?:tablets?|pills?|capsules?|inside) (?:doesn't|does_not|don't|do_not)_match mismatch\w*
(?:i_)?counted_(?:only_)?\d+ only_counted (?:tablets?|pills?|capsules?|doses?)_(?:were_|was_|are_|is_)?missing
(?:strength|dose|batch|lot|expiry)\w*_(?:on_\w+_)?(?:differs|different|mismatch\w*|(?:doesn't|does_not|don't)_match)
"""

_ZH_EFFICACY = r"""
无效 一点儿?(?:用|效果|作用)(?:也|都)没有? 没(?:有)?(?:什么)?效果 效果(?:都|也)?没有 不起作用 不管用 没用 不顶用 没作用 不见效 不见好
没(?:有)?(?:任何)?(?:好转|改善|缓解|减轻|变化) 不(?:太|怎么)?(?:管用|起作用|见效|顶用) 无改善 降不下来 没降 控制(?:得)?不好 没控制住 不退 加重 恶化
药效[^,;!?。]{0,4}差 效果[^,;!?。]{0,4}(?:差|不好) 还是(?:一样|很)?(?:痛|疼|咳|高|难受|烧)
没(?:有)?(?:以前|之前|原来|过去)(?:那么|那样)?(?:管用|好用|有效|灵) 压不住 控制(?:不|唔)(?:住|到) 止不住 退不下 降不下 不达标 没达标 (?:还|仍然?)没好 没好(?!意思|气|处|好)
一点(?:也|都)?没(?:下来|降|退|变|消|减|好|效|用|少|轻|改善|缓解) 没(?:下来|退|消) 跟没(?:吃|用)一样 等于没(?:吃|用) (?:还是|仍然?|依然|照样)(?:有|一样|老样子|没)
(?:冇|没)(?:有)?(?:什么)?效(?!果|率) 白(?:吃|喝|用|花钱)了? (?:都|仲|还)(?:系|是)咁 冇(?:用|改善|好转|变化) 唔(?:见效|见好|管用|work) 复发 又犯了 又发作
"""

_EN_EFFICACY = r"""
(?:didn't|did_not|doesn't|does_not|isn't|is_not|not|stopped)_work\w* no_effect not_effective
ineffective less_effective (?:didn't|did_not)_respond no_improvement not_improv\w* (?:didn't|did_not)_help
still_in_(?:a_lot_of_)?pain useless (?:does|did|do)_nothing worse worsen\w* no_better
(?:done|doing)_(?:absolutely_)?nothing (?:hasn't|has_not|haven't|have_not|hadn't|won't|wouldn't)_(?:cleared|cleared_up|helped|worked|improved|gone|budged|shifted)
treatment_failure therapeutic_failure made_no_difference no_difference_(?:at_all|whatsoever) (?:hasn't|has_not|haven't|have_not|didn't|did_not|doesn't|does_not|isn't|not)_(?:made_|making_|make_)?(?:any_|much_|a_|the_slightest_)?difference wear\w*_off (?:doesn't|does_not|don't|do_not)_(?:seem_to_)?last viral_load_(?:is_)?(?:rising|up|detectable|increas\w*) despite_(?:taking|treatment|the_maximum|maximum|full|adherence|being_on) (?:sub|non)-?therapeutic no_longer_work\w* not_working(?:_anymore)? not_as_(?:good|effective)
still_(?:above|high|elevated|uncontrolled|the_same|having|coughing|sick|ill|unwell|itch\w*|wheez\w*|hurt\w*|infected|positive|symptomatic|in_pain) (?:don't|doesn't|didn't|not)_(?:even_)?touch_(?:the|my|his|her) (?:has|have|had)_come_back came_back_(?:again|after|within|despite|even) relaps\w* breakthrough
"""

# Spans that look like a term but are not one: listed first, so at the same position they win and hide it.
_NOT_TERMS = r"""
不适合 适不适 膳食纤维 过敏史 过敏体质 过敏性鼻炎 过敏的人 过敏人群 过敏患者 过敏者 肿瘤 住院部 住院期间 住院患者 住院病人 急诊科 (?:烦|累|气|急|热|冷|忙|笑|饿|困|吓|闷|懒|想)死了 (?:超说明书|说明书外|超适应症)[^,;!?。]{0,4}(?:宣传|推广|用法宣传)
漏了?(?:[一两二三四五六七八九十几\d]+)(?:次|顿|天|剂|回|日|餐) (?:拿|发|配|送|装)错了?(?:货|箱|件)
"""
_EN_NOT_TERMS = r"""
restless_legs? off-?label_(?:promot\w*|claims?|marketing) counterfeit-proof anti-counterfeit\w* history_of_(?:drug_)?allerg\w* allergy_(?:history|prevention) known_allerg\w* (?:known|documented|listed)_(?:\w+_){0,2}allerg\w*
"""


def _alternation(block: str, english: bool) -> str:
    """One alternation of a lexicon block; `_` in a term stands for any run of white space."""
    terms = sorted(
        (t.replace("_", r"\s+") for t in block.split()), key=len, reverse=True
    )  # 过敏反应 before 过敏
    body = "|".join(terms)
    return rf"(?<![a-z])(?:{body})(?![a-z])" if english else f"(?:{body})"


def _group_end(pattern: str, i: int) -> int:
    """Index of the `)` closing the group opened at `pattern[i]`."""
    depth = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1
        elif c == "[":
            i = pattern.index("]", i + 2)
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(pattern)


def _split_top(body: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 1
        elif c == "[":
            i = body.index("]", i + 2)
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    return [*parts, body[start:]]


def _first_chars(term: str) -> set[str] | None:
    """The characters a match of `term` can start with (None: any, or a form this reader does not know).
    The lexicon has hundreds of terms; a look-ahead on these characters lets the one big alternation skip
    the positions where no term can start, which keeps the screen well above 2,000 texts/s."""
    if not term:
        return None  # an empty remainder can match anything
    if term.startswith(("(?<!", "(?<=", "(?!", "(?=")):
        return _first_chars(term[_group_end(term, 0) + 1 :])
    if term.startswith("(?:") or term.startswith("(?P<"):
        end = _group_end(term, 0)
        body = term[3:end] if term.startswith("(?:") else term[term.index(">") + 1 : end]
        rest = term[end + 1 :]
        firsts: set[str] = set()
        for part in _split_top(body):
            first = _first_chars(part + rest) if not part else _first_chars(part)
            if first is None:
                return None
            firsts |= first
        if rest[:1] in ("?", "*"):
            more = _first_chars(rest[1:].lstrip("?+"))
            return None if more is None else firsts | more
        return firsts
    if term.startswith("\\d"):
        first = set("0123456789")
    elif term[0] in "\\[().^$|*+?{":
        return None
    else:
        first = {term[0]}
    if term[1:2] in ("?", "*"):
        more = _first_chars(term[2:])
        return None if more is None else first | more
    return first


_LEXICONS = (
    ("x", _NOT_TERMS, _EN_NOT_TERMS),
    ("a", _ZH_AR, _EN_AR),
    ("q", _ZH_QUALITY, _EN_QUALITY),
    ("n", _ZH_COUNT, _EN_COUNT),
    ("e", _ZH_EFFICACY, _EN_EFFICACY),
)
_BODY = "|".join(
    f"(?P<{name}>{_alternation(zh, False)}|{_alternation(en, True)})" for name, zh, en in _LEXICONS
)
_STARTS = [_first_chars(t.replace("_", r"\s+")) for _, zh, en in _LEXICONS for t in (zh + en).split()]
_PREFILTER = (
    "(?=[" + "".join(sorted(re.escape(c) for c in set().union(*_STARTS))) + "])"
    if all(s is not None for s in _STARTS)
    else ""
)
TERMS = re.compile(_PREFILTER + f"(?:{_BODY})")
_KIND = {"a": ADVERSE_REACTION, "q": QUALITY, "n": QUALITY, "e": LACK_OF_EFFICACY}

# --- context ---------------------------------------------------------------------------------------------

CLAUSE_END = re.compile(
    r"[，。；！？,.;!?\n]|但是|但|不过|然而|可是|\b(?:but|however|although|though|whereas)\b"
)
SENTENCE_END = re.compile(r"[。！？.!?\n]")

# Negators that reach up to ~10 characters forward in their clause, unless a turn (就/才/却…) intervenes.
_NEG_ZH_WINDOW = re.compile(
    r"(?:没有|没出现|没发生|没发现|没什么|没啥|没见|没感觉|没觉得|没再|并无|并未|从未|从没|不曾|毫无|均无|均未|未见|未出现|"
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
    r"^\s*(?:is|are|was|were|does|do|did|can|could|will|would|should|has|have)\b|吗|呢|会不会|是不是|会|能不能|能否|可不可以|可以|是否|有没有|有什么|什么|哪些|怎么|如何|为什么|多大|请问|想问|想了解|"
    r"\b(?:did (?:you|they|it)|have you|has it|what|which|does|do|can|could|will|would|should|is it|are there|were there|any|how|whether|may|might)\b"
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
    r"(?:可能|(?<!都)会|容易|易)(?:会)?(?:引起|导致|造成|出现)|(?<![a-z])(?:may|might|can|could) (?:cause|lead to|trigger)|"
    r"(?<![a-z])(?:treat\w*|reliev\w*|help with|prevent\w*|anti-?|(?:worried|afraid|scared|concerned|nervous) "
    r"(?:about|of)(?: getting| having| developing)?(?: an?)?))\s*$"
)
# Immediately after a term, these make it the name of a medicine or a state without it: 过敏药, "seizure-free"
# (but 喂错药 is an error, not a medicine).
_INDICATION_AFTER = re.compile(r"(?<!错)药|-free\b")
# Quality and efficacy words about a website, an app or a coupon are not about the product.
_NOT_THE_PRODUCT = re.compile(
    r"网站|网页|页面|链接|app|登录|验证码|优惠券|系统|二维码|\b(?:website|link|login|app|code|coupon|portal|checkout|"
    r"password|email|printer|computer|laptop|phone|scanner)\b|打印机|电脑|手机"
)

# A count or a mismatch (the "n" lexicon) set against an order, a delivery, an invoice or a price is a commercial
# matter for the desk and the warehouse (到货数量与订单不符, "the invoice doesn't match the PO") — unless the
# sentence also names what is in or on the pack (盒里只有57粒, a batch number, a strength, tablets), which keeps
# every count of a pack's contents and every mix-up of its labelling a defect.
_COMMERCIAL = re.compile(
    r"订单|订货|订购|下单|采购|到货|收货|收到|实收|发货|送货|配送|物流|快递|运单|随货|货单|出库|入库|签收|装箱单|清单|"
    r"发票|开票|票据|价格|价钱|单价|报价|中标价|合同|货款|付款|对账|账单|金额|折扣|返利|件数|箱数|整箱|短装|少发|漏发|"
    r"多发|错发|发错|\b(?:orders?|ordered|purchase order|po|invoic\w*|bill(?:ed|ing)?|price[sd]?|pricing|quot(?:e|ed|"
    r"ation)|deliver\w*|shipment|shipped|shipping|dispatch\w*|courier|consignment|tracking|pallets?|received|receipt|"
    r"goods|packing (?:list|slip)|statement|credit note|discount|rebate)\b"
)
_IN_PACK = re.compile(
    r"片|粒|颗|丸|胶囊|支(?!付|持|票)|(?<!快递)袋|贴|(?<!老)板|泡|盒里|盒内|盒子里|每盒|一盒|这盒|那盒|瓶里|瓶内|每瓶|这瓶|"
    r"打开|拆开|开盒|开瓶|倒出|说明书|标签|铝箔|包装(?:上|里|内)|批号|规格|剂量|含量|有效期|mg|毫克|微克|ml|"
    r"\b(?:tablets?|pills?|capsules?|caplets?|vials?|ampoules?|sachets?|patch(?:es)?|blisters?|strips?|pockets?|"
    r"leaflet|label\w*|batch|lot|strength|doses?|expiry|mcg|inside|opened|per (?:box|pack|bottle)|in (?:the|each|a|"
    r"one) (?:box|pack|bottle|carton))\b"
)
# Damage to the shipping box, with the message saying the medicine inside is unharmed (外箱破损，里面的药没事),
# is the carrier's matter; damage to the shipping box alone may have reached the product and stays a signal.
_SHIPPING_BOX = re.compile(
    r"外箱|纸箱|快递箱|快递盒|快递袋|包裹|运输箱|周转箱|外包装箱|"
    r"\b(?:outer (?:box|carton|case)|shipping (?:box|carton|case)|parcel|shipper|transit (?:box|case)|cardboard box)\b"
)
_GOODS_INTACT = re.compile(
    r"(?:药|产品|货|里面|内包装)[^,;!?。]{0,6}(?:没事|完好|无损|没有?(?:损坏|破损|坏|问题|影响)|好好的)|完好无损|"
    r"\b(?:contents?|medicines?|medication|products?|tablets|goods|packs|boxes|inside)\b[^,.;!?]{0,30}"
    r"\b(?:intact|fine|undamaged|not damaged|ok|okay|unaffected|in (?:good|perfect) condition)\b"
)


def _commercial(kind_group: str, sentence: str, clause: str, norm: str) -> bool:
    """Whether a quality word is about the order, the delivery or the shipping box rather than the product."""
    if kind_group == "n":
        return bool(_COMMERCIAL.search(sentence)) and not _IN_PACK.search(sentence)
    return bool(_SHIPPING_BOX.search(clause)) and bool(_GOODS_INTACT.search(norm))


# Whether the message is about someone who has not taken the drug (yet): symptoms of the illness before any
# treatment (还没吃药, "haven't given him anything yet"), an allergy history or a symptom asked about before use
# (我对青霉素过敏，能不能用…？ "does this contain sulfonamides?"), a rumour, a leaflet or a literature or training
# request. Then a symptom word names the illness or the topic, not a reaction — unless the message also says
# the drug was taken (吃了以后…, "after taking"), which keeps every report that merely also asks something.
_NOT_YET = re.compile(
    r"(?:还|尚|仍)(?:没|未)(?:有)?(?:吃|用|服|喂|喝|开始|给|打|涂)|没(?:吃|用|服)药|未(?:用|服)药|"
    r"(?:下周|下个月|明天|过几天|准备|打算|马上要?)(?:开始)?(?:吃|用|服)|"
    r"\b(?:before (?:starting|i start|i take|taking|using|we start|giving)|(?:haven't|have not|hasn't|has not) "
    r"(?:given|taken|started|used|tried)|not (?:yet )?(?:started|taken)|yet to (?:start|take)|asking before)\b"
)
_BEFORE_USE = re.compile(
    r"能不能(?:吃|用|服|喝|给|喂|打)|能(?:吃|用|服|喝|给|喂|打)[^,;!?。]{0,8}(?:吗|么|\?)|可不可以(?:吃|用|服|喂)|可以(?:吃|用|服|喂|给)[^,;!?。]{0,8}(?:吗|么|\?)|适不适合|"
    r"适合[^,;!?。]{0,8}(?:吗|么|\?)|怎么样|怎么(?:吃|用|喂|服)|(?:吃|用)吗|有没有[^,;!?。]{0,8}成分|含不含|"
    r"文献|文章|科普|培训|讲座|讲解|课件|综述|网上说|听说|据说|说明书上?(?:写|说)的|"
    r"\b(?:suitable|can (?:i|she|he|we|my \w+) (?:take|use|have|give)|is it safe|(?:does|do) (?:this|it|they|these|the) "
    r"(?:\w+ )?contain|will (?:this|it) (?:\w+ )?help|how much|literature|article|paper|training|webinar|"
    r"lecture|i read|leaflet says|is (?:it|this|that) safe|safe for|(?:is|are|was|were) why|recommend\w*)\b|"
    r"里面有[^,;!?。]{0,8}(?:吗|么)|几次|几片|几粒|多少|用量|用法|\b(?:dose|dosage|how often|how many|alternative)\b|含有?[^,;!?。]{0,8}(?:吗|么)|成分|想买|哪种|推荐"
)
_EXPOSED = re.compile(
    r"(?:吃|服|用|喝|喂|食|打|输|注射|涂|擦|贴|喷|滴|换)(?:了|完|过|咗)(?!会|再|才)|(?:用|服|吃)药(?:以|之)?后|"
    r"\b(?:after (?:taking|starting|using|the|his|her|my|each|every)|since (?:taking|starting|using)|took|been "
    r"(?:taking|on|using)|on (?:it|this|these|them)|started (?:on|taking|using)|was given|administered|developed|"
    r"since (?:the|his|her|my)|got worse|keeps?)\b|出现|起了|发生了|之后|以后|后来|越来越|突然|昨天|今天|刚才|"
    r"错|误(?:服|食|用|喝|吞|吃)|过量|\b(?:gave|given|ate|swallowed|ingested|instead of|wrong|by mistake|accidental\w*|overdos\w*)\b|"
    # a dose missed by someone on the drug, and what followed: "missed a dose and had a seizure"
    r"\b(?:missed|skipped|forgot)\b[^.?!]{0,60}\band (?:then |now )?(?:had|has|got|developed|started|went|became)\b"
)


# The exposure frame: whatever a customer says changed after taking the drug ("吃了药以后嘴歪了", "since
# starting it I've had pins and needles") is a possible reaction even when no lexicon word names it — the
# lexicon can never list every way people describe a symptom. Positive or negated follow-ups are not.
_FRAME_ZH = re.compile(
    r"(?:吃|服|用|喝|打(?!开|算|电话|折)|输|注射|喷|滴|涂|擦|贴|换)(?:了|完|过)?"
    r"(?:[^,;!?。]{0,12}?(?:以后|之后|后|就)|(?:了)?第?(?:[一两二三四五六七八九十几半]|\d+)(?:个)?(?:天|周|星期|礼拜|月)"
    r"[^,;!?。]{0,8}?)"
    r"[,，\s]*"
)
_FRAME_EN = re.compile(
    r"\b(?:ever since|(?:after|since) (?:taking|starting|using|switching|being (?:given|put on)|"
    r"(?:i|he|she|we|they) (?:started|switched|began|took|was given|were given)|(?:the|each|every|my|his|her) (?:first |second |last |new )?(?:dose|injection|infusion|"
    r"prescription|switch|tablets?|pills?|inhaler|capsules?|medicine|medication|drug|treatment))|"
    r"on (?:it|them|these|this|the new \w+)(?: (?:for|so far))?)\b"
)
_POSITIVE = re.compile(
    r"很好|挺好|好了|好多了|好些|变好|正常|平稳|稳定|改善|好转|缓解|消失|没事|不错|满意|有效|管用|退了|谢谢|感谢|"
    r"不再?(?:头?晕|疼|痛|痒|咳嗽?|吐|发?烧|发热|拉肚子|拉|喘|难受|肿|抽)了|没(?:之前|以前|原来)?那么(?:疼|痛|痒|晕|难受|咳|喘)|"
    r"看看|试试|观察|"
    r"\b(?:well|better|fine|great|good|improv\w*|working|helped|no problems?|thanks?)\b"
)
_MISSED = re.compile(r"(?:漏|忘(?:记|掉)?了?)$")
_FOLLOW_UP_QUESTION = re.compile(
    r"要|需要|能|可以|应该|该|多久|怎么|如何|补|\b(?:should|can|could|how long|do i)\b"
)
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
        # after a missed dose (漏服后…, 忘了吃…) what to do next is a dosing question, asked or not (咨询漏服后如何补服);
        # what happened next (漏服三天后又开始咳嗽) is still told
        missed = bool(m and _MISSED.search(sentence, 0, m.start()))
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
                if (question or missed) and _FOLLOW_UP_QUESTION.search(content):
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
    unexposed = bool(
        matches and (_NOT_YET.search(norm) or (_BEFORE_USE.search(norm) and not _EXPOSED.search(norm)))
    )
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
        if _NOT_A_REACTION_BEFORE.search(before) or (kind == ADVERSE_REACTION and unexposed):
            continue
        if kind == ADVERSE_REACTION and _INDICATION_AFTER.match(norm, end):  # 过敏药, "seizure-free"
            continue
        if kind != ADVERSE_REACTION and _NOT_THE_PRODUCT.search(norm, c_start, c_end):
            continue
        si = bisect_right(sentence_bounds, start) - 1
        sentence = norm[sentence_bounds[si] : sentence_bounds[si + 1]]
        if _asks_for_information(sentence, norm[c_start:c_end]):
            continue
        if kind == QUALITY and _commercial(m.lastgroup, sentence, norm[c_start:c_end], norm):
            continue
        kinds.add(kind)
        written = _span(text, source, start, end)
        if written not in terms:
            terms.append(written)
    if QUALITY not in kinds:
        mismatch = _strength_mismatch(norm)
        if mismatch:
            kinds.add(QUALITY)
            terms.append(_span(text, source, *mismatch))
    if not kinds and not matches:  # nothing named (or everything negated is also a "no"): try the frame
        complaint = _frame(norm, text, source)
        if complaint:
            kinds.add(ADVERSE_REACTION)
            terms.append(complaint)
    if not kinds:
        return NOTHING
    return Result(True, next(k for k in PRIORITY if k in kinds), terms)


# Two different strengths of one unit, set against each other (外盒印的是5mg，说明书上写的是10mg; "the carton
# says 50 mg but the strip 25 mg"), in a message about the pack: a labelling mix-up whatever the words around it.
_STRENGTH = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(mg|mcg|µg|μg|ug|iu|毫克|微克)(?![a-z])")
_PACK = re.compile(
    r"盒|铝箔|药板|板上|说明书|标签|瓶|包装|\b(?:carton|box|strip|blister|label|bottle|pack|packaging|foil|leaflet|vial)\b"
)
_CONTRAST = re.compile(r"[,，;；]|但|却|而|可是|\b(?:but|whereas|while|though|yet)\b")


def _strength_mismatch(norm: str) -> tuple[int, int] | None:
    """The span of the second strength when a text sets two different strengths of a pack against each other."""
    if not _PACK.search(norm):
        return None
    seen: dict[str, re.Match] = {}
    for m in _STRENGTH.finditer(norm):
        first = seen.setdefault(m.group(2), m)
        if float(first.group(1)) != float(m.group(1)) and _CONTRAST.search(norm, first.end(), m.start()):
            sentence_start = max(norm.rfind(c, 0, m.start()) for c in "。!?.\n") + 1
            sentence = norm[sentence_start : SENTENCE_END.search(norm + "\n", m.end()).end()]
            if not (_QUESTION.search(sentence) and _INQUIRY.search(sentence) and not _EVENT.search(sentence)):
                return m.start(), m.end()
    return None


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
    if not _QUESTION.search(sentence):
        return False
    if _HYPOTHETICAL.search(clause):  # "if she gets diarrhoea on this, should we stop it?"
        return True
    return bool(_INQUIRY.search(clause)) and not _EVENT.search(clause)


def _original_span(text: str, start: int, end: int) -> str:
    """Map a span of the normalised text back to the original when NFKC changed lengths (㎎ → mg)."""
    offsets = []
    for i, ch in enumerate(text):
        offsets.extend([i] * len(normalise(ch)))
    offsets.append(len(text))
    return text[offsets[start] : offsets[min(end, len(offsets) - 1) - 1] + 1] if end > start else ""
