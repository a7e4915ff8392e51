"""Model cards and uploads to the Hugging Face Hub.

`build_model_card` writes the card of a pretraining or a video-classification folder through huggingface_hub's
`ModelCard` / `ModelCardData` (metadata that the Hub parses: library_name, pipeline_tag, tags, datasets, base_model,
eval_results), with working usage code, the run's settings and its results. `create_model_repo` makes the repo and
returns its full id (what the card's usage code must load); `push_folder_to_hub` uploads a folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData


CITATION = """@InProceedings{Bandara_2023_CVPR,
    author    = {Bandara, Wele Gedara Chaminda and Patel, Naman and Gholami, Ali and Nikkhah, Mehdi and Agrawal, Motilal and Patel, Vishal M.},
    title     = {AdaMAE: Adaptive Masking for Efficient Spatiotemporal Learning With Masked Autoencoders},
    booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
    month     = {June},
    year      = {2023},
    pages     = {14507-14517}
}"""

TAGS = ["adamae", "video", "self-supervised", "masked-autoencoder", "videomae"]

ABOUT = (
    "AdaMAE (Bandara et al., CVPR 2023) is a video masked autoencoder whose visible tokens are not chosen at random: "
    "a small transformer, the adaptive token sampler, predicts a categorical distribution over all spatiotemporal "
    "tokens and the visible ones are drawn from it. The sampler is trained with a REINFORCE-style loss that rewards "
    "tokens the decoder reconstructs badly, so it learns to keep the informative, moving regions visible and can "
    "mask 95% of the tokens."
)

PRETRAINING_USAGE = """```python
import torch
from transformers import AutoModelForPreTraining

model = AutoModelForPreTraining.from_pretrained("{model_id}", trust_remote_code=True)
pixel_values = torch.randn(1, {num_frames}, 3, {height}, {width})  # normalised frames, as VideoMAE's processor gives
outputs = model(pixel_values)
print(outputs.loss, outputs.mask.shape, outputs.token_probs.shape)
```

Fine-tune it for classification with `AutoModelForVideoClassification.from_pretrained("{model_id}",
trust_remote_code=True, num_labels=...)` (the sampler and decoder are dropped, a new head is added)."""

CLASSIFICATION_USAGE = """```python
from transformers import pipeline

classifier = pipeline("video-classification", model="{model_id}", trust_remote_code=True)
print(classifier("video.mp4", top_k=5))
```

The pipeline decodes the first `num_frames x frame_sampling_rate` frames of the video and classifies {num_frames} evenly
spaced ones (`frame_sampling_rate` defaults to 1).{sampling_note}

With the model and its processor: the folder's `preprocessor_config.json` is a VideoMAE *image* processor (resize,
centre crop, ImageNet normalisation), which `AutoImageProcessor` loads with Pillow alone (`AutoVideoProcessor` would
need torchvision):

```python
import av
import numpy as np
import torch
from transformers import AutoImageProcessor, AutoModelForVideoClassification

processor = AutoImageProcessor.from_pretrained("{model_id}")
model = AutoModelForVideoClassification.from_pretrained("{model_id}", trust_remote_code=True).eval()

with av.open("video.mp4") as container:
    frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]  # (H, W, 3) uint8 each
indices = np.linspace(0, len(frames) - 1, num=model.config.num_frames).round().astype(int)  # evenly spaced
inputs = processor([frames[i] for i in indices], return_tensors="pt")  # pixel_values: (1, T, 3, H, W)
with torch.no_grad():
    probabilities = model(**inputs).logits.softmax(-1)[0]
scores, ids = probabilities.topk(min(5, model.config.num_labels))
print([(model.config.id2label[int(i)], round(float(s), 4)) for s, i in zip(scores, ids)])
```

Where adamae-hf is installed, `adamae_hf.data.load_eval_clip(path, num_frames=..., sampling_rate=..., crop_size=...)`
returns exactly the clip the evaluation used (normalised, `(T, C, H, W)`), and `import adamae_hf` makes
`trust_remote_code` unnecessary."""


def _table(rows: dict[str, Any], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


def build_model_card(
    task: str,
    model_id: str,
    config,
    settings: dict[str, Any] | None = None,
    results: dict[str, float] | None = None,
    datasets: list[str] | None = None,
    dataset_name: str | None = None,
    base_model: str | None = None,
    visualization: str | None = None,
    license: str = "apache-2.0",
    extra_results: dict[str, float] | None = None,
    results_note: str | None = None,
    frame_sampling_rate: int | None = None,
) -> ModelCard:
    """The card of an AdaMAE folder.

    Args:
        task: "pretraining" or "video-classification".
        model_id: the Hub id (or folder) the usage code loads.
        config: the model's `AdaMaeConfig` (sizes for the usage code and the architecture table).
        settings: the run's hyperparameters, shown as a table.
        results: final metrics; for classification, accuracy-like values become `eval_results` metadata
            (`top1_accuracy` → metric type "accuracy", the others by their own name).
        datasets: Hub dataset ids for the `datasets` metadata.
        dataset_name: a readable name of the evaluation data (defaults to the first dataset id, or "custom").
        base_model: the checkpoint this one was trained from.
        visualization: a file in the folder (e.g. the five-panel mask GIF) embedded in the card.
        license: the card's license metadata.
        extra_results: more rows for the results table that are not `eval_results` metadata (e.g. single-view
            validation beside the multi-view test results).
        results_note: how the results were measured (e.g. "5 clips x 3 crops per video"), shown with the table.
        frame_sampling_rate: the training clips' frame stride, for the classification usage notes.
    """
    if task not in ("pretraining", "video-classification"):
        raise ValueError(f"task must be 'pretraining' or 'video-classification', got {task!r}.")
    settings, results = dict(settings or {}), dict(results or {})
    height, width = config.frame_size
    dataset_name = dataset_name or (datasets[0] if datasets else "custom")
    eval_results = None
    if task == "video-classification" and results:
        eval_results = [
            EvalResult(
                task_type="video-classification",
                dataset_type=datasets[0] if datasets else "custom",
                dataset_name=dataset_name,
                metric_type="accuracy" if name in ("top1_accuracy", "accuracy") else name,
                metric_name=name,
                metric_value=float(value),
            )
            for name, value in results.items()
        ]
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="video-classification" if task == "video-classification" else None,
        tags=TAGS + ([task] if task == "pretraining" else []),
        datasets=datasets,
        base_model=base_model,
        license=license,
        model_name=model_id,
        eval_results=eval_results,
    )
    sampling_note = ""
    if frame_sampling_rate is not None and frame_sampling_rate > 1:
        sampling_note = (
            f" Pass `frame_sampling_rate={frame_sampling_rate}` to take frames at the training stride (the video then "
            f"needs at least {config.num_frames * frame_sampling_rate} frames)."
        )
    usage = (PRETRAINING_USAGE if task == "pretraining" else CLASSIFICATION_USAGE).format(
        model_id=model_id, num_frames=config.num_frames, height=height, width=width, sampling_note=sampling_note
    )
    architecture = {
        "frames x size": f"{config.num_frames} x {height} x {width}",
        "patch / tubelet": f"{config.patch_size} / {config.tubelet_size}",
        "encoder": f"{config.num_hidden_layers} layers, width {config.hidden_size}, {config.num_attention_heads} heads",
    }
    if task == "pretraining":
        architecture.update(
            {
                "decoder": f"{config.decoder_num_hidden_layers} layers, width {config.decoder_hidden_size}",
                "masking": f"{config.mask_type}, ratio {config.mask_ratio}",
            }
        )
    else:
        architecture["classes"] = config.num_labels
    sections = [
        f"# {model_id.rstrip('/').split('/')[-1]}",
        f"An AdaMAE {'pretrained model' if task == 'pretraining' else 'video classifier'} trained with adamae-hf, "
        "the HuggingFace-native implementation of AdaMAE.",
        ABOUT,
    ]
    if visualization:
        sections.append(
            "Left to right: input, reconstruction, per-patch error, sampler distribution p, sampled mask.\n\n"
            f"![AdaMAE masks]({visualization})"
        )
    sections += ["## Usage", usage, "## Architecture", _table(architecture, ("", ""))]
    if settings:
        sections += ["## Training settings", _table(settings, ("setting", "value"))]
    if results or extra_results:
        sections += ["## Results"] + ([results_note] if results_note else [])
        sections.append(_table({**results, **dict(extra_results or {})}, ("metric", "value")))
    sections += ["## Citation", f"```bibtex\n{CITATION}\n```"]
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n\n".join(sections) + "\n")


def save_model_card(card: ModelCard, folder: str | os.PathLike) -> Path:
    """Write the card as the folder's README.md (the file the Hub shows and parses)."""
    path = Path(folder) / "README.md"
    card.save(path)
    return path


def create_model_repo(
    repo_id: str, private: bool | None = None, token: str | None = None, api: HfApi | None = None
) -> str:
    """Create the model repo if needed; returns its full id ("user/name" where `repo_id` was just "name"), which is
    what a model card's usage code must load."""
    api = api or HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    return getattr(url, "repo_id", None) or repo_id


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    commit_message: str = "Upload AdaMAE model",
    token: str | None = None,
    api: HfApi | None = None,
    ignore_patterns: list[str] | None = None,
) -> str:
    """Upload the folder (model, config, code, processor, card) to the model repo `repo_id`, which
    `create_model_repo` made (it returns the full id the card names), leaving out files that match `ignore_patterns`
    (e.g. `["checkpoint-*", "checkpoint-*/**"]`). Returns the commit URL."""
    api = api or HfApi(token=token)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                               commit_message=commit_message, ignore_patterns=ignore_patterns)  # fmt: skip
    return str(getattr(commit, "commit_url", commit))


__all__ = ["CITATION", "build_model_card", "create_model_repo", "push_folder_to_hub", "save_model_card"]
