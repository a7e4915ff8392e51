"""Video indexes as ``datasets.Dataset``: one row per video, a ``path`` column and an optional ``label``.

Three sources give the same result:

* a CSV (``path,label`` header) or JSON-lines (``{"path": ..., "label": ...}``) file, paths relative to the file
  or to ``data_root``: :func:`index_from_file`;
* a folder laid out ``class_name/video.ext``: :func:`index_from_folder`;
* an existing ``datasets.Dataset`` with a path column: :func:`index_from_dataset`.

Paths are stored absolute. Labels are stored as a ``datasets.ClassLabel``, whose names give the model config's
``id2label`` / ``label2id`` (:func:`label_maps`). Class names are sorted, so the same set of classes always gets
the same ids; integer labels keep their values.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence

import datasets
from datasets.distributed import split_dataset_by_node

from .decoding import VIDEO_EXTENSIONS


PATH_COLUMN = "path"
BYTES_COLUMN = "bytes"
LABEL_COLUMN = "label"


def _resolve(path: str, base: str) -> str:
    return os.path.abspath(path if os.path.isabs(path) else os.path.join(base, path))


class UnknownLabelError(ValueError):
    """A row's label is neither one of the given ``label_names`` nor an id below their count."""


def _labels_feature(
    labels: Sequence, label_names: Sequence[str] | None, where: Sequence[str] | None = None
) -> tuple[list[int], datasets.ClassLabel]:
    """Encode labels as ids with a ClassLabel: names given, sorted class names, or integer ids kept as they are.
    ``where`` locates each label for error messages ("file:line", or the class folder)."""
    if label_names is not None:
        names = [str(name) for name in label_names]
        name_to_id = {name: i for i, name in enumerate(names)}
        ids = []
        for row, label in enumerate(labels):
            text = str(label).strip()
            if text in name_to_id:  # a class name
                ids.append(name_to_id[text])
            elif text.isdigit() and int(text) < len(names):  # an id
                ids.append(int(text))
            else:
                location = f"{where[row]}: " if where is not None else ""
                shown = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
                raise UnknownLabelError(
                    f"{location}unknown label {text!r}: a label must be one of the {len(names)} label_names "
                    f"({shown}) or an id below {len(names)}"
                )
        return ids, datasets.ClassLabel(names=names)
    as_text = [str(label).strip() for label in labels]
    if as_text and all(text.lstrip("-").isdigit() for text in as_text):
        ids = [int(text) for text in as_text]
        if min(ids) < 0:
            raise ValueError(f"integer labels must be >= 0, got {min(ids)}")
        return ids, datasets.ClassLabel(names=[str(i) for i in range(max(ids) + 1)])
    names = sorted(set(as_text))
    name_to_id = {name: i for i, name in enumerate(names)}
    return [name_to_id[text] for text in as_text], datasets.ClassLabel(names=names)


def _build(
    paths: list[str],
    labels: list | None,
    label_names: Sequence[str] | None,
    where: Sequence[str] | None = None,
    video_bytes: datasets.Dataset | None = None,
) -> datasets.Dataset:
    """The index: ``path`` [+ ``bytes``: a one-column dataset, kept memory-mapped] [+ ClassLabel ``label``]."""
    if not paths:
        raise ValueError("the index is empty: no videos found")
    features = {PATH_COLUMN: datasets.Value("string")}
    columns = {PATH_COLUMN: paths}
    if labels is not None:
        missing = next((row for row, label in enumerate(labels) if label is None), None)
        if missing is not None:
            location = where[missing] if where is not None else f"row {missing + 1}"
            raise ValueError(f"{location}: no label, while other videos have one")
        ids, class_label = _labels_feature(labels, label_names, where)
        features[LABEL_COLUMN] = class_label
        columns[LABEL_COLUMN] = ids
    index = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    if video_bytes is None:
        return index
    video_bytes = video_bytes.rename_column(video_bytes.column_names[0], BYTES_COLUMN)
    index = datasets.concatenate_datasets([index, video_bytes], axis=1)
    order = [name for name in (PATH_COLUMN, BYTES_COLUMN, LABEL_COLUMN) if name in index.column_names]
    return index.select_columns(order)


def index_from_file(
    index_file: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    label_names: Sequence[str] | None = None,
) -> datasets.Dataset:
    """Read a ``.csv`` (header row with ``path`` and optionally ``label``) or ``.jsonl`` index.

    Both may start with a UTF-8 byte order mark (Excel writes one). CSV header names and values may have spaces
    after the commas (``path, label``); a path holding a comma must be quoted (``"a,b.mp4",walk``): a row with more
    fields than the header is an error naming its line, never a silent split.

    Args:
        index_file: The index.
        data_root: Folder that relative paths are relative to; default: the index file's folder.
        label_names: Class names in id order, when the file's labels are ids or a subset of the classes.

    Returns:
        A ``datasets.Dataset`` with absolute ``path`` strings and, if the file has labels, a ClassLabel ``label``.

    Raises:
        ValueError: naming the file and the 1-based line of a malformed row.
    """
    index_file = str(index_file)
    base = str(data_root) if data_root is not None else os.path.dirname(os.path.abspath(index_file))
    if index_file.endswith(".csv"):
        rows, where = _read_csv_rows(index_file)
    elif index_file.endswith((".jsonl", ".json")):
        rows, where = _read_json_lines(index_file)
    else:
        raise ValueError(f"index_file must end in .csv or .jsonl, got {index_file!r}")
    paths = [_resolve(str(row[PATH_COLUMN]), base) for row in rows]
    labelled = [row.get(LABEL_COLUMN) not in (None, "") for row in rows]
    if any(labelled) and not all(labelled):
        row = labelled.index(False)
        raise ValueError(f"{where[row]}: row {row + 1} has no label while others do")
    labels = [row[LABEL_COLUMN] for row in rows] if rows and all(labelled) else None
    return _build(paths, labels, label_names, where)


def _read_csv_rows(index_file: str) -> tuple[list[dict], list[str]]:
    """The rows of a CSV index and the "file:line" of each."""
    rows, where = [], []
    # utf-8-sig drops Excel's byte order mark; skipinitialspace reads "a.mp4, walk" (and a quoted field after ", ").
    with open(index_file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        header = [name.strip() for name in next(reader, [])]
        if PATH_COLUMN not in header:
            raise ValueError(f"{index_file}:1: the CSV header must name a '{PATH_COLUMN}' column, got {header}")
        for fields in reader:
            line = f"{index_file}:{reader.line_num}"
            if not any(field.strip() for field in fields):
                continue  # a blank line
            if len(fields) > len(header):
                raise ValueError(
                    f"{line}: {len(fields)} fields but the header names {len(header)} ({', '.join(header)}); "
                    'quote a path that contains a comma, e.g. "videos/a,b.mp4"'
                )
            rows.append(dict(zip(header, (field.strip() for field in fields))))
            where.append(line)
    return rows, where


def _read_json_lines(index_file: str) -> tuple[list[dict], list[str]]:
    """The rows of a JSON-lines index (one object per line) and the "file:line" of each."""
    rows, where = [], []
    with open(index_file, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{index_file}:{line_number}: not a JSON object ({error.msg}, column {error.colno}); each line "
                    f'must be one object like {{"{PATH_COLUMN}": "a.mp4", "{LABEL_COLUMN}": "walk"}}'
                ) from None
            if not isinstance(row, dict) or PATH_COLUMN not in row:
                raise ValueError(
                    f"{index_file}:{line_number}: expected an object with a '{PATH_COLUMN}', got {line.strip()[:80]}"
                )
            rows.append(row)
            where.append(f"{index_file}:{line_number}")
    return rows, where


def index_from_folder(
    root: str | os.PathLike,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    label_names: Sequence[str] | None = None,
) -> datasets.Dataset:
    """Index a folder laid out ``root/<class_name>/<video>.<ext>``; the folder name is the label.

    Args:
        label_names: Class names in id order, when the folder holds only some of the classes (e.g. a validation
            folder); default: the sorted folder names.
    """
    root = os.path.abspath(str(root))
    if not os.path.isdir(root):
        raise ValueError(f"root must be a folder of class folders, got {root!r}")
    paths, labels = [], []
    for class_name in sorted(os.listdir(root)):
        class_folder = os.path.join(root, class_name)
        if not os.path.isdir(class_folder):
            continue
        for file_name in sorted(os.listdir(class_folder)):
            if file_name.lower().endswith(tuple(extensions)):
                paths.append(os.path.join(class_folder, file_name))
                labels.append(class_name)
    return _build(paths, labels, label_names, where=[os.path.dirname(path) for path in paths])


def index_from_dataset(
    dataset: datasets.Dataset,
    path_column: str = PATH_COLUMN,
    label_column: str | None = LABEL_COLUMN,
    data_root: str | os.PathLike | None = None,
    label_names: Sequence[str] | None = None,
) -> datasets.Dataset:
    """Normalise an existing ``datasets.Dataset`` into an index (``path`` [, ``bytes``], ClassLabel ``label``).

    ``path_column`` holds file paths, or videos: a ``datasets.Video`` column (decoded or ``decode=False``) or a
    ``{"path", "bytes"}`` struct. Videos held as bytes keep them in a ``bytes`` column (memory-mapped, not copied)
    with their path as a display name; videos held as files get their path. Relative file paths are resolved
    against ``data_root`` (default: the working directory).

    Labels: a ClassLabel column keeps its names, string labels get sorted class names, integer labels keep their
    ids; with ``label_names``, names (or ids below their count) map to those ids and another label raises
    :class:`UnknownLabelError` naming its row. A ClassLabel column of -1 only (an unlabelled split) gives no labels.
    """
    if path_column not in dataset.column_names:
        raise ValueError(f"path_column {path_column!r} is not a column of the dataset ({dataset.column_names})")
    base = str(data_root) if data_root is not None else os.getcwd()
    if _holds_videos(dataset.features[path_column]):
        paths, video_bytes = _paths_and_bytes(dataset, path_column, base)
    else:
        paths, video_bytes = [_resolve(str(path), base) for path in dataset[path_column]], None
    labels = None
    if label_column is not None and label_column in dataset.column_names:
        labels = _dataset_labels(dataset, label_column)
        feature = dataset.features[label_column]
        if label_names is None and isinstance(feature, datasets.ClassLabel):
            label_names = feature.names  # its own order kept
    where = [f"row {row + 1} ({path})" for row, path in enumerate(paths)]
    return _build(paths, labels, label_names, where, video_bytes)


def _holds_videos(feature) -> bool:
    """A ``datasets.Video`` column, or a struct of ``path`` and ``bytes`` (what ``Video(decode=False)`` stores)."""
    return isinstance(feature, datasets.Video) or (isinstance(feature, dict) and set(feature) == {"path", "bytes"})


def _paths_and_bytes(dataset: datasets.Dataset, column: str, base: str) -> tuple[list[str], datasets.Dataset | None]:
    """Display names / file paths of a video column, and its bytes as a one-column dataset (None when every video
    is a file). Casting to ``Video(decode=False)`` reads the stored ``{"path", "bytes"}`` without decoding."""
    videos = dataset.select_columns([column])
    if isinstance(videos.features[column], datasets.Video):
        videos = videos.cast_column(column, datasets.Video(decode=False))
    videos = videos.flatten()  # columns "<column>.path", "<column>.bytes": Arrow views, nothing copied
    stored_paths = videos.data.column(f"{column}.path").to_pylist()
    bytes_column = videos.data.column(f"{column}.bytes")
    if bytes_column.null_count == len(videos):
        missing = next((row for row, path in enumerate(stored_paths) if not path), None)
        if missing is not None:
            raise ValueError(f"{column!r} row {missing + 1}: a video with neither a path nor bytes")
        return [_resolve(path, base) for path in stored_paths], None
    in_memory = bytes_column.is_valid().to_pylist()
    paths = [
        (path or f"{column}[{row}]") if has_bytes else _resolve(path, base)
        for row, (path, has_bytes) in enumerate(zip(stored_paths, in_memory))
    ]
    return paths, videos.select_columns([f"{column}.bytes"])


def _dataset_labels(dataset: datasets.Dataset, column: str) -> list | None:
    """A label column's values as class names (ClassLabel) or as they are; None for an unlabelled split."""
    feature = dataset.features[column]
    values = dataset[column]
    if isinstance(feature, datasets.ClassLabel):
        if all(value == -1 for value in values):
            return None  # datasets' "no label" (e.g. a test split)
        # Names, not ids: a ClassLabel's own order may differ from the label_names asked for.
        return [feature.int2str(value) if value != -1 else None for value in values]
    return values


def label_maps(index: datasets.Dataset) -> tuple[dict[int, str], dict[str, int]]:
    """``(id2label, label2id)`` for a model config, from the index's ClassLabel ``label`` column."""
    feature = index.features.get(LABEL_COLUMN)
    if not isinstance(feature, datasets.ClassLabel):
        raise ValueError(f"the index has no ClassLabel '{LABEL_COLUMN}' column (columns: {index.column_names})")
    id2label = dict(enumerate(feature.names))
    return id2label, {name: i for i, name in id2label.items()}


def shard_index(index: datasets.Dataset, rank: int, world_size: int) -> datasets.Dataset:
    """This process's share of the index for multi-process training without a distributed sampler.

    Wraps ``datasets.distributed.split_dataset_by_node``: contiguous, near-equal shards (sizes differ by at most
    one). Use it *instead of* a ``DistributedSampler``; Accelerate's ``prepare(dataloader)`` already shards the
    sampler, so with Accelerate pass the full index.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    return split_dataset_by_node(index, rank=rank, world_size=world_size)
