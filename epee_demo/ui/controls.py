"""Which slider sets which rule parameter: the mapping between page controls and rule settings."""

from __future__ import annotations

from epee_demo import policies

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
