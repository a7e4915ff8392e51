"""The `video_accuracy` evaluate module: hand-checked values, loaded offline by path."""

import socket

import numpy as np
import pytest

from adamae_hf.metrics import load_video_accuracy, video_accuracy_path


@pytest.fixture(scope="module")
def metric():
    return load_video_accuracy(keep_in_memory=True)


def test_loads_by_path_without_touching_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the metric tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    metric = load_video_accuracy(keep_in_memory=True)
    assert video_accuracy_path().endswith("video_accuracy")
    assert metric.compute(predictions=[[0.2, 0.8]], references=[1])["top1_accuracy"] == 1.0


def test_top1_top5_and_mean_class_accuracy_on_a_hand_checked_case(metric):
    scores = [
        [0.10, 0.20, 0.50, 0.05, 0.10, 0.05],  # label 2: top-1 right
        [0.30, 0.40, 0.10, 0.10, 0.05, 0.05],  # label 0: second best -> top-5 only
        [0.30, 0.25, 0.20, 0.15, 0.10, 0.00],  # label 5: ranked last -> wrong at top-5 too
        [0.90, 0.02, 0.02, 0.02, 0.02, 0.02],  # label 0: right
        [0.00, 0.10, 0.60, 0.10, 0.10, 0.10],  # label 2: right
    ]
    results = metric.compute(predictions=scores, references=[2, 0, 5, 0, 2])
    # top-1: 3 of 5; top-5: 4 of 5; per class: class 0 1/2, class 2 2/2, class 5 0/1 -> mean 0.5
    assert results == pytest.approx({"top1_accuracy": 0.6, "top5_accuracy": 0.8, "mean_class_accuracy": 0.5})


def test_mean_class_accuracy_weighs_classes_not_videos(metric):
    # 9 videos of class 0 all right, 1 video of class 1 wrong: top-1 0.9 but mean per class 0.5
    scores = [[1.0, 0.0]] * 10
    results = metric.compute(predictions=scores, references=[0] * 9 + [1])
    assert results["top1_accuracy"] == pytest.approx(0.9)
    assert results["mean_class_accuracy"] == pytest.approx(0.5)


def test_ties_go_to_the_lower_class_id_and_top_k_is_clipped_to_the_classes(metric):
    results = metric.compute(predictions=[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]], references=[0, 1])
    assert results["top1_accuracy"] == 0.5
    assert results["top5_accuracy"] == 1.0  # 3 classes: every label is in the top 5
    assert metric.compute(predictions=[[0.5, 0.5, 0.0]], references=[1], top_k=1)["top5_accuracy"] == 0.0


def test_accepts_logits_as_well_as_probabilities(metric):
    logits = np.random.default_rng(0).normal(size=(20, 7))
    labels = np.random.default_rng(1).integers(0, 7, size=20)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert metric.compute(predictions=logits, references=labels) == pytest.approx(
        metric.compute(predictions=probabilities, references=labels)
    )


def test_bad_input_names_what_was_expected(metric):
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\)"):
        metric.compute(predictions=[[0.1, 0.2, 0.7]], references=[3])
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        metric.compute(predictions=[[0.1, 0.9]], references=[1], top_k=0)
