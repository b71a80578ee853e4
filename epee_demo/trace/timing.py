"""Wall time of model compute on this machine, shared by the page and ``epee-demo bench``.

``stopwatch`` times one call (``torch.cuda.Event`` on a GPU, ``time.perf_counter`` on
the CPU); ``measure_one`` times one input through the full model and through real early
exit (medians of repeated runs, as ``epee-demo bench`` does); ``traced_and_timed`` times the
passes an analysis on the page runs anyway (the trace, and one real early exit). Nothing here
asserts a timing.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from epee_demo.trace.early_exit import online_rule_for, run_early_exit, run_full
from epee_demo.model.multi_exit import MultiExitClassifier
from epee_demo.trace.exit_trace import ExitTrace


def device_name(device: torch.device | str) -> str:
    """A readable name of the device timings were taken on."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    threads = torch.get_num_threads()
    return f"CPU ({model}, {threads} thread{'s' if threads > 1 else ''})"


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


@dataclass
class AnalysisTiming:
    """The wall time of the two passes one analysis runs, each run once on this machine:
    the trace (every layer and every exit head) and real early exit under ``rule``.

    ``exit_layer`` is 1-based, out of ``num_layers``; ``device`` names the hardware.
    """

    seconds_trace: float
    seconds_early: float
    exit_layer: int
    num_layers: int
    rule: str
    device: str

    @property
    def label(self) -> str:
        """A sentence saying what was measured, where and how."""
        return (f"Measured on {self.device}, one run each of this analysis's own passes: every layer and exit head "
                f"(the trace) {1000 * self.seconds_trace:.1f} ms; real early exit ({self.rule}) to layer "
                f"{self.exit_layer} of {self.num_layers} {1000 * self.seconds_early:.1f} ms "
                f"({self.seconds_trace / self.seconds_early:.2f}x). Single runs on a shared server vary; "
                f"`epee-demo bench` gives medians.")


@torch.inference_mode()
def traced_and_timed(classifier: MultiExitClassifier, batch: dict, rule: str = "epee", labels=None,
                     **params) -> tuple[ExitTrace, AnalysisTiming]:
    """The one-input trace of a device-ready ``batch`` (the preprocessor's output) and the measured
    time of that pass and of one real early exit under ``rule``: no pass is run only to be timed."""
    timed = stopwatch(classifier.device)
    done = {}
    seconds_trace = timed(lambda: done.setdefault("trace", classifier.trace_prepared(batch, labels)))
    online = online_rule_for(classifier, rule, **params)
    seconds_early = timed(lambda: done.setdefault("early", run_early_exit(classifier.model, batch, online)))
    exit_layer = int(done["early"][0][0])
    return done["trace"], AnalysisTiming(seconds_trace, seconds_early, exit_layer, classifier.num_layers, rule,
                                         device_name(classifier.device))
