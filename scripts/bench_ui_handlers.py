"""Time the trade-off explorer's slider handlers on the shipped models, server side.

Builds the page, takes each ``explore_set_*`` handler from the Blocks and calls it directly
(no HTTP), many times with changing values; also times the handler plus Gradio's
postprocessing of its outputs (figures to JSON, tables to rows), which the server does too.

    python scripts/bench_ui_handlers.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from epee_demo.model.registry import shipped_models
from epee_demo.ui import build_demo

CONTROLS = {"tau": 0.2, "patience": 3, "threshold": 0.9, "divergence_tau": 0.05, "measure": "js", "layer": 6}
# The rule each slider belongs to, and the values swept.
SWEEPS = {
    "tau": ("epee", np.linspace(0.0, 1.0, 11).tolist()),
    "patience": ("epee", [1, 2, 3, 4, 5, 6]),
    "threshold": ("maxprob", np.linspace(0.5, 1.0, 11).tolist()),
    "divergence_tau": ("fpabee", np.linspace(0.0, 0.5, 11).tolist()),
    "measure": ("fpabee", ["kl", "reverse_kl", "symmetric_kl", "js"]),
    "rule": (None, ["epee", "entropy", "patience", "pcee", "maxprob", "fpabee", "calm", "consistentee", "jei"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="calls per handler and model")
    args = parser.parse_args()
    models = shipped_models()
    demo = build_demo(models)
    handlers = {f.api_name: f for f in demo.fns.values() if f.api_name and f.api_name.startswith("explore_set_")}
    print(f"{'handler':<28} {'model':<14} {'median ms':>10} {'p95 ms':>8} {'+postprocess median':>20} {'p95':>6}")
    for control, (rule, values) in SWEEPS.items():
        block_fn = handlers[f"explore_set_{control}"]
        for model in models:
            calls = []
            for i in range(args.repeats):
                settings = dict(CONTROLS)
                value = values[i % len(values)]
                chosen_rule = value if control == "rule" else rule
                if control != "rule":
                    settings[control] = value
                calls.append((model, "test", chosen_rule, *settings.values()))
            block_fn.fn(*calls[0])  # warm-up
            handler, total = [], []
            for call in calls:
                start = time.perf_counter()
                outputs = block_fn.fn(*call)
                middle = time.perf_counter()
                for component, value in outputs.items():  # the handlers return updates keyed by component
                    if not isinstance(value, dict):  # gr.update(...) dicts are not postprocessed
                        component.postprocess(value)
                end = time.perf_counter()
                handler.append(1000 * (middle - start))
                total.append(1000 * (end - start))
            print(f"explore_set_{control:<16} {model:<14} {np.median(handler):>10.1f} "
                  f"{np.percentile(handler, 95):>8.1f} {np.median(total):>20.1f} {np.percentile(total, 95):>6.1f}")


if __name__ == "__main__":
    main()
