import torch

from epee_demo.model import ModelSpec, build_model, joint_exit_loss
from epee_demo.training import mark_trainable
from tests.conftest import TokenPreprocessor, tiny_bert


def test_with_lora_only_adapters_layernorms_and_heads_train(tmp_path, token_batches):
    tiny_bert().save_pretrained(tmp_path / "base")
    spec = ModelSpec("text", str(tmp_path / "base"), ["a", "b", "c", "d"], {"max_length": 16},
                     lora={"rank": 2, "alpha": 4, "targets": ["query", "value", "dense"]})
    model = build_model(spec)
    count = mark_trainable(model, spec)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert count == sum(p.numel() for name, p in model.named_parameters() if name in trainable)
    assert trainable == {name for name, _ in model.named_parameters()
                         if ".lora_A.default." in name or ".lora_B.default." in name
                         or "LayerNorm" in name or name.startswith("heads.")}
    assert any("lora_A" in name for name in trainable) and any(name.startswith("heads.") for name in trainable)
    joint_exit_loss(model(TokenPreprocessor()(token_batches)).logits, torch.tensor([0, 1, 2, 3, 0, 1, 2])).backward()
    for name, param in model.named_parameters():
        assert (param.grad is not None) == (name in trainable), name


def test_without_lora_everything_trains():
    spec = ModelSpec("text", tiny_bert().config.to_dict(), ["a", "b"], {"max_length": 16})
    model = build_model(spec)
    assert mark_trainable(model, spec) == sum(p.numel() for p in model.parameters())
