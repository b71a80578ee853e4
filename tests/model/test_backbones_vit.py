import numpy as np
import torch

from epee_demo.model.backbones import ViTBackbone, load_backbone
from epee_demo.model.folder import load_checkpoint, save_checkpoint
from epee_demo.model.multi_exit import ModelSpec, MultiExitClassifier, build_model
from epee_demo.data.tasks import preprocessor_for

TINY_VIT = {
    "model_type": "vit", "image_size": 8, "patch_size": 4, "num_channels": 1, "hidden_size": 16,
    "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 32,
}


def tiny_spec() -> ModelSpec:
    return ModelSpec(modality="image", base=dict(TINY_VIT), label_names=["normal", "pneumonia"],
                     preprocess={"size": 8, "channels": 1, "mean": [0.5], "std": [0.5]})


def images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(count)]


def test_config_dict_builds_a_vit_without_pooler():
    backbone = load_backbone(dict(TINY_VIT))
    assert isinstance(backbone, ViTBackbone)
    assert backbone.num_layers == 3 and backbone.hidden_size == 16
    assert backbone.hf_model.config.num_channels == 1
    assert not any(name.startswith("pooler") for name, _ in backbone.hf_model.named_parameters())


def test_one_exit_per_layer_reads_that_layers_cls_token():
    torch.manual_seed(0)
    spec = tiny_spec()
    model = build_model(spec).eval()
    batch = preprocessor_for(spec)(images(5))
    with torch.no_grad():
        out = model(batch)
        hidden = model.backbone.hf_model(batch["pixel_values"], output_hidden_states=True).hidden_states
    assert out.logits.shape == (5, 3, 2) and out.pooled.shape == (5, 3, 16)
    for layer in range(3):
        torch.testing.assert_close(out.pooled[:, layer], hidden[layer + 1][:, 0])
        torch.testing.assert_close(out.logits[:, layer], model.heads[layer](hidden[layer + 1][:, 0]))


def test_from_scratch_vit_checkpoint_reloads_and_traces_images(tmp_path):
    torch.manual_seed(0)
    spec = tiny_spec()
    model = build_model(spec).eval()
    save_checkpoint(model, spec, tmp_path)
    loaded, loaded_spec = load_checkpoint(tmp_path, device="cpu")
    assert loaded_spec.base == TINY_VIT
    batch = preprocessor_for(loaded_spec)(images(4))
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).logits, model(batch).logits, atol=5e-3, rtol=0)
    trace = MultiExitClassifier(loaded, loaded_spec, preprocessor_for(loaded_spec)).trace(images(4), [0, 1, 0, 1])
    assert trace.probs.shape == (4, 3, 2)
    np.testing.assert_allclose(trace.probs.sum(-1), 1.0, rtol=1e-5)
