"""scripts/interpolate_checkpoints.py: the tensor-by-tensor mix of two checkpoints."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "interpolate_checkpoints.py"
spec = importlib.util.spec_from_file_location("interpolate_checkpoints", SCRIPT)
interpolate_checkpoints = importlib.util.module_from_spec(spec)
spec.loader.exec_module(interpolate_checkpoints)


def test_interpolation_is_tensor_by_tensor_and_stored_as_fp16():
    first = {"a": torch.zeros(2, 3, dtype=torch.float16), "b": torch.full((4,), 2.0, dtype=torch.float16)}
    second = {"a": torch.ones(2, 3, dtype=torch.float16), "b": torch.full((4,), -2.0, dtype=torch.float16)}
    mix = interpolate_checkpoints.interpolate(first, second, 0.25)
    assert all(t.dtype == torch.float16 for t in mix.values())
    assert torch.equal(mix["a"], torch.full((2, 3), 0.25, dtype=torch.float16))
    assert torch.equal(mix["b"], torch.full((4,), 1.0, dtype=torch.float16))
    assert torch.equal(interpolate_checkpoints.interpolate(first, second, 0.0)["b"], first["b"])
    assert torch.equal(interpolate_checkpoints.interpolate(first, second, 1.0)["a"], second["a"])


def test_checkpoints_of_different_shapes_are_refused():
    with pytest.raises(SystemExit, match="same tensors"):
        interpolate_checkpoints.interpolate({"a": torch.zeros(2)}, {"a": torch.zeros(3)}, 0.5)
    with pytest.raises(SystemExit, match="same tensors"):
        interpolate_checkpoints.interpolate({"a": torch.zeros(2)}, {"b": torch.zeros(2)}, 0.5)


def test_specs_that_differ_only_by_head_edit_records_share_an_architecture():
    from epee_demo.model.multi_exit import ModelSpec

    plain = ModelSpec(modality="text", base="b", label_names=["negative", "effect"], preprocess={"max_length": 64},
                      extra={"license": "cc-by-nc-4.0"})
    edited = ModelSpec(modality="text", base="b", label_names=["negative", "effect"], preprocess={"max_length": 64},
                       extra={"license": "cc-by-nc-4.0", "negative_logit_offset": {"offsets": [0.1]},
                              "exit_temperatures": [1.2]})
    wider = ModelSpec(modality="text", base="b", label_names=["negative", "effect"], preprocess={"max_length": 128},
                      extra={"license": "cc-by-nc-4.0"})
    assert interpolate_checkpoints._architecture(plain) == interpolate_checkpoints._architecture(edited)
    assert interpolate_checkpoints._architecture(plain) != interpolate_checkpoints._architecture(wider)
    assert interpolate_checkpoints._architecture(edited).extra == {}


def test_a_task_whose_dataset_the_continued_checkpoint_was_not_trained_on_is_refused():
    interpolate_checkpoints.check_trained_on("breastmnist", {"dataset": "breastmnist"}, "breast")
    with pytest.raises(SystemExit, match="--task retina reads the dataset 'retinamnist'.*trained on 'breastmnist'"):
        interpolate_checkpoints.check_trained_on("retinamnist", {"dataset": "breastmnist"}, "retina")
