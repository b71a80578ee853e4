"""Real early exit: run a multi-exit model layer by layer and stop where the exit rule fires.

The per-layer trace (``MultiExitClassifier.trace``) runs every layer to show what each
exit would say; this module is what a deployment runs instead. After each layer it
pools the hidden state, applies only that layer's head, evaluates the exit rule on the
layers seen so far and drops the examples that exited, so later layers and heads run
only on the examples still in flight (at batch size 1: the example stops computing).

Every rule in the catalogue (``rules.catalogue``) is causal (whether it fires at layer i depends on layers
1..i only), so evaluating it on the prefix gives exactly the trace-based exit layer.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from epee_demo.rules import catalogue
from epee_demo.model.multi_exit import MultiExitClassifier, MultiExitModel, state_cosine

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(requested: str, device: torch.device | str) -> torch.dtype:
    """The dtype to run in: ``auto`` is float16 on CUDA and float32 on the CPU.

    bfloat16 runs anywhere when asked for; float16 is refused on the CPU (slow there).
    """
    device = torch.device(device)
    if requested == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if requested not in DTYPES:
        raise ValueError(f"unknown dtype {requested!r}; choose auto or one of {sorted(DTYPES)}")
    if requested == "float16" and device.type != "cuda":
        raise ValueError("float16 inference needs a CUDA device; on the CPU use float32 or bfloat16")
    return DTYPES[requested]


def with_dtype(classifier: MultiExitClassifier, dtype: torch.dtype) -> MultiExitClassifier:
    """The classifier with its model cast to ``dtype``: a copy, the given one is left as it was.

    Softmax, cosines and learned exit scorers still run in float32.
    """
    if next(classifier.model.parameters()).dtype == dtype:
        return classifier
    model = copy.deepcopy(classifier.model).to(dtype).eval()
    return MultiExitClassifier(model, classifier.spec, classifier.preprocessor, classifier.exit_scorers)


class OnlineExitRule:
    """An exit rule evaluated one layer at a time over the examples still in flight.

    A thin torch-side wrapper of ``catalogue.LayerwiseRule``: it turns each layer's
    tensors into the arrays the rule reads (and, for the score-based rules, computes the
    score: the cosine of consecutive pooled states for ``calm``, the learned scorer's
    exit probability for ``consistentee`` and ``jei``). ``scorer`` is that learned
    rule's callable (see ``MultiExitClassifier``). Call ``start`` for each batch,
    ``update`` after each layer and ``keep`` when examples leave. Every step costs the
    same at any depth: nothing of earlier layers is re-read but the previous pooled state.

    ``probs`` (float32 [B, C]) holds the in-flight examples' latest class probabilities;
    ``answers()`` what each would answer if it exited now (the rule's answer where it fired,
    such as PCEE's run mean, the layer's own distribution where it did not).
    """

    def __init__(self, rule: str, num_layers: int, scorer: Callable | None = None, **params):
        self.rule, self.params, self.scorer = rule, params, scorer
        self.num_layers = num_layers
        self.start(0)  # checks the rule and its parameters
        self.source = catalogue.RULES[rule].score_source
        self.learned = self.source == "exit_scores"
        if self.learned and scorer is None:
            raise ValueError(f"the learned rule {rule!r} needs its exit scorer; this model has none")

    def start(self, batch_size: int) -> None:
        """Forget the previous batch; the next ``update`` is layer 1 of ``batch_size`` examples."""
        self.layerwise = catalogue.LayerwiseRule(self.rule, self.num_layers, batch_size, **self.params)
        self.probs = np.zeros((batch_size, 0), dtype=np.float32)
        self.fired = np.zeros(batch_size, dtype=bool)
        self._previous_pooled: torch.Tensor | None = None

    def update(self, pooled: torch.Tensor, probs: torch.Tensor) -> np.ndarray:
        """Take the next layer's pooled states [B, H] and class probabilities [B, C] (float32);
        return where the rule fires at this layer, bool [B] (always True at the last layer)."""
        layer = self.layerwise.layer  # 0-based index of this layer
        self.probs = probs.cpu().numpy()
        scores = None
        if self.source == "state_cosine":
            scores = (np.full(len(self.probs), np.nan, dtype=np.float32) if self._previous_pooled is None
                      else state_cosine(torch.stack([self._previous_pooled, pooled], 1))[:, 1].cpu().numpy())
            self._previous_pooled = pooled
        elif self.learned:
            score = self.scorer(pooled[:, None].float(), probs[:, None], first_layer=layer)[:, 0]
            scores = score.float().cpu().numpy()
        self.fired = self.layerwise.step(self.probs, scores)
        return np.ones(len(self.fired), dtype=bool) if layer + 1 >= self.num_layers else self.fired

    def answers(self) -> np.ndarray:
        """What each in-flight example answers with if it exits at this layer, float32 [B, C]."""
        answers = self.probs.copy()
        rows = np.nonzero(self.fired)
        answers[rows] = self.layerwise.answer(rows)
        return answers

    def keep(self, index: np.ndarray) -> None:
        """Keep only the in-flight examples at positions ``index`` (int [K])."""
        self.layerwise.keep(index)
        self.probs = self.probs[index]
        self.fired = self.fired[index]
        if self._previous_pooled is not None:
            rows = torch.as_tensor(index, device=self._previous_pooled.device)
            self._previous_pooled = self._previous_pooled[rows]


@torch.inference_mode()
def run_early_exit(model: MultiExitModel, batch: dict, rule: OnlineExitRule) -> tuple[np.ndarray, np.ndarray]:
    """Run a device-ready batch of B examples until each one exits.

    Returns the 1-based exit layers, int [B], and the class probabilities of the exit
    that answered, float32 [B, C]. Layers and heads past an example's exit never run
    on it; when every example has exited, nothing more runs.
    """
    backbone = model.backbone
    hidden, ctx = backbone.embed(batch)
    count = hidden.shape[0]
    in_flight = np.arange(count)
    exit_layers = np.full(count, model.num_layers, dtype=np.int64)
    exit_probs = None
    rule.start(count)
    for index, head in enumerate(model.heads):
        hidden = backbone.run_layer(index, hidden, ctx)
        pooled = backbone.pool(hidden, ctx)
        probs = torch.softmax(head(pooled).float(), dim=-1)
        fires = rule.update(pooled, probs)
        if exit_probs is None:
            exit_probs = np.zeros((count, probs.shape[1]), dtype=np.float32)
        if not fires.any():
            continue
        exit_layers[in_flight[fires]] = index + 1
        exit_probs[in_flight[fires]] = rule.answers()[fires]
        if fires.all():
            break
        keep = np.flatnonzero(~fires)
        rows = torch.as_tensor(keep, device=hidden.device)
        hidden = hidden[rows]
        ctx = backbone.select(ctx, rows)
        rule.keep(keep)
        in_flight = in_flight[keep]
    return exit_layers, exit_probs


@torch.inference_mode()
def run_full(model: MultiExitModel, batch: dict, all_heads: bool = False) -> np.ndarray:
    """The model without early exit: every layer, no exit checks; last exit's probs, float32 [B, C].

    With ``all_heads`` every exit head runs too (the per-layer trace's cost); without,
    only the last head does (the plain classifier early exit is measured against).
    """
    if all_heads:
        logits = model(batch).logits[:, -1]
    else:
        backbone = model.backbone
        hidden, ctx = backbone.embed(batch)
        for index in range(model.num_layers):
            hidden = backbone.run_layer(index, hidden, ctx)
        logits = model.heads[-1](backbone.pool(hidden, ctx))
    return torch.softmax(logits.float(), dim=-1).cpu().numpy()


@torch.inference_mode()
def run_embedding(model: MultiExitModel, batch: dict) -> None:
    """Only the embedding: the fixed cost every input pays before layer 1, whatever its exit."""
    model.backbone.embed(batch)


def online_rule_for(classifier: MultiExitClassifier, rule: str, **params) -> OnlineExitRule:
    """The online form of ``rule`` for this classifier (with its learned scorer when it has one)."""
    return OnlineExitRule(rule, classifier.num_layers, classifier.exit_scorers.get(rule), **params)


@dataclass
class EarlyExitResult:
    """What real early exit answered for N examples with C classes.

    predictions: int [N], the class the exiting head chose; exit_layers: int [N], 1-based;
    probs: float32 [N, C], the exiting head's probabilities; seconds: wall-clock time of
    the whole call (preprocessing included).
    """

    predictions: np.ndarray
    exit_layers: np.ndarray
    probs: np.ndarray
    seconds: float


def length_order(inputs: Sequence) -> np.ndarray:
    """Texts in order of length (less padding per batch); other inputs as they come."""
    if inputs and isinstance(inputs[0], str):
        return np.argsort([len(x) for x in inputs], kind="stable")
    return np.arange(len(inputs))


def predict_early_exit(
    classifier: MultiExitClassifier, inputs: Sequence, rule: str = "epee", *, batch_size: int = 1, **params,
) -> EarlyExitResult:
    """Classify raw ``inputs`` (texts or images) with real early exit under ``rule``.

    ``batch_size`` 1 runs each example alone and stops it at its exit layer; larger
    batches drop exited examples as they go. Parameters missing from ``params`` take
    the rule's defaults. Exit layers and predictions equal the trace's for the same rule.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    started = time.perf_counter()
    inputs = list(inputs)
    online = online_rule_for(classifier, rule, **params)
    order = length_order(inputs)
    exit_layers = np.zeros(len(inputs), dtype=np.int64)
    probs = np.zeros((len(inputs), len(classifier.label_names)), dtype=np.float32)
    for start in range(0, len(inputs), batch_size):
        rows = order[start:start + batch_size]
        batch = classifier.to_device(classifier.preprocessor([inputs[i] for i in rows]))
        exit_layers[rows], probs[rows] = run_early_exit(classifier.model, batch, online)
    return EarlyExitResult(probs.argmax(axis=1), exit_layers, probs, time.perf_counter() - started)
