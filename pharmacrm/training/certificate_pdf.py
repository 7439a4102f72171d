"""A training certificate (培训合格证书 / Training Certificate) as a bilingual PDF: the number, the person, the course,
its hours and category, the score (or the attendance), the issue date and the validity, and a revoked one marked so.
Chinese first with the English below, whatever language the reader uses (core/contract_pdf.py). The caller audits
the export."""

from __future__ import annotations

from django.utils import translation

from pharmacrm.core import pdf as pdfdoc
from pharmacrm.core.contract_pdf import Bilingual, our_party
from pharmacrm.core.contract_pdf import date as _date

from .models import Category, Certificate, Method

CATEGORY_EN = {
    Category.PRODUCT: "Product knowledge", Category.COMPLIANCE: "Regulations and compliance",
    Category.COMMUNICATION: "Communication skills", Category.COMPLAINTS: "Complaint handling",
    Category.SYSTEM: "System operation", Category.OTHER: "Other",
}  # fmt: skip
CATEGORY_ZH = {
    Category.PRODUCT: "产品知识", Category.COMPLIANCE: "法规与合规", Category.COMMUNICATION: "沟通技巧",
    Category.COMPLAINTS: "投诉处理", Category.SYSTEM: "系统操作", Category.OTHER: "其他",
}  # fmt: skip


def render(c: Certificate) -> bytes:
    with translation.override("zh-hans"):
        return _certificate(c)


def _certificate(c: Certificate) -> bytes:
    doc = Bilingual("培训合格证书 Training Certificate")
    us = our_party()
    person = c.user.display_name or c.user.get_username()
    course = c.course
    doc.number("证书编号 Certificate No.", c.number)
    if c.revoked_at is not None:
        doc.pdf.set_text_color(180, 0, 0)
        doc.para(f"本证书已于 {_date(c.revoked_at.date())} 撤销：{c.revoke_reason}",
                 f"This certificate was revoked on {_date(c.revoked_at.date())}: {c.revoke_reason}")  # fmt: skip
        doc.pdf.set_text_color(0)
    doc.para(f"兹证明 {person} 已完成下列培训并考核合格，特发此证。",
             f"This is to certify that {person} has completed the training below and met its requirements.")  # fmt: skip
    if c.assignment.method == Method.ATTENDANCE:
        result = ("出勤 Attendance" + (f"，{c.score} 分 / score {c.score}" if c.score is not None else ""))
    else:
        result = f"考核通过，{c.score} 分 Test passed, score {c.score}%"
    pdfdoc.table(doc.pdf, ["", ""], [
        ["姓名 Name", f"{person}（{c.user.get_username()}）"],
        ["课程 Course", course.title],
        ["类别 Category", f"{CATEGORY_ZH.get(course.category, course.category)} {CATEGORY_EN.get(course.category, '')}"],
        ["学时 Hours", f"{course.hours}"],
        ["考核结果 Result", result],
        ["发证日期 Issued", _date(c.issued_on)],
        ["有效期至 Valid until", _date(c.expires_on) or "长期有效 No expiry"],
    ], (1, 3), font_size=10)  # fmt: skip
    doc.pdf.ln(10)
    doc.para(f"发证单位：{us['zh']}", f"Issued by {us['en']}")
    return doc.output()
