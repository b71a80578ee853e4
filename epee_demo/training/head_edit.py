"""One post-training edit of a trained folder's exit heads, shared by the class logit offset
(``logit_offset``) and the exits' temperature scaling (``exit_temperature``).

Both choose their edit on the VALIDATION trace, change the last linear layer of every exit head,
record the choice in ``config.json`` extra and rewrite the val/test traces from the old ones by
the same change of logits (a trace's log-probabilities are its logits up to a per-row constant).
The record is written before the weights, so a rerun after a failure is refused by its caller
rather than applied twice. A folder with learned exits is refused: they read the exits' outputs,
so they are trained (``epee-demo train-exits``) after any edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from epee_demo.model import folder as model_folder
from epee_demo.trace.exit_trace import ExitTrace

OFFSET_RECORD_SUFFIX = "_logit_offset"  # a class logit offset's record key: "<class>_logit_offset" (logit_offset)


def is_head_edit_record(key: str) -> bool:
    """A ``config.json`` extra key under which an edit of the exit heads is recorded (the exits'
    temperatures or a class's logit offset), not part of the architecture."""
    return key == model_folder.TEMPERATURES_KEY or key.endswith(OFFSET_RECORD_SUFFIX)


def trace_logits(probs: np.ndarray) -> np.ndarray:
    """log p in float64, zeros floored at the smallest positive float: the logits up to a per-row constant."""
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), np.finfo(np.float64).tiny))


def editable_traces(folder: Path, edit: str) -> dict[str, ExitTrace]:
    """The folder's val/test traces, once it is known to have no learned exits (``edit`` names the edit
    in the refusal)."""
    if (Path(folder) / model_folder.LEARNED_EXITS_FILE).exists():
        raise ValueError(f"{folder} has learned exits, which read the exits' outputs: {edit} on a fresh folder, "
                         "then run epee-demo train-exits")
    return {split: model_folder.read_trace(folder, split) for split in model_folder.SPLITS}


def write_head_edit(folder: Path, record_key: str, record: dict, head_keys: list[str],
                    edit_weight: Callable[[str, torch.Tensor], torch.Tensor], traces: dict[str, ExitTrace],
                    rewrite_trace: Callable[[ExitTrace], ExitTrace]) -> dict[str, ExitTrace]:
    """Record ``record`` under ``record_key`` in the config, replace each of ``head_keys`` in the weights
    by ``edit_weight(key, tensor)``, and write ``rewrite_trace`` of each trace. Returns the new traces."""
    weights = load_file(model_folder.weights_path(folder))
    if missing := [key for key in head_keys if key not in weights]:
        raise ValueError(f"{folder} has no exit head parameter {missing[0]}")
    spec = model_folder.read_spec(folder)
    spec.extra[record_key] = record
    model_folder.write_spec(spec, folder)
    for key in head_keys:
        weights[key] = edit_weight(key, weights[key])
    save_file(weights, model_folder.weights_path(folder))
    rewritten = {split: rewrite_trace(trace) for split, trace in traces.items()}
    for split, trace in rewritten.items():
        model_folder.write_trace(trace, folder, split)
    return rewritten
