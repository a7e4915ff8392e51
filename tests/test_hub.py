import os
import shlex
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard
from tiny_configs import tiny_config

from adamae_hf.errors import UserError
from adamae_hf.hub import (
    FINETUNING_UPLOAD_IGNORE,
    PRETRAINING_UPLOAD_IGNORE,
    build_model_card,
    check_hub_access,
    create_model_repo,
    describe_hub_error,
    push_folder_to_hub,
    retry_upload_command,
    save_model_card,
)


def test_pretraining_card_parses_back_with_its_metadata(tmp_path):
    card = build_model_card(
        "pretraining",
        "someone/adamae-tiny",
        tiny_config(),
        settings={"epochs": 800, "lr": 1.5e-4},
        results={"loss": 0.52, "reconstruction_loss": 0.51},
        datasets=["someone/videos"],
        visualization="masks.gif",
    )
    path = save_model_card(card, tmp_path)
    loaded = ModelCard.load(path)
    metadata = loaded.data.to_dict()
    assert metadata["library_name"] == "transformers"
    assert {"adamae", "video", "self-supervised"} <= set(metadata["tags"])
    assert metadata["datasets"] == ["someone/videos"]
    assert "pipeline_tag" not in metadata or metadata["pipeline_tag"] is None
    text = loaded.text
    for expected in (
        'AutoModelForPreTraining.from_pretrained("someone/adamae-tiny"',
        "| epochs | 800 |",
        "| reconstruction_loss | 0.51 |",
        "![AdaMAE masks](masks.gif)",
        "Bandara_2023_CVPR",
        "adaptive, ratio 0.75",
    ):
        assert expected in text, expected


def test_classification_card_lists_metrics_as_eval_results(tmp_path):
    config = tiny_config(num_labels=3)
    results = {"top1_accuracy": 0.7, "top5_accuracy": 0.95, "mean_class_accuracy": 0.68}
    card = build_model_card("video-classification", str(tmp_path), config, results=results, dataset_name="toy")
    loaded = ModelCard.load(save_model_card(card, tmp_path))
    assert loaded.data.pipeline_tag == "video-classification"
    parsed = {r.metric_name: (r.metric_type, r.metric_value) for r in loaded.data.eval_results}
    assert parsed == {
        "top1_accuracy": ("accuracy", 0.7),
        "top5_accuracy": ("top5_accuracy", 0.95),
        "mean_class_accuracy": ("mean_class_accuracy", 0.68),
    }
    assert all(r.dataset_name == "toy" and r.task_type == "video-classification" for r in loaded.data.eval_results)
    assert 'pipeline("video-classification"' in loaded.text and "| classes | 3 |" in loaded.text


def test_classification_card_separates_headline_results_from_the_rest_and_documents_frame_sampling(tmp_path):
    card = build_model_card(
        "video-classification",
        "someone/adamae-k400",
        tiny_config(num_labels=3),
        datasets=["someone/k400"],
        results={"top1_accuracy": 0.81},
        extra_results={"top1_accuracy (1 view)": 0.77},
        results_note="5 clips x 3 crops per video, softmax averaged",
        frame_sampling_rate=4,
    )
    loaded = ModelCard.load(save_model_card(card, tmp_path))
    assert [(r.metric_name, r.metric_value) for r in loaded.data.eval_results] == [("top1_accuracy", 0.81)]
    assert loaded.data.eval_results[0].dataset_type == "someone/k400"
    text = loaded.text
    for expected in (
        "5 clips x 3 crops per video",
        "| top1_accuracy (1 view) | 0.77 |",
        "frame_sampling_rate=4",
        "needs at least 32 frames",
        "`pipeline_adamae.py`, named in `config.json`'s `custom_pipelines`",
        'AutoImageProcessor.from_pretrained("someone/adamae-k400")',
    ):
        assert expected in text, expected
    # the folder's processor is a VideoMAE image processor: AutoVideoProcessor would need torchvision
    assert "AutoVideoProcessor.from_pretrained" not in text


class RecordingApi:
    def __init__(self, namespace=None):
        self.calls = []
        self.namespace = namespace

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        if self.namespace is not None:  # the Hub puts a bare name under the token's user
            return type("RepoUrl", (), {"repo_id": f"{self.namespace}/{repo_id.split('/')[-1]}"})()
        return None

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/1"})()


def test_create_then_push_uploads_the_folder_to_the_full_repo_id(tmp_path):
    api = RecordingApi(namespace="someone")
    repo_id = create_model_repo("model", api=api)  # a bare name resolves to the full id the card must name
    assert repo_id == "someone/model" and api.calls[0][2]["exist_ok"] is True
    url = push_folder_to_hub(tmp_path, repo_id, api=api, ignore_patterns=["checkpoint-*"])
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]  # created once
    assert api.calls[1][1] == "someone/model" and api.calls[1][2]["folder_path"] == str(tmp_path)
    assert api.calls[1][2]["ignore_patterns"] == ["checkpoint-*"]
    assert url.endswith("/commit/1")


def test_the_card_names_the_model_not_a_local_path(tmp_path):
    folder = tmp_path / "runs" / "adamae-tiny-k400"
    config = tiny_config(num_labels=3)
    card = build_model_card("video-classification", str(folder) + "/", config, results={"top1_accuracy": 0.5})
    assert card.data.model_name == "adamae-tiny-k400" and "# adamae-tiny-k400" in card.text
    assert str(tmp_path) not in card.data.to_yaml()
    assert build_model_card("pretraining", "someone/adamae-tiny", tiny_config()).data.model_name == "adamae-tiny"


# --- the Hub preflight and the upload, against a local endpoint ------------------------------------------------------


def test_preflight_checks_token_endpoint_and_write_access_and_returns_the_full_id(hub):
    assert check_hub_access("adamae-tiny") == "someone/adamae-tiny"
    assert [path for _, path in hub.requests] == [
        "/api/whoami-v2",
        "/api/repos/create",
        "/api/models/someone/adamae-tiny/auth-check/write",
    ]
    assert check_hub_access("someone/adamae-tiny", token="hf_good", private=True) == "someone/adamae-tiny"  # exists


@pytest.mark.parametrize(
    "repo_id, token, expected",
    [
        (None, "hf_good", r"needs a repository: pass --hub_model_id"),
        ("adamae-tiny", "hf_expired", r"refused the token \(401 Unauthorized\); run `hf auth login`"),
        ("someone-else/shared", "hf_good", r"someone-else/shared: the token may not write there \(403"),
    ],
)
def test_preflight_refusals_are_one_line_user_errors(hub, repo_id, token, expected):
    with pytest.raises(UserError, match=expected) as raised:
        check_hub_access(repo_id, token=token)
    assert "\n" not in str(raised.value)
    assert hub.commits == {}


def test_preflight_without_a_token_or_an_answer(hub, monkeypatch):
    monkeypatch.setattr("adamae_hf.hub.get_token", lambda: None)
    with pytest.raises(UserError, match=r"needs a Hugging Face token with write access, found none"):
        check_hub_access("adamae-tiny")
    assert hub.requests == []  # nothing was asked of the Hub
    hub.stop()
    with pytest.raises(UserError, match=rf"no answer from the Hub at {hub.endpoint} \(ConnectError"):
        check_hub_access("adamae-tiny", token="hf_good")


def test_hub_errors_are_described_by_their_cause():
    assert describe_hub_error(PermissionError("model.safetensors: denied"), "http://hub") == (
        "PermissionError: model.safetensors: denied"  # local: no talk of the network
    )
    for error in (ConnectionError("offline mode"), OSError("Connection refused")):  # socket errors are OSErrors
        assert describe_hub_error(error, "http://hub").startswith("no answer from the Hub at http://hub")


def write_model_folder(folder):
    (folder / "checkpoint-4").mkdir(parents=True)
    (folder / "checkpoint-4" / "model.safetensors").write_bytes(b"intermediate")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    save_model_card(build_model_card("pretraining", "someone/adamae-tiny", tiny_config()), folder)
    return {name: (folder / name).read_bytes() for name in ("model.safetensors", "config.json", "README.md")}


IGNORED = ["checkpoint-*", "checkpoint-*/**"]


def test_upload_sends_the_folder_without_the_ignored_files(hub, tmp_path):
    files = write_model_folder(tmp_path / "out")
    repo_id = check_hub_access("adamae-tiny")
    url = push_folder_to_hub(tmp_path / "out", repo_id, ignore_patterns=IGNORED)
    assert url == f"{hub.endpoint}/someone/adamae-tiny/commit/1"
    assert hub.uploaded("someone/adamae-tiny") == files
    assert IGNORED == ["checkpoint-*", "checkpoint-*/**"]  # the caller's list is not extended by the upload


@pytest.mark.parametrize("failure", ["401", "network"])
def test_a_failed_upload_loses_nothing_and_names_the_command_that_retries_it(hub, tmp_path, monkeypatch, failure):
    files = write_model_folder(tmp_path / "out")
    repo_id = check_hub_access("adamae-tiny")
    if failure == "401":
        hub.commit_status = 401  # the token was revoked during training
    else:
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    with pytest.raises(UserError) as raised:
        push_folder_to_hub(tmp_path / "out", repo_id, ignore_patterns=IGNORED)
    message = str(raised.value)
    assert "\n" not in message and ("401 Unauthorized" in message if failure == "401" else "no answer" in message)
    command = retry_upload_command(repo_id, tmp_path / "out", IGNORED)
    assert message.endswith(f"Nothing is lost: every file is in {tmp_path / 'out'}; upload it with: {command}")
    assert {name: (tmp_path / "out" / name).read_bytes() for name in files} == files  # the folder is untouched
    assert "someone/adamae-tiny" not in hub.commits
    # The command, as printed, uploads the same files (huggingface_hub's CLI, in a fresh process).
    hub.commit_status = None
    argv = shlex.split(command)
    assert argv[:2] == ["hf", "upload"]
    environment = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_good", "HF_HUB_DISABLE_TELEMETRY": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "huggingface_hub.cli.hf", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr
    assert hub.uploaded("someone/adamae-tiny") == files


@pytest.mark.parametrize(
    "ignore, run_files",
    [
        # pretraining: step checkpoints, the `latest` pointer, a checkpoint being written
        (PRETRAINING_UPLOAD_IGNORE, ["checkpoint-2/model.safetensors", "latest", ".tmp-checkpoint-3/optimizer.bin"]),
        # fine-tuning: Trainer's checkpoints and TensorBoard runs
        (
            FINETUNING_UPLOAD_IGNORE,
            ["checkpoint-4/model.safetensors", "checkpoint-4/optimizer.pt", "runs/Dec01/events.out.tfevents.1"],
        ),
    ],
)
def test_each_scripts_upload_leaves_out_its_run_files_and_keeps_the_model(hub, tmp_path, ignore, run_files):
    files = write_model_folder(tmp_path / "out")
    for name in run_files:
        (tmp_path / "out" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / name).write_bytes(b"run state")
    push_folder_to_hub(tmp_path / "out", check_hub_access("adamae-tiny"), ignore_patterns=ignore)
    assert hub.uploaded("someone/adamae-tiny") == files
