"""Issue 4, the net: throughput of the safety-signal screen (`pharmacrm.safety.screen.screen`) on one core.
The texts are the labelled evaluation set (tests/safety/data/screen_eval.jsonl: Chinese, Traditional Chinese
and English call-centre messages, about half of them with a signal) repeated to at least N texts, and — as
tickets and e-mails run longer than one message — the same set joined five messages at a time (about 150
characters). The screen is pure Python, so the figures do not depend on the database. Target: ≥ 2,000
texts/s.

    taskset -c 0 python bench/safety_screen.py          # pin to one core; 20,000 texts by default
    taskset -c 0 python bench/safety_screen.py 100000
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import common

EVAL_SET = common.ROOT / "tests" / "safety" / "data" / "screen_eval.jsonl"
ROUNDS = 5


def measure(base: list[str], n: int) -> dict:
    from pharmacrm.safety.screen import screen

    texts = (base * (n // len(base) + 1))[: max(n, len(base))]
    for text in base:  # warm up: compiled patterns, the translation table
        screen(text)
    rates, flagged = [], 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        flagged = sum(screen(text).signal for text in texts)
        rates.append(len(texts) / (time.perf_counter() - start))
    chars = [len(t) for t in base]
    return {
        "texts": len(texts),
        "texts_per_s_median": round(statistics.median(rates)),
        "texts_per_s_min": round(min(rates)),
        "flagged_share": round(flagged / len(texts), 3),
        "text_chars_mean": round(statistics.fmean(chars), 1),
        "text_chars_max": max(chars),
    }


def run(n: int = 20_000) -> dict:
    with EVAL_SET.open(encoding="utf-8") as f:
        messages = [json.loads(line)["text"] for line in f if line.strip()]
    joined = [" ".join(messages[i : i + 5]) for i in range(0, len(messages), 5)]
    return {
        "rounds": ROUNDS,
        "target_texts_per_s": 2000,
        "messages": measure(messages, n),
        "five_messages_joined": measure(joined, n),
    }


if __name__ == "__main__":
    common.setup()
    common.save("safety-screen", run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
