"""A shipped-model folder, in the Hugging Face Hub's layout: the one module that reads and writes it.

One folder (``assets/<task>/``, or a Hub model repository) holds::

    config.json                  the ModelSpec: what to build and how inputs are prepared
    model.safetensors            the trained parameters, fp16 (LoRA adapters under peft's names)
    README.md                    the model card, with the Hub's YAML metadata
    metrics.json                 per-exit accuracy and AUC on val and test, the training record
    trace_val.npz, trace_test.npz  the cached per-layer traces of the two splits
    learned_exits.safetensors    the learned exit scorers (ConsistentEE, JEI-DNN), when trained
    learned_exits.json           their architecture, chosen setting and selection sweep
    examples/                    image models: test-split PNGs the page offers

No other module spells these names. ``load_classifier`` assembles "folder -> classifier";
``resolve`` turns a Hub id into a local snapshot (online) so every reader takes either.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from epee_demo.data.split_inputs import SHIPPED_PER_CLASS, read_split_inputs
from epee_demo.errors import CheckpointError
from epee_demo.model.backbones import DEFAULT_TEXT_BASE, DEFAULT_TEXT_BASE_HUB_ID, MPNET_BASE, MPNET_HUB_ID
from epee_demo.model.multi_exit import (
    ModelSpec, MultiExitClassifier, MultiExitModel, build_model, default_device, merge_lora, param_name,
    trainable_state,
)
from epee_demo.trace.exit_trace import ExitTrace

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
METRICS_FILE = "metrics.json"
LEARNED_EXITS_FILE = "learned_exits.safetensors"
LEARNED_EXITS_CONFIG = "learned_exits.json"
EXAMPLES_DIR = "examples"
TEXT_EXAMPLES_FILE = "examples.json"  # a marked-text model's shipped test sentences
SPLIT_INPUTS_FILE = "split_inputs.npz"  # the inputs of the split examples the page shows
SPLITS = ("val", "test")
TEMPERATURES_KEY = "exit_temperatures"  # config.json extra: the exits' temperatures (training/exit_temperature.py)
# Every shipped model is trained on CC BY 4.0 (or public-domain) data, whose attribution terms its weights carry.
MODEL_LICENSE = "cc-by-4.0"
_HAND_WRITTEN_KEY = re.compile(r"\.lora_([ab])$")
# The layout before the Hub's: file name then -> file name now (``convert_old_layout``).
OLD_LAYOUT = {
    "model.json": CONFIG_FILE, "weights.safetensors": WEIGHTS_FILE, "MODEL_CARD.md": CARD_FILE,
    "exit_policies.safetensors": LEARNED_EXITS_FILE, "exit_policies.json": LEARNED_EXITS_CONFIG,
}


def resolve(folder_or_hub_id: str | Path, **download) -> Path:
    """A local model folder: the folder itself, or a snapshot of the Hub repository ``folder_or_hub_id``
    (``huggingface_hub.snapshot_download``, given ``download``'s revision, cache_dir, token ...)."""
    if Path(folder_or_hub_id).is_dir():
        return Path(folder_or_hub_id)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=str(folder_or_hub_id), **download))
    except Exception as err:  # offline, unknown repo, bad id: huggingface_hub raises its own types
        raise CheckpointError(f"no model folder at {folder_or_hub_id!s} and no Hub snapshot of it ({err})") from err


def is_model_folder(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def trace_path(folder: str | Path, split: str) -> Path:
    """The cached trace of ``split`` ("val" or "test")."""
    return Path(folder) / f"trace_{split}.npz"


def weights_path(folder: str | Path) -> Path:
    return Path(folder) / WEIGHTS_FILE


def examples_dir(folder: str | Path) -> Path:
    return Path(folder) / EXAMPLES_DIR


def text_examples_path(folder: str | Path) -> Path:
    return Path(folder) / TEXT_EXAMPLES_FILE


def split_inputs_path(folder: str | Path) -> Path:
    return Path(folder) / SPLIT_INPUTS_FILE


# ---------------------------------------------------------------- the model: config.json, model.safetensors


def read_spec(folder: str | Path) -> ModelSpec:
    """Read ``config.json`` from a model folder."""
    path = Path(folder) / CONFIG_FILE
    try:
        return ModelSpec(**json.loads(path.read_text()))
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint config not found: {path}") from err
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint config is corrupt: {path} ({err})") from err


def write_spec(spec: ModelSpec, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(spec), indent=2) + "\n")


def save_checkpoint(model: MultiExitModel, spec: ModelSpec, folder: str | Path) -> Path:
    """Write ``config.json`` and the trained parameters (fp16) into ``folder``."""
    folder = Path(folder)
    write_spec(spec, folder)
    tensors = {k: v.to("cpu", torch.float16).contiguous() for k, v in trainable_state(model).items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    return folder


def load_checkpoint(folder: str | Path, device: torch.device | str | None = None) -> tuple[MultiExitModel, ModelSpec]:
    """Rebuild a model from a model folder, fold LoRA in and put it in eval mode on ``device``.

    The model remembers its spec (``model.spec``) and the folder (``model.folder``)."""
    folder = Path(folder)
    spec = read_spec(folder)
    path = folder / WEIGHTS_FILE
    try:
        tensors = load_file(str(path))
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint weights not found: {path}") from err
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"checkpoint weights are corrupt: {path} ({err})") from err
    if any(_HAND_WRITTEN_KEY.search(key) for key in tensors):
        raise CheckpointError(
            f"checkpoint weights hold hand-written LoRA adapters (lora_a / lora_b): {path}; "
            "convert them once to peft's names with epee_demo.model.folder.convert_hand_written_lora(folder)"
        )
    tensors = {param_name(key): tensor for key, tensor in tensors.items()}
    model = build_model(spec)
    own = model.state_dict()
    unknown = sorted(set(tensors) - set(own))
    if unknown:
        raise CheckpointError(f"checkpoint weights do not fit the model: {path} (unexpected {unknown[:3]})")
    for name, tensor in tensors.items():
        if own[name].shape != tensor.shape:
            raise CheckpointError(
                f"checkpoint weights do not fit the model: {path} "
                f"({name} has shape {tuple(tensor.shape)}, expected {tuple(own[name].shape)})"
            )
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    merge_lora(model)
    model.folder = folder
    return model.to(device or default_device()).eval(), spec


def convert_hand_written_lora(folder: str | Path) -> int:
    """Rename, once, the adapter tensors of a checkpoint written before LoRA went through peft.

    The hand-written layers stored ``...query.lora_a`` [r, in] and ``...query.lora_b`` [out, r]
    with the update ``alpha / rank * B @ A``: peft's ``lora_A.weight`` and ``lora_B.weight``
    with its default scaling ``lora_alpha / r``, so the tensors are kept as they are (fp16) and
    only renamed. Returns the number of renamed tensors (0: nothing to convert).
    """
    path = Path(folder) / WEIGHTS_FILE
    tensors = load_file(str(path))
    renamed = {_HAND_WRITTEN_KEY.sub(lambda m: f".lora_{m.group(1).upper()}.weight", k): v for k, v in tensors.items()}
    count = sum(1 for k in tensors if _HAND_WRITTEN_KEY.search(k))
    if count:
        save_file({k: v.contiguous() for k, v in renamed.items()}, str(path))
    return count


def weights_digest(folder: str | Path) -> str:
    """A short hash of ``model.safetensors`` ("unsaved" when there is none): what cached features depend on."""
    import hashlib

    path = weights_path(folder)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "unsaved"


def save_pretrained_files(model: MultiExitModel, folder: Path) -> None:
    """What ``MultiExitModel.save_pretrained`` writes: a model loaded from a folder is saved as that folder
    (its files copied, its weights as they were stored: a merged LoRA cannot be split again); a model
    built by ``build_model`` writes ``config.json`` and its trained parameters."""
    if model.spec is None:
        raise CheckpointError("this model has no spec to save: build it with build_model or load it from a folder")
    source = getattr(model, "folder", None)
    if source is None:
        save_checkpoint(model, model.spec, folder)
        return
    write_spec(model.spec, folder)
    if Path(source).resolve() != Path(folder).resolve():
        for item in Path(source).iterdir():
            if item.name == CONFIG_FILE or item.name.startswith("."):
                continue
            if item.is_dir():
                shutil.copytree(item, folder / item.name, dirs_exist_ok=True)
            else:
                shutil.copy2(item, folder / item.name)


# ---------------------------------------------------------------- the learned exits


def write_learned_exits(tensors: dict[str, torch.Tensor], description: dict, folder: str | Path) -> Path:
    """Write the learned exit scorers' parameters (float32) and their description into ``folder``."""
    folder = Path(folder)
    save_file({k: v.detach().cpu().float().contiguous() for k, v in tensors.items()}, str(folder / LEARNED_EXITS_FILE))
    write_learned_exits_description(description, folder)
    return folder / LEARNED_EXITS_FILE


def read_learned_exits_description(folder: str | Path) -> dict:
    return json.loads((Path(folder) / LEARNED_EXITS_CONFIG).read_text())


def write_learned_exits_description(description: dict, folder: str | Path) -> None:
    (Path(folder) / LEARNED_EXITS_CONFIG).write_text(json.dumps(description, indent=2) + "\n")


def load_learned_exits(folder: str | Path, model: MultiExitModel) -> dict:
    """The learned exit scorers shipped beside a model (``learned_scorers.build_scorers``); {} when none were trained."""
    from epee_demo.rules.learned_scorers import build_scorers

    folder = Path(folder)
    if not (folder / LEARNED_EXITS_FILE).exists():
        return {}
    try:
        description = read_learned_exits_description(folder)
        tensors = load_file(str(folder / LEARNED_EXITS_FILE))
    except FileNotFoundError as err:
        raise CheckpointError(f"learned exits incomplete: {err.filename} is missing") from err
    except Exception as err:  # json and safetensors raise their own error types
        raise CheckpointError(f"learned exits are corrupt in {folder} ({err})") from err
    return build_scorers(description, tensors, model, source=str(folder))


# ---------------------------------------------------------------- folder -> classifier


def load_classifier(folder: str | Path, device: torch.device | str | None = None,
                    learned_exits: bool = True) -> MultiExitClassifier:
    """A model folder (or Hub id) as a classifier: the model, its preprocessing and (with
    ``learned_exits``) the learned exit scorers shipped beside it."""
    from epee_demo.data.tasks import preprocessor_for

    folder = resolve(folder)
    model, spec = load_checkpoint(folder, device)
    scorers = load_learned_exits(folder, model) if learned_exits else {}
    return MultiExitClassifier(model, spec, preprocessor_for(spec), scorers)


# ---------------------------------------------------------------- traces and metrics


def read_trace(folder: str | Path, split: str) -> ExitTrace:
    path = trace_path(folder, split)
    if not path.exists():
        raise CheckpointError(f"cached trace not found: {path}")
    try:
        return ExitTrace.load(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"cached trace is corrupt: {path} ({err})") from err


def write_trace(trace: ExitTrace, folder: str | Path, split: str) -> None:
    trace.save(trace_path(folder, split))


def read_metrics(folder: str | Path) -> dict:
    """``metrics.json`` ({} when the folder has none)."""
    path = Path(folder) / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def write_metrics(metrics: dict, folder: str | Path) -> None:
    (Path(folder) / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")


# ---------------------------------------------------------------- the model card


def card_metadata(spec: ModelSpec, metrics: dict | None = None):
    """The Hub's YAML metadata of a model card (``huggingface_hub.ModelCardData``); the licence is the
    spec's ``extra["license"]`` where its data ask for one (DDI: cc-by-nc-4.0), else ``MODEL_LICENSE``."""
    from huggingface_hub import ModelCardData

    base = None
    if spec.base == DEFAULT_TEXT_BASE:
        base = DEFAULT_TEXT_BASE_HUB_ID
    elif spec.base == MPNET_BASE:
        base = MPNET_HUB_ID
    elif isinstance(spec.base, str) and not Path(spec.base).exists():
        base = spec.base  # a hub id
    dataset = (metrics or {}).get("dataset")
    tags = ["early-exit", "multi-exit", "epee", "biomedical"] + (["lora", "peft"] if spec.lora else [])
    return ModelCardData(
        license=spec.extra.get("license", MODEL_LICENSE), base_model=base, datasets=[dataset] if dataset else None,
        metrics=["accuracy", "roc_auc"], tags=tags, library_name="epee-demo",
        pipeline_tag=f"{spec.modality}-classification",
    )


def card_text(spec: ModelSpec, body: str, metrics: dict | None = None) -> str:
    """A model card: the Hub's YAML front matter (``card_metadata``), then the Markdown ``body``."""
    return f"---\n{card_metadata(spec, metrics).to_yaml()}\n---\n\n{body.lstrip()}"


SPLIT_INPUTS_SECTION = "## Shipped split inputs"
_SPLIT_INPUTS_SECTION = re.compile(rf"\n{re.escape(SPLIT_INPUTS_SECTION)}\n.*?(?=\n#{{1,2}} |\Z)", re.DOTALL)


def split_inputs_section(folder: str | Path) -> str:
    """The card's section on the folder's ``split_inputs.npz`` (what it holds, its source and licence);
    "" when the folder ships none."""
    shipped = read_split_inputs(split_inputs_path(folder))
    if not shipped.inputs:
        return ""
    count = {split: len(values) for split, values in shipped.inputs.items()}
    splits = " and ".join(f"{n} {split}-split" for split, n in count.items())
    examples = "example" if sum(count.values()) == 1 else "examples"
    return (f"\n{SPLIT_INPUTS_SECTION}\n\n`{SPLIT_INPUTS_FILE}` holds the inputs of the {splits} {examples} the demo page "
            f"shows itself (the lesson's example and the first {SHIPPED_PER_CLASS} of each gold class in the overthinking "
            f"gallery, the examples some exit answers right and the last exit wrong), unchanged from the dataset and "
            f"never trained on. Source: {shipped.source}. Licence: {shipped.licence}.\n")


def with_split_inputs_section(text: str, folder: str | Path) -> str:
    """``text`` (a card or its body) with its split-inputs section, if any, replaced by the folder's current one."""
    return _SPLIT_INPUTS_SECTION.sub("", text).rstrip("\n") + "\n" + split_inputs_section(folder)


def write_card(spec: ModelSpec, body: str, folder: str | Path, metrics: dict | None = None) -> None:
    """Write the model card: ``body`` under the Hub's front matter, ending with the section on the
    folder's shipped split inputs (``split_inputs_section``), so a rewritten card keeps it."""
    (Path(folder) / CARD_FILE).write_text(card_text(spec, with_split_inputs_section(body, folder), metrics))


def refresh_split_inputs_section(folder: str | Path) -> None:
    """Rewrite the card's split-inputs section after ``split_inputs.npz`` changed."""
    card = Path(folder) / CARD_FILE
    card.write_text(with_split_inputs_section(card.read_text(), folder))


def read_card(folder: str | Path) -> str:
    """The model card's Markdown, without its YAML front matter ("" when there is none)."""
    path = Path(folder) / CARD_FILE
    if not path.exists():
        return ""
    text = path.read_text()
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end >= 0:
            return text[end + len("\n---\n"):].lstrip("\n")
    return text


# ---------------------------------------------------------------- the layout before the Hub's


def convert_old_layout(folder: str | Path, move=os.replace) -> list[str]:
    """Bring a folder written before the Hub layout into it, once: rename its files (``OLD_LAYOUT``,
    each with ``move(old, new)``, e.g. a ``git mv``), rename the config's "task" to "modality" and give
    the model card the Hub's metadata. The weights and traces are not touched. Returns the renames
    made ([] for a folder already in the Hub layout)."""
    folder = Path(folder)
    renames = []
    for old, new in OLD_LAYOUT.items():
        if (folder / old).exists():
            if (folder / new).exists():
                raise CheckpointError(f"{folder} holds both {old} and {new}: convert it by hand")
            move(folder / old, folder / new)
            renames.append(f"{old} -> {new}")
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    if "task" in config and "modality" not in config:
        config = {"modality": config.pop("task"), **config}
        path.write_text(json.dumps(config, indent=2) + "\n")
    card = folder / CARD_FILE
    if card.exists() and not card.read_text().startswith("---\n"):
        write_card(read_spec(folder), card.read_text(), folder, read_metrics(folder))
    return renames
