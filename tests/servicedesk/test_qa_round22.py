"""QA round 22 — the service desk's mail intake, answer templates and surveys as Chinese customers and agents
meet them: file names in RFC 2231 GBK / Big5, the ticket number kept in a subject as the acknowledgement asks,
placeholders typed with a Chinese input method."""

from __future__ import annotations

import base64
from urllib.parse import quote_from_bytes

import pytest

from tests.servicedesk.test_qa_round20_mail import take_in  # noqa: F401

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def with_file(disposition: bytes, message_id: bytes = b"<att2231@h.test>") -> bytes:
    return (
        b"From: w@hospital.test\r\nTo: service@pharmacrm.test\r\nSubject: report\r\nMessage-ID: " + message_id
        + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--B\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: " + disposition + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(PDF) + b"\r\n--B--\r\n"
    )  # fmt: skip


def pct(text: str, codec: str) -> bytes:
    return quote_from_bytes(text.encode(codec)).encode()


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        # Foxmail / Outlook on Chinese Windows label GBK gb2312; 喆 is outside GB2312
        ("王喆的处方.pdf", b"attachment; filename*=gb2312''" + pct("王喆的处方.pdf", "gbk")),
        # a long name split in pieces, the cut inside a two-byte character
        ("王喆的处方.pdf", b"attachment;\r\n filename*0*=gbk''" + pct("王喆的处方.pdf", "gbk")[:9]
         + b";\r\n filename*1*=" + pct("王喆的处方.pdf", "gbk")[9:]),
        # Hong Kong: Big5 with the HKSCS character 堃
        ("陳志堃的處方.pdf", b"attachment; filename*=big5''" + pct("陳志堃的處方.pdf", "big5hkscs")),
        # no charset named, GBK bytes
        ("检验报告.pdf", b"attachment; filename*=''" + pct("检验报告.pdf", "gbk")),
        # the ordinary UTF-8 form still reads
        ("检验报告.pdf", b"attachment; filename*=UTF-8''" + pct("检验报告.pdf", "utf-8")),
    ],
)
def test_an_attachment_named_in_rfc_2231_gbk_or_big5_keeps_its_name(take_in, name, disposition):  # noqa: F811
    """The standard library decodes an RFC 2231 name strictly in the charset it names: a GBK name labelled
    gb2312 (or a Big5-HKSCS one labelled big5, or one without a charset) was stored as 王�吹拇Ψ�.pdf — the
    agent could not tell the prescription from the lab report, and the customer's file looked damaged."""
    message = take_in(with_file(disposition))
    assert [a.name for a in message.ticket.attachments.all()] == [name]
