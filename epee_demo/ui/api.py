"""The page's one documented API endpoint, ``/trace``: one input through a shipped model, as JSON.

``trace_endpoint(models)`` is the function ``gr.api`` serves; its parameters are named (``task``,
``text`` or ``image``, ``rule`` and the rule parameters of the catalogue, ``timing_repeats``), so
"Use via API" lists them by name. ``trace_report`` builds the reply from a one-example trace.
Every other event of the page is an internal handler, hidden from "Use via API" (``hide_internal``).
"""

from __future__ import annotations

import math

import gradio as gr
import numpy as np
from gradio.data_classes import FileData

from epee_demo.rules import catalogue
from epee_demo.analysis.one_example import run_rules
from epee_demo.errors import InputError
from epee_demo.model.registry import ShippedModel
from epee_demo.trace.timing import AnalysisTiming, measure_one
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.ui.analyze_tab import INPUT_READERS, input_kind, traced
from epee_demo.ui.files import uploaded_path
from epee_demo.ui.controls import default_settings

API_NAME = "trace"
MAX_TIMING_REPEATS = 20  # runs of each mode a caller may ask for (each holds one of the model slots)


def _number(value) -> float | None:
    """A JSON-safe float: NaN (a rule that compares nothing at a layer) becomes null."""
    value = float(value)
    return None if math.isnan(value) else value


def _values(array) -> list:
    return [_number(v) for v in np.asarray(array, dtype=float)]


def trace_report(model: ShippedModel, trace: ExitTrace, timing: AnalysisTiming, rule: str, params: dict,
                 notices: list[str]) -> dict:
    """The JSON reply for one input: its layers (every class's probability, the prediction, normalized
    entropy, the PABEE counter), every rule's exit and answer (``rule`` at ``params``, the others at
    their catalogue defaults, each with the value it compares per layer) and the measured time."""
    settings = {**default_settings(trace.num_layers), rule: params}
    runs = run_rules(trace, {name: settings[name] for name in trace.available_rules()})
    probs = trace.probs[0]
    names = list(trace.label_names)
    rules = {}
    for name, run in runs.items():
        answer = run["probs"][0]
        rules[name] = {
            "title": catalogue.RULES[name].title, "params": settings[name], "exit_layer": int(run["exits"][0]),
            "answer": names[int(answer.argmax())], "probability": float(answer.max()),
            "compares": catalogue.RULES[name].shown or None,
            "values": _values(run["shown"][0]) if catalogue.RULES[name].shown else None,
        }
    return {
        "task": model.task.name, "model": model.spec.title, "num_layers": trace.num_layers, "label_names": names,
        "probabilities": probs.astype(float).tolist(),
        "predictions": [names[int(c)] for c in probs.argmax(axis=-1)],
        "normalized_entropy": _values(catalogue.normalized_entropy(probs)),
        "patience_counter": [int(v) for v in runs["patience"]["shown"][0]],
        "rule": rule, "rules": rules,
        "timing": {"device": timing.device, "trace_ms": 1000 * timing.seconds_trace,
                   "to_last_head_ms": 1000 * timing.seconds_to_last_head,
                   "to_exit_layer_ms": 1000 * timing.seconds_to_exit, "exit_layer": timing.exit_layer,
                   "runs": 1, "label": timing.label},
        "notices": [n for n in notices if n],
    }


def _checked_params(rule, given: dict, num_layers: int, rules: list[str]) -> tuple[str, dict]:
    """The rule (default EPEE) and its parameters: those given, the catalogue's defaults for the rest,
    checked by the catalogue (``catalogue.check_params``); parameters of other rules are refused."""
    rule = "epee" if rule is None else rule
    if not isinstance(rule, str) or rule not in rules:
        raise InputError(f"rule: choose one of {', '.join(rules)}.")
    spec = catalogue.RULES[rule]
    foreign = sorted(name for name, value in given.items() if value is not None and name not in spec.params)
    if foreign:
        raise InputError(f"{', '.join(foreign)}: not a parameter of {rule} (it takes {', '.join(spec.params) or 'none'}).")
    params = {**default_settings(num_layers)[rule], **{k: v for k, v in given.items() if v is not None}}
    for name, value in params.items():
        if isinstance(spec.params[name], str):
            if not isinstance(value, str) or len(value) > 20:  # the catalogue's message quotes it: keep it short
                raise InputError(f"{name}: must be one of the names {', '.join(catalogue.DIVERGENCES)}.")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{name}: must be a finite number.")
    try:
        return rule, catalogue.check_params(rule, params, num_layers)
    except ValueError as err:
        raise InputError(str(err)) from None


def trace_endpoint(models: dict[str, ShippedModel]):
    """The function behind ``/trace`` over ``models``: each model's task kind picks how its input is
    read (``INPUT_READERS``: ``text`` for a text model, ``image`` for an image model)."""

    def trace(task: str, text: str | None = None, image: FileData | None = None, rule: str | None = None,
              tau: float | None = None, patience: int | None = None, threshold: float | None = None,
              measure: str | None = None, layer: int | None = None, timing_repeats: int = 0) -> dict:
        """One note or image through a shipped model: every exit's class probabilities, predictions,
        normalized entropy and counters, where every rule exits and what it answers (``rule`` at the
        parameters given, default EPEE; the others at their defaults), and the measured time with the
        device. ``timing_repeats`` (0-20) adds the median of that many runs of the full model and of
        real early exit. F-PABEE's divergence threshold is its ``tau``."""
        try:
            if not isinstance(task, str) or task not in models:
                raise InputError(f"task: choose one of {', '.join(models)}.")
            model = models[task]
            available = model.trace("test").available_rules()
            rule_name, params = _checked_params(rule, dict(tau=tau, patience=patience, threshold=threshold,
                                                          measure=measure, layer=layer),
                                                model.trace("test").num_layers, available)
            if (isinstance(timing_repeats, bool) or not isinstance(timing_repeats, (int, float))
                    or not 0 <= timing_repeats <= MAX_TIMING_REPEATS or timing_repeats != int(timing_repeats)):
                raise InputError(f"timing_repeats: must be a whole number from 0 to {MAX_TIMING_REPEATS}.")
            kind = input_kind(model)
            field = "image" if kind == "image" else "text"  # a marked sentence comes as text
            given = {"text": text, "image": image}
            if any(value is not None for name, value in given.items() if name != field):
                raise InputError(f"task {task} reads {'a marked sentence' if kind == 'marked' else kind}: "
                                 f"send `{field}` only.")
            raw = uploaded_path(image) if kind == "image" else text
            model_input, notices = INPUT_READERS[kind](model, raw)
            trace_, timing = traced(model, model_input, rule_name, params)
            report = trace_report(model, trace_, timing, rule_name, params, notices)
            if timing_repeats:
                measured = measure_one(model.classifier, model_input, rule_name, repeats=int(timing_repeats),
                                       **params)
                report["timing"]["median"] = {"full_model_ms": 1000 * measured.seconds_full,
                                              "early_exit_ms": 1000 * measured.seconds_early,
                                              "repeats": measured.repeats, "label": measured.label}
            return report
        except InputError as err:
            raise gr.Error(str(err), print_exception=False) from None

    return trace


def hide_internal(demo: gr.Blocks) -> None:
    """Every event but ``/trace`` stays callable by the page (and the load scripts) but is left out
    of "Use via API" (Gradio's ``api_visibility="undocumented"``)."""
    for fn in demo.fns.values():
        if fn.api_visibility == "public" and fn.api_name != API_NAME:
            fn.api_visibility = "undocumented"
