"""Learned exit rules: ConsistentEE (a REINFORCE policy on pooled states) and JEI-DNN (a gate on confidence features).

Both train on the FROZEN shipped model from cached per-layer features (pooled states
[N, L, H] and exit distributions [N, L, C] of the training split) in minutes on a CPU,
and both give a per-layer exit probability [N, L]; the rules "consistentee" and "jei"
in ``catalogue.py`` exit at the first layer where it reaches a threshold.

* **ConsistentEE**: one small network per layer (standardize, Linear(H, 64), tanh,
  Linear(64, 1), sigmoid) on that layer's pooled state. An episode walks layers 1..L
  and samples exit/continue at each (layer L always exits); the reward is
  ``-CE_exit - alpha * exit_layer * (1 - min(m, L) / L)`` where ``m`` is the example's
  memorized layer. Trained with REINFORCE and the batch-mean reward as baseline.
* **JEI-DNN**: one tiny gate per layer (standardize, Linear(4, 16), tanh, Linear(16, 1),
  sigmoid) over the features ``[max probability, normalized entropy, top-1 minus top-2
  margin, normalized entropy of the renormalized p^2]``. The target exit of an example
  is ``l* = argmin_l (CE_l + lambda * l / L)`` and the gate target at layer l is
  ``1[l >= l*]``; trained with binary cross-entropy on every example at every layer
  (not only on those that reach layer l: the target is monotone in l, so the gate
  learns "the best exit is here or behind").

A seeded ``selection_fraction`` of the training split is held out: it picks each run's
best epoch and then ``alpha`` and ``lambda`` (the fastest setting, lowest average exit
layer at threshold 0.5, whose held-out task metric (``analysis.task_metrics``: accuracy,
or micro-F1 over the positive classes for a relation task, ...) is within ``tolerance`` of
the last exit's; failing that, the best one by that metric). The validation split is never seen
by the learned rules, so thresholds calibrated on it (``whole_split.calibrate``) keep their
finite-sample guarantee, as they do for the fixed rules.

Written beside the model (``epee_demo.model.folder``): both networks (float32) and their
description (alpha, lambda, architecture, the held-out selection sweep).
The networks and the scorers a served model loads from these files live in
``exit_scorers`` (serving side); this module trains and writes them.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from epee_demo.analysis import task_metrics
from epee_demo.model import folder as model_folder
from epee_demo.rules import catalogue
from epee_demo.rules.learned_scorers import FEATURE_NAMES, LEARNED_RULES, LayerwiseMLP, gate_features
from epee_demo.model.multi_exit import MultiExitClassifier

_EPS = 1e-12


# ---------------------------------------------------------------- pure NumPy parts


def exit_cross_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of every exit against the gold label, -log p_i[y]: [N, L, C], [N] -> [N, L]."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    gold = np.take_along_axis(probs, labels[:, None, None], axis=-1)[..., 0]
    return -np.log(np.clip(gold, _EPS, 1.0))


def target_exit_layers(cross_entropy: np.ndarray, lam: float) -> np.ndarray:
    """JEI-DNN target exit ``l* = argmin_l (CE_l + lam * l / L)`` (1-based, first on ties): [N, L] -> int [N]."""
    cross_entropy = np.asarray(cross_entropy, dtype=np.float64)
    num_layers = cross_entropy.shape[1]
    cost = cross_entropy + lam * np.arange(1, num_layers + 1) / num_layers
    return cost.argmin(axis=1).astype(np.int64) + 1


def gate_targets(target_layers: np.ndarray, num_layers: int) -> np.ndarray:
    """Gate target ``1[l >= l*]`` at every layer: int [N] -> float32 [N, L]."""
    layers = np.arange(1, num_layers + 1)
    return (layers[None, :] >= np.asarray(target_layers)[:, None]).astype(np.float32)


def depth_penalty_factors(memorized: np.ndarray, num_layers: int) -> np.ndarray:
    """ConsistentEE's per-example weight of the depth cost, ``1 - min(m, L) / L``: int [N] -> [N].

    An example memorized early pays most for every layer it runs; one memorized only
    at the last layer, or never (m = L + 1), pays nothing and goes by its CE alone.
    """
    return 1.0 - np.minimum(np.asarray(memorized), num_layers) / num_layers


# ---------------------------------------------------------------- networks and training


def sample_exit_episodes(exit_logits: torch.Tensor, generator: torch.Generator | None = None):
    """Walk layers 1..L sampling exit/continue from ``sigmoid(exit_logits)`` [B, L]; layer L always exits.

    Returns (0-based exit layer, long [B]; log-probability of the sampled episode [B]).
    """
    num_layers = exit_logits.shape[1]
    exit_probs = torch.sigmoid(exit_logits.detach())
    actions = torch.bernoulli(exit_probs, generator=generator).bool()
    actions[:, -1] = True
    exits = actions.to(torch.int8).argmax(dim=1)  # the first exit action
    layers = torch.arange(num_layers, device=exit_logits.device)[None, :]
    continued = layers < exits[:, None]
    chose_exit = (layers == exits[:, None]) & (layers < num_layers - 1)
    log_prob = (
        (nn.functional.logsigmoid(-exit_logits) * continued).sum(1)
        + (nn.functional.logsigmoid(exit_logits) * chose_exit).sum(1)
    )
    return exits, log_prob


def consistentee_rewards(exits: torch.Tensor, cross_entropy: torch.Tensor, depth_factor: torch.Tensor,
                         alpha: float) -> torch.Tensor:
    """``-CE_exit - alpha * exit_layer * depth_factor`` for 0-based ``exits`` [B]; CE [B, L], factor [B]."""
    exit_ce = cross_entropy.gather(1, exits[:, None])[:, 0]
    return -exit_ce - alpha * (exits + 1).to(cross_entropy.dtype) * depth_factor


def reinforce_loss(exit_logits: torch.Tensor, cross_entropy: torch.Tensor, depth_factor: torch.Tensor,
                   alpha: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE loss of one batch of episodes, with the batch-mean reward as baseline.

    ``exit_logits`` [B, L] from the policy, ``cross_entropy`` [B, L] of the frozen
    exits, ``depth_factor`` [B] from ``depth_penalty_factors``. Returns (loss, rewards [B]).
    """
    exits, log_prob = sample_exit_episodes(exit_logits, generator)
    rewards = consistentee_rewards(exits, cross_entropy, depth_factor, alpha)
    advantage = rewards - rewards.mean()
    return -(advantage.detach() * log_prob).mean(), rewards


@dataclass
class ExitFeatures:
    """What the frozen model says on N examples (L exits, C classes, width H), cached for training.

    pooled: float32 [N, L, H], the pooled state each exit head read; probs: float32
    [N, L, C]; labels: int64 [N].
    """

    pooled: np.ndarray
    probs: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_layers(self) -> int:
        return self.probs.shape[1]


@dataclass
class ExitTrainConfig:
    """Settings of ``train-exits``: the alpha and lambda grids and the optimisation of both rules."""

    alphas: tuple = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    lambdas: tuple = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    policy_width: int = 64
    gate_width: int = 16
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    gate_learning_rate: float = 1e-2
    threshold: float = 0.5
    tolerance: float = 0.01  # of the task's metric, below the last exit's, that a faster setting may lose
    seed: int = 13
    max_train_examples: int | None = None
    selection_fraction: float = 0.15


def _greedy_summary(rule: str, exit_probs: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                    threshold: float, metric: str = "accuracy") -> dict:
    """Accuracy, the task ``metric`` (``analysis.task_metrics``) and the average exit layer of the
    learned ``rule`` at ``threshold`` (its own exit test)."""
    exits, answers = catalogue.exit_answers(probs, rule, scores=exit_probs, threshold=threshold)
    predictions = answers.argmax(axis=-1)
    return {
        **{name: task_metrics.METRICS[name].compute(predictions, labels, probs.shape[-1])
           for name in dict.fromkeys(("accuracy", metric))},
        "average_exit_layer": float(exits.mean()),
    }


def _fit_keeping_best(network: LayerwiseMLP, count: int, batch_loss, held_out_score, learning_rate: float,
                      config: ExitTrainConfig, generator: torch.Generator) -> tuple[int, float]:
    """Adam on ``batch_loss(index)`` over shuffled mini-batches of ``count`` examples for
    ``config.epochs`` epochs; keeps the epoch with the highest ``held_out_score()``.
    Returns (that epoch, its score)."""
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    best_score, best_state, best_epoch = -np.inf, None, 0
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, config.batch_size):
            loss = batch_loss(order[start:start + config.batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score = held_out_score()
        if best_state is None or score > best_score:
            best_score, best_epoch = score, epoch
            best_state = {k: v.clone() for k, v in network.state_dict().items()}
    network.load_state_dict(best_state)
    return best_epoch, best_score


def _exit_probabilities(network: LayerwiseMLP, inputs: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(network(inputs)).numpy()


def split_for_selection(features: ExitFeatures, fraction: float, seed: int) -> tuple[ExitFeatures, ExitFeatures]:
    """A seeded random split of training features into (fit, held-out selection) parts,
    the selection part ``fraction`` of them (at least one example on each side)."""
    if len(features) < 2:
        raise ValueError(f"the learned exit rules need at least 2 training examples; got {len(features)}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"selection_fraction must lie strictly between 0 and 1; got {fraction}")
    order = np.random.default_rng(seed).permutation(len(features))
    held_out = min(len(features) - 1, max(1, round(fraction * len(features))))

    def part(index):
        index = np.sort(index)
        return ExitFeatures(features.pooled[index], features.probs[index], features.labels[index])

    return part(order[held_out:]), part(order[:held_out])


def train_consistentee(train: ExitFeatures, held_out: ExitFeatures, alpha: float,
                       config: ExitTrainConfig, metric: str = "accuracy") -> tuple[LayerwiseMLP, dict]:
    """Train the ConsistentEE policy for one ``alpha`` on ``train``; keeps the epoch whose
    deterministic policy (exit at probability >= threshold) earns the best reward on
    ``held_out`` (the selection part of the training split). Returns (policy, summary on it,
    ``metric`` included)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    def tensors(data: ExitFeatures):
        factor = depth_penalty_factors(catalogue.memorized_layers(data.probs, data.labels), data.num_layers)
        return (torch.from_numpy(np.asarray(data.pooled, dtype=np.float32)),
                torch.from_numpy(exit_cross_entropy(data.probs, data.labels).astype(np.float32)),
                torch.from_numpy(factor.astype(np.float32)))

    pooled, ce, factor = tensors(train)
    held_out_pooled, held_out_ce, held_out_factor = tensors(held_out)
    policy = LayerwiseMLP(train.num_layers, pooled.shape[2], config.policy_width)
    policy.fit_standardization(pooled)

    def held_out_reward() -> float:
        exits = catalogue.exit_layers(held_out.probs, "consistentee", scores=_exit_probabilities(policy, held_out_pooled),
                                      threshold=config.threshold)
        return consistentee_rewards(torch.from_numpy(exits - 1), held_out_ce, held_out_factor, alpha).mean().item()

    best_epoch, best_reward = _fit_keeping_best(
        policy, len(train),
        lambda index: reinforce_loss(policy(pooled[index]), ce[index], factor[index], alpha, generator)[0],
        held_out_reward, config.learning_rate, config, generator)
    summary = _greedy_summary("consistentee", _exit_probabilities(policy, held_out_pooled), held_out.probs, held_out.labels,
                              config.threshold, metric)
    return policy, {"alpha": alpha, "epoch": best_epoch, "held_out_reward": best_reward, **summary}


def train_jei(train: ExitFeatures, held_out: ExitFeatures, lam: float,
              config: ExitTrainConfig, metric: str = "accuracy") -> tuple[LayerwiseMLP, dict]:
    """Train the JEI-DNN gates for one ``lam`` with binary cross-entropy on ``train``; keeps the
    epoch with the lowest loss on ``held_out`` (the selection part of the training split).
    Returns (gate, summary on it, ``metric`` included)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    num_layers = train.num_layers

    def tensors(data: ExitFeatures):
        targets = gate_targets(target_exit_layers(exit_cross_entropy(data.probs, data.labels), lam), num_layers)
        return torch.from_numpy(gate_features(data.probs)), torch.from_numpy(targets)

    features, targets = tensors(train)
    held_out_features, held_out_targets = tensors(held_out)
    gate = LayerwiseMLP(num_layers, len(FEATURE_NAMES), config.gate_width)
    gate.fit_standardization(features)
    bce = nn.functional.binary_cross_entropy_with_logits

    def held_out_negative_loss() -> float:
        with torch.no_grad():
            return -bce(gate(held_out_features), held_out_targets).item()

    best_epoch, best_score = _fit_keeping_best(
        gate, len(train), lambda index: bce(gate(features[index]), targets[index]),
        held_out_negative_loss, config.gate_learning_rate, config, generator)
    summary = _greedy_summary("jei", _exit_probabilities(gate, held_out_features), held_out.probs, held_out.labels,
                              config.threshold, metric)
    return gate, {"lambda": lam, "epoch": best_epoch, "held_out_bce": -best_score, **summary}


def choose_setting(sweep: list[dict], reference: float, tolerance: float, metric: str = "accuracy") -> int:
    """Index of the fastest setting (lowest average exit layer) whose ``metric`` is at least
    ``reference - tolerance``; the best one by ``metric`` when none is."""
    within = [i for i, row in enumerate(sweep) if row[metric] >= reference - tolerance]
    if within:
        return min(within, key=lambda i: (sweep[i]["average_exit_layer"], -sweep[i][metric]))
    return max(range(len(sweep)), key=lambda i: sweep[i][metric])


@dataclass
class TrainedLearnedExits:
    """Both learned rules after the validation sweep: the networks, the chosen alpha and lambda,
    the sweep rows and the settings used."""

    consistentee: LayerwiseMLP
    jei: LayerwiseMLP
    alpha: float
    lam: float
    sweep: dict
    config: ExitTrainConfig


def train_learned_exits(train: ExitFeatures, config: ExitTrainConfig,
                        progress: bool = True, metric: str = "accuracy") -> TrainedLearnedExits:
    """Sweep alpha (ConsistentEE) and lambda (JEI-DNN) on the training features, holding out
    ``config.selection_fraction`` of them to pick epochs and the setting ``choose_setting`` picks
    by the task's ``metric`` (``analysis.task_metrics``)."""
    train, held_out = split_for_selection(train, config.selection_fraction, config.seed)
    reference = task_metrics.METRICS[metric].compute(held_out.probs[:, -1].argmax(-1), held_out.labels,
                                                     held_out.probs.shape[-1])
    results = {}
    for name, grid, trainer in (("consistentee", config.alphas, train_consistentee),
                                ("jei", config.lambdas, train_jei)):
        runs = []
        for value in grid:
            network, row = trainer(train, held_out, value, config, metric)
            runs.append((network, row))
            if progress:
                print(f"{name} {'alpha' if name == 'consistentee' else 'lambda'}={value}: held-out {metric} "
                      f"{row[metric]:.4f} (last exit {reference:.4f}), average exit layer "
                      f"{row['average_exit_layer']:.2f}, best epoch {row['epoch']}", flush=True)
        rows = [row for _, row in runs]
        chosen = choose_setting(rows, reference, config.tolerance, metric)
        results[name] = (runs[chosen][0], rows[chosen], rows)
    return TrainedLearnedExits(
        consistentee=results["consistentee"][0], jei=results["jei"][0],
        alpha=results["consistentee"][1]["alpha"], lam=results["jei"][1]["lambda"],
        sweep={"held_out_examples": len(held_out), "metric": metric, f"held_out_last_exit_{metric}": reference,
               **{name: rows for name, (_, _, rows) in results.items()}},
        config=config,
    )


# ---------------------------------------------------------------- files


def save_learned_exits(trained: TrainedLearnedExits, folder: str | Path) -> Path:
    """Write both networks (float32) and their description into a model folder."""
    tensors = {f"{name}.{key}": value
               for name, network in (("consistentee", trained.consistentee), ("jei", trained.jei))
               for key, value in network.state_dict().items()}
    description = {
        "num_layers": trained.consistentee.num_layers,
        "consistentee": {
            "alpha": trained.alpha,
            "reward": "-CE_exit - alpha * exit_layer * (1 - min(m, L) / L), m = memorized layer (L + 1 if never)",
            "input": "pooled state of the layer", "in_features": trained.consistentee.in_features,
            "width": trained.consistentee.width,
            "architecture": "per layer: standardize, Linear(H, width), tanh, Linear(width, 1), sigmoid",
        },
        "jei": {
            "lambda": trained.lam, "target": "l* = argmin_l (CE_l + lambda * l / L); gate target 1[l >= l*]",
            "features": list(FEATURE_NAMES), "in_features": trained.jei.in_features, "width": trained.jei.width,
            "architecture": "per layer: standardize, Linear(4, width), tanh, Linear(width, 1), sigmoid",
        },
        "selection": (f"on a held-out {trained.config.selection_fraction:g} of the training split (the validation "
                      f"split stays unseen): fastest setting at threshold {trained.config.threshold} whose held-out "
                      f"{trained.sweep['metric']} is within {trained.config.tolerance} of the last exit's; the best "
                      f"by {trained.sweep['metric']} when none is"),
        "selection_sweep": trained.sweep,
        "train_config": asdict(trained.config),
    }
    return model_folder.write_learned_exits(tensors, description, folder)


# ---------------------------------------------------------------- the train-exits run


@torch.inference_mode()
def collect_exit_features(classifier: MultiExitClassifier, inputs, labels, batch_size: int = 64) -> ExitFeatures:
    """Run the frozen model once over ``inputs`` and keep every exit's pooled state and distribution."""
    inputs = list(inputs)
    order = (np.argsort([len(x) for x in inputs], kind="stable") if inputs and isinstance(inputs[0], str)
             else np.arange(len(inputs)))
    pooled, probs = [], []
    for start in range(0, len(inputs), batch_size):
        batch = classifier.to_device(classifier.preprocessor([inputs[i] for i in order[start:start + batch_size]]))
        out = classifier.model(batch)
        pooled.append(out.pooled.float().cpu().numpy())
        probs.append(torch.softmax(out.logits.float(), dim=-1).cpu().numpy())
    restore = np.argsort(order)
    return ExitFeatures(np.concatenate(pooled)[restore], np.concatenate(probs)[restore],
                        np.asarray(labels, dtype=np.int64))


def cached_exit_features(classifier: MultiExitClassifier, folder: Path, split: str, data,
                         cache_dir: Path | None) -> ExitFeatures:
    """``collect_exit_features`` of one split, reused from ``cache_dir`` when it was made
    with the same weights file, example count and labels."""
    if cache_dir is None:
        return collect_exit_features(classifier, data.inputs, data.labels)
    cache_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(data.labels, dtype=np.int64)
    labels_digest = hashlib.sha256(labels.tobytes()).hexdigest()[:12]
    path = cache_dir / f"{model_folder.weights_digest(folder)}_{split}_{len(data)}_{labels_digest}.npz"
    if path.exists():
        with np.load(path) as cached:
            return ExitFeatures(cached["pooled"], cached["probs"], cached["labels"])
    features = collect_exit_features(classifier, data.inputs, data.labels)
    np.savez(path, pooled=features.pooled, probs=features.probs, labels=features.labels)
    return features


def default_cache_dir(task: str) -> Path:
    """Where ``train-exits`` caches features between runs: the system temp folder, never assets/."""
    return Path(tempfile.gettempdir()) / "epee-exit-features" / task


def train_and_ship_exits(classifier: MultiExitClassifier, dataset, folder: str | Path,
                         config: ExitTrainConfig, cache_dir: Path | None = None,
                         progress: bool = True, card_notes: str = "", metric: str = "accuracy") -> dict:
    """The ``train-exits`` run on a checkpoint folder.

    Caches the frozen model's features on the training split, trains and chooses both
    learned rules on it by the task's ``metric`` (see ``train_learned_exits``), writes them into ``folder``, then
    recomputes the val and test traces from the weights with the loaded scorers
    (so the traces carry ``exit_scores`` for both rules, in the current trace format) and
    the figures of the metrics and the model card read off them (``card_notes`` as
    in training). Returns the test-split summary of each learned rule at the threshold
    beside the full model, ``metric`` included.
    """
    from epee_demo.training.joint import refresh_trace_figures, rule_summary

    def test_row(trace, rule, **params) -> dict:
        exits, answers = catalogue.exit_answers(trace.probs, rule, scores=trace.scores_for(rule), **params)
        return {**rule_summary(trace, rule, **params), metric: task_metrics.METRICS[metric].compute(
            answers.argmax(axis=-1), trace.labels, len(trace.label_names))}

    folder = Path(folder)
    classifier.model.eval()
    train_data = dataset.train.first(config.max_train_examples)
    features = cached_exit_features(classifier, folder, "train", train_data, cache_dir)
    trained = train_learned_exits(features, config, progress, metric)
    save_learned_exits(trained, folder)
    scoring = MultiExitClassifier(classifier.model, classifier.spec, classifier.preprocessor,
                                  model_folder.load_learned_exits(folder, classifier.model))
    traces = {}
    for split in model_folder.SPLITS:
        data = dataset.split(split)
        traces[split] = scoring.trace(data.inputs, data.labels)
        model_folder.write_trace(traces[split], folder, split)
    refresh_trace_figures(classifier.spec, dataset, folder, traces, card_notes)
    test_trace = traces["test"]
    summary = {
        "alpha": trained.alpha, "lambda": trained.lam, "threshold": config.threshold,
        "test": [test_row(test_trace, "fixed", layer=test_trace.num_layers)]
        + [test_row(test_trace, rule, threshold=config.threshold) for rule in LEARNED_RULES],
    }
    description = model_folder.read_learned_exits_description(folder)
    description["test_summary"] = summary["test"]
    model_folder.write_learned_exits_description(description, folder)
    return summary
