"""Optimizer parameter groups and learning-rate schedules of the AdaMAE / VideoMAE recipes.

- `parameter_groups`: AdamW groups with weight decay on weight matrices only (biases, norms, position embeddings,
  the mask token are exempt) and, for fine-tuning, layer-wise learning-rate decay.
- `scaled_learning_rate`: the recipes' lr x total batch / 256.
- `warmup_cosine_schedule`: per-step linear warmup from `warmup_lr` then cosine to `min_lr`, as the reference's
  `cosine_scheduler`, as a `LambdaLR` (so Accelerate and Trainer save and restore it with the optimizer).

Both recipes, with every number, are tabled in docs/method.md.
"""

from __future__ import annotations

import math
import re

import torch
from torch.optim.lr_scheduler import LambdaLR


# Parameters exempt from weight decay besides every 1-d tensor (biases, LayerNorm weights): learned position tables
# and the mask token (the reference's `no_weight_decay`).
NO_WEIGHT_DECAY_PATTERNS = (r"(^|\.)position_embeddings$", r"(^|\.)mask_token$")


def is_weight_decay_exempt(name: str, parameter: torch.nn.Parameter) -> bool:
    return parameter.ndim <= 1 or name.endswith(".bias") or any(re.search(p, name) for p in NO_WEIGHT_DECAY_PATTERNS)


def layer_id_for_vit(name: str, num_layers: int) -> int:
    """Depth of a parameter for layer-wise lr decay (the reference's `get_num_layer_for_vit`): embeddings 0, encoder
    layer i -> i + 1, everything after the encoder (final norm, fc_norm, classifier) num_layers + 1."""
    name = name.removeprefix("module.").removeprefix("_orig_mod.")
    if name.startswith("videomae.embeddings.") or re.search(r"(^|\.)(mask_token|position_embeddings)$", name):
        return 0
    match = re.match(r"videomae\.encoder\.layer\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


def parameter_groups(
    model: torch.nn.Module, weight_decay: float, layer_decay: float | None = None, head_first: bool = False
) -> list[dict]:
    """AdamW parameter groups. Each group has `params`, `weight_decay`, `lr_scale` (layer-wise decay:
    `layer_decay ** (num_layers + 1 - layer_id)`, else 1) and `names` (for logging and tests). Frozen parameters are
    left out. Groups run from the embeddings to the head, or with `head_first` the other way: Trainer logs the first
    group's lr, which should then be the undecayed schedule."""
    num_layers = model.config.num_hidden_layers
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = is_weight_decay_exempt(name, parameter)
        layer_id = layer_id_for_vit(name, num_layers) if layer_decay is not None else 0
        key = (layer_id, exempt)
        if key not in groups:
            scale = layer_decay ** (num_layers + 1 - layer_id) if layer_decay is not None else 1.0
            groups[key] = {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if exempt else weight_decay,
                "lr_scale": scale,
            }
        groups[key]["params"].append(parameter)
        groups[key]["names"].append(name)
    return [groups[key] for key in sorted(groups, reverse=head_first)]


def build_adamw(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    layer_decay: float | None = None,
    eps: float = 1e-8,
    fused: bool | None = None,
    head_first: bool = False,
) -> torch.optim.AdamW:
    """AdamW over `parameter_groups`; each group's lr is `lr * lr_scale`. `fused=None` uses the fused CUDA kernel when
    every parameter is on a CUDA device."""
    groups = parameter_groups(model, weight_decay, layer_decay, head_first)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
        group.pop("names")
    if fused is None:
        fused = all(p.is_cuda for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused or None)


def scaled_learning_rate(base_lr: float, total_batch_size: int) -> float:
    """The VideoMAE / AdaMAE linear scaling rule: lr = base_lr x total batch size / 256."""
    return base_lr * total_batch_size / 256


def warmup_cosine_factor(
    step: int, warmup_steps: int, total_steps: int, base_lr: float, warmup_lr: float, min_lr: float
) -> float:
    """lr(step) / base_lr. Warmup: linear from `warmup_lr` at step 0 to `base_lr` at step `warmup_steps - 1` (the
    reference's `np.linspace`); then cosine from `base_lr` down towards `min_lr` over the remaining steps."""
    if base_lr <= 0:
        return 0.0
    if step < warmup_steps:
        if warmup_steps == 1:
            return 1.0
        return (warmup_lr + (base_lr - warmup_lr) * step / (warmup_steps - 1)) / base_lr
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(step - warmup_steps, decay_steps) / decay_steps
    return (min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))) / base_lr


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    base_lr: float,
    warmup_lr: float = 1e-6,
    min_lr: float = 1e-5,
) -> LambdaLR:
    """A per-step `LambdaLR`: every group follows the same warmup + cosine shape times its own initial lr (so
    layer-wise lr scales are kept)."""
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"total_steps must be >= 1 and warmup_steps >= 0, got {total_steps} and {warmup_steps}.")

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, warmup_steps, total_steps, base_lr, warmup_lr, min_lr)

    return LambdaLR(optimizer, factor)


__all__ = [
    "build_adamw",
    "is_weight_decay_exempt",
    "layer_id_for_vit",
    "parameter_groups",
    "scaled_learning_rate",
    "warmup_cosine_factor",
    "warmup_cosine_schedule",
]
