"""The two concurrency helpers: a producer thread ahead of its consumer, and units of database work on
their own threads and connections."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from pharmacrm.core.pipeline import SWITCH_INTERVAL, in_background, in_parallel


def test_items_arrive_in_order_from_another_thread():
    names = []

    def produce():
        for i in range(50):
            names.append(threading.current_thread().name)
            yield i

    assert list(in_background(produce(), name="numbers")) == list(range(50))
    assert set(names) == {"numbers"}


def test_a_producer_error_is_raised_in_the_consumer_after_the_items_before_it():
    def produce():
        yield 1
        yield 2
        raise ValueError("row 3 is broken")

    got = []
    with pytest.raises(ValueError, match="row 3 is broken"):
        for item in in_background(produce()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer():
    produced = []

    def produce():
        for i in range(10_000):
            produced.append(i)
            yield i

    before = threading.active_count()
    for item in in_background(produce(), ahead=2):
        if item == 3:
            break
    time.sleep(0.05)
    assert threading.active_count() == before  # the producer thread has ended
    assert len(produced) < 10  # it stopped a couple of items ahead, not at the end


def test_the_switch_interval_is_short_during_a_pipeline_and_restored_after():
    saved = sys.getswitchinterval()
    seen = [sys.getswitchinterval() for _ in in_background(iter(range(3)))]
    assert seen == [min(saved, SWITCH_INTERVAL)] * 3
    assert sys.getswitchinterval() == saved


def test_parallel_work_returns_results_in_order_and_raises_the_first_error():
    assert in_parallel([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]
    finished = []

    def slow():
        time.sleep(0.05)
        finished.append("slow")
        return "slow"

    def failing():
        raise KeyError("customer 7")

    with pytest.raises(KeyError, match="customer 7"):
        in_parallel([slow, failing])
    assert finished == ["slow"]  # the other unit ran to its end before the error was raised
