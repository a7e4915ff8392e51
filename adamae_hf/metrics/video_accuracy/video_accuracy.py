# Copyright 2026 The adamae-hf authors. Licensed under the Apache License, Version 2.0.
"""Video classification accuracy: top-1, top-5 and mean per-class accuracy from class scores.

An `evaluate.Metric` loaded by path, so evaluation never fetches a script from the Hub:

    import evaluate
    metric = evaluate.load("/path/to/adamae_hf/metrics/video_accuracy")  # or adamae_hf.metrics.load_video_accuracy()
    metric.compute(predictions=scores, references=labels)

This file imports only `datasets`, `evaluate` and `numpy`: `evaluate` copies it into its module cache and imports it
from there.
"""

import datasets
import evaluate
import numpy as np


_DESCRIPTION = """
Accuracy of a video classifier from its per-class scores (logits or probabilities; for multi-view testing, the
softmax averaged over a video's views):

- top1_accuracy: fraction of videos whose highest-scoring class is the label;
- top5_accuracy: fraction whose label is among the `top_k` (default 5) highest-scoring classes (every video counts as
  correct when there are no more than `top_k` classes);
- mean_class_accuracy: the top-1 accuracy of each class that occurs in the references, averaged over those classes
  (so that frequent classes do not dominate).

Ties are broken towards the lower class id.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): scores of shape (num_videos, num_classes).
    references (`list` of `int`): the class id of each video, in [0, num_classes).
    top_k (`int`, *optional*, defaults to 5): k of the `top5_accuracy` entry (its name does not change).

Returns:
    dict with `top1_accuracy`, `top5_accuracy` and `mean_class_accuracy`, each in [0, 1].

Examples:
    >>> metric = evaluate.load("adamae_hf/metrics/video_accuracy")
    >>> metric.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], references=[1, 2], top_k=2)
    {'top1_accuracy': 0.5, 'top5_accuracy': 0.5, 'mean_class_accuracy': 0.5}
"""

_CITATION = """@InProceedings{Bandara_2023_CVPR,
    author    = {Bandara, Wele Gedara Chaminda and Patel, Naman and Gholami, Ali and Nikkhah, Mehdi and Agrawal, Motilal and Patel, Vishal M.},
    title     = {AdaMAE: Adaptive Masking for Efficient Spatiotemporal Learning With Masked Autoencoders},
    booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
    year      = {2023},
    pages     = {14507-14517}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VideoAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, top_k=5):
        scores = np.asarray(predictions, dtype=np.float64)  # (num_videos, num_classes)
        labels = np.asarray(references, dtype=np.int64)  # (num_videos,)
        if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
            raise ValueError(
                "predictions must be scores of shape (num_videos, num_classes) with one reference per video, got "
                f"predictions of shape {scores.shape} and {labels.shape[0]} references."
            )
        num_classes = scores.shape[1]
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"references must be class ids in [0, {num_classes}), got values from {labels.min()} to "
                f"{labels.max()}."
            )
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
        # A stable sort of the negated scores ranks equal scores by class id.
        ranking = np.argsort(-scores, axis=1, kind="stable")  # (num_videos, num_classes), best class first
        top1_correct = ranking[:, 0] == labels
        topk_correct = (ranking[:, : min(top_k, num_classes)] == labels[:, None]).any(axis=1)
        per_class = [top1_correct[labels == label].mean() for label in np.unique(labels)]
        return {
            "top1_accuracy": float(top1_correct.mean()),
            "top5_accuracy": float(topk_correct.mean()),
            "mean_class_accuracy": float(np.mean(per_class)),
        }
