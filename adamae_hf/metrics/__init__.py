"""Evaluation metrics shipped with adamae-hf as `evaluate` modules, loadable offline by path.

`evaluate.load("accuracy")` fetches its script from the Hub; ours lives in the package:

    from adamae_hf.metrics import load_video_accuracy
    metric = load_video_accuracy()
    metric.compute(predictions=scores, references=labels)  # top1_accuracy, top5_accuracy, mean_class_accuracy
"""

from __future__ import annotations

import os

import evaluate


METRICS_DIR = os.path.dirname(os.path.abspath(__file__))


def video_accuracy_path() -> str:
    """Folder of the `video_accuracy` metric script (`evaluate.load` accepts it as is)."""
    path = os.path.join(METRICS_DIR, "video_accuracy")
    if not os.path.isfile(os.path.join(path, "video_accuracy.py")):
        raise FileNotFoundError(
            f"{path}/video_accuracy.py is missing: adamae-hf was installed without its package data "
            "(setup.cfg must list adamae_hf.metrics in package_data)."
        )
    return path


def load_video_accuracy(**load_kwargs) -> evaluate.EvaluationModule:
    """`evaluate.load` of the video accuracy metric from its local path: nothing is downloaded."""
    return evaluate.load(video_accuracy_path(), **load_kwargs)


__all__ = ["METRICS_DIR", "load_video_accuracy", "video_accuracy_path"]
