"""The parts of a bilingual (Chinese first, English below) contract-like PDF the agreements and certificates share:
the numbered headings, the paragraphs in both languages, the parties' table with our company's name, credit code and
address from the settings, and the signature blocks. The key-account service agreement (keyaccounts/agreement_pdf.py),
the cooperation agreement (cooperation/agreement_pdf.py) and the training certificate (training/certificate_pdf.py)
build on it. Always written in Chinese and English whatever language the user reads the site in."""

from __future__ import annotations

from django.conf import settings

from pharmacrm.core import pdf as pdfdoc
from pharmacrm.core.wording import company_name


def date(value) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def our_party() -> dict:
    """Our company as a party: its names (zh, en), credit code and address, from the settings."""
    zh, en = company_name()
    return {"zh": zh, "en": en, "credit_code": getattr(settings, "PHARMACRM_COMPANY_CREDIT_CODE", ""),
            "address": getattr(settings, "PHARMACRM_COMPANY_ADDRESS", "")}  # fmt: skip


class Bilingual:
    """A document with its title heading; `heading`, `para`, `parties`, `signatures` write the shared parts."""

    def __init__(self, title: str) -> None:
        self.pdf = pdfdoc.document(title, languages=("zh-hans", "en"))

    def lines(self, text: str, width: float, size: float) -> int:
        """How many lines `text` takes in a cell `width` mm wide."""
        pdf = self.pdf
        pdf.set_font(pdfdoc.FAMILY, size=size)
        lines = pdf.multi_cell(width, size * 0.5, text, dry_run=True, output="LINES")
        pdf.set_font(pdfdoc.FAMILY, size=10)
        return len(lines)

    def number(self, label: str, value: str) -> None:
        self.pdf.set_font(pdfdoc.FAMILY, size=10)
        self.pdf.multi_cell(0, 6, f"{label}: {value}", align="R", new_x="LMARGIN", new_y="NEXT")

    def heading(self, zh: str, en: str) -> None:
        pdf = self.pdf
        pdf.ln(2)
        pdf.set_font(pdfdoc.FAMILY, "B", 11.5)
        pdf.multi_cell(0, 6.5, f"{zh}  {en}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(pdfdoc.FAMILY, size=10)

    def para(self, zh: str, en: str, prefix: str = "") -> None:
        pdf = self.pdf
        pdf.set_font(pdfdoc.FAMILY, size=9.5)
        pdf.multi_cell(0, 5.2, f"{prefix}{zh}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(70)
        pdf.set_font(pdfdoc.FAMILY, size=8.5)
        pdf.multi_cell(0, 4.6, f"{' ' * len(prefix)}{en}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
        pdf.set_font(pdfdoc.FAMILY, size=10)
        pdf.ln(0.8)

    def parties(self, customer_head: str, customer: dict, extra_rows: list | None = None) -> None:
        """Party A (us) and Party B: name, credit code, address, and the caller's further rows (label, A, B)."""
        us = our_party()
        rows = [
            ["名称 Name", f"{us['zh']}\n{us['en']}", customer.get("name", "")],
            ["统一社会信用代码 Credit code", us["credit_code"], customer.get("credit_code") or ""],
            ["地址 Address", us["address"], customer.get("address") or ""],
            *(extra_rows or []),
        ]
        pdfdoc.table(self.pdf, ["", "甲方（服务提供方）Party A (provider)", customer_head], rows, (1.3, 2, 2))

    def signatures(self, company: str, customer: str) -> None:
        pdf = self.pdf
        if pdf.get_y() > pdf.h - 75:
            pdf.add_page()
        pdf.ln(6)
        rows = [
            [f"甲方 Party A：{company}", f"乙方 Party B：{customer}"],
            [
                "授权代表（签字）Authorised representative:\n\n\n",
                "授权代表（签字）Authorised representative:\n\n\n",
            ],
            ["盖章 Seal:\n\n\n", "盖章 Seal:\n\n\n"],
            ["日期 Date：", "日期 Date："],
        ]
        pdfdoc.table(pdf, ["甲方 Party A", "乙方 Party B"], rows, (1, 1), font_size=9)

    def output(self) -> bytes:
        return pdfdoc.to_bytes(self.pdf)
