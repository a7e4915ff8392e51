"""Crash-safe training checkpoints: atomic `checkpoint-{step}` folders, rotation, and `latest` resolution.

A checkpoint is written by `accelerator.save_state` into a hidden temporary folder (`.tmp-checkpoint-{step}`), with a
`training_state.json` (step, counters, batch geometry) written last; only then is the folder renamed to
`checkpoint-{step}`. A rename is atomic on POSIX file systems, so a process killed at any moment leaves either the
complete folder or no folder of that name: a `checkpoint-{step}` folder is always complete. The `latest` file in the
output folder names the newest checkpoint; it is replaced atomically (write a temporary file, then `os.replace`) after
the rename. Old checkpoints are removed by renaming them to `.deleting-checkpoint-{step}` first, so a crash during the
removal never leaves a half-deleted folder under a checkpoint name. Leftover temporary folders are removed by the
next save.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from accelerate.utils import RNG_STATE_NAME
from accelerate.utils import load as accelerate_load

from .errors import UserError


CHECKPOINT_PREFIX = "checkpoint-"
TEMPORARY_PREFIX = ".tmp-checkpoint-"
DELETING_PREFIX = ".deleting-checkpoint-"
LATEST_FILE = "latest"
TRAINING_STATE_FILE = "training_state.json"

# What every random-state file holds, whatever the devices (accelerate adds one entry per accelerator type).
RANDOM_STATE_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")

logger = logging.getLogger(__name__)

_CHECKPOINT_PATTERN = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step}"


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of a `checkpoint-{step}` folder name, or None for any other name."""
    match = _CHECKPOINT_PATTERN.match(Path(path).name)
    return int(match.group(1)) if match else None


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """A folder named `checkpoint-{step}` that holds its `training_state.json` (written last, before the rename)."""
    path = Path(path)
    return checkpoint_step(path) is not None and path.is_dir() and (path / TRAINING_STATE_FILE).is_file()


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in `output_dir`, oldest (lowest step) first. Temporary and deleting folders never count."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    checkpoints = [path for path in output_dir.iterdir() if is_complete_checkpoint(path)]
    return sorted(checkpoints, key=checkpoint_step)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint the `latest` file names when it is complete, else the complete checkpoint with the highest step,
    else None."""
    output_dir = Path(output_dir)
    pointer = output_dir / LATEST_FILE
    if pointer.is_file():
        named = output_dir / pointer.read_text().strip()
        if is_complete_checkpoint(named):
            return named
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(spec: str, output_dir: str | os.PathLike) -> Path | None:
    """Turn `--resume_from_checkpoint` into a checkpoint folder.

    - `"latest"`: the latest complete checkpoint in `output_dir`, or None when there is none yet (so one command both
      starts a run and resumes it after a preemption);
    - a run folder (one with checkpoints in it): its latest complete checkpoint;
    - a `checkpoint-{step}` folder: that folder, which must be complete.

    Raises:
        ValueError: the path does not exist, is an incomplete (temporary) checkpoint, or holds no checkpoint.
    """
    if spec.strip().lower() == "latest":
        return latest_checkpoint(output_dir)
    path = Path(spec)
    if not path.is_dir():
        raise ValueError(
            f"--resume_from_checkpoint must be 'latest' or an existing folder, got {spec!r} (not a folder)."
        )
    if path.name.startswith((TEMPORARY_PREFIX, DELETING_PREFIX)):
        raise ValueError(
            f"{spec} is an incomplete checkpoint (a write or a removal was interrupted); resume from a complete "
            f"'{CHECKPOINT_PREFIX}<step>' folder or from 'latest'."
        )
    if checkpoint_step(path) is not None:
        if not is_complete_checkpoint(path):
            raise ValueError(f"{spec} is not a complete checkpoint: it has no {TRAINING_STATE_FILE}.")
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise ValueError(
            f"--resume_from_checkpoint {spec}: expected a '{CHECKPOINT_PREFIX}<step>' folder or a run folder "
            "containing one, found neither."
        )
    return latest


def read_training_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    with open(Path(checkpoint) / TRAINING_STATE_FILE) as handle:
        return json.load(handle)


def random_states_file(checkpoint: str | os.PathLike, process_index: int) -> Path:
    """The file in which `accelerator.save_state` keeps a process's random states (Python, numpy, torch)."""
    return Path(checkpoint) / f"{RNG_STATE_NAME}_{process_index}.pkl"


def check_random_states(checkpoint: str | os.PathLike, process_index: int) -> None:
    """Refuse to resume from a checkpoint whose random-state file for this process is broken.

    `accelerator.load_state` skips a file it cannot read with an INFO line, which is hidden: the run would resume
    silently with other random streams (sampler dropout; the data order, augmentation and masks are seeded by step
    and do not depend on them). A broken file is refused, since an exact resume was asked for; a missing one (the way
    to accept fresh streams is to delete the file) only warns, visibly.

    Raises:
        UserError: the file exists but does not hold the states (truncated, corrupt, another format).
    """
    path = random_states_file(checkpoint, process_index)
    if not path.exists():
        logger.warning(
            f"{path} is missing: resuming with fresh random streams, so sampler dropout after the resume point "
            "differs from the interrupted run's (the data order, augmentation and masks do not)."
        )
        return
    try:
        states = accelerate_load(path)  # as load_state reads it (weights_only, numpy's state types allowed)
        missing = [key for key in RANDOM_STATE_KEYS if key not in states]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    except Exception as error:  # any failure here is one load_state would swallow
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise UserError(
            f"{path} cannot be read ({reason}), and an exact resume needs this process's random states. Resume from "
            "another checkpoint, or delete the file to resume with fresh random streams (sampler dropout then "
            "differs from the interrupted run; data order, augmentation and masks do not)."
        ) from error


def _fsync_tree(folder: Path) -> None:
    """Flush every file of `folder` and the folder itself to disk, so that the rename never publishes data that a
    power loss could still take back."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_directory(folder)


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _set_aside(folder: Path) -> Path:
    """Rename a checkpoint to `.deleting-<step>`: from then on it never counts as a checkpoint."""
    doomed = folder.with_name(DELETING_PREFIX + folder.name.removeprefix(CHECKPOINT_PREFIX))
    if doomed.exists():
        shutil.rmtree(doomed)
    os.rename(folder, doomed)
    return doomed


def _remove_folder(folder: Path) -> None:
    """Rename, then delete: an interrupted deletion leaves a `.deleting-` folder, never a partial checkpoint."""
    shutil.rmtree(_set_aside(folder))


def remove_stale_folders(output_dir: str | os.PathLike) -> None:
    """Delete temporary and half-deleted folders that a crashed run left behind."""
    output_dir = Path(output_dir)
    if output_dir.is_dir():
        for path in output_dir.iterdir():
            if path.is_dir() and path.name.startswith((TEMPORARY_PREFIX, DELETING_PREFIX)):
                shutil.rmtree(path, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace a file's contents so that a crash leaves either the old file or the new one, never a part."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_latest_pointer(output_dir: str | os.PathLike, checkpoint: str | os.PathLike) -> None:
    """Point `output_dir/latest` at `checkpoint` (its name), atomically."""
    atomic_write_text(Path(output_dir) / LATEST_FILE, Path(checkpoint).name + "\n")


def rotate_checkpoints(output_dir: str | os.PathLike, save_total_limit: int | None) -> list[Path]:
    """Keep the newest `save_total_limit` complete checkpoints (and always the one `latest` names); return the removed
    ones. None or 0 keeps everything."""
    if not save_total_limit or save_total_limit < 1:
        return []
    checkpoints = list_checkpoints(output_dir)
    keep = set(checkpoints[-save_total_limit:])
    latest = latest_checkpoint(output_dir)
    if latest is not None:
        keep.add(latest)
    removed = [path for path in checkpoints if path not in keep]
    for path in removed:
        _remove_folder(path)
    return removed


def save_checkpoint(
    accelerator,
    output_dir: str | os.PathLike,
    step: int,
    training_state: dict[str, Any],
    save_total_limit: int | None = None,
) -> Path:
    """Write `checkpoint-{step}` crash-safely with `accelerator.save_state` (model, optimizer, scheduler, grad scaler,
    RNG states of every process) plus `training_state` as `training_state.json`; update `latest`; rotate.

    Every process must call it (FSDP and DeepSpeed write shards from every rank, and every rank writes its RNG state).
    The output folder must be on a file system all processes share.
    """
    output_dir = Path(output_dir)
    final = output_dir / checkpoint_name(step)
    temporary = output_dir / f"{TEMPORARY_PREFIX}{step}"
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_folders(output_dir)
    accelerator.wait_for_everyone()

    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()

    if accelerator.is_main_process:
        with open(temporary / TRAINING_STATE_FILE, "w") as handle:
            json.dump({**training_state, "step": step}, handle, indent=2, sort_keys=True)
            handle.write("\n")
        _fsync_tree(temporary)  # the folder is complete on disk before it takes the name
        # Re-saving a step (a run resumed from an earlier checkpoint reached it again): the old folder is renamed
        # aside and deleted only once the new one holds the name, so no crash loses both (the name is free for the
        # two renames alone).
        replaced = _set_aside(final) if final.exists() else None
        os.rename(temporary, final)
        _fsync_directory(output_dir)
        if replaced is not None:
            shutil.rmtree(replaced)
        write_latest_pointer(output_dir, final)
        rotate_checkpoints(output_dir, save_total_limit)
    accelerator.wait_for_everyone()
    return final


__all__ = [
    "CHECKPOINT_PREFIX",
    "LATEST_FILE",
    "TRAINING_STATE_FILE",
    "atomic_write_text",
    "check_random_states",
    "checkpoint_name",
    "checkpoint_step",
    "is_complete_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "random_states_file",
    "read_training_state",
    "remove_stale_folders",
    "resolve_checkpoint",
    "rotate_checkpoints",
    "save_checkpoint",
    "write_latest_pointer",
]
