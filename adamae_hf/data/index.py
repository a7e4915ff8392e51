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
    paths: list[str], labels: list | None, label_names: Sequence[str] | None, where: Sequence[str] | None = None
) -> datasets.Dataset:
    if not paths:
        raise ValueError("the index is empty: no videos found")
    features = {PATH_COLUMN: datasets.Value("string")}
    columns = {PATH_COLUMN: paths}
    if labels is not None:
        ids, class_label = _labels_feature(labels, label_names, where)
        features[LABEL_COLUMN] = class_label
        columns[LABEL_COLUMN] = ids
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


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
) -> datasets.Dataset:
    """Normalise an existing ``datasets.Dataset`` into an index (absolute ``path``, ClassLabel ``label``).

    A ClassLabel column keeps its names; string labels get sorted class names; integer labels keep their ids.
    Relative paths are resolved against ``data_root`` (default: the working directory).
    """
    if path_column not in dataset.column_names:
        raise ValueError(f"path_column {path_column!r} is not a column of the dataset ({dataset.column_names})")
    base = str(data_root) if data_root is not None else os.getcwd()
    paths = [_resolve(str(path), base) for path in dataset[path_column]]
    if label_column is None or label_column not in dataset.column_names:
        return _build(paths, None, None)
    feature = dataset.features[label_column]
    label_names = feature.names if isinstance(feature, datasets.ClassLabel) else None
    return _build(paths, list(dataset[label_column]), label_names)


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
