"""The page's task and backbone selector: models grouped into tasks, backbones named."""

from dataclasses import replace
from pathlib import Path

from epee_demo.data.tasks import TASKS
from epee_demo.model.registry import ShippedModel
from epee_demo.ui.selector import backbone_name, task_groups, task_title


def registered(*names):
    return {name: ShippedModel(TASKS[name], Path("unused")) for name in names}


def test_models_of_one_task_are_grouped_in_the_registry_order():
    models = registered("organ-system", "pneumonia", "organ-system-albert", "organ-system-gpt2")
    assert task_groups(models) == {"organ-system": ["organ-system", "organ-system-albert", "organ-system-gpt2"],
                                   "pneumonia": ["pneumonia"]}
    assert task_title(models, "organ-system", task_groups(models)["organ-system"]) == TASKS["organ-system"].title


def test_a_task_without_its_namesake_model_takes_its_first_models_title():
    models = registered("organ-system-gpt2", "organ-system-albert")
    assert task_groups(models) == {"organ-system": ["organ-system-gpt2", "organ-system-albert"]}
    assert task_title(models, "organ-system", ["organ-system-gpt2", "organ-system-albert"]) == \
        TASKS["organ-system-gpt2"].title


def test_a_backbone_is_named_by_its_task_else_by_its_spec(tiny_shipped_model, tiny_image_shipped_model):
    assert backbone_name(registered("organ-system-albert")["organ-system-albert"]) == "ALBERT (trained from scratch)"
    text = ShippedModel(replace(tiny_shipped_model.task, backbone=""), tiny_shipped_model.folder)
    image = ShippedModel(replace(tiny_image_shipped_model.task, backbone=""), tiny_image_shipped_model.folder)
    assert backbone_name(text) == Path(text.spec.base).name  # a checkpoint path: its last part
    assert backbone_name(image) == "vit"  # a config written out: its model type
