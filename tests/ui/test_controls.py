import gradio as gr

from epee_demo.rules import catalogue
from epee_demo.ui.controls import build_controls, control_of, controls_of, params_from_controls


def test_controls_are_built_from_the_catalogue():
    with gr.Blocks():
        controls = build_controls(6, 13, "x_")
    assert list(controls) == list(catalogue.CONTROLS)
    for name, component in controls.items():
        assert component.label == catalogue.CONTROLS[name].label and component.elem_id == f"x_{name}"
        assert component.visible == (name in controls_of("epee"))
    assert controls["patience"].maximum == 6 and controls["layer"].value == 6
    assert controls["tau"].value == catalogue.RULES["epee"].params["tau"]
    assert "tau × 2.565" in controls["tau"].info  # DeeBERT's nats for 13 classes
    assert "released code differs" in controls["measure"].info


def test_every_rule_parameter_names_a_control_and_round_trips():
    for rule, spec in catalogue.RULES.items():
        values = {control_of(rule, p.name): p.default for p in spec.parameters}
        assert set(values) <= set(catalogue.CONTROLS)
        assert params_from_controls(rule, values) == spec.params
