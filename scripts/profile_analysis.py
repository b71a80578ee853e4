"""Where one analysis's server CPU goes, in-process: each phase of the Analyze path, as the server runs it.

Builds the page on one shipped model (``--task``, default organ-system), then times, over ``--repeats``
analyses of example notes (or the model's first example image), each phase the server runs for one
press of Analyze, by CPU time of this process (``time.process_time``: every thread, which holds on a
shared machine whatever else runs) and by wall time:

- the handler's parts: reading the input, the model's trace pass (timed as it runs), the rules, each
  figure (its dicts and JSON), the tables, and the views as sent (``render`` and each component's own
  ``postprocess``, which the Analyze events run in the handler: they skip Gradio's postprocessing);
- the whole event as the queue calls it (``Blocks.process_api``: preprocess, handler, postprocess);
- the reply's JSON encoding as the queue sends it (``ProcessCompletedMessage`` through orjson), and its size.

    python scripts/profile_analysis.py [--task organ-system] [--repeats 30] [--cprofile 25]

It prints a table (median ms per phase) with the load average; ``--cprofile N`` adds the N functions
with the most cumulative time over the whole events. The queue's own work (join, event stream, HTTP)
is not in-process here: ``scripts/load_test.py`` gives the server's CPU for the whole load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import time
from contextlib import contextmanager

import numpy as np
import orjson


@contextmanager
def timed(found: dict, name: str):
    """Add this block's CPU and wall seconds to ``found[name]``."""
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    found.setdefault(name, []).append((time.process_time() - cpu, time.perf_counter() - wall))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="organ-system")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cprofile", type=int, default=0, help="print this many functions by cumulative time")
    args = parser.parse_args(argv)

    import gradio as gr
    from gradio.server_messages import ProcessCompletedMessage
    from gradio.state_holder import SessionState

    from epee_demo.analysis.one_example import analyze_example
    from epee_demo.data.examples import EXAMPLE_NOTES
    from epee_demo.figures import layers
    from epee_demo.model.registry import shipped_models
    from epee_demo.ui import analyze_tab, build_demo
    from epee_demo.figures import figure_json
    from epee_demo.trace.timing import traced_and_timed
    from epee_demo.ui.controls import default_settings

    model = shipped_models()[args.task]
    demo = build_demo({args.task: model})
    key = args.task.replace("-", "_")
    fn = next(f for f in demo.fns.values() if f.api_name == f"analyze_{key}")
    views = {name: block for name, block in zip(["summary", "entropy", "counter", "classes", "class_table", "layers",
                                                  "rules"], fn.outputs[2:9])}
    kind = analyze_tab.input_kind(model)
    if kind == "image":
        example = model.example_images()[0]
        from epee_demo.ui.shown_input import png_file
        raws = [png_file(example.image, f"{args.task}-profile.png")]
    elif kind == "marked":
        raws = [e.text for e in model.example_texts()[0]]
    else:
        raws = [n.text for n in EXAMPLE_NOTES]
    rule = "epee"
    settings = default_settings(model.trace("test").num_layers)
    reader = analyze_tab.INPUT_READERS[kind]

    found: dict[str, list] = {}
    loop = asyncio.new_event_loop()
    state = SessionState(demo)
    profiler = cProfile.Profile() if args.cprofile else None
    sizes = []
    for step in range(args.repeats + 3):  # the first three warm up
        raw = raws[step % len(raws)]
        if step == 3:
            found.clear()
        # the handler's parts, one by one
        with timed(found, "read the input (clean, notices)"):
            model_input, _ = reader(model, raw)
        classifier = model.classifier
        with timed(found, "preprocess (tokenize / pixels)"):
            batch = classifier.to_device(classifier.preprocessor([model_input]))
        with timed(found, "model: the trace pass, its clock read per layer"):
            trace, timing = traced_and_timed(classifier, batch, rule, None, **settings[rule])
        with timed(found, "rules (analyze_example: every rule)"):
            analysis = analyze_example(trace, settings, rule)
        with timed(found, "figure: entropy (dicts and JSON)"):
            figure_json(*layers.entropy_figure_dicts(analysis, settings[rule]["tau"]))
        with timed(found, "figure: counter (dicts and JSON)"):
            figure_json(*layers.counter_figure_dicts(analysis, settings[rule]["patience"]))
        with timed(found, "figure: class heatmap (dicts and JSON)"):
            figure_json(*layers.class_heatmap_figure_dicts(analysis))
        with timed(found, "tables and summary"):
            layers.class_table(analysis), layers.layer_table(analysis), layers.rule_table(analysis)
            layers.summary_markdown(analysis)
        with timed(found, "the views as sent (render, components' postprocess)"):
            analyze_tab.sent({views[name]: value for name, value in analyze_tab.render(trace, settings, rule).items()})
        # the whole event, as the queue calls it
        if profiler:
            profiler.enable()
        with timed(found, "whole event (Blocks.process_api)"):
            reply = loop.run_until_complete(demo.process_api(fn, [raw, None, rule], state=state))
        with timed(found, "reply JSON (orjson, as the queue sends it)"):
            message = ProcessCompletedMessage(output=reply, success=True)
            encoded = orjson.dumps(message.model_dump(), default=str)
        if profiler:
            profiler.disable()
        sizes.append(len(encoded))
    loop.close()

    print(f"{args.task}: {args.repeats} analyses ({kind} input, rule {rule}); torch threads "
          f"{__import__('torch').get_num_threads()}; load average {os.getloadavg()[0]:.2f} at the end "
          f"({os.cpu_count()} cores)")
    print(f"{'phase':<46}{'CPU ms (median)':>16}{'wall ms (median)':>18}")
    for name, rows in found.items():
        cpu, wall = np.median(np.array(rows), axis=0) * 1000
        print(f"{name:<46}{cpu:>16.1f}{wall:>18.1f}")
    print(f"reply: {int(np.median(sizes))} bytes of JSON")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.cprofile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
