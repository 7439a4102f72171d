"""Demo market information for `pharmacrm demo`: six competitor companies, fifteen of their products set against the
demo catalogue's, their presence at the key accounts and some hospitals (two observations for some, so that the
history shows), and twenty intelligence items. Cheap: everything in bulk with a few queries, the audit entries with
record_many. Deterministic; loaded once (marker `demo:market`)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry, Counter, User

from .models import Competitor, CompetitorProduct, Intelligence, Presence

MARKER = "demo:market"
SEED = 4701
COMPANIES = [
    ("华海药业", "仿制药龙头，集采中标品种多"), ("齐鲁制药", "注射剂与抗感染产品线强"), ("石药集团", "心脑血管与抗肿瘤"),
    ("扬子江药业", "中成药与化药并重，医院渠道覆盖广"), ("辉瑞（中国）", "原研药企业，部分品种专利到期"),
    ("以岭药业", "中成药，心血管与呼吸领域"),
]  # fmt: skip
# (company index, our generic name it competes with, generic, brand, dosage form, strength, VBP, batch, price)
PRODUCTS = [
    (0, "盐酸氨氯地平片", "苯磺酸氨氯地平片", "华络平", "片剂", "5mg×28片", "selected", "第四批", "4.20"),
    (4, "盐酸氨氯地平片", "苯磺酸氨氯地平片", "络活喜", "片剂", "5mg×7片", "not_selected", "第一批", "32.50"),
    (2, "盐酸氨氯地平片", "马来酸左旋氨氯地平片", "玄宁", "片剂", "2.5mg×14片", "none", "", "18.60"),
    (1, "阿莫西林胶囊", "阿莫西林胶囊", "齐鲁安莫", "胶囊剂", "0.25g×24粒", "selected", "第三批", "3.80"),
    (3, "阿莫西林胶囊", "阿莫西林克拉维酸钾片", "扬克", "片剂", "0.375g×12片", "selected", "第五批", "9.90"),
    (0, "盐酸二甲双胍缓释片", "盐酸二甲双胍缓释片", "华格平", "缓释片", "0.5g×30片", "selected", "第二批", "6.50"),
    (4, "盐酸二甲双胍缓释片", "盐酸二甲双胍片", "格华止", "片剂", "0.5g×20片", "not_selected", "第一批", "24.00"),
    (5, "复方板蓝根颗粒", "连花清瘟颗粒", "连花清瘟", "颗粒剂", "6g×10袋", "none", "", "22.80"),
    (3, "复方板蓝根颗粒", "蓝芩口服液", "蓝芩", "口服液", "10ml×12支", "none", "", "35.00"),
    (5, "丹参滴丸", "通心络胶囊", "通心络", "胶囊剂", "0.26g×30粒", "none", "", "48.00"),
    (2, "丹参滴丸", "丹参酮ⅡA磺酸钠注射液", "诺新康", "注射剂", "2ml:10mg×5支", "none", "", "56.00"),
    (1, "多烯磷脂酰胆碱注射液", "多烯磷脂酰胆碱注射液", "齐鲁易善", "注射剂", "5ml:232.5mg×5支", "selected", "第七批",
     "45.00"),
    (3, "多烯磷脂酰胆碱注射液", "异甘草酸镁注射液", "天晴甘美", "注射剂", "10ml:50mg×1支", "none", "", "38.50"),
    (1, "右美沙芬愈创甘油醚糖浆", "氢溴酸右美沙芬糖浆", "齐鲁咳宁", "糖浆剂", "100ml", "none", "", "12.80"),
    (2, "重组人干扰素α2b注射液", "重组人干扰素α1b注射液", "石药赛若金", "注射剂", "10μg×1支", "none", "", "66.00"),
]  # fmt: skip
NATIONAL = [
    ("policy", "important", "第十批国家组织药品集中采购结果公布",
     "第十批国家集采共纳入62个品种，平均降价约70%。我司氨氯地平片未中选，竞品华络平以每片0.15元中选，预计明年4月在各省落地执行，"
     "中选产品将获得约定采购量，未中选产品在公立医院的份额将明显下降。", "http://www.smpaa.cn/", [0], ["盐酸氨氯地平片"]),
    ("policy", "important", "2026年国家医保药品目录调整结果发布",
     "新版医保目录新增药品91种，连花清瘟颗粒续约成功，支付标准下调12%。我司复方板蓝根颗粒仍在乙类目录内。", "国家医保局官网",
     [7], ["复方板蓝根颗粒"]),
    ("competitor", "normal", "石药集团发布心脑血管产品线学术推广计划",
     "石药集团宣布2027年将在全国300家三级医院开展玄宁学术推广，覆盖心内科和神经内科，计划新增代表200人。", "医药经济报",
     [2], ["盐酸氨氯地平片"]),
    ("price", "important", "辉瑞络活喜主动降价18%",
     "辉瑞（中国）宣布络活喜5mg×7片挂网价由39.6元降至32.5元，以应对集采后原研药份额下滑。", "各省药品集中采购平台",
     [1], ["盐酸氨氯地平片"]),
    ("news", "normal", "2026年中国医药工业百强榜发布", "扬子江药业、齐鲁制药、石药集团位列前五，华海药业进入前二十。",
     "中国医药工业信息中心", [], []),
    ("tender", "normal", "第七批集采续约：多烯磷脂酰胆碱注射液",
     "第七批集采多烯磷脂酰胆碱注射液协议期满续约，齐鲁易善继续中选，续约价45元/5支，较原中选价上调3%。", "联采办公告",
     [11], ["多烯磷脂酰胆碱注射液"]),
    ("competitor", "normal", "以岭药业通心络新增适应症获批", "通心络胶囊获批新增"
     "“冠心病心绞痛（气虚血瘀证）”二级预防适应症，预计在心内科加大推广。", "国家药监局", [9], ["丹参滴丸"]),
    ("policy", "normal", "国家卫健委发布《抗菌药物临床应用管理评价指标》修订版",
     "门诊抗菌药物处方比例要求进一步降低，基层医疗机构阿莫西林类用量预计下降5%–10%。", "国家卫健委", [3, 4],
     ["阿莫西林胶囊"]),
]  # fmt: skip
PROVINCIAL = [
    ("policy", "important", "{p}全面推行DRG/DIP支付方式改革",
     "自明年1月起，{p}所有二级以上公立医院全面实行DRG付费，医院将优先使用集采中选药品以控制病组成本。", "{p}医疗保障局"),
    ("tender", "important", "{p}第十批集采中选结果落地执行",
     "{p}公立医疗机构自下月起执行第十批集采中选结果，约定采购量按上年用量的70%确定。", "{p}药品集中采购平台"),
    ("price", "normal", "{p}挂网药品价格治理：同通用名价差超过5倍须说明",
     "{p}医保局要求同通用名同剂型药品挂网价差超过5倍的企业于30日内说明理由或调价。", "{p}医疗保障局"),
    ("competitor", "normal", "齐鲁制药在{p}召开学术推广会",
     "齐鲁制药在{p}省会召开抗感染合理用药学术会，邀请二级以上医院药剂科主任参加，现场推介齐鲁安莫。", "拜访反馈"),
    ("news", "normal", "{p}医药流通企业整合加速", "{p}两家大型医药商业公司完成合并，区域配送格局变化，影响基层终端供货。",
     "{p}商务厅"),
    ("policy", "normal", "{p}医保门诊慢特病用药目录扩容", "高血压、糖尿病门诊用药纳入慢病报销，二甲双胍、氨氯地平类用量预计增长。",
     "{p}医疗保障局"),
]  # fmt: skip


def load(seed: int = SEED) -> int:
    """Returns how many observations it made (0 when the demo market is there already or the demo lacks users)."""
    from pharmacrm.customers.models import Institution
    from pharmacrm.keyaccounts.models import KeyAccount
    from pharmacrm.servicedesk.models import Product

    if Counter.objects.filter(name=MARKER).exists():
        return 0
    users = {u.username: u for u in User.objects.filter(username__in=["analyst", "manager", "kam", "rep"])}
    if not {"manager", "kam", "rep"} <= set(users):
        return 0
    analyst = users.get("analyst") or users["manager"]
    rng = random.Random(seed)
    today = timezone.localdate()
    ours = {p.generic_name: p for p in Product.objects.order_by("id")}
    keys = set(KeyAccount.objects.filter(status="active").values_list("institution_id", flat=True))
    hospitals = list(Institution.objects.active().filter(kind="hospital").order_by("id")
                     .values_list("id", "owner_id", "province"))  # fmt: skip
    # the key accounts, the rep's and key-account manager's hospitals, then some others: a dozen or so at the test
    # suite's scale, about sixty at full size
    mine = {users["rep"].pk, users["kam"].pk}
    ranked = sorted(hospitals, key=lambda h: (h[0] not in keys, h[1] not in mine, h[0]))
    chosen = ranked[: max(8, min(60, len(ranked) // 3))]
    with transaction.atomic():
        companies = [Competitor(name=n, notes=note) for n, note in COMPANIES]
        Competitor.objects.bulk_create(companies)
        companies = list(Competitor.objects.filter(name__in=[n for n, _ in COMPANIES]).order_by("id"))
        by_name = {c.name: c for c in companies}
        products = [CompetitorProduct(company=by_name[COMPANIES[c][0]], generic_name=g, brand_name=b, dosage_form=f,
                                      strength=s, vbp_status=v, vbp_batch=batch, reference_price=Decimal(price))
                    for c, _o, g, b, f, s, v, batch, price in PRODUCTS]  # fmt: skip
        CompetitorProduct.objects.bulk_create(products)
        products = list(CompetitorProduct.objects.filter(company__in=companies).order_by("id"))
        links = [CompetitorProduct.our_products.through(competitorproduct_id=p.pk, product_id=ours[spec[1]].pk)
                 for p, spec in zip(products, PRODUCTS, strict=True) if spec[1] in ours]  # fmt: skip
        CompetitorProduct.our_products.through.objects.bulk_create(links)
        rows = []
        recorders = [users["rep"], users["kam"], analyst]
        for i, (pk, _owner, _province) in enumerate(chosen):
            for product in rng.sample(products, 2 if i % 3 else 3):
                when = today - dt.timedelta(days=rng.randint(5, 300))
                volume = rng.choice([200, 500, 800, 1200, 2000, 3000])
                if i % 2 == 0:  # an earlier observation: the history behind the current one
                    rows.append(Presence(institution_id=pk, product=product, monthly_volume=volume // 2,
                                         observed_on=when - dt.timedelta(days=rng.randint(90, 300)), source="visit",
                                         note="首次发现该竞品进院", recorded_by=recorders[i % 3]))  # fmt: skip
                rows.append(Presence(institution_id=pk, product=product, monthly_volume=volume,
                                     share=Decimal(rng.randint(10, 60)) if i % 4 == 1 else None, observed_on=when,
                                     source=rng.choice(["visit", "tender", "customer", "third_party"]),
                                     note=rng.choice(["药剂科主任口述", "招标结果公示", "第三方数据（米内网）", "科室拜访观察"]),
                                     recorded_by=recorders[i % 3]))  # fmt: skip
        Presence.objects.bulk_create(rows)
        items, relations = [], []
        for kind, importance, title, content, source, comp, our in NATIONAL:
            items.append(Intelligence(kind=kind, importance=importance, title=title, content=content, source=source,
                                      happened_on=today - dt.timedelta(days=rng.randint(3, 200)), created_by=analyst))
            relations.append(([products[c] for c in comp], [ours[g] for g in our if g in ours], []))
        provinces = []
        for _pk, _owner, province in chosen:
            if province and province not in provinces:
                provinces.append(province)
        from pharmacrm.customers.forms import region_children

        names = dict(region_children(""))
        for j in range(12):
            province = provinces[j % len(provinces)] if provinces else ""
            kind, importance, title, content, source = PROVINCIAL[j % len(PROVINCIAL)]
            name = names.get(province, "全国")
            at = [pk for pk, _o, p in chosen if p == province][:2]
            by = users["rep"] if j % 4 == 3 else analyst
            items.append(Intelligence(kind=kind, importance=importance, title=title.format(p=name),
                                      content=content.format(p=name), source=source.format(p=name), province=province,
                                      happened_on=today - dt.timedelta(days=rng.randint(1, 330)), created_by=by))  # fmt: skip
            relations.append(([products[(j * 2) % len(products)]], [], at if by == analyst else at[:1]))
        Intelligence.objects.bulk_create(items)
        items = list(Intelligence.objects.order_by("id"))[-len(items):]
        cp, op, cu = [], [], []
        for item, (comp, our, customers) in zip(items, relations, strict=True):
            cp += [Intelligence.competitor_products.through(intelligence_id=item.pk, competitorproduct_id=p.pk)
                   for p in comp]  # fmt: skip
            op += [Intelligence.our_products.through(intelligence_id=item.pk, product_id=p.pk) for p in our]
            cu += [Intelligence.customers.through(intelligence_id=item.pk, institution_id=c) for c in customers]
        Intelligence.competitor_products.through.objects.bulk_create(cp)
        Intelligence.our_products.through.objects.bulk_create(op)
        Intelligence.customers.through.objects.bulk_create(cu)
        A = AuditEntry.Action
        audit.record_many(A.CREATE, [(c, {"name": [None, c.name]}) for c in companies], user=analyst)
        audit.record_many(A.CREATE, [(p, {"generic_name": [None, p.generic_name], "company": [None, p.company_id]})
                                     for p in products], user=analyst)  # fmt: skip
        audit.record_many(A.CREATE, [(i, {"title": [None, i.title], "kind": [None, i.kind]}) for i in items],
                          user=analyst)  # fmt: skip
        presence = list(Presence.objects.filter(product__in=products))
        audit.record_many(A.CREATE, [(p, {"product": [None, p.product_id], "institution": [None, p.institution_id],
                                          "observed_on": [None, p.observed_on]}) for p in presence],
                          actor_name="demo")  # fmt: skip
        Counter.objects.create(name=MARKER, value=len(presence))
    return len(presence)
