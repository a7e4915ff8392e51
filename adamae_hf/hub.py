"""Model cards and uploads to the Hugging Face Hub.

`build_model_card` writes the card of a pretraining or a video-classification folder through huggingface_hub's
`ModelCard` / `ModelCardData` (metadata that the Hub parses: library_name, pipeline_tag, tags, datasets, base_model,
eval_results), with working usage code, the run's settings and its results.

Publishing never loses work: `check_hub_access` runs at start-up, before any training (a token, an endpoint that
answers, a repo the token may write; it returns the repo's full id, which the card's usage code loads); the scripts
write the card and every file locally before `push_folder_to_hub` uploads the folder, and a failed upload ends with
`retry_upload_command`, the one command that uploads the same files again.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The HTTP client of huggingface_hub >= 2 (our floor): connection errors derive from its HTTPError, not from OSError.
from httpx2 import HTTPError as HttpClientError
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, constants, get_token
from huggingface_hub.errors import HfHubHTTPError

from .checkpoint import LATEST_FILE
from .convert import export_to_videomae
from .data import save_video_processor
from .errors import UserError


if TYPE_CHECKING:
    from transformers import Trainer, TrainingArguments

    from .data import VideoClipConfig
    from .finetune_arguments import DataArguments, ModelArguments, RecipeArguments

logger = logging.getLogger(__name__)

# What each script's upload leaves out of its output folder (upload_folder's `ignore_patterns`).
# Pretraining: the step checkpoints (every file below a sub-folder), the `latest` pointer, hidden temporary folders.
PRETRAINING_UPLOAD_IGNORE = ["*/*", LATEST_FILE, ".*"]
# Fine-tuning: Trainer's intermediate checkpoints and its TensorBoard runs.
FINETUNING_UPLOAD_IGNORE = ["checkpoint-*", "checkpoint-*/**", "runs/**"]

# A Hub id ("user/name"), as opposed to a local path.
HUB_ID_PATTERN = re.compile(r"[\w.-]+/[\w.-]+")
# Where `--export_videomae` writes the stock transformers VideoMAE copy of a fine-tuned model, inside its folder.
VIDEOMAE_EXPORT_FOLDER = "videomae"

# What a request to the Hub raises when the endpoint refuses it or cannot be reached.
HUB_ERRORS = (HfHubHTTPError, HttpClientError, OSError)
LOGIN_HINT = "run `hf auth login`, set HF_TOKEN, or pass --hub_token"


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

The pipeline is the folder's own (`pipeline_adamae.py`, named in `config.json`'s `custom_pipelines`): it decodes the
video with the reader training used (rotation metadata, seeking), takes the views that `clip_config.json` names
(temporal clips x spatial crops of {num_frames} frames; `num_clips=` / `num_crops=` change them per call) and averages
their softmax, so its scores are those of the evaluation.{sampling_note}

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


def model_name(model_id: str | os.PathLike) -> str:
    """The name a card shows for a Hub id ("user/name" -> "name") or a local folder ("/runs/name/" -> "name"): never
    an absolute local path, which means nothing once the folder is uploaded."""
    return Path(str(model_id).rstrip("/\\")).name or str(model_id)


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
    results = dict(results or {})
    dataset_type = datasets[0] if datasets else "custom"
    eval_results = None
    if task == "video-classification" and results:
        eval_results = card_eval_results(results, dataset_type, dataset_name or dataset_type)
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="video-classification" if task == "video-classification" else None,
        tags=TAGS + ([task] if task == "pretraining" else []),
        datasets=datasets,
        base_model=base_model,
        license=license,
        model_name=model_name(model_id),
        eval_results=eval_results,
    )
    sections = [
        f"# {model_name(model_id)}",
        f"An AdaMAE {'pretrained model' if task == 'pretraining' else 'video classifier'} trained with adamae-hf, "
        "the HuggingFace-native implementation of AdaMAE.",
        ABOUT,
    ]
    if visualization:
        sections.append(
            "Left to right: input, reconstruction, per-patch error, sampler distribution p, sampled mask.\n\n"
            f"![AdaMAE masks]({visualization})"
        )
    sections += ["## Usage", card_usage(task, model_id, config, frame_sampling_rate)]
    sections += ["## Architecture", _table(card_architecture(task, config), ("", ""))]
    if settings:
        sections += ["## Training settings", _table(dict(settings), ("setting", "value"))]
    if results or extra_results:
        sections += ["## Results"] + ([results_note] if results_note else [])
        sections.append(_table({**results, **dict(extra_results or {})}, ("metric", "value")))
    sections += ["## Citation", f"```bibtex\n{CITATION}\n```"]
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n\n".join(sections) + "\n")


def card_eval_results(results: dict[str, float], dataset_type: str, dataset_name: str) -> list[EvalResult]:
    """A classifier's results as `eval_results` metadata: `top1_accuracy` (or `accuracy`) is metric type
    "accuracy", the others keep their own name."""
    return [
        EvalResult(
            task_type="video-classification",
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            metric_type="accuracy" if name in ("top1_accuracy", "accuracy") else name,
            metric_name=name,
            metric_value=float(value),
        )
        for name, value in results.items()
    ]


def card_usage(task: str, model_id: str, config, frame_sampling_rate: int | None = None) -> str:
    """The card's usage code, loading `model_id`, with the frame-stride note of a classifier trained on dense clips."""
    height, width = config.frame_size
    sampling_note = ""
    if frame_sampling_rate is not None and frame_sampling_rate > 1:
        sampling_note = (
            " transformers' own video-classification pipeline instead classifies evenly spaced frames from the start: "
            f"pass it `frame_sampling_rate={frame_sampling_rate}` to take them at the training stride (the video then "
            f"needs at least {config.num_frames * frame_sampling_rate} frames)."
        )
    return (PRETRAINING_USAGE if task == "pretraining" else CLASSIFICATION_USAGE).format(
        model_id=model_id, num_frames=config.num_frames, height=height, width=width, sampling_note=sampling_note
    )


def card_architecture(task: str, config) -> dict[str, Any]:
    """The card's architecture table: input, patches, encoder, and the decoder and masking or the classes."""
    height, width = config.frame_size
    architecture = {
        "frames x size": f"{config.num_frames} x {height} x {width}",
        "patch / tubelet": f"{config.patch_size} / {config.tubelet_size}",
        "encoder": f"{config.num_hidden_layers} layers, width {config.hidden_size}, "
        f"{config.num_attention_heads} heads",
    }
    if task == "pretraining":
        architecture["decoder"] = f"{config.decoder_num_hidden_layers} layers, width {config.decoder_hidden_size}"
        architecture["masking"] = f"{config.mask_type}, ratio {config.mask_ratio}"
    else:
        architecture["classes"] = config.num_labels
    return architecture


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
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True, token=token)
    return getattr(url, "repo_id", None) or repo_id


def describe_hub_error(error: BaseException, endpoint: str) -> str:
    """One line on why a request to the Hub at `endpoint` failed: refused token, no write access, another status, no
    answer at all, or a local error."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return f"the Hub at {endpoint} refused the token (401 Unauthorized); {LOGIN_HINT} with a valid token"
    if status == 403:
        return f"the token may not write there (403 Forbidden at {endpoint}); use a token with write access"
    if status is not None:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"the Hub at {endpoint} answered {status}: {first_line}"
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return reason  # a local file that cannot be read: nothing to do with the network
    return f"no answer from the Hub at {endpoint} ({reason}); check the network or HF_ENDPOINT"


def check_hub_access(
    repo_id: str | None, token: str | None = None, private: bool = False, api: HfApi | None = None
) -> str:
    """The `--push_to_hub` preflight, run at start-up before any training: a token is present, the endpoint answers,
    the token is valid, the model repo exists (created if needed) and the token may write to it.

    Args:
        repo_id: "user/name", or "name" for the token owner's namespace.
        token: the Hub token (default: the logged-in one, or HF_TOKEN).
        private: create the repo as private (an existing repo keeps its visibility).
        api: the `HfApi` to use (default: one for `token` at huggingface_hub's endpoint, `HF_ENDPOINT`).

    Returns:
        The repo's full id, which the model card's usage code must load.

    Raises:
        UserError: no repo name, no token, a refused token (401), no write access (403), or no answer.
    """
    if not repo_id:
        raise UserError("--push_to_hub needs a repository: pass --hub_model_id (e.g. 'user/adamae-vit-b'), got none.")
    token = token or getattr(api, "token", None) or get_token()
    if not token:
        raise UserError(f"--push_to_hub needs a Hugging Face token with write access, found none: {LOGIN_HINT}.")
    api = api or HfApi(token=token)
    endpoint = getattr(api, "endpoint", None) or constants.ENDPOINT
    try:
        api.whoami(token=token)
        full_id = create_model_repo(repo_id, private=private, token=token, api=api)
        api.auth_check(full_id, repo_type="model", token=token, write=True)
    except HUB_ERRORS as error:
        raise UserError(f"--push_to_hub to {repo_id}: {describe_hub_error(error, endpoint)}.") from error
    return full_id


def retry_upload_command(repo_id: str, folder: str | os.PathLike, ignore_patterns: list[str] | None = None) -> str:
    """The one command that uploads `folder` to the model repo `repo_id` again, leaving out what the upload left out
    (`ignore_patterns`, as `--exclude` patterns): huggingface_hub's `hf upload` CLI."""
    command = ["hf", "upload", repo_id, str(Path(folder).absolute()), ".", "--repo-type", "model"]
    for pattern in ignore_patterns or []:
        command += ["--exclude", pattern]
    return shlex.join(command)


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    commit_message: str = "Upload AdaMAE model",
    token: str | None = None,
    api: HfApi | None = None,
    ignore_patterns: list[str] | None = None,
) -> str:
    """Upload the folder (model, config, code, processor, card, all written beforehand) to the model repo `repo_id`,
    which `check_hub_access` (or `create_model_repo`) made and named in full, leaving out files that match
    `ignore_patterns` (e.g. `["checkpoint-*", "checkpoint-*/**"]`). Returns the commit URL.

    Raises:
        UserError: the upload failed (refused token, no write access, no answer); the folder is left as it was and the
            message names `retry_upload_command`.
    """
    api = api or HfApi(token=token)
    try:
        commit = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            token=token,
            commit_message=commit_message,
            # a copy: upload_folder appends its own defaults (.git, .cache) to the list it is given
            ignore_patterns=list(ignore_patterns) if ignore_patterns else None,
        )
    except HUB_ERRORS as error:
        reason = describe_hub_error(error, getattr(api, "endpoint", None) or constants.ENDPOINT)
        raise UserError(
            f"the upload of {folder} to {repo_id} failed: {reason}. Nothing is lost: "
            f"every file is in {folder}; upload it with: {retry_upload_command(repo_id, folder, ignore_patterns)}"
        ) from error
    return str(getattr(commit, "commit_url", commit))


def prepare_hub_upload(training_args: TrainingArguments) -> str | None:
    """With `--push_to_hub`, check at start-up, before any training, that the upload at the end can work (a token, an
    endpoint that answers, a repo the token may write: `check_hub_access`, on the main process) and take
    the upload away from Trainer (`take_push_to_hub`). Returns the repo's full id (None without --push_to_hub and on
    the other processes)."""
    repo_name = take_push_to_hub(training_args)
    if repo_name is None or training_args.process_index != 0:
        return None
    repo_id = check_hub_access(repo_name, token=training_args.hub_token, private=training_args.hub_private_repo)
    logger.info(f"--push_to_hub: {repo_id} is writable; the output folder is uploaded there at the end")
    return repo_id


def take_push_to_hub(training_args: TrainingArguments) -> str | None:
    """The repo to upload to at the end, taking `push_to_hub` away from Trainer: its own pushes would replace our
    model card with its generic one. Returns `hub_model_id` or the output folder's name, None without --push_to_hub."""
    if not training_args.push_to_hub:
        return None
    training_args.push_to_hub = False
    return training_args.hub_model_id or Path(training_args.output_dir).absolute().name


# ---------------------------------------------------------------------------------------------------------------------
# Publishing a fine-tuned classifier


def classification_card_settings(
    training_args: TrainingArguments,
    recipe_args: RecipeArguments,
    model_args: ModelArguments,
    clip_config: VideoClipConfig,
    data_args: DataArguments,
    clips_per_step: int,
) -> dict[str, Any]:
    """A fine-tuning run's settings as its model card shows them (`clips_per_step`: clips per optimizer step over
    every device)."""
    schedule = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    warmup = (
        f"{training_args.warmup_steps:g} steps"
        if training_args.warmup_steps
        else f"{recipe_args.warmup_epochs:g} epochs"
    )
    return {
        "start checkpoint": model_args.model_name_or_path,
        "training length": f"{training_args.num_train_epochs:g} epochs"
        if training_args.max_steps <= 0
        else f"{training_args.max_steps} steps",
        "clips per optimizer step": clips_per_step,
        "learning rate": training_args.learning_rate,
        "schedule": f"{schedule}, warmup {warmup}",
        "optimizer": f"AdamW betas ({training_args.adam_beta1}, {training_args.adam_beta2}), weight decay "
        f"{training_args.weight_decay}",
        "layer-wise lr decay": recipe_args.layer_decay,
        "drop path": model_args.drop_path_rate,
        "label smoothing": training_args.label_smoothing_factor,
        "mixup / cutmix": f"{recipe_args.mixup_alpha} / {recipe_args.cutmix_alpha}",
        "RandAugment": clip_config.rand_augment or "off",
        "random erasing": clip_config.random_erasing_prob,
        "clip": f"{clip_config.num_frames} frames, {clip_config.sampling_mode} sampling, rate "
        f"{clip_config.sampling_rate}, {clip_config.crop_size}px",
        "repeated sampling": clip_config.num_sample,
        "test views": f"{data_args.test_num_clips} clips x {data_args.test_num_crops} crops",
    }


def classification_card_results(
    metrics: dict[str, float], test_num_clips: int, test_num_crops: int
) -> tuple[dict, dict, str | None]:
    """(headline results for the card's eval_results, other results for its table, how the headline was measured).
    The multi-view test results are the headline when there are any, else the single-view validation ones."""
    names = ("top1_accuracy", "top5_accuracy", "mean_class_accuracy")
    test = {name: metrics[f"test_{name}"] for name in names if f"test_{name}" in metrics}
    validation = {name: metrics[f"eval_{name}"] for name in names if f"eval_{name}" in metrics}
    views = f"{test_num_clips} clips x {test_num_crops} crops per video, softmax averaged"
    if test:
        return test, {f"{name} (1 view)": value for name, value in validation.items()}, views
    return validation, {}, "one view per video (centre clip, centre crop)" if validation else None


def publish_classifier(
    trainer: Trainer,
    model_args: ModelArguments,
    data_args: DataArguments,
    clip_config: VideoClipConfig,
    metrics: dict[str, float],
    settings: dict[str, Any],
    datasets: list[str] | None = None,
    repo_id: str | None = None,
) -> None:
    """Write a fine-tuning output folder's model card (with the run's `settings` and `metrics`, `datasets` as its Hub
    dataset ids and --dataset_card_name as the data's name) and the optional stock-VideoMAE export, then upload the
    folder to `repo_id` (the full id `check_hub_access` gave at start-up), if given.

    The model, its processor and clip settings are saved by `trainer.save_model()` beforehand, so every file is on disk
    before the upload starts: a failed upload (a `UserError` naming the command that retries it) loses nothing. Runs on
    the main process only.
    """
    if not trainer.is_world_process_zero():
        return
    output_dir, start = trainer.args.output_dir, model_args.model_name_or_path
    model = trainer.accelerator.unwrap_model(trainer.model)
    results, extra_results, results_note = classification_card_results(
        metrics, data_args.test_num_clips, data_args.test_num_crops
    )
    card = build_model_card(
        "video-classification",
        repo_id or output_dir,
        model.config,
        settings=settings,
        results=results,
        datasets=datasets or None,
        dataset_name=data_args.dataset_card_name,
        base_model=start if not os.path.exists(start) and HUB_ID_PATTERN.fullmatch(start) else None,
        extra_results=extra_results,
        results_note=results_note,
        frame_sampling_rate=clip_config.sampling_rate if clip_config.sampling_mode == "dense" else None,
    )
    save_model_card(card, output_dir)
    if model_args.export_videomae:
        export_folder = os.path.join(output_dir, VIDEOMAE_EXPORT_FOLDER)
        export_to_videomae(model, export_folder)
        save_video_processor(export_folder, clip_config)
        logger.info(f"Stock VideoMAEForVideoClassification written to {export_folder}")
    if repo_id is not None:
        url = push_folder_to_hub(
            output_dir,
            repo_id,
            commit_message="Upload fine-tuned AdaMAE",
            token=trainer.args.hub_token,
            ignore_patterns=FINETUNING_UPLOAD_IGNORE,
        )
        logger.info(f"Uploaded {output_dir} to {url}")


__all__ = [
    "CITATION",
    "FINETUNING_UPLOAD_IGNORE",
    "HUB_ID_PATTERN",
    "PRETRAINING_UPLOAD_IGNORE",
    "VIDEOMAE_EXPORT_FOLDER",
    "build_model_card",
    "check_hub_access",
    "classification_card_results",
    "classification_card_settings",
    "create_model_repo",
    "describe_hub_error",
    "model_name",
    "prepare_hub_upload",
    "publish_classifier",
    "push_folder_to_hub",
    "retry_upload_command",
    "save_model_card",
    "take_push_to_hub",
]
