from huggingface_hub import ModelCard

from adamae_hf.hub import build_model_card, create_model_repo, push_folder_to_hub, save_model_card
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


def test_classification_card_separates_headline_results_from_the_rest_and_documents_frame_sampling(tmp_path):
    card = build_model_card(
        "video-classification", "someone/adamae-k400", tiny_config(num_labels=3), datasets=["someone/k400"],
        results={"top1_accuracy": 0.81}, extra_results={"top1_accuracy (1 view)": 0.77},
        results_note="5 clips x 3 crops per video, softmax averaged", frame_sampling_rate=4,
    )  # fmt: skip
    loaded = ModelCard.load(save_model_card(card, tmp_path))
    assert [(r.metric_name, r.metric_value) for r in loaded.data.eval_results] == [("top1_accuracy", 0.81)]
    assert loaded.data.eval_results[0].dataset_type == "someone/k400"
    text = loaded.text
    for expected in ("5 clips x 3 crops per video", "| top1_accuracy (1 view) | 0.77 |", "frame_sampling_rate=4",
                     "needs at least 32 frames",
                     'AutoImageProcessor.from_pretrained("someone/adamae-k400")'):  # fmt: skip
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
