"""One preparation per (model, split) for the explorer and the lesson, and the per-key making behind it."""

import threading
import time

import pytest

from epee_demo.analysis import whole_split
from epee_demo.ui import prepared
from epee_demo.ui.prepared import MadeOnce, PreparedSplits


def counting(make, delay: float = 0.0):
    """``make`` wrapped to count its calls (``.calls``), each slowed by ``delay`` seconds so that
    callers who arrive together overlap."""
    def wrapped(*args, **kwargs):
        wrapped.calls.append(args)
        time.sleep(delay)
        return make(*args, **kwargs)

    wrapped.calls = []
    return wrapped


def at_once(get, keys) -> list:
    """``get(key)`` for every key, each in its own thread, all released together; their results in order."""
    barrier = threading.Barrier(len(keys))
    results = [None] * len(keys)

    def run(i):
        barrier.wait()
        results[i] = get(keys[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(keys))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_made_once_makes_each_key_once_and_keeps_it():
    make = counting(lambda key: [key])
    made = MadeOnce(make)
    first = made["a"]
    assert made["a"] is first and made["b"] == ["b"] and made["a"] is first
    assert make.calls == [("a",), ("b",)]


def test_callers_of_one_key_at_once_share_one_making():
    make = counting(lambda key: object(), delay=0.2)
    made = MadeOnce(make)
    results = at_once(made.__getitem__, ["a"] * 8)
    assert len(make.calls) == 1 and all(result is results[0] for result in results)


def test_a_key_being_made_does_not_hold_up_another_key():
    started, release = threading.Event(), threading.Event()

    def make(key):
        if key == "slow":
            started.set()
            assert release.wait(timeout=30)
        return key

    made = MadeOnce(make)
    slow = threading.Thread(target=made.__getitem__, args=("slow",))
    slow.start()
    assert started.wait(timeout=30)
    assert made["fast"] == "fast"  # made while "slow" is still being made
    release.set()
    slow.join(timeout=30)
    assert made["slow"] == "slow"


def test_a_making_that_fails_keeps_nothing():
    outcomes = iter([ValueError("first try"), "second try"])

    def make(key):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    made = MadeOnce(make)
    with pytest.raises(ValueError, match="first try"):
        made["a"]
    assert made["a"] == "second try"


def test_prepared_splits_prepares_each_split_once_by_the_task_metric(tiny_shipped_model, monkeypatch):
    prepare_split = counting(prepared.prepare_split, delay=0.1)
    monkeypatch.setattr(prepared, "prepare_split", prepare_split)
    splits = PreparedSplits({"organ-system": tiny_shipped_model})
    results = at_once(splits.__getitem__, [("organ-system", "test")] * 6 + [("organ-system", "val")] * 2)
    assert len(prepare_split.calls) == 2  # one per split, however many sessions asked at once
    assert all(result is results[0] for result in results[:6]) and results[6] is results[7]
    assert results[0].prep.metric == tiny_shipped_model.task.metric
    assert results[0].prep.num_examples == tiny_shipped_model.trace("test").num_examples
    assert ("organ-system", "val") in splits and ("organ-system", "train") not in splits
    assert ("pneumonia", "test") not in splits and "organ-system" not in splits


def test_the_page_prepares_the_opening_split_once_for_the_explorer_and_the_lesson(tiny_shipped_model, monkeypatch):
    from epee_demo.ui import build_demo

    frontier = counting(whole_split.frontier)
    monkeypatch.setattr(whole_split, "frontier", frontier)
    build_demo({"organ-system": tiny_shipped_model})
    epee_frontiers = [args for args in frontier.calls if args[1] == "epee"]
    assert len(epee_frontiers) == 1  # the explorer's and the lesson's opening test split, prepared once
