"""A key-account service agreement (重点客户专属服务协议 / Key-Account Service Agreement) as a bilingual PDF:
parties, number, term, the service items of the plan it was generated from by area, the rights and
obligations of both sides (seed 001 §4, in short) and the signature blocks. Always Chinese first with the
English below, whatever language the user reads the site in: it is a contract. The caller audits the export."""

from __future__ import annotations

from django.utils import translation

from pharmacrm.core import pdf as pdfdoc
from pharmacrm.core.amendments import signed_term
from pharmacrm.core.contract_pdf import Bilingual
from pharmacrm.core.contract_pdf import date as _date
from pharmacrm.core.wording import company_name

from . import services
from .choices import ItemStatus, PlanArea, TeamRole
from .models import Agreement, PlanItem

ITEM_FONT_SIZE = 8.5
STANDARD_MAX_LINES = 30  # a standard longer than this (about 60 % of a page) is written out below the items

AREA_EN = {
    PlanArea.SUPPLY: "Product supply", PlanArea.TECH_SUPPORT: "Technical support",
    PlanArea.AFTER_SALES: "After-sales service", PlanArea.TRAINING: "Training", PlanArea.FREE: "Free services",
}  # fmt: skip
AREA_ZH = {
    PlanArea.SUPPLY: "产品供应", PlanArea.TECH_SUPPORT: "技术支持", PlanArea.AFTER_SALES: "售后服务",
    PlanArea.TRAINING: "培训服务", PlanArea.FREE: "免费服务",
}  # fmt: skip
ROLE_TEXT = {
    TeamRole.PROJECT_MANAGER: "项目经理 Project manager", TeamRole.PRODUCT_EXPERT: "产品专家 Product expert",
    TeamRole.TECH_SUPPORT: "技术支持 Technical support", TeamRole.AFTER_SALES: "售后 After-sales",
}  # fmt: skip

# seed 001 §4: the company's and the customer's rights and obligations, short, in both languages
COMPANY_DUTIES = [
    ("优先保障产品供应，紧急订单优先安排生产与配送。",
     "Give priority to the customer's supply; urgent orders are produced and delivered first."),
    ("组建专属服务团队（项目经理、产品专家、技术支持、售后），按本协议的服务标准与期限提供服务。",
     "Provide a dedicated service team (project manager, product expert, technical support, after-sales) "
     "that delivers the services of section 3 to their standard and deadline."),
    ("及时响应并处理客户的咨询、投诉与质量反馈，定期召开服务沟通会议并通报进展。",
     "Answer and resolve the customer's enquiries, complaints and quality feedback promptly; hold regular "
     "service meetings and report progress."),
    ("新产品上市时优先邀请客户试用；为客户相关人员提供培训。",
     "Offer new products to the customer for trial first; train the customer's staff."),
    ("对客户的信息严格保密。", "Keep the customer's information confidential."),
]  # fmt: skip
CUSTOMER_DUTIES = [
    ("及时提出需求与计划，配合服务团队开展工作。",
     "State its needs and plans in time and work with the service team."),
    ("按合同约定及时付款。", "Pay on time as agreed in the supply contracts."),
    ("对服务质量进行评价与反馈，参与定期的服务评估。",
     "Evaluate the service and give feedback, and take part in the periodic service evaluation."),
    ("对本协议及双方交流的商业信息保密。",
     "Keep this agreement and the business information exchanged confidential."),
]  # fmt: skip


def render(agreement: Agreement) -> bytes:
    with translation.override("zh-hans"):
        return _Agreement(agreement).render()


class _Agreement(Bilingual):
    def __init__(self, agreement: Agreement) -> None:
        self.agreement = agreement
        self.account = agreement.account
        self.institution = agreement.account.institution
        self.plan = agreement.plan
        # as on the plan page; a cancelled item is no longer promised
        self.items = list(services.in_plan_order(
            self.plan.items.exclude(status=ItemStatus.CANCELLED).select_related("owner")
        ))  # fmt: skip
        roles: dict[int, str] = {}
        for member in self.account.members.all():
            roles.setdefault(member.user_id, ROLE_TEXT.get(member.role, member.role))
        self.roles = roles
        super().__init__("重点客户专属服务协议 Key-Account Service Agreement")

    def render(self) -> bytes:
        ag, inst = self.agreement, self.institution
        zh, _en = company_name()
        pdf = self.pdf
        self.number("协议编号 Agreement No.", ag.number)
        self.heading("一、协议双方", "1. Parties")
        self.parties("乙方（重点客户）Party B (key account)",
                     {"name": inst.name, "credit_code": inst.credit_code, "address": inst.address},
                     [["重点客户编号 Key-account No.", "", self.account.number]])  # fmt: skip
        self.heading("二、协议期限", "2. Term")
        start, end = signed_term(ag)  # as signed: an amendment has its own document
        self.para(
            f"本协议自 {_date(start)} 起至 {_date(end)} 止。到期前 {ag.renewal_notice_days} 日双方协商续签。",
            f"This agreement runs from {_date(start)} to {_date(end)}. The parties discuss its "
            f"renewal {ag.renewal_notice_days} days before the end.",
        )
        self.heading("三、服务内容与标准", "3. Services and standards")
        self.para(
            f"依据经甲方领导审批的服务方案（第 {self.plan.version_number} 版）。",
            f"According to the service plan approved by Party A's leadership (version {self.plan.version_number}).",
        )
        if self.plan.goals:
            self.para(self.plan.goals, "The customer's needs and goals, as written in Chinese above.")
        # a standard too long for a table row (a row cannot run over a page) is written out in full below the
        # table, its cell pointing there: the contract keeps every word of it
        widths = (1.2, 1.8, 2.6, 1.4, 1.1)
        standard_width = pdf.epw * widths[2] / sum(widths) - 2
        annex: list[tuple[int, PlanItem]] = []
        rows = []
        for i in self.items:
            standard = i.standard
            if self.lines(standard, standard_width, ITEM_FONT_SIZE) > STANDARD_MAX_LINES:
                annex.append((len(annex) + 1, i))
                standard = f"见下文第 {len(annex)} 条\nSee note {len(annex)} below"
            rows.append([f"{AREA_ZH.get(i.area, i.area)}\n{AREA_EN.get(i.area, i.area)}", i.title, standard,
                         f"{i.owner}\n{self.roles.get(i.owner_id, '')}", _date(i.deadline)])  # fmt: skip
        pdfdoc.table(pdf, ["领域 Area", "服务项目 Service", "服务标准 Standard", "负责人 Owner", "期限 Deadline"],
                     rows, widths, font_size=ITEM_FONT_SIZE)  # fmt: skip
        if annex:
            pdf.ln(2)
            pdf.set_font(pdfdoc.FAMILY, "B", 9.5)
            pdf.multi_cell(0, 5.2, "服务标准全文 Service standards in full", new_x="LMARGIN", new_y="NEXT")
            for n, item in annex:
                pdf.set_font(pdfdoc.FAMILY, "B", 9)
                pdf.multi_cell(0, 5, f"{n}. {item.title}", new_x="LMARGIN", new_y="NEXT")
                pdf.set_font(pdfdoc.FAMILY, size=ITEM_FONT_SIZE)
                pdf.multi_cell(0, ITEM_FONT_SIZE * 0.5, item.standard, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            pdf.set_font(pdfdoc.FAMILY, size=10)
        self.heading("四、甲方的权利与义务", "4. Party A's rights and obligations")
        for n, (z, e) in enumerate(COMPANY_DUTIES, 1):
            self.para(z, e, prefix=f"{n}. ")
        self.heading("五、乙方的权利与义务", "5. Party B's rights and obligations")
        for n, (z, e) in enumerate(CUSTOMER_DUTIES, 1):
            self.para(z, e, prefix=f"{n}. ")
        self.heading("六、其他", "6. Other terms")
        self.para(
            "服务方案变更经甲方领导审批后，以新版本为准。本协议一式两份，双方各执一份，自双方签字盖章之日起生效。",
            "A change of the service plan applies once approved by Party A's leadership. This agreement is made in "
            "two copies, one for each party, and takes effect when both have signed and sealed it.",
        )
        self.signatures(zh, inst.name)
        return self.output()
