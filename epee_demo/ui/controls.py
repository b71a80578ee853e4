"""Which slider sets which rule parameter: the mapping between page controls and rule settings."""

from __future__ import annotations

import math

from epee_demo import policies
from epee_demo.errors import InputError

CONTROLS = ("tau", "patience", "threshold", "divergence_tau", "measure", "layer")


def control_of(rule: str, param: str) -> str:
    """The control that sets ``param`` of ``rule`` (F-PABEE's tau has its own divergence slider)."""
    return "divergence_tau" if (rule, param) == ("fpabee", "tau") else param


def controls_of(rule: str) -> set[str]:
    """The controls a rule reads."""
    return {control_of(rule, param) for param in policies.RULES[rule].params}


def params_from_controls(rule: str, values: dict) -> dict:
    """A rule's parameters from the control values (a dict control -> value)."""
    params = {}
    for param, default in policies.RULES[rule].params.items():
        value = values[control_of(rule, param)]
        params[param] = value if isinstance(default, str) else type(default)(value)
    return params


def control_values(rule: str, params: dict) -> dict:
    """Control values that show a rule's parameters (a dict control -> value)."""
    return {control_of(rule, param): value for param, value in params.items()}


def default_settings(num_layers: int) -> dict[str, dict]:
    """Every rule at its default setting, the fixed-depth baseline at the last layer."""
    settings = {rule: dict(spec.params) for rule, spec in policies.RULES.items()}
    settings["fixed"]["layer"] = num_layers
    return settings


# The ranges of the page's number controls; patience and layer run from 1 to the model's layer count.
RANGES = {"tau": (0.0, 1.0), "threshold": (0.0, 1.0), "divergence_tau": (0.0, 0.7)}
LAYER_CONTROLS = ("patience", "layer")


def checked_rule(rule, rules) -> str:
    """``rule`` when it is one of ``rules``, else an ``InputError`` (that does not repeat it)."""
    if not isinstance(rule, str) or rule not in rules:
        raise InputError(f"Exit rule: choose one of {', '.join(rules)}.")
    return rule


def checked_call(rule, values: dict, rules, num_layers: int) -> tuple[str, dict]:
    """A call's rule and control values (control -> value, as sent), checked: anything else than
    one of ``rules`` and a finite number in each control's range (a whole one for patience and
    layer, a known divergence for measure) raises an ``InputError`` that names the control.

    The one check of what the page's events receive (they take their inputs unprocessed, so no
    value sent ends up echoed in an error or in the server log)."""
    checked_rule(rule, rules)
    checked = {}
    for control in CONTROLS:
        value = values.get(control)
        if control == "measure":
            if not isinstance(value, str) or value not in policies.DIVERGENCES:
                raise InputError(f"divergence: choose one of {', '.join(policies.DIVERGENCES)}.")
        else:
            low, high = RANGES.get(control, (1, num_layers))
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not low <= value <= high or (control in LAYER_CONTROLS and value != int(value))):
                kind = "a whole number" if control in LAYER_CONTROLS else "a number"
                raise InputError(f"{control}: must be {kind} from {low:g} to {high:g}.")
        checked[control] = value
    return rule, checked
