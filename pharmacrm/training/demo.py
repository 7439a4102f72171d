"""Demo training (培训体系): eight courses — a GSP course retaken yearly, a product course with a ten-question test,
complaint handling, communication skills in the classroom (attendance), pharmacovigilance, the CRM, compliant visits
and a draft — assigned to the demo users, some done (rated, one expired and given its refresher), some due, some
overdue. Created by the demo manager through training.py (audited); the history's dates are then moved back."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from pharmacrm.core.models import User

from . import training
from .models import (
    Assignment,
    Attempt,
    Certificate,
    Course,
    Enrolment,
    Presence,
    Rating,
    Session,
    SessionStatus,
    WaitingEntry,
)

STAFF = ["agent", "expert", "support", "aftersales", "rep", "kam", "pv", "analyst", "manager", "admin"]

GSP = """\
? 《药品经营质量管理规范》（GSP）由哪个部门发布？
- 国家卫生健康委员会
* 国家药品监督管理局
- 国家市场监督管理总局

?? 冷藏药品在储运中必须有哪些记录？
* 温度记录
* 验收记录
- 客户生日

? 药品储存温度超出规定范围时，应当立即报告质量管理部门。
* 对
- 错

? 需冷藏（2–8℃）的药品可以在常温下短暂存放数小时后再入库。
- 对
* 错

? GSP记录至少保存多少年，且不少于药品有效期后一年？
- 1年
- 3年
* 5年
"""

PRODUCT = """\
? 本品的储存条件是？
- 常温（10–30℃）
* 2–8℃冷藏，避光
- -20℃冷冻

? 本品的常用规格是？
* 每支2 ml：100 mg
- 每支5 ml：100 mg
- 每片100 mg

?? 本品的禁忌包括哪些？
* 对本品任何成分过敏者
* 严重肝功能不全者
- 高血压患者

? 本品可以与葡萄糖注射液混合静脉滴注。
- 对
* 错

? 客户询问超说明书用法时，客服应当：
- 根据经验给出建议
* 说明仅能按说明书答复，转医学部门
- 拒绝回答并挂断

?? 发生以下哪些情况需要按不良反应/质量投诉流程处理？
* 用药后出现皮疹
* 药液浑浊、有异物
- 客户询问价格

? 本品开封后应在多长时间内使用？
* 立即使用
- 24小时内
- 一周内

? 本品属于处方药。
* 对
- 错

? 本品的批准文号格式为：
* 国药准字H+8位数字
- 国食健字G+8位数字
- 沪卫食准字

? 运输途中冷链断链的产品应当：
- 降价销售
* 隔离存放，报质量部门评估
- 退回客户
"""

COMPLAINTS = """\
? 客户投诉的首次响应时限一般为：
- 72小时
* 24小时
- 一周

?? 处理投诉时需要记录哪些信息？
* 产品名称、批号
* 问题描述与发生时间
- 客服个人意见

? 涉及疑似不良反应的投诉，应当在工单中标记并转交药物警戒。
* 对
- 错

? 客户情绪激动时，第一步应当：
* 倾听并确认客户的诉求
- 解释公司没有责任
- 转给其他同事

? 投诉关闭前无需回访客户。
- 对
* 错
"""

PV = """\
? 严重不良反应应当在获知后多少日内报告？
- 30日
* 15日
- 60日

?? 以下哪些属于药品不良反应报告的基本要素？
* 可识别的患者
* 可疑药品
* 不良事件
- 患者的收入

? 患者死亡病例应当立即报告。
* 对
- 错
"""

CRM = """\
? 在本系统中新建工单的入口是：
* “工单”页的“新建工单”
- “审计”页
- “用户”页

? 查看客户完整手机号需要：
- 任何时候都可以直接查看
* 有相应权限，或说明理由后显示（记录在审计中）

? 导出客户数据会记录在审计日志中。
* 对
- 错
"""

VISITS = """\
? 医药代表拜访医疗机构前应当：
* 按医院规定预约并登记
- 直接进入科室
- 在门诊候诊区等待医生

? 医药代表可以向医生提供与处方量挂钩的回报。
- 对
* 错

?? 合规拜访记录应包括：
* 拜访时间与对象
* 沟通内容
- 医生的家庭住址
"""

COURSES = [  # title, category, mandatory, valid months, questions, roles, description, hours
    ("GSP合规培训（年度复训）", "compliance", True, 12, GSP, ["agent", "expert", "support", "aftersales", "rep", "kam"],
     "《药品经营质量管理规范》要点：储存、运输、温湿度记录与质量追溯。每年须重新考核。", "2"),
    ("新品知识：注射用奥美拉唑钠（示例）", "product", False, None, PRODUCT, ["agent", "expert", "rep", "kam"],
     "适应症、规格、储存、禁忌、配伍与常见咨询的标准答复。", "1.5"),
    ("投诉处理规范", "complaints", True, 24, COMPLAINTS, ["agent", "support", "aftersales"],
     "投诉受理、记录、升级、回访与关闭；疑似不良反应的识别与转交。", "2"),
    ("客户沟通技巧（课堂）", "communication", False, None, "", ["agent", "support", "aftersales"],
     "倾听、确认、共情与电话礼仪；课堂演练，由培训讲师记录出勤。", "3"),
    ("药物警戒与不良反应报告", "compliance", True, 24, PV, ["agent", "expert", "pv", "rep"],
     "《药物警戒质量管理规范》（GVP）要点与个例报告的时限。", "1"),
    ("CRM系统操作入门", "system", False, None, CRM, [], "工单、客户、互动记录与个人信息保护的日常操作。", "1"),
    ("医药代表合规拜访", "compliance", True, 12, VISITS, ["rep", "kam"],
     "《医药代表备案管理办法》与医院的接待规定：预约、登记与禁止的行为。", "1"),
    ("冷链产品储运知识（草稿）", "product", False, None, "", [], "冷藏药品的包装、运输验证与断链处理。", "1"),
]  # fmt: skip

RATINGS = [
    "讲解清楚，案例贴近实际。",
    "题目有难度，建议增加练习。",
    "很实用，已经用在日常接线中。",
    "",
    "时间稍长。",
]


def _right(course: Course, wrong: int = 0) -> dict:
    out = {}
    for i, q in enumerate(course.questions.all()):
        out[str(q.pk)] = (
            list(q.correct) if i >= wrong else [next(j for j in range(len(q.options)) if j not in q.correct)]
        )
    return out


def _back(a: Assignment, days: int) -> None:
    """Move a completion `days` back (its attempts and rating too), its expiry with it."""
    at = timezone.now() - dt.timedelta(days=days)
    Assignment.objects.filter(pk=a.pk).update(
        completed_at=at, expires_on=training.expiry(a.course, at), assigned_at=at - dt.timedelta(days=10),
        due_date=timezone.localdate(at) + dt.timedelta(days=5),
    )  # fmt: skip
    Attempt.objects.filter(assignment=a).update(submitted_at=at)
    Rating.objects.filter(assignment=a).update(created_at=at + dt.timedelta(hours=1))
    Certificate.objects.filter(assignment=a).update(issued_on=timezone.localdate(at),
                                                    expires_on=training.expiry(a.course, at))  # fmt: skip


def load(today: dt.date | None = None) -> int:
    """The demo courses and their history, once (nothing when a course exists). Returns how many courses."""
    if Course.objects.exists():
        return 0
    manager = User.objects.filter(username="manager", is_active=True).first()
    if manager is None:
        return 0
    users = {u.username: u for u in User.objects.filter(username__in=STAFF, is_active=True)}
    today = today or timezone.localdate()
    with transaction.atomic():
        courses = []
        for title, category, mandatory, months, bank, roles, description, hours in COURSES:
            courses.append(training.save_course(manager, None, {
                "title": title, "category": category, "mandatory": mandatory, "valid_months": months or "",
                "questions": bank, "audience_roles": roles, "description": description, "hours": hours,
                "pass_mark": "80", "max_attempts": "3", "status": "draft" if "草稿" in title else "published",
            }))  # fmt: skip
        training.add_material(manager, courses[0], title="国家药监局：药品经营质量管理规范",
                              url="https://www.nmpa.gov.cn/")  # fmt: skip
        training.add_material(
            manager, courses[4], title="药物警戒质量管理规范（GVP）", url="https://www.nmpa.gov.cn/"
        )
        gsp, product, complaints, talk, pv, crm, visits, _draft = courses

        def give(course, names, due_in):
            people = [users[n] for n in names if n in users]
            return {
                a.user.username: a
                for a in training.assign(manager, course, people, today + dt.timedelta(days=max(due_in, 0)))[
                    0
                ]
            }  # noqa: E501

        # GSP: passed by most 40–200 days ago; the rep passed 13 months ago — expired, the refresher open and due
        g = give(gsp, ["agent", "expert", "support", "aftersales", "rep", "kam"], 14)
        for n, (days, wrong, stars) in {"agent": (45, 0, 5), "expert": (60, 1, 4), "support": (120, 0, 4),
                                        "aftersales": (200, 1, 3), "rep": (395, 0, 4)}.items():  # fmt: skip
            if n in g:
                training.submit(users[n], g[n].pk, _right(gsp, wrong))
                training.rate(users[n], g[n].pk, stars, RATINGS[days % len(RATINGS)])
                _back(g[n], days)
        # the product course: the agent failed once then passed; the expert passed; the rep and the KAM are due
        p = give(product, ["agent", "expert", "rep", "kam"], 10)
        if "agent" in p:
            training.submit(users["agent"], p["agent"].pk, _right(product, 3))
            training.submit(users["agent"], p["agent"].pk, _right(product, 1))
            training.rate(users["agent"], p["agent"].pk, 5, RATINGS[0])
            _back(p["agent"], 35)
        if "expert" in p:
            training.submit(users["expert"], p["expert"].pk, _right(product))
            training.rate(users["expert"], p["expert"].pk, 4, RATINGS[2])
            _back(p["expert"], 20)
        # complaint handling: the after-sales colleague is overdue; the agent passed 50 days ago
        c = give(complaints, ["agent", "support", "aftersales"], 20)
        if "agent" in c:
            training.submit(users["agent"], c["agent"].pk, _right(complaints))
            training.rate(users["agent"], c["agent"].pk, 4, RATINGS[1])
            _back(c["agent"], 50)
        if "aftersales" in c:
            Assignment.objects.filter(pk=c["aftersales"].pk).update(due_date=today - dt.timedelta(days=6))
        # communication skills in the classroom: attendance recorded for the agent, the others due
        t = give(talk, ["agent", "support", "aftersales"], 21)
        if "agent" in t:
            training.record_attendance(manager, t["agent"])
            training.rate(users["agent"], t["agent"].pk, 5, RATINGS[2])
            _back(t["agent"], 30)
        # its classroom sessions: the one held 30 days ago (the agent present), the next one in 5 days
        held_at = timezone.now().replace(hour=6, minute=0, second=0, microsecond=0) - dt.timedelta(days=30)
        held, planned = Session.objects.bulk_create([
            Session(course=talk, starts_at=held_at, ends_at=held_at + dt.timedelta(hours=3), place="总部三楼培训室",
                    trainer=manager, capacity=12, status=SessionStatus.HELD, created_by=manager,
                    materials_used="《客户沟通技巧》讲义；角色扮演案例 6 则", trainer_note="参与积极，倾听环节仍需练习。"),
            Session(course=talk, starts_at=held_at + dt.timedelta(days=35), ends_at=held_at + dt.timedelta(days=35, hours=3),
                    place="总部三楼培训室", trainer_name="外聘讲师 周老师", capacity=12, created_by=manager),
        ])  # fmt: skip
        Enrolment.objects.bulk_create(
            [Enrolment(session=held, assignment=t["agent"], enrolled_by=manager, attendance=Presence.PRESENT)]
            * ("agent" in t)
            + [Enrolment(session=planned, assignment=t[n], enrolled_by=manager) for n in ("support", "aftersales") if n in t]
        )  # fmt: skip
        # a hands-on product workshop in 9 days with one place: the KAM has it, the rep is on its waiting list
        if "kam" in p and "rep" in p:
            at = held_at + dt.timedelta(days=39, hours=1)
            workshop = Session.objects.create(course=product, starts_at=at, ends_at=at + dt.timedelta(hours=2),
                                              place="上海分公司 2 号会议室（样机实操）", trainer=users.get("expert"),
                                              trainer_name="" if users.get("expert") else "产品专家", capacity=1,
                                              notes="样机数量有限，仅设 1 个名额。", created_by=manager)  # fmt: skip
            Enrolment.objects.create(session=workshop, assignment=p["kam"], enrolled_by=manager)
            WaitingEntry.objects.create(session=workshop, assignment=p["rep"], added_by=users["rep"])
        # pharmacovigilance: the PV officer passed, the rep is overdue, the agent and the expert due
        v = give(pv, ["agent", "expert", "pv", "rep"], 5)
        if "pv" in v:
            training.submit(users["pv"], v["pv"].pk, _right(pv))
            _back(v["pv"], 15)
        if "rep" in v:
            Assignment.objects.filter(pk=v["rep"].pk).update(due_date=today - dt.timedelta(days=3))
        give(crm, ["analyst", "support", "agent"], 30)
        give(visits, ["rep", "kam"], 12)
        training.remind(
            today
        )  # the morning job: the rep's GSP refresher, the reminders of what is due or overdue
    return len(courses)
