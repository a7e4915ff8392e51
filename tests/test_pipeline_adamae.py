"""The Hub pipeline (`pipeline_adamae.py`) that every classifier folder carries: it scores a video as
`run_finetune.py --do_predict` does (our reader, the clip_config.json views, softmax averaged), also in a fresh process
where the project cannot be imported, and a rotated video is read upright."""

import json
import shutil

import numpy as np
import pytest
import torch
from tiny_configs import tiny_config
from transformers import pipeline
from without_project import run_without_project

import run_finetune
from adamae_hf.data import (
    EvalTransform,
    VideoClipConfig,
    VideoReader,
    clip_indices,
    load_eval_clip,
    save_video_processor,
    write_video,
)
from adamae_hf.data.processor import save_classification_pipeline, save_image_processor
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification


CLASSES = ["move_left", "move_right", "move_up"]
# 2 clips x 3 crops of 8 frames at stride 2, 32x32 crops from frames resized to a short side of 40
CLIP = VideoClipConfig(num_frames=8, sampling_rate=2, crop_size=32, short_side_size=40, num_clips=2, num_crops=3)
# predictions.jsonl rounds scores to 6 decimals
PREDICTIONS_TOLERANCE = 2e-6


def tiny_classifier(seed: int = 0) -> AdaMaeForVideoClassification:
    """A random tiny classifier whose head is scaled up, so that its scores differ well beyond rounding."""
    torch.manual_seed(seed)
    labels = {"id2label": dict(enumerate(CLASSES)), "label2id": {name: i for i, name in enumerate(CLASSES)}}
    config = tiny_config(num_labels=3, **labels)
    model = AdaMaeForVideoClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.25)
    return model


@pytest.fixture(scope="module")
def videos(tmp_path_factory, sample_videos, moving_frames):
    """Three videos and their index: two sample videos and one stored sideways with 90-degree rotation metadata (as
    a phone records upright video)."""
    folder = tmp_path_factory.mktemp("pipeline_videos")
    upright = np.ascontiguousarray(np.rot90(moving_frames, k=1, axes=(1, 2)))  # (12, 64, 48, 3): portrait
    stored = np.ascontiguousarray(np.rot90(upright, k=-1, axes=(1, 2)))  # what the camera writes: landscape
    rotated = write_video(folder / "rotated.mp4", stored, rotation=90)
    paths = {"plain_left": sample_videos[0].path, "plain_right": sample_videos[2].path, "rotated": rotated}
    labels = {"plain_left": sample_videos[0].label, "plain_right": sample_videos[2].label, "rotated": "move_up"}
    index = folder / "index.csv"
    index.write_text("path,label\n" + "".join(f"{paths[name]},{labels[name]}\n" for name in paths))
    return paths, index


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifier")
    tiny_classifier().save_pretrained(folder)
    save_video_processor(folder, CLIP)
    return folder


@pytest.fixture(scope="module")
def predictions(classifier_folder, videos, tmp_path_factory):
    """`run_finetune.py --do_predict` on the three videos: {path: {label: score}}."""
    _, index = videos
    output_dir = tmp_path_factory.mktemp("predict")
    run_finetune.main(
        [
            "--model_name_or_path",
            str(classifier_folder),
            "--validation_index",
            str(index),
            "--output_dir",
            str(output_dir),
            "--do_predict",
            "--test_num_clips",
            "2",
            "--test_num_crops",
            "3",
            # batches of 2 for 3 videos: the last batch is short, and its videos must still be scored from all 6 views
            "--per_device_eval_batch_size",
            "2",
            "--report_to",
            "none",
            "--use_cpu",
        ]
    )
    # the folder it leaves names the test views, so the pipeline loaded from it scores with them too
    saved_views = json.loads((output_dir / "clip_config.json").read_text())
    assert (saved_views["num_clips"], saved_views["num_crops"]) == (2, 3)
    records = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    return {record["path"]: dict(zip(record["labels"], record["scores"])) for record in records}


def test_classifier_folders_carry_the_pipeline_and_pretraining_folders_do_not(classifier_folder, tmp_path):
    for name in (
        "pipeline_adamae.py",
        "video_adamae.py",
        "video_clips_adamae.py",
        "modeling_adamae.py",
        "configuration_adamae.py",
        "clip_config.json",
        "video_preprocessor_config.json",
        "preprocessor_config.json",
    ):
        assert (classifier_folder / name).is_file(), name
    config = json.loads((classifier_folder / "config.json").read_text())
    assert config["custom_pipelines"] == {
        "video-classification": {
            "impl": "pipeline_adamae.AdaMaeVideoClassificationPipeline",
            "pt": ["AutoModelForVideoClassification"],
        }
    }
    assert config["architectures"] == ["AdaMaeForVideoClassification"]  # the rest of config.json is kept

    AdaMaeForPreTraining(tiny_config()).save_pretrained(tmp_path)
    save_video_processor(tmp_path, CLIP)
    assert (tmp_path / "video_preprocessor_config.json").is_file() and not (tmp_path / "pipeline_adamae.py").exists()
    assert "custom_pipelines" not in json.loads((tmp_path / "config.json").read_text())
    with pytest.raises(ValueError, match="AdaMaeForVideoClassification"):
        save_classification_pipeline(tmp_path)


FRESH_PROCESS_SCRIPT = """
import json, sys
from transformers import pipeline

classifier = pipeline("video-classification", model=sys.argv[1], trust_remote_code=True)
assert type(classifier).__module__.startswith("transformers_modules"), type(classifier).__module__
assert type(classifier.model).__module__.startswith("transformers_modules"), type(classifier.model).__module__
scores = {}
for path in sys.argv[2:]:
    scores[path] = {p["label"]: p["score"] for p in classifier(path, top_k=5)}
print("SCORES " + json.dumps(scores))
"""


def test_pipeline_scores_equal_run_finetune_predictions_in_a_fresh_process_without_the_project(
    classifier_folder, videos, predictions, tmp_path
):
    paths, _ = videos
    folder = tmp_path / "model"  # a copy: nothing in the process can reach the project's files
    shutil.copytree(classifier_folder, folder)
    result = run_without_project(FRESH_PROCESS_SCRIPT, [folder, *paths.values()], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in result.stderr  # no image-processor fallback
    line = next(line for line in result.stdout.splitlines() if line.startswith("SCORES "))
    scores = json.loads(line[len("SCORES ") :])
    assert set(scores) == set(predictions) == set(paths.values())
    for path, expected in predictions.items():
        assert set(scores[path]) == set(CLASSES)
        for label, score in expected.items():
            assert scores[path][label] == pytest.approx(score, abs=PREDICTIONS_TOLERANCE), (path, label)
    # The comparison sees the rotation: the rotated video read sideways (as transformers' decoder does) scores
    # differently.
    sideways, expected = sideways_scores(paths["rotated"]), predictions[paths["rotated"]]
    assert max(abs(sideways[label] - expected[label]) for label in CLASSES) > 100 * PREDICTIONS_TOLERANCE


def sideways_scores(path: str) -> dict[str, float]:
    """The evaluation scores of a video whose rotation metadata is ignored."""
    model = tiny_classifier()
    with VideoReader(path) as reader:
        length = reader.num_frames
        clips = [reader.read_frames(clip_indices(CLIP, length, train=False, clip_index=c)) for c in range(2)]
        turns = reader.rotation // 90
    views = torch.cat([EvalTransform(CLIP)(np.ascontiguousarray(np.rot90(c, k=-turns, axes=(1, 2)))) for c in clips])
    with torch.no_grad():
        probabilities = model(views).logits.double().softmax(-1).mean(0)
    return {label: float(probabilities[i]) for i, label in enumerate(CLASSES)}


def test_views_can_be_chosen_per_call(classifier_folder, videos):
    paths, _ = videos
    classifier = pipeline("video-classification", model=str(classifier_folder), trust_remote_code=True)
    model = AdaMaeForVideoClassification.from_pretrained(classifier_folder).eval()
    for path in paths.values():
        # one view: the centre clip's centre crop, as load_eval_clip (the package's single-view evaluation) makes it
        scores = {p["label"]: p["score"] for p in classifier(path, num_clips=1, num_crops=1)}
        with torch.no_grad():
            probabilities = model(load_eval_clip(path, CLIP)[None]).logits.double().softmax(-1)[0]
        for index, label in enumerate(CLASSES):
            assert scores[label] == pytest.approx(float(probabilities[index]), abs=1e-6)
    assert len(classifier(paths["rotated"], top_k=2)) == 2


def test_a_folder_with_only_the_image_processor_still_works_with_the_stock_pipeline(videos, tmp_path):
    paths, _ = videos
    tiny_classifier().save_pretrained(tmp_path)
    save_image_processor(tmp_path, CLIP)  # an older folder: no video processor, clip settings or Hub pipeline
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["config.json", "preprocessor_config.json"]
    classifier = pipeline("video-classification", model=str(tmp_path), trust_remote_code=True)
    assert type(classifier).__name__ == "VideoClassificationPipeline" and classifier.image_processor is not None
    predictions = classifier(paths["plain_left"])
    assert sorted(p["label"] for p in predictions) == CLASSES
    assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-5)


def test_without_clip_settings_the_pipeline_evaluates_the_centre_clip_from_the_model_config(videos, tmp_path, caplog):
    paths, _ = videos
    model = tiny_classifier()
    model.save_pretrained(tmp_path)
    save_video_processor(tmp_path)  # a converted checkpoint: no clip_config.json
    assert not (tmp_path / "clip_config.json").exists()
    classifier = pipeline("video-classification", model=str(tmp_path), trust_remote_code=True)
    scores = {p["label"]: p["score"] for p in classifier(paths["plain_left"])}
    defaults = VideoClipConfig(num_frames=8, crop_size=32)  # frames and size of the model; stride 4, ImageNet
    with torch.no_grad():
        probabilities = model(load_eval_clip(paths["plain_left"], defaults)[None]).logits.double().softmax(-1)[0]
    for index, label in enumerate(CLASSES):
        assert scores[label] == pytest.approx(float(probabilities[index]), abs=1e-6)


def test_a_list_of_videos_scores_each_video_alone(classifier_folder, videos):
    paths, _ = videos
    classifier = pipeline("video-classification", model=str(classifier_folder), trust_remote_code=True)
    listed = classifier(list(paths.values()), top_k=2)
    assert len(listed) == 3
    for result, path in zip(listed, paths.values()):
        assert result == classifier(path, top_k=2) and len(result) == 2
