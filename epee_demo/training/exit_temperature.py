"""Per-exit temperature scaling, fitted on validation and written into the exit heads of a trained folder.

The entropy and max-probability rules read each exit's confidence, so an exit that is sure and
wrong leaves too early. Temperature scaling (Guo et al., "On calibration of modern neural
networks", ICML 2017) divides an exit's logits by one number T fitted to minimize that exit's
negative log-likelihood on the VALIDATION split: T > 1 softens an overconfident exit, T < 1
sharpens a shy one. Dividing logits by T > 0 keeps their argmax, so per-exit accuracy, the
patience counter and PABEE are untouched (up to the fp16 rounding of the saved heads, which can
flip a near-tie); only the rules that read confidence move. Dividing a head's last linear layer
(weight and bias) by T gives the same logits, so the folder keeps its layout; the val/test traces
are rewritten from the old ones (softmax(log p / T); they match the saved fp16 heads to about
1e-4, and ``epee-demo train-exits`` re-traces the folder from its weights). The fit is recorded in
``config.json`` (``extra["exit_temperatures"]``) before the weights change, so a folder is never
scaled twice, and the card and metrics follow (``training.joint.refresh_trace_figures``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from epee_demo.model import folder as model_folder
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.training.head_edit import editable_traces, trace_logits, write_head_edit

RECORD_KEY = model_folder.TEMPERATURES_KEY
TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.25), np.log(4.0), 241))
"""Candidate temperatures, log-spaced from 1/4 to 4 (steps of about 1.2%)."""


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def negative_log_likelihoods(trace: ExitTrace, temperatures) -> np.ndarray:
    """Mean negative log-likelihood of the labels at each exit under each temperature: [G] -> [G, L]
    (vectorized over temperatures and examples, one exit at a time to bound memory)."""
    temperatures = np.asarray(temperatures, dtype=np.float64)
    columns = []
    for layer in range(trace.num_layers):
        log_probs = trace_logits(trace.probs[:, layer])  # [N, C]; log p equals the logits up to a per-row constant
        tempered = _log_softmax(log_probs[None] / temperatures[:, None, None])  # [G, N, C]
        columns.append(-np.take_along_axis(tempered, trace.labels[None, :, None], axis=-1)[..., 0].mean(axis=1))
    return np.stack(columns, axis=1)


def fitted_temperatures(trace: ExitTrace, grid=TEMPERATURE_GRID) -> np.ndarray:
    """Each exit's temperature on ``grid`` with the lowest negative log-likelihood on ``trace``: [L]."""
    grid = np.asarray(grid, dtype=np.float64)
    return grid[negative_log_likelihoods(trace, grid).argmin(axis=0)]


def tempered(trace: ExitTrace, temperatures) -> ExitTrace:
    """The trace of the same model with exit i's logits divided by ``temperatures[i]`` ([L])."""
    temperatures = np.broadcast_to(np.asarray(temperatures, dtype=np.float64), (trace.num_layers,))
    probs = np.exp(_log_softmax(trace_logits(trace.probs) / temperatures[None, :, None]))
    return replace(trace, probs=probs.astype(np.float32))


def temperature_scale_folder(folder: Path, grid=TEMPERATURE_GRID) -> tuple[np.ndarray, dict]:
    """Fit every exit's temperature on ``folder``'s validation trace, divide that exit head's last
    linear layer by it, rewrite both traces and record the fit in the config. Returns the
    temperatures [L] and the rewritten traces by split; the caller refreshes the metrics and card."""
    folder = Path(folder)
    traces = editable_traces(folder, "scale the exits")
    if RECORD_KEY in model_folder.read_spec(folder).extra:
        raise ValueError(f"{folder} is temperature-scaled already (config.json extra[{RECORD_KEY!r}])")
    val = traces["val"]
    temperatures = fitted_temperatures(val, grid)
    nll_before = negative_log_likelihoods(val, [1.0])[0]
    nll_after = np.diag(negative_log_likelihoods(val, temperatures))  # exit i under its own temperature
    record = {
        "temperatures": [round(float(t), 4) for t in temperatures],
        "grid": [round(float(grid[0]), 4), round(float(grid[-1]), 4), len(grid)],
        "val_nll_before": [round(float(v), 4) for v in nll_before],
        "val_nll_after": [round(float(v), 4) for v in nll_after],
    }
    keys = [f"heads.{layer}.out.{part}" for layer in range(val.num_layers) for part in ("weight", "bias")]

    def divided(key: str, tensor):  # key "heads.<layer>.out.<part>"
        return (tensor.double() / float(temperatures[int(key.split(".")[1])])).to(tensor.dtype)

    traces = write_head_edit(folder, RECORD_KEY, record, keys, divided, traces,
                             lambda trace: tempered(trace, temperatures))
    return temperatures, traces


def temperature_markdown(record: dict | None) -> str:
    """The model card's temperature section from the config record, or '' when the folder has none."""
    if not record:
        return ""

    def cells(values) -> str:
        return " | ".join(f"{v:.3f}" for v in values)

    count = len(record["temperatures"])
    return f"""
## Temperature scaling of the exits

Each exit's logits are divided by a temperature fitted on the validation split (lowest negative
log-likelihood on a grid of {record["grid"][2]} values from {record["grid"][0]} to {record["grid"][1]};
Guo et al., ICML 2017), written into the exit heads. It changes no exit's answer (up to the fp16
rounding of the heads, which can flip a near-tie), only how sure each exit says it is, and so where
the rules that read the probabilities (entropy, max probability, PCEE, F-PABEE, EPEE's entropy
test) stop. The figures above are of the temperature-scaled model.

| exit | {" | ".join(str(i) for i in range(1, count + 1))} |
|---|{"---|" * count}
| temperature | {cells(record["temperatures"])} |
| validation NLL before | {cells(record["val_nll_before"])} |
| validation NLL after | {cells(record["val_nll_after"])} |
"""
