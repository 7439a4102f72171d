"""CPU time to draw a PDF document in the CJK font (pharmacrm.core.pdf): a one-page bilingual document with a
bold heading and a Chinese paragraph, as agreements, progress reports and the 报告表 are built. Most of it is
fontTools subsetting the embedded faces when the document is written. No database.

    taskset -c 0 python bench/pdf_bench.py          # 10 documents after one to warm up
    taskset -c 0 python bench/pdf_bench.py 30
"""

from __future__ import annotations

import statistics
import sys
import time

import common

TEXT = "甲方：北京协和医院。乙方：某某制药有限公司。服务计划包括产品供应、技术支持、售后服务与培训。" * 20


def one() -> bytes:
    from pharmacrm.core import pdf

    doc = pdf.document("重点客户专属服务协议 Key-Account Service Agreement")
    doc.multi_cell(0, 6, TEXT)
    doc.set_font(pdf.FAMILY, "B", 12)
    doc.set_x(doc.l_margin)
    doc.multi_cell(0, 6, "第一条 服务内容 Article 1 Services")
    return pdf.to_bytes(doc)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    common.setup()
    one()  # the faces are parsed once per process
    cpu = []
    for _ in range(n):
        start = time.process_time()
        size = len(one())
        cpu.append(time.process_time() - start)
    print(
        f"{n} documents: CPU s per document median {statistics.median(cpu):.3f}, "
        f"min {min(cpu):.3f}, max {max(cpu):.3f}; {size:,} bytes"
    )


if __name__ == "__main__":
    main()
