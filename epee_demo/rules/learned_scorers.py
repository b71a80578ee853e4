"""The learned exit scorers a served model loads: ConsistentEE's policy and JEI-DNN's gate.

Both are a ``LayerwiseMLP`` (one small MLP per layer) whose parameters and description
ship beside a model (``epee_demo.model.folder`` reads and writes the files). ``learned_exits``
trains them; this module only builds the scorers, so serving never imports training code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from epee_demo.rules import catalogue
from epee_demo.errors import CheckpointError

FEATURE_NAMES = ("max_probability", "normalized_entropy", "margin", "sharpened_entropy")
LEARNED_RULES = ("consistentee", "jei")
_EPS = 1e-12


def gate_features(probs: np.ndarray) -> np.ndarray:
    """JEI-DNN gate inputs of every distribution: [..., C] -> float32 [..., 4] in ``FEATURE_NAMES`` order.

    Max probability; normalized entropy ``Hn(p)``; top-1 minus top-2 probability;
    ``Hn(q)`` of the sharpened distribution ``q = p^2 / sum p^2``. All lie in [0, 1].
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[-1] < 2:
        raise ValueError(f"gate features need at least 2 classes; got shape {probs.shape}")
    top_two = np.partition(probs, -2, axis=-1)[..., -2:]
    squared = probs ** 2
    squared /= np.clip(squared.sum(axis=-1, keepdims=True), _EPS, None)
    return np.stack([
        top_two[..., 1],
        catalogue.normalized_entropy(probs),
        top_two[..., 1] - top_two[..., 0],
        catalogue.normalized_entropy(squared),
    ], axis=-1).astype(np.float32)


class LayerwiseMLP(nn.Module):
    """One small MLP per layer, ``standardize -> Linear(F, width) -> tanh -> Linear(width, 1)``.

    Input [B, k, F] of layers ``first_layer .. first_layer + k - 1`` (0-based; layer j
    of the input goes through network j); output the exit logits [B, k]. ``mean`` and
    ``scale`` [L, F] standardize the inputs of each layer (set from the training features).
    """

    def __init__(self, num_layers: int, in_features: int, width: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_layers, in_features))
        self.register_buffer("scale", torch.ones(num_layers, in_features))
        bound_in, bound_out = in_features ** -0.5, width ** -0.5
        self.weight_in = nn.Parameter(torch.empty(num_layers, in_features, width).uniform_(-bound_in, bound_in))
        self.bias_in = nn.Parameter(torch.zeros(num_layers, width))
        self.weight_out = nn.Parameter(torch.empty(num_layers, width).uniform_(-bound_out, bound_out))
        self.bias_out = nn.Parameter(torch.zeros(num_layers))

    @property
    def num_layers(self) -> int:
        return self.weight_in.shape[0]

    @property
    def in_features(self) -> int:
        return self.weight_in.shape[1]

    @property
    def width(self) -> int:
        return self.weight_in.shape[2]

    def fit_standardization(self, features: torch.Tensor) -> None:
        """Set ``mean`` and ``scale`` from training features [N, L, F]."""
        with torch.no_grad():
            self.mean.copy_(features.mean(0))
            self.scale.copy_(features.std(0, unbiased=False).clamp(min=1e-4))

    def forward(self, features: torch.Tensor, first_layer: int = 0) -> torch.Tensor:
        if (features.ndim != 3 or first_layer < 0 or first_layer + features.shape[1] > self.num_layers
                or features.shape[2] != self.in_features):
            raise ValueError(
                f"expected features [B, k, {self.in_features}] of layers {first_layer}..{first_layer}+k-1 "
                f"< {self.num_layers}; got {tuple(features.shape)}"
            )
        layers = slice(first_layer, first_layer + features.shape[1])
        x = (features - self.mean[layers]) / self.scale[layers]
        hidden = torch.tanh(torch.einsum("bif,ifw->biw", x, self.weight_in[layers]) + self.bias_in[layers])
        return torch.einsum("biw,iw->bi", hidden, self.weight_out[layers]) + self.bias_out[layers]


def read_networks(description: dict, tensors: dict[str, torch.Tensor], source: str = "") -> dict[str, LayerwiseMLP]:
    """Both learned networks from their description and parameters (keys ``<rule>.<parameter>``)."""
    try:
        networks = {}
        for name in LEARNED_RULES:
            spec = description[name]
            network = LayerwiseMLP(description["num_layers"], spec["in_features"], spec["width"])
            prefix = f"{name}."
            network.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            networks[name] = network.eval()
    except Exception as err:  # a missing key or load_state_dict's own error types
        raise CheckpointError(f"learned exits are corrupt in {source} ({err})") from err
    return networks


def build_scorers(description: dict, tensors: dict[str, torch.Tensor], model, source: str = "") -> dict:
    """The learned exit scorers of ``model`` from their description and parameters (``source`` names
    where they came from, for messages).

    Each scorer maps (pooled [B, k, H], probs [B, k, C]) float tensors of layers
    ``first_layer .. first_layer + k - 1`` (0-based; default 0, the first k layers) to
    the per-layer score of each of those layers, [B, k], on the inputs' device: ConsistentEE's
    policy exit probability, JEI-DNN's gate g_l (its rule turns the gates into a_l). Keys:
    ``consistentee`` and ``jei``.
    """
    networks = read_networks(description, tensors, source)
    hidden_size = model.backbone.pooled_size
    if networks["consistentee"].num_layers != model.num_layers or networks["consistentee"].in_features != hidden_size:
        raise CheckpointError(
            f"learned exits in {source} do not fit the model: they expect "
            f"{networks['consistentee'].num_layers} layers of width {networks['consistentee'].in_features}, "
            f"the model has {model.num_layers} of width {hidden_size}"
        )
    device = next(model.parameters()).device
    policy, gate = networks["consistentee"].to(device), networks["jei"].to(device)

    @torch.no_grad()
    def consistentee(pooled: torch.Tensor, probs: torch.Tensor, first_layer: int = 0) -> torch.Tensor:
        return torch.sigmoid(policy(pooled.float(), first_layer))

    @torch.no_grad()
    def jei(pooled: torch.Tensor, probs: torch.Tensor, first_layer: int = 0) -> torch.Tensor:
        features = torch.from_numpy(gate_features(probs.detach().float().cpu().numpy()))
        return torch.sigmoid(gate(features.to(device), first_layer)).to(probs.device)

    return {"consistentee": consistentee, "jei": jei}
