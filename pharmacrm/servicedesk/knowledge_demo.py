"""Demo knowledge: a small fictional product catalogue and answer templates (the approval numbers have the
right form — 国药准字 + letter + year + serial — but belong to no real product). Idempotent: running it
again changes nothing that exists."""

from __future__ import annotations

from django.db import transaction

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry

from .models import AnswerTemplate, Product, TicketCategory

PRODUCTS = [
    {
        "brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "approval_number": "国药准字H20249871",
        "dosage_form": "片剂", "strength": "5mg×28片",
        "indications": "高血压；慢性稳定性心绞痛。",
        "contraindications": "对二氢吡啶类药物过敏者禁用；严重低血压者禁用。",
        "usage": "口服。成人初始剂量一次5mg，一日一次；最大剂量一日10mg。",
    },
    {
        "brand_name": "畅舒", "generic_name": "阿莫西林胶囊", "approval_number": "国药准字H20243302",
        "dosage_form": "胶囊剂", "strength": "0.25g×24粒",
        "indications": "敏感菌所致的呼吸道、泌尿生殖道、皮肤软组织感染。",
        "contraindications": "青霉素过敏及青霉素皮肤试验阳性患者禁用。",
        "usage": "口服。成人一次0.5g，每6～8小时一次，一日剂量不超过4g。",
    },
    {
        "brand_name": "糖平", "generic_name": "盐酸二甲双胍缓释片", "approval_number": "国药准字H20250418",
        "dosage_form": "缓释片", "strength": "0.5g×30片",
        "indications": "单纯饮食控制及体育锻炼治疗无效的2型糖尿病。",
        "contraindications": "严重肾功能不全（eGFR<30）；糖尿病酮症酸中毒；需要碘造影检查前后48小时内暂停使用。",
        "usage": "口服，随晚餐服用，整片吞服，不得掰开或嚼碎。起始剂量一次0.5g，一日一次。",
    },
    {
        "brand_name": "清咽宝", "generic_name": "复方板蓝根颗粒", "approval_number": "国药准字Z20243517",
        "dosage_form": "颗粒剂", "strength": "15g×20袋",
        "indications": "清热解毒，凉血利咽。用于风热感冒，咽喉肿痛。",
        "contraindications": "忌烟、酒及辛辣、生冷、油腻食物。脾胃虚寒者慎用。",
        "usage": "开水冲服。一次15g，一日3次。",
    },
    {
        "brand_name": "舒心通", "generic_name": "丹参滴丸", "approval_number": "国药准字Z20250096",
        "dosage_form": "滴丸剂", "strength": "27mg×180丸",
        "indications": "活血化瘀，理气止痛。用于气滞血瘀所致的胸痹。",
        "contraindications": "孕妇慎用。",
        "usage": "口服或舌下含服。一次10丸，一日3次。",
    },
    {
        "brand_name": "护肝康", "generic_name": "多烯磷脂酰胆碱注射液", "approval_number": "国药准字H20244820",
        "dosage_form": "注射剂", "strength": "5ml:232.5mg×5支",
        "indications": "各种类型的肝病，如肝炎、慢性肝炎、肝坏死、肝硬化。",
        "contraindications": "对本品成分过敏者禁用；新生儿和早产儿禁用（含苯甲醇）。",
        "usage": "静脉注射或静脉滴注，只可使用不含电解质的葡萄糖溶液稀释，严禁用电解质溶液稀释。",
    },
    {
        "brand_name": "安疫宁", "generic_name": "重组人干扰素α2b注射液", "approval_number": "国药准字S20240033",
        "dosage_form": "注射剂", "strength": "300万IU/1ml",
        "indications": "慢性乙型肝炎、慢性丙型肝炎；部分肿瘤的辅助治疗。",
        "contraindications": "对干扰素过敏者；严重心脏疾病；严重肝肾功能不全；癫痫及其他中枢神经系统功能紊乱。",
        "usage": "皮下或肌内注射。2～8℃避光冷藏保存，不可冷冻。",
    },
    {
        "brand_name": "宁咳", "generic_name": "右美沙芬愈创甘油醚糖浆", "approval_number": "国药准字H20253164",
        "dosage_form": "糖浆剂", "strength": "100ml",
        "indications": "上呼吸道感染所致的咳嗽、咳痰。",
        "contraindications": "妊娠三个月内妇女禁用；正在服用单胺氧化酶抑制剂的患者禁用。",
        "usage": "口服。成人一次10ml，一日3次，24小时内不超过4次。",
    },
]  # fmt: skip

TEMPLATES = [
    ("确认收到", None, "zh-hans",
     "尊敬的{customer}：\n\n您好！我们已收到您关于“{subject}”的咨询，工单号为 {ticket}。我们将在承诺时限内给您答复。\n\n"
     "如有补充信息，请直接回复本邮件。\n\n客服专员 {agent}"),
    ("用法用量答复", "drug_info", "zh-hans",
     "尊敬的{customer}：\n\n您好！关于{product}的用法用量，请以药品说明书为准：\n\n（在此粘贴说明书“用法用量”部分）\n\n"
     "如用药后出现任何不适，请及时就医，并告知我们（工单号 {ticket}）。\n\n客服专员 {agent}"),
    ("请提供批号和包装照片", None, "zh-hans",
     "尊敬的{customer}：\n\n为尽快核查您反映的问题（工单号 {ticket}），请提供：\n1. 药品批号（外包装上“批号”或“LOT”后的数字）；\n"
     "2. 外包装及药品的清晰照片；\n3. 购买渠道和时间。\n\n您可直接回复本邮件并添加附件。\n\n客服专员 {agent}"),
    ("不良反应登记", "adverse_reaction", "zh-hans",
     "尊敬的{customer}：\n\n感谢您告知使用{product}（批号 {batch}）后出现的情况。我们已登记为药物警戒事件，"
     "药物警戒专员将在规定时限内与您联系，了解详细经过。\n\n如症状加重，请立即停药并就医。\n\n客服专员 {agent}"),
    ("质量投诉处理进展", None, "zh-hans",
     "尊敬的{customer}：\n\n关于您 {received_at} 反映的批号 {batch} 产品质量问题，质量部门已启动调查，"
     "调查结论将在完成后第一时间告知您。\n\n给您带来的不便，敬请谅解。\n\n客服专员 {agent}"),
    ("问题已解决", None, "zh-hans",
     "尊敬的{customer}：\n\n您的工单 {ticket}（{subject}）已处理完毕。稍后您会收到一份满意度回访，"
     "请花一分钟告诉我们您的评价。\n\n祝您健康！\n\n客服专员 {agent}"),
    ("确认收到（英文，境外客户）", None, "en",
     "Dear {customer},\n\nThank you for contacting us about “{subject}”. Your request has the reference {ticket}; "
     "we will answer within the promised time.\n\nKind regards,\n{agent}"),
    ("请提供批号（英文，境外客户）", None, "en",
     "Dear {customer},\n\nTo look into your report ({ticket}) we need the batch number printed on the pack "
     "(after “批号” or “LOT”) and a photo of the pack. Please reply to this e-mail with the details attached.\n\n"
     "Kind regards,\n{agent}"),
]  # fmt: skip


def seed_demo() -> dict[str, int]:
    """Create the demo products and templates that do not exist yet; returns how many were created."""
    created = {"products": 0, "templates": 0}
    with transaction.atomic():
        for data in PRODUCTS:
            product, new = Product.objects.get_or_create(
                approval_number=data["approval_number"], defaults=data
            )
            if new:
                product.full_clean()
                created["products"] += 1
                audit.record(AuditEntry.Action.CREATE, product, changes={"approval_number": [None, product.approval_number]},
                             actor_name="demo")  # fmt: skip
        for name, category_code, language, body in TEMPLATES:
            category = TicketCategory.objects.filter(code=category_code).first() if category_code else None
            tpl, new = AnswerTemplate.objects.get_or_create(
                name=name, defaults={"category": category, "language": language, "body": body}
            )
            if new:
                created["templates"] += 1
                audit.record(AuditEntry.Action.CREATE, tpl, changes={"name": [None, name]}, actor_name="demo")
    return created
