import json
import os
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file

from epee_demo.errors import CheckpointError
from epee_demo.model.folder import convert_hand_written_lora, load_checkpoint, save_checkpoint
from epee_demo.model.multi_exit import (
    ExitOutput, ModelSpec, MultiExitClassifier, add_lora, build_model, joint_exit_loss, merge_lora, share_cpu_cores,
    state_cosine,
)
from tests.conftest import TokenPreprocessor, tiny_bert


def test_forward_gives_one_exit_per_layer(tiny_multi_exit, token_batches):
    out = tiny_multi_exit(TokenPreprocessor()(token_batches))
    assert isinstance(out, ExitOutput)
    assert out.logits.shape == (len(token_batches), 3, 4)
    assert out.pooled.shape == (len(token_batches), 3, 32)


def test_last_exit_reads_the_backbone_output(tiny_multi_exit, token_batches):
    batch = TokenPreprocessor()(token_batches)
    hidden = tiny_multi_exit.backbone.hf_model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(tiny_multi_exit(batch).pooled[:, -1], mean, atol=1e-5, rtol=1e-4)


def test_padding_does_not_change_an_example(tiny_multi_exit, token_batches):
    alone = tiny_multi_exit(TokenPreprocessor()([token_batches[2]])).logits
    padded = tiny_multi_exit(TokenPreprocessor()(token_batches)).logits[2:3]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-4)


def test_joint_loss_weights_layers_by_depth():
    logits = torch.randn(5, 3, 4)
    labels = torch.randint(0, 4, (5,))
    per_layer = [nn.functional.cross_entropy(logits[:, i], labels) for i in range(3)]
    expected = (1 * per_layer[0] + 2 * per_layer[1] + 3 * per_layer[2]) / 6
    torch.testing.assert_close(joint_exit_loss(logits, labels), expected)


def test_peft_lora_adds_scaled_b_times_a_and_merges_exactly():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    base = nn.Linear(8, 8)
    base.load_state_dict(module[0].state_dict())
    x = torch.randn(4, 8)
    before = module(x)
    add_lora(module, {"rank": 2, "alpha": 4, "targets": ["0"]})
    assert isinstance(module[0], LoraLayer)
    torch.testing.assert_close(module(x), before)  # B starts at zero
    with torch.no_grad():
        module[0].lora_B["default"].weight.normal_()
    a, b = module[0].lora_A["default"].weight, module[0].lora_B["default"].weight
    adapted = module(x)
    expected = module[2](torch.relu(base(x) + x @ a.T @ b.T * (4 / 2)))  # base + B A x * alpha / rank
    torch.testing.assert_close(adapted, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(adapted, before)
    merge_lora(module)
    assert type(module[0]) is nn.Linear and not hasattr(module, "peft_config")
    torch.testing.assert_close(module(x), adapted, atol=1e-5, rtol=1e-5)


def test_state_cosine_first_layer_is_nan():
    pooled = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    cos = state_cosine(pooled)
    assert torch.isnan(cos[0, 0])
    torch.testing.assert_close(cos[0, 1:], torch.tensor([1.0, 0.0]))


def _spec(base: str, lora=None) -> ModelSpec:
    return ModelSpec(modality="text", base=base, label_names=["a", "b", "c", "d"], preprocess={"max_length": 16},
                     lora=lora, title="tiny")


def _lora_model(tmp_path):
    """A tiny BERT with LoRA adapters whose B is not zero, its spec, and the folder of its base."""
    base = tmp_path / "base"
    tiny_bert().save_pretrained(base)
    spec = _spec(str(base), lora={"rank": 2, "alpha": 4, "targets": ["query", "value", "dense"]})
    model = build_model(spec).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    return model, spec


def test_merged_lora_model_equals_the_unmerged_one(tmp_path, token_batches):
    model, _ = _lora_model(tmp_path)
    batch = TokenPreprocessor()(token_batches)
    adapted = model(batch).logits
    assert sum(isinstance(m, LoraLayer) for m in model.modules()) == 3 * 5  # query, value, 3 dense per layer
    merge_lora(model)
    assert not any(isinstance(m, LoraLayer) for m in model.modules())
    torch.testing.assert_close(model(batch).logits, adapted, atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_with_lora(tmp_path, token_batches):
    model, spec = _lora_model(tmp_path)
    batch = TokenPreprocessor()(token_batches)
    expected = model(batch).logits
    save_checkpoint(model, spec, tmp_path / "ckpt")
    keys = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert "backbone.hf_model.encoder.layer.0.attention.self.query.lora_A.weight" in keys  # peft's saved names
    assert not any("base_layer" in key or ".default." in key for key in keys)  # frozen layers stay out
    loaded, loaded_spec = load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert loaded_spec == spec
    assert not any(isinstance(m, LoraLayer) for m in loaded.modules())
    torch.testing.assert_close(loaded(batch).logits, expected, atol=2e-2, rtol=1e-2)  # fp16 storage
    assert (loaded(batch).logits.argmax(-1) == expected.argmax(-1)).float().mean() > 0.9


def test_missing_and_corrupt_checkpoints_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path / "nowhere")
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"corrupt: .*config\.json"):
        load_checkpoint(folder)
    base = tmp_path / "base"
    tiny_bert().save_pretrained(base)
    (folder / "config.json").write_text(json.dumps(asdict(_spec(str(base)))))
    with pytest.raises(CheckpointError, match=r"not found: .*model\.safetensors"):
        load_checkpoint(folder)
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"corrupt: .*model\.safetensors"):
        load_checkpoint(folder)


def test_classifier_trace_keeps_input_order(tiny_multi_exit, token_batches):
    classifier = MultiExitClassifier(tiny_multi_exit, _spec("unused"), TokenPreprocessor())
    # Token lists stand in for texts; make them strings of different lengths to trigger length sorting.
    texts = [" ".join(map(str, seq)) for seq in token_batches]

    class StringPreprocessor(TokenPreprocessor):
        def __call__(self, strings):
            return super().__call__([[int(t) for t in s.split()] for s in strings])

    classifier.preprocessor = StringPreprocessor()
    trace = classifier.trace(texts, labels=[0, 1, 2, 3, 0, 1, 2], batch_size=3)
    direct = torch.softmax(tiny_multi_exit(StringPreprocessor()(texts)).logits, -1).detach().numpy()
    np.testing.assert_allclose(trace.probs, direct, atol=1e-5)
    assert trace.labels.tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert np.isnan(trace.state_cosine[:, 0]).all()


def test_hand_written_lora_weights_are_refused_then_converted_once(tmp_path, token_batches):
    model, spec = _lora_model(tmp_path)
    batch = TokenPreprocessor()(token_batches)
    expected = model(batch).logits
    folder = save_checkpoint(model, spec, tmp_path / "ckpt")
    path = folder / "model.safetensors"
    old_names = {k.replace(".lora_A.weight", ".lora_a").replace(".lora_B.weight", ".lora_b"): v
                 for k, v in load_file(str(path)).items()}  # the names the hand-written LoRALinear used
    save_file(old_names, str(path))
    with pytest.raises(CheckpointError, match="hand-written LoRA.*convert_hand_written_lora"):
        load_checkpoint(folder, device="cpu")
    assert convert_hand_written_lora(folder) == 2 * 3 * 5
    assert convert_hand_written_lora(folder) == 0
    loaded, _ = load_checkpoint(folder, device="cpu")
    torch.testing.assert_close(loaded(batch).logits, expected, atol=2e-2, rtol=1e-2)  # fp16 storage


def test_lora_refuses_when_no_layer_matches():
    with pytest.raises(ValueError, match=r"no layer named any of \['c_attn'\]"):
        add_lora(nn.Sequential(nn.Linear(4, 4)), {"rank": 2, "alpha": 4, "targets": ["c_attn"]})


@pytest.mark.parametrize("calls", [1, 2, 64])
def test_concurrent_calls_share_the_cores(calls):
    before = torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
        threads = share_cpu_cores(calls)
        assert threads == max(1, cores // calls) and torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
