"""Batch-level mixup / cutmix with label smoothing folded into soft targets (timm's `Mixup(mode="batch")` semantics,
for video batches): what fine-tuning's training step applies to each batch of clips."""

from __future__ import annotations

import math

import torch


def smoothed_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """`(B,)` ids -> `(B, num_classes)` targets: 1 - smoothing + smoothing / K on the label, smoothing / K elsewhere
    (so the soft cross-entropy equals timm's label-smoothing cross-entropy)."""
    off_value = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off_value, device=labels.device)
    return targets.scatter_(1, labels.long()[:, None], 1.0 - smoothing + off_value)


class MixupCutmix:
    """Batch-level mixup / cutmix with label smoothing, as timm's `Mixup(mode="batch", correct_lam=True)` for videos.

    Per batch: with probability `prob` the batch is mixed, by cutmix with probability `switch_prob` (when both are
    on) else by mixup; lambda ~ Beta(alpha, alpha). Each video is mixed with the batch reversed (video i with video
    B-1-i). Mixup blends whole clips; cutmix pastes one box, the same in every frame, and lambda becomes the kept area.
    Targets are the lambda-blend of the two videos' smoothed one-hot labels.

    Args:
        num_classes: K of the targets.
        mixup_alpha, cutmix_alpha: Beta parameters; 0 turns that mix off.
        prob: Probability that a batch is mixed at all.
        switch_prob: Probability of cutmix rather than mixup when both are on.
        label_smoothing: Folded into the targets.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
    ):
        self.num_classes = num_classes
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.prob, self.switch_prob = prob, switch_prob
        self.label_smoothing = label_smoothing

    @property
    def mixes(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def sample_parameters(self, generator: torch.Generator | None = None) -> tuple[float, bool]:
        """(lambda, use_cutmix) for one batch; lambda 1 means no mixing."""

        def uniform() -> float:
            return float(torch.rand((), generator=generator))

        def beta(alpha: float) -> float:
            # Beta(a, a) as X / (X + Y) with X, Y ~ Gamma(a): torch.distributions takes no generator.
            gammas = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
            return float(gammas[0] / gammas.sum())

        if not self.mixes or uniform() >= self.prob:
            return 1.0, False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = uniform() < self.switch_prob
        else:
            use_cutmix = self.cutmix_alpha > 0
        return beta(self.cutmix_alpha if use_cutmix else self.mixup_alpha), use_cutmix

    @staticmethod
    def cutmix_box(
        height: int, width: int, lam: float, generator: torch.Generator | None = None
    ) -> tuple[int, int, int, int]:
        """timm's `rand_bbox`: a box of sides sqrt(1 - lam) x (height, width) around a uniform centre, clipped to the
        frame. Returns (top, bottom, left, right)."""
        ratio = math.sqrt(1.0 - lam)
        cut_height, cut_width = int(height * ratio), int(width * ratio)
        center_y = int(torch.randint(0, height, (), generator=generator))
        center_x = int(torch.randint(0, width, (), generator=generator))
        top, bottom = max(center_y - cut_height // 2, 0), min(center_y + cut_height // 2, height)
        left, right = max(center_x - cut_width // 2, 0), min(center_x + cut_width // 2, width)
        return top, bottom, left, right

    def __call__(
        self, pixel_values: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, T, C, H, W)` clips and `(B,)` ids -> mixed clips (a new tensor) and `(B, num_classes)` soft targets."""
        lam, use_cutmix = self.sample_parameters(generator)
        if lam < 1.0:
            flipped = pixel_values.flip(0)
            if use_cutmix:
                top, bottom, left, right = self.cutmix_box(*pixel_values.shape[-2:], lam, generator)
                pixel_values = pixel_values.clone()
                pixel_values[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
                # The area actually pasted (the box may be clipped at the border) sets the targets.
                lam = 1.0 - (bottom - top) * (right - left) / (pixel_values.shape[-2] * pixel_values.shape[-1])
            else:
                pixel_values = pixel_values * lam + flipped * (1.0 - lam)
        targets = smoothed_one_hot(labels, self.num_classes, self.label_smoothing)
        return pixel_values, targets * lam + targets.flip(0) * (1.0 - lam)


__all__ = ["MixupCutmix", "smoothed_one_hot"]
