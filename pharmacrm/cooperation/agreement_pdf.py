"""A cooperation agreement (合作协议 / Cooperation Agreement) as a bilingual PDF generated from its record: the number,
both parties (our company from the settings; the customer's name, credit code, address and legal representative),
the type and subject, the term, the amount and payment terms, the projects with their goals and budgets, the rights
and obligations as recorded, and the signature blocks. Chinese first with the English below, whatever language the
user reads the site in (core/contract_pdf.py, shared with the key-account agreement). The caller audits the
download."""

from __future__ import annotations

from decimal import Decimal

from django.utils import translation

from pharmacrm.core import pdf as pdfdoc
from pharmacrm.core.amendments import signed_term
from pharmacrm.core.contract_pdf import Bilingual
from pharmacrm.core.contract_pdf import date as _date
from pharmacrm.core.wording import company_name

from .models import Agreement, AgreementType

KIND = {
    AgreementType.ACADEMIC: "学术合作 Academic cooperation", AgreementType.CLINICAL: "临床研究 Clinical research",
    AgreementType.DISTRIBUTION: "药品经销 Drug distribution", AgreementType.TECHNICAL: "技术服务 Technical service",
    AgreementType.TRAINING: "培训 Training", AgreementType.OTHER: "其他 Other",
}  # fmt: skip


def yuan(value: Decimal | None) -> str:
    return "—" if value is None else f"¥{value:,.2f}"


def render(agreement: Agreement) -> bytes:
    with translation.override("zh-hans"):
        return _render(agreement)


def _render(ag: Agreement) -> bytes:
    doc = Bilingual("合作协议 Cooperation Agreement")
    inst = ag.institution
    zh, _en = company_name()
    doc.number("协议编号 Agreement No.", ag.number)
    doc.heading("一、协议双方", "1. Parties")
    doc.parties("乙方（合作方）Party B (partner)",
                {"name": inst.name, "credit_code": inst.credit_code, "address": inst.address},
                [["法定代表人 Legal representative", "", inst.legal_representative or ""],
                 ["签约代表 Signatory", ag.company_signer, ag.customer_signer]])  # fmt: skip
    doc.heading("二、合作内容", "2. Subject")
    doc.para(f"合作类型：{KIND.get(ag.kind, ag.kind).split(' ', 1)[0]}；合作事项：{ag.title}",
             f"Type: {KIND.get(ag.kind, ag.kind).split(' ', 1)[-1]}; subject: {ag.title} (as written in Chinese).")  # fmt: skip
    doc.heading("三、协议期限", "3. Term")
    start, end = signed_term(ag)  # as signed: an amendment of the term has its own text (core/amendments.py)
    doc.para(f"本协议自 {_date(start)} 起至 {_date(end)} 止。",
             f"This agreement runs from {_date(start)} to {_date(end)}.")  # fmt: skip
    doc.heading("四、合作金额与付款", "4. Amount and payment")
    doc.para(f"协议金额（人民币）：{yuan(ag.amount)}", f"Amount of the agreement (CNY): {yuan(ag.amount)}")
    if ag.payment_terms:
        doc.para(ag.payment_terms, "Payment terms as written in Chinese above.")
    projects = list(ag.projects.select_related("responsible").order_by("start_date", "id"))
    doc.heading("五、合作项目", "5. Projects")
    if projects:
        rows = [[p.title, p.goal, f"{_date(p.start_date)}\n{_date(p.end_date)}", yuan(p.budget),
                 p.responsible.display_name or p.responsible.get_username()] for p in projects]  # fmt: skip
        pdfdoc.table(doc.pdf, ["项目 Project", "目标 Goal", "期限 Term", "预算 Budget", "负责人 Responsible"], rows,
                     (1.6, 2.8, 1.2, 1.1, 1.0), font_size=8.5)  # fmt: skip
        total = sum((p.budget for p in projects if p.budget is not None), Decimal(0))
        doc.para(f"项目预算合计：{yuan(total)}", f"Projects' budgets in total: {yuan(total)}")
    else:
        doc.para("本协议暂未列明合作项目。", "No project is listed under this agreement yet.")
    doc.heading("六、双方权利与义务", "6. Rights and obligations")
    if ag.terms:
        doc.para(ag.terms, "As written in Chinese above.")
    else:
        doc.para("双方按本协议约定的合作内容诚信履约，对合作中知悉的对方商业信息保密。",
                 "Both parties perform the cooperation in good faith and keep the other's business information "
                 "confidential.")  # fmt: skip
    doc.heading("七、其他", "7. Other terms")
    doc.para("本协议一式两份，双方各执一份，自双方签字盖章之日起生效。",
             "This agreement is made in two copies, one for each party, and takes effect when both have signed and "
             "sealed it.")  # fmt: skip
    doc.signatures(zh, inst.name)
    return doc.output()
