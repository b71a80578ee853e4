"""Time the Analyze tab's slider path (rules + figures + tables from a cached trace), per shipped model.

    python scripts/bench_analyze_handlers.py [--repeats 200]

Prints the median and p95 milliseconds of one `render` call (what every slider move runs on the
server) for every rule, on one example of each model's test trace. No model call is involved.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from epee_demo.model.registry import shipped_models
from epee_demo.ui.analyze_tab import render
from epee_demo.ui.controls import default_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print("| model | rule | median ms | p95 ms |\n|---|---|---|---|")
    for name, model in shipped_models().items():
        trace = model.trace("test")
        example = trace.subset([0])
        settings = default_settings(trace.num_layers)
        for rule in example.available_rules():
            if rule == "fixed":
                continue
            render(example, settings, rule)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                render(example, settings, rule)
                times.append(1000 * (time.perf_counter() - start))
            print(f"| {name} | {rule} | {np.median(times):.1f} | {np.percentile(times, 95):.1f} |")


if __name__ == "__main__":
    main()
