from huggingface_hub import ModelCard

from adamae_hf.hub import build_model_card, push_folder_to_hub, save_model_card
from tiny_configs import tiny_config


def test_pretraining_card_parses_back_with_its_metadata(tmp_path):
    card = build_model_card(
        "pretraining", "someone/adamae-tiny", tiny_config(), settings={"epochs": 800, "lr": 1.5e-4},
        results={"loss": 0.52, "reconstruction_loss": 0.51}, datasets=["someone/videos"], visualization="masks.gif",
    )  # fmt: skip
    path = save_model_card(card, tmp_path)
    loaded = ModelCard.load(path)
    metadata = loaded.data.to_dict()
    assert metadata["library_name"] == "transformers"
    assert {"adamae", "video", "self-supervised"} <= set(metadata["tags"])
    assert metadata["datasets"] == ["someone/videos"]
    assert "pipeline_tag" not in metadata or metadata["pipeline_tag"] is None
    text = loaded.text
    for expected in ("AutoModelForPreTraining.from_pretrained(\"someone/adamae-tiny\"", "| epochs | 800 |",
                     "| reconstruction_loss | 0.51 |", "![AdaMAE masks](masks.gif)", "Bandara_2023_CVPR",
                     "adaptive, ratio 0.75"):  # fmt: skip
        assert expected in text, expected


def test_classification_card_lists_metrics_as_eval_results(tmp_path):
    config = tiny_config(num_labels=3)
    results = {"top1_accuracy": 0.7, "top5_accuracy": 0.95, "mean_class_accuracy": 0.68}
    card = build_model_card("video-classification", str(tmp_path), config, results=results, dataset_name="toy")
    loaded = ModelCard.load(save_model_card(card, tmp_path))
    assert loaded.data.pipeline_tag == "video-classification"
    parsed = {r.metric_name: (r.metric_type, r.metric_value) for r in loaded.data.eval_results}
    assert parsed == {"top1_accuracy": ("accuracy", 0.7), "top5_accuracy": ("top5_accuracy", 0.95),
                      "mean_class_accuracy": ("mean_class_accuracy", 0.68)}  # fmt: skip
    assert all(r.dataset_name == "toy" and r.task_type == "video-classification" for r in loaded.data.eval_results)
    assert 'pipeline("video-classification"' in loaded.text and "| classes | 3 |" in loaded.text


class RecordingApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/1"})()


def test_push_creates_the_repo_then_uploads_the_folder(tmp_path):
    api = RecordingApi()
    url = push_folder_to_hub(tmp_path, "someone/model", api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["exist_ok"] is True
    assert api.calls[1][2]["folder_path"] == str(tmp_path)
    assert url.endswith("/commit/1")
