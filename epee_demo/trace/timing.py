"""Wall time of model compute on this machine, shared by the page and ``epee-demo bench``.

``stopwatch`` times one call (``torch.cuda.Event`` on a GPU, ``time.perf_counter`` on
the CPU); ``measure_one`` times one input through the full model and through real early
exit (medians of repeated runs, as ``epee-demo bench`` does); ``traced_and_timed`` times the
one pass an analysis on the page runs anyway (the trace), reading the clock after every exit
head (``LayerClock``), so the time up to the layer where the rule exits comes from that same
pass. Nothing here asserts a timing.
"""

from __future__ import annotations

import functools
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from epee_demo.rules import catalogue
from epee_demo.trace.early_exit import online_rule_for, run_early_exit, run_full
from epee_demo.model.multi_exit import MultiExitClassifier
from epee_demo.trace.exit_trace import ExitTrace


@functools.cache
def _cpu_model() -> str:
    """The CPU's model name (read once: every analysis names its device)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: torch.device | str) -> str:
    """A readable name of the device timings were taken on."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU ({_cpu_model()}, {threads} thread{'s' if threads > 1 else ''})"


def stopwatch(device: torch.device) -> Callable[[Callable], float]:
    """A function that runs ``fn()`` and returns the seconds it took on ``device``."""
    if device.type == "cuda":
        def timed(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0
    else:
        def timed(fn):
            started = time.perf_counter()
            fn()
            return time.perf_counter() - started
    return timed


@dataclass
class MeasuredTiming:
    """One input's measured wall time on this machine (median of ``repeats`` runs each):
    the full model (every layer, last head, no exit checks) against real early exit.

    ``exit_layer`` is 1-based, out of ``num_layers``; ``device`` names the hardware.
    """

    seconds_full: float
    seconds_early: float
    exit_layer: int
    num_layers: int
    rule: str
    device: str
    repeats: int

    @property
    def speedup(self) -> float:
        return self.seconds_full / self.seconds_early

    @property
    def label(self) -> str:
        """A sentence saying what was measured, where and how."""
        return (f"Measured on {self.device} (median of {self.repeats} runs): full model "
                f"{1000 * self.seconds_full:.1f} ms, early exit ({self.rule}) at layer {self.exit_layer} of "
                f"{self.num_layers} {1000 * self.seconds_early:.1f} ms ({self.speedup:.2f}x).")


def measure_one(classifier: MultiExitClassifier, raw_input, rule: str = "epee", *, repeats: int = 5,
                **params) -> MeasuredTiming:
    """Time one input through the full model and through real early exit under ``rule``.

    One warm-up run each, then ``repeats`` interleaved runs; medians are reported.
    Preprocessing is done once, outside the timing.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1; got {repeats}")
    online = online_rule_for(classifier, rule, **params)
    batch = classifier.to_device(classifier.preprocessor([raw_input]))
    timed = stopwatch(classifier.device)
    model = classifier.model
    run_full(model, batch)
    exit_layer = int(run_early_exit(model, batch, online)[0][0])
    full, early = [], []
    for _ in range(repeats):
        full.append(timed(lambda: run_full(model, batch)))
        early.append(timed(lambda: run_early_exit(model, batch, online)))
    return MeasuredTiming(float(np.median(full)), float(np.median(early)), exit_layer, classifier.num_layers,
                          rule, device_name(classifier.device), repeats)


class LayerClock:
    """The clock read when made and at every ``mark`` (the trace pass's ``after_layer`` hook: after each
    exit head), without waiting on the device between marks: ``torch.cuda.Event`` on a GPU (read once
    the last mark has completed), ``time.perf_counter`` on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []
        self.mark()

    def mark(self, *_) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def elapsed(self) -> np.ndarray:
        """Seconds from the start to each later mark, float [marks - 1]."""
        if self.cuda:
            self.marks[-1].synchronize()
            return np.array([self.marks[0].elapsed_time(m) / 1000.0 for m in self.marks[1:]])
        return np.array(self.marks[1:]) - self.marks[0]


@dataclass
class AnalysisTiming:
    """The wall time of the one pass an analysis runs (every layer and every exit head, the trace), run
    once on this machine: the whole pass, and its part up to layer ``exit_layer``'s exit head, where
    ``rule`` exits (the clock is read after every head; real early exit runs only that part, and the
    rule's check after each layer).

    ``exit_layer`` is 1-based, out of ``num_layers``; ``device`` names the hardware. The whole pass also
    holds what follows the last head (softmax, learned scorers, the copy to the host), so the speed-up
    is read against ``seconds_to_last_head``.
    """

    seconds_trace: float
    seconds_to_last_head: float
    seconds_to_exit: float
    exit_layer: int
    num_layers: int
    rule: str
    device: str

    @property
    def label(self) -> str:
        """A sentence saying what was measured, where and how."""
        return (f"Measured on {self.device}, one run of this analysis's own pass (every layer and exit head, "
                f"the trace): {1000 * self.seconds_trace:.1f} ms in all, {1000 * self.seconds_to_exit:.1f} ms of it "
                f"up to layer {self.exit_layer} of {self.num_layers}, where {self.rule} exits "
                f"(against {1000 * self.seconds_to_last_head:.1f} ms to the last exit head: "
                f"{self.seconds_to_last_head / self.seconds_to_exit:.2f}x); real early exit runs only that part, and the "
                f"rule's check after each layer. Single runs on a shared server vary; `epee-demo bench` gives "
                f"medians of real early exit against the full model.")


@torch.inference_mode()
def traced_and_timed(classifier: MultiExitClassifier, batch: dict, rule: str = "epee", labels=None,
                     **params) -> tuple[ExitTrace, AnalysisTiming]:
    """The trace of a device-ready one-input ``batch`` (the preprocessor's output) and the measured time of
    that pass, whole and up to the exit head of the layer where ``rule`` exits on it (the clock is read
    after every head): no pass is run only to be timed."""
    clock = LayerClock(classifier.device)
    trace = classifier.trace_prepared(batch, labels, after_layer=clock.mark)
    clock.mark()
    elapsed = clock.elapsed()  # after the exit head of layers 1..L, then the whole pass (to the arrays on the host)
    exit_layer = int(catalogue.exit_layers(trace.probs, rule, scores=trace.scores_for(rule), **params)[0])
    return trace, AnalysisTiming(float(elapsed[-1]), float(elapsed[classifier.num_layers - 1]),
                                 float(elapsed[exit_layer - 1]), exit_layer, classifier.num_layers,
                                 rule, device_name(classifier.device))
