"""Shared fixtures: small generated videos, made once per test session (a few KB each, well under a second)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from fake_hub import hub  # noqa: F401  (a fixture of test_hub and test_run_finetune: a local Hub)

from adamae_hf.data import generate_sample_videos, render_motion_clip


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory):
    """Six 16-frame 64x48 H.264 videos, two per motion class, with an ``index.csv`` beside them."""
    return generate_sample_videos(
        tmp_path_factory.mktemp("sample_videos"),
        num_videos=6,
        num_frames=16,
        height=48,
        width=64,
        seed=0,
        index_file="index.csv",
        gop_size=4,  # several keyframes, so reads exercise seeking
    )


@pytest.fixture(scope="session")
def sample_index_file(sample_videos):
    return os.path.join(os.path.dirname(sample_videos[0].path), "index.csv")


@pytest.fixture(scope="session")
def long_video(tmp_path_factory):
    """One 60-frame 64x48 video with B-frames and a keyframe every 8 frames, for frame-accuracy tests."""
    return generate_sample_videos(
        tmp_path_factory.mktemp("long_video"), num_videos=1, num_frames=60, height=48, width=64, seed=1, gop_size=8
    )[0]


@pytest.fixture(scope="session")
def moving_frames():
    """uint8 (12, 48, 64, 3) frames of an object moving right, for tests that encode their own variants."""
    frames, _ = render_motion_clip("move_right", 12, 48, 64, np.random.default_rng(7))
    return frames
