"""The rule controls of the page, built from the rule catalogue (``catalogue.CONTROLS``, ``catalogue.RULES``).

Each rule parameter names the control that sets it (``Param.control``); this module lays
those controls out and maps their values to rule settings and back.
"""

from __future__ import annotations

import math

import gradio as gr

from epee_demo.figures.layers import nats_factor
from epee_demo.rules import catalogue
from epee_demo.errors import InputError

CONTROLS = tuple(catalogue.CONTROLS)
DEFAULT_RULE = next(iter(catalogue.RULES))  # the rule every view opens with: the catalogue's first (EPEE)
LAYER_CONTROLS = tuple(name for name, control in catalogue.CONTROLS.items()
                       if control.maximum is None)  # the controls whose range is the model's layers


def control_of(rule: str, param: str) -> str:
    """The control that sets ``param`` of ``rule`` (F-PABEE's tau has its own divergence slider)."""
    return catalogue.RULES[rule].parameter(param).control


def controls_of(rule: str) -> set[str]:
    """The controls a rule reads."""
    return {control_of(rule, param) for param in catalogue.RULES[rule].params}


def params_from_controls(rule: str, values: dict) -> dict:
    """A rule's parameters from the control values (a dict control -> value)."""
    params = {}
    for param, default in catalogue.RULES[rule].params.items():
        value = values[control_of(rule, param)]
        params[param] = value if isinstance(default, str) else type(default)(value)
    return params


def control_values(rule: str, params: dict) -> dict:
    """Control values that show a rule's parameters (a dict control -> value)."""
    return {control_of(rule, param): value for param, value in params.items()}


def default_settings(num_layers: int) -> dict[str, dict]:
    """Every rule at its default setting, the fixed-depth baseline at the last layer."""
    settings = {rule: dict(spec.params) for rule, spec in catalogue.RULES.items()}
    settings["fixed"]["layer"] = num_layers
    return settings


def _start_value(control: str, num_layers: int):
    """A control's starting value: the default of the first rule it sets (the last layer for ``layer``)."""
    if control == "layer":
        return num_layers
    return next(param.default for spec in catalogue.RULES.values() for param in spec.parameters
                if param.control == control)


def build_controls(num_layers: int, num_classes: int | None,
                   elem_prefix: str = "") -> dict[str, gr.components.Component]:
    """Lay out one control per ``catalogue.CONTROLS`` entry (those of ``DEFAULT_RULE``, the first rule shown, visible).

    ``num_classes`` (when one model is shown) puts DeeBERT's nats value beside the tau slider.
    """
    shown = controls_of(DEFAULT_RULE)
    built = {}
    for name, control in catalogue.CONTROLS.items():
        value = _start_value(name, num_layers)
        info = control.info
        if name == "tau" and num_classes:
            info = nats_factor(num_classes)
        common = dict(value=value, label=control.label, visible=name in shown, elem_id=f"{elem_prefix}{name}",
                      info=info or None)
        if control.choices:
            built[name] = gr.Dropdown(choices=list(control.choices), **common)
        else:
            maximum = num_layers if control.maximum is None else control.maximum
            built[name] = gr.Slider(control.minimum, maximum, step=control.step, **common)
    return built

def checked_rule(rule, rules) -> str:
    """``rule`` when it is one of ``rules``, else an ``InputError`` (that does not repeat it)."""
    if not isinstance(rule, str) or rule not in rules:
        raise InputError(f"Exit rule: choose one of {', '.join(rules)}.")
    return rule


def checked_call(rule, values: dict, rules, num_layers: int) -> tuple[str, dict]:
    """A call's rule and control values (control -> value, as sent), checked: anything else than
    one of ``rules`` and a finite number in each control's range (``catalogue.CONTROLS``: a whole
    one for the layer-valued controls, a known divergence for measure) raises an ``InputError``
    that names the control.

    The one check of what the page's events receive (they take their inputs unprocessed, so no
    value sent ends up echoed in an error or in the server log)."""
    checked_rule(rule, rules)
    checked = {}
    for name, control in catalogue.CONTROLS.items():
        value = values.get(name)
        if control.choices:
            if not isinstance(value, str) or value not in control.choices:
                raise InputError(f"{control.label}: choose one of {', '.join(control.choices)}.")
        else:
            low = control.minimum
            high = num_layers if control.maximum is None else control.maximum
            whole = control.step == 1
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not low <= value <= high or (whole and value != int(value))):
                kind = "a whole number" if whole else "a number"
                raise InputError(f"{name}: must be {kind} from {low:g} to {high:g}.")
        checked[name] = value
    return rule, checked
