"""`adamae-prepare`: a video index into WebDataset tar shards, optionally re-encoded for fast seeking.

    adamae-prepare --index train.csv --output_dir shards/train --videos_per_shard 1000 \\
        --short_side 320 --keyframe_interval 1.0 --num_workers 16

The index is a CSV / JSON-lines file (`path[,label]`, paths relative to the file or to `--data_root`) or a folder of
class folders (`<class>/<video>`). Each shard `shard-000000.tar`, ... holds, per video, `<key>.mp4` (the video),
`<key>.cls` (its class id as decimal text) and `<key>.json` (`{"label": class name, "path": path relative to the
index}`); `classes.txt` lists the class names in id order. Keys are the index row and the file's stem, without dots.
`datasets.load_dataset("webdataset", data_files="shards/train/*.tar")` and the training scripts read them.

Without `--short_side` and `--keyframe_interval` each video's bytes are stored unchanged (after checking that its
first frame decodes). With either, videos are re-encoded to H.264 (`adamae_hf.prepare_video`).

* Deterministic: videos are packed in index order, a shard closes when the next video would take it past
  `--shard_size_mb` or when it holds `--videos_per_shard` videos; worker processes only prepare the bytes, so the
  shards do not depend on `--num_workers` or on timing.
* Resumable: a shard is written under a temporary name and renamed when complete, then recorded in `manifest.json`
  with the arguments that define the output. A rerun with the same arguments continues after the last recorded shard;
  a rerun with other arguments is refused.
* Nothing is dropped silently: a video that cannot be read is skipped with a warning naming it, and `report.json`
  lists every such video with the reason, beside the counts.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import re
import sys
import tarfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
from tqdm.auto import tqdm

from .checkpoint import atomic_write_text
from .data.index import LABEL_COLUMN, PATH_COLUMN, index_from_file, index_from_folder
from .errors import ArgumentParser, UserError, run_cli
from .prepare_video import EncodeSettings, PreparedVideo, prepare_video


MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.json"
CLASSES_NAME = "classes.txt"
SHARD_NAME = "shard-{:06d}.tar"
SHARD_PATTERN = re.compile(r"shard-\d{6,}\.tar")
TEMPORARY_PREFIX = "."
TEMPORARY_SUFFIX = ".tmp"
DEFAULT_SHARD_SIZE_MB = 1000.0
DEFAULT_KEYFRAME_INTERVAL = 1.0
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
MANIFEST_FORMAT = 1
# Failures printed at the end of a run; report.json has them all.
_FAILURES_SHOWN = 20


@dataclass
class PrepareArguments:
    """The command line of `adamae-prepare`."""

    index: str = field(metadata={"help": "A .csv / .jsonl index (path[,label]) or a folder of class folders."})
    output_dir: str = field(metadata={"help": "Folder for the shards, classes.txt, manifest.json and report.json."})
    data_root: str | None = field(
        default=None, metadata={"help": "Folder the index's relative paths start from (default: the index's)."}
    )
    shard_size_mb: float | None = field(
        default=None,
        metadata={"help": "Close a shard before it passes this many MB (10^6 bytes); default "
                  f"{DEFAULT_SHARD_SIZE_MB:g} unless --videos_per_shard is given."},
    )  # fmt: skip
    videos_per_shard: int | None = field(default=None, metadata={"help": "Close a shard at this many videos."})
    short_side: int | None = field(
        default=None,
        metadata={"help": "Re-encode, scaling the short side down to this many pixels (even; smaller videos keep "
                  "their size), e.g. 320 as VideoMAE's Kinetics preprocessing."},
    )  # fmt: skip
    keyframe_interval: float | None = field(
        default=None,
        metadata={"help": "Re-encode with a keyframe at least every this many seconds (x264 -g round(fps * s)); "
                  f"default {DEFAULT_KEYFRAME_INTERVAL:g} when re-encoding."},
    )  # fmt: skip
    crf: int = field(default=23, metadata={"help": "x264 constant rate factor when re-encoding (0-51)."})
    preset: str = field(default="medium", metadata={"help": "x264 preset when re-encoding.", "choices": X264_PRESETS})
    bit_exact: bool = field(
        default=False,
        metadata={"help": "Re-encode without x264's assembly: the same bytes on every run (about 2.5x slower)."},
    )
    num_workers: int = field(
        default_factory=lambda: os.cpu_count() or 1,
        metadata={"help": "Worker processes reading and encoding videos (default: one per CPU; 0 or 1: this one)."},
    )


@dataclass(frozen=True)
class IndexRow:
    """One video of the index: its position, file, path relative to the index and class id."""

    row: int
    path: str
    relative_path: str
    label: int | None

    @property
    def key(self) -> str:
        """Member name stem in a shard: unique (the row) and without dots (WebDataset splits names at the first)."""
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(self.path).stem)[:60].strip("_")
        return f"{self.row:06d}_{stem}" if stem else f"{self.row:06d}"


# ---------------------------------------------------------------------------------------------------------------------
# Arguments and index


def check_arguments(args: PrepareArguments) -> None:
    """One `UserError` line for a value outside its range."""
    if args.short_side is not None and (args.short_side < 2 or args.short_side % 2):
        raise UserError(f"--short_side: expected an even number of pixels >= 2 (4:2:0 video), got {args.short_side}.")
    if args.keyframe_interval is not None and not args.keyframe_interval > 0:
        raise UserError(f"--keyframe_interval: expected a positive number of seconds, got {args.keyframe_interval}.")
    if args.shard_size_mb is not None and not args.shard_size_mb > 0:
        raise UserError(f"--shard_size_mb: expected a positive size, got {args.shard_size_mb}.")
    if args.videos_per_shard is not None and args.videos_per_shard < 1:
        raise UserError(f"--videos_per_shard: expected a positive number of videos, got {args.videos_per_shard}.")
    if not 0 <= args.crf <= 51:
        raise UserError(f"--crf: expected x264's range 0-51, got {args.crf}.")
    if args.num_workers < 0:
        raise UserError(f"--num_workers: expected 0 or more processes, got {args.num_workers}.")
    if not os.path.exists(args.index):
        raise UserError(
            f"--index: expected a .csv / .jsonl index or a folder of class folders, got {args.index!r}: no such file."
        )


def encode_settings(args: PrepareArguments) -> EncodeSettings | None:
    """How to re-encode, or None to store the files unchanged."""
    if args.short_side is None and args.keyframe_interval is None:
        return None
    interval = args.keyframe_interval if args.keyframe_interval is not None else DEFAULT_KEYFRAME_INTERVAL
    return EncodeSettings(args.short_side, interval, args.crf, args.preset, args.bit_exact)


def shard_limits(args: PrepareArguments) -> tuple[float | None, int | None]:
    """(shard_size_mb, videos_per_shard) in force: the size default applies when neither is given."""
    if args.shard_size_mb is None and args.videos_per_shard is None:
        return DEFAULT_SHARD_SIZE_MB, None
    return args.shard_size_mb, args.videos_per_shard


def load_rows(args: PrepareArguments) -> tuple[list[IndexRow], list[str] | None]:
    """The index's videos in order and its class names (None without labels)."""
    if os.path.isdir(args.index):
        index, base = index_from_folder(args.index), os.path.abspath(args.index)
    else:
        index = index_from_file(args.index, data_root=args.data_root)
        base = os.path.abspath(args.data_root or os.path.dirname(os.path.abspath(args.index)))
    labels = index[LABEL_COLUMN] if LABEL_COLUMN in index.column_names else None
    feature = index.features.get(LABEL_COLUMN)
    class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    rows = [
        IndexRow(row, path, os.path.relpath(path, base), None if labels is None else int(labels[row]))
        for row, path in enumerate(index[PATH_COLUMN])
    ]
    return rows, class_names


def defining_arguments(args: PrepareArguments, rows: list[IndexRow], class_names: list[str] | None) -> dict:
    """What the output depends on, as `manifest.json` records it: a rerun must match it to resume."""
    settings = encode_settings(args)
    shard_size_mb, videos_per_shard = shard_limits(args)
    listing = json.dumps([[row.path, row.relative_path, row.label] for row in rows] + [class_names])
    return {
        "index": os.path.abspath(args.index),
        "index_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "shard_size_mb": shard_size_mb,
        "videos_per_shard": videos_per_shard,
        **{name: None for name in ("short_side", "keyframe_interval", "crf", "preset", "bit_exact")},
        **(asdict(settings) if settings is not None else {}),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Manifest: what is finished


@dataclass
class Manifest:
    """`manifest.json`: the defining arguments, the finished shards (each with the index rows it covers) and the
    videos of those rows that could not be read."""

    path: Path
    arguments: dict
    shards: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    done_rows: int = 0
    complete: bool = False

    @classmethod
    def open(cls, output_dir: Path, arguments: dict) -> Manifest:
        """The manifest of an earlier run with the same arguments, or a new one; refuses other arguments."""
        path = output_dir / MANIFEST_NAME
        if not path.exists():
            if any(SHARD_PATTERN.fullmatch(name) for name in os.listdir(output_dir)):
                raise UserError(
                    f"--output_dir: {output_dir} holds shards but no {MANIFEST_NAME} (not written by adamae-prepare); "
                    "choose another --output_dir."
                )
            return cls(path, arguments)
        saved = json.loads(path.read_text())
        differences = [
            f"--{name} {saved['arguments'].get(name)!r} then, {value!r} now"
            for name, value in arguments.items()
            if saved["arguments"].get(name) != value
        ]
        if differences:
            raise UserError(
                f"--output_dir: {output_dir} was prepared with other arguments ({'; '.join(differences)}); rerun with "
                "the same arguments to resume, or choose another --output_dir."
            )
        fields = ("shards", "failures", "done_rows", "complete")
        return cls(path, arguments, **{name: saved[name] for name in fields})

    def resume_point(self) -> tuple[int, int]:
        """(first index row to prepare, next shard number): after the last recorded shard still on disk as written.
        A shard that is missing or changed is redone, and every one after it."""
        for number, shard in enumerate(self.shards):
            shard_path = self.path.parent / shard["name"]
            if not shard_path.is_file() or shard_path.stat().st_size != shard["bytes"]:
                self.shards = self.shards[:number]
                self.done_rows = shard["first_row"]
                self.failures = [failure for failure in self.failures if failure["row"] - 1 < self.done_rows]
                self.complete = False
                break
        return self.done_rows, len(self.shards)

    def record(self, end_row: int, failures: list[dict], shard: dict | None = None, complete: bool = False) -> None:
        """Rows up to `end_row` are done: with `shard` written (if any) and `failures` among them."""
        if shard is not None:
            self.shards.append({**shard, "first_row": self.done_rows, "end_row": end_row})
        self.failures.extend(failures)
        self.done_rows, self.complete = end_row, complete
        self.save()

    def save(self) -> None:
        content = {"format": MANIFEST_FORMAT, "arguments": self.arguments, "shards": self.shards,
                   "failures": self.failures, "done_rows": self.done_rows, "complete": self.complete}  # fmt: skip
        atomic_write_text(self.path, json.dumps(content, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------------------------------
# Shards


def tar_member_bytes(size: int) -> int:
    """Bytes a member of `size` bytes takes in a tar file: a 512-byte header and the data padded to 512."""
    return tarfile.BLOCKSIZE + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class ShardWriter:
    """Writes one shard at a time, under a temporary name renamed when the shard is complete."""

    def __init__(self, output_dir: Path, number: int, class_names: list[str] | None):
        self.output_dir, self.number, self.class_names = output_dir, number, class_names
        self._tar: tarfile.TarFile | None = None
        self.videos = 0

    @property
    def name(self) -> str:
        return SHARD_NAME.format(self.number)

    @property
    def _temporary(self) -> Path:
        return self.output_dir / f"{TEMPORARY_PREFIX}{self.name}{TEMPORARY_SUFFIX}"

    def members(self, row: IndexRow, video: bytes) -> list[tuple[str, bytes]]:
        """The member group of one video (C5 layout)."""
        meta = {"path": row.relative_path}
        group = []
        if row.label is not None:
            group.append((f"{row.key}.cls", str(row.label).encode()))
            meta = {"label": self.class_names[row.label], **meta}
        group.append((f"{row.key}.json", json.dumps(meta, ensure_ascii=False).encode()))
        return group + [(f"{row.key}.mp4", video)]

    def size_with(self, row: IndexRow, video: bytes) -> int:
        """The shard's size with this video added (before the tar's end blocks)."""
        current = self._tar.offset if self._tar is not None else 0
        return current + sum(tar_member_bytes(len(data)) for _, data in self.members(row, video))

    def add(self, row: IndexRow, video: bytes) -> None:
        if self._tar is None:
            self._tar = tarfile.open(self._temporary, "w", format=tarfile.PAX_FORMAT)
        for name, data in self.members(row, video):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0  # no times, owners: same input, same bytes
            self._tar.addfile(info, io.BytesIO(data))
        self.videos += 1

    def close(self) -> dict:
        """Finish the shard, give it its name; returns its manifest entry. The writer moves on to the next number."""
        self._tar.close()
        with open(self._temporary, "rb+") as handle:
            os.fsync(handle.fileno())  # on disk before the rename publishes it
        final = self.output_dir / self.name
        os.replace(self._temporary, final)
        entry = {"name": self.name, "videos": self.videos, "bytes": final.stat().st_size}
        self._tar, self.videos, self.number = None, 0, self.number + 1
        return entry


def remove_temporary_shards(output_dir: Path) -> None:
    """Partial shards an interrupted run left behind."""
    for path in output_dir.glob(f"{TEMPORARY_PREFIX}shard-*.tar{TEMPORARY_SUFFIX}"):
        path.unlink()


# ---------------------------------------------------------------------------------------------------------------------
# Running


def prepared_videos(
    rows: Sequence[IndexRow], settings: EncodeSettings | None, num_workers: int
) -> Iterator[PreparedVideo]:
    """Each row's prepared video, in index order; with workers, a few rows ahead at most (bounded memory)."""
    if num_workers <= 1:
        for row in rows:
            yield prepare_video(row.row, row.path, settings)
        return
    # An executor, not a Pool: a worker killed mid-video (out of memory, a crash in FFmpeg) breaks the executor with
    # an error, where a Pool would wait forever for the lost task.
    with ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context()) as executor:
        pending = deque()
        try:
            for row in rows:
                pending.append(executor.submit(prepare_video, row.row, row.path, settings))
                if len(pending) >= 2 * num_workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise UserError(
                "a worker process died (killed, out of memory?) while preparing videos; the finished shards are kept: "
                "run the same command again to continue, with fewer --num_workers if memory ran out"
            ) from None


def write_shards(
    rows: list[IndexRow], manifest: Manifest, writer: ShardWriter, args: PrepareArguments, progress: tqdm
) -> None:
    """Pack the rows from the manifest's resume point into shards, recording each finished shard."""
    shard_size_mb, videos_per_shard = shard_limits(args)
    max_bytes = shard_size_mb * 1e6 if shard_size_mb is not None else float("inf")
    failures: list[dict] = []  # of rows since the last recorded shard
    for result in prepared_videos(rows[manifest.done_rows :], encode_settings(args), args.num_workers):
        row = rows[result.row]
        if result.data is None:
            failures.append({"row": row.row + 1, "path": row.path, "reason": result.reason})
            progress.write(f"adamae-prepare: skipping {row.path}: {result.reason}", file=sys.stderr)
        else:
            if writer.videos and writer.size_with(row, result.data) + 2 * tarfile.BLOCKSIZE > max_bytes:
                manifest.record(row.row, failures, writer.close())
                failures = []
            writer.add(row, result.data)
            if writer.videos == videos_per_shard:
                manifest.record(row.row + 1, failures, writer.close())
                failures = []
        progress.update()
        progress.set_postfix(shards=len(manifest.shards), failed=len(manifest.failures) + len(failures), refresh=False)
    manifest.record(len(rows), failures, writer.close() if writer.videos else None, complete=True)


def build_report(manifest: Manifest, rows: list[IndexRow], class_names: list[str] | None, args) -> dict:
    written = sum(shard["videos"] for shard in manifest.shards)
    return {
        "index": os.path.abspath(args.index),
        "output_dir": os.path.abspath(args.output_dir),
        "videos": len(rows),
        "written": written,
        "failed": len(manifest.failures),
        "shards": len(manifest.shards),
        "bytes": sum(shard["bytes"] for shard in manifest.shards),
        "classes": len(class_names) if class_names is not None else None,
        "reencoded": encode_settings(args) is not None,
        "failures": manifest.failures,
    }


def summary(report: dict) -> str:
    lines = [
        f"adamae-prepare: {report['written']} of {report['videos']} videos in {report['shards']} shards "
        f"({report['bytes'] / 1e6:.1f} MB) under {report['output_dir']}; {report['failed']} could not be read"
        + (":" if report["failed"] else ".")
    ]
    lines += [f"  row {failure['row']}: {failure['path']}: {failure['reason']}"
              for failure in report["failures"][:_FAILURES_SHOWN]]  # fmt: skip
    if report["failed"] > _FAILURES_SHOWN:
        lines.append(f"  ... and {report['failed'] - _FAILURES_SHOWN} more")
    if report["failed"]:
        lines.append(f"  (all listed in {os.path.join(report['output_dir'], REPORT_NAME)})")
    return "\n".join(lines)


def prepare_shards(args: PrepareArguments) -> dict:
    """Write (or finish writing) the shards of `args.index` into `args.output_dir`; returns the report."""
    check_arguments(args)
    rows, class_names = load_rows(args)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.open(output_dir, defining_arguments(args, rows, class_names))
    remove_temporary_shards(output_dir)
    start_row, next_shard = manifest.resume_point()
    if class_names is not None:
        atomic_write_text(output_dir / CLASSES_NAME, "".join(f"{name}\n" for name in class_names))
    if not manifest.complete:
        writer = ShardWriter(output_dir, next_shard, class_names)
        with tqdm(total=len(rows), initial=start_row, unit="video", desc="adamae-prepare") as progress:
            write_shards(rows, manifest, writer, args, progress)
    report = build_report(manifest, rows, class_names, args)
    atomic_write_text(output_dir / REPORT_NAME, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    if report["written"] == 0:
        raise UserError(
            f"--index: none of the {len(rows)} videos could be read (the reasons are in {output_dir / REPORT_NAME})."
        )
    return report


def run(argv: list[str]) -> dict:
    parser = ArgumentParser(PrepareArguments, prog="adamae-prepare", description=__doc__.split("\n")[0])
    (args,) = parser.parse_args_into_dataclasses(argv)
    report = prepare_shards(args)
    print(summary(report))
    return report


def main(argv: list[str] | None = None) -> int:
    """`adamae-prepare`: 0 on success, 1 with one `error: ...` line for a user mistake."""
    return run_cli(run, argv)


__all__ = ["PrepareArguments", "main", "prepare_shards"]


if __name__ == "__main__":
    sys.exit(main())
