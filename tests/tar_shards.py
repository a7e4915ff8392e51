"""Tiny WebDataset tar shards written by the tests (no labels by id: the class name in each `<key>.json`)."""

import io
import json
import os
import tarfile
from pathlib import Path


def write_tar_shards(folder: Path, videos, per_shard: int = 4) -> Path:
    """The videos as WebDataset tar shards (`<key>.mp4` + `<key>.json` holding the class name, no ids)."""
    folder.mkdir(parents=True)
    for shard, start in enumerate(range(0, len(videos), per_shard)):
        with tarfile.open(folder / f"shard-{shard:06d}.tar", "w") as tar:
            for number, video in enumerate(videos[start : start + per_shard], start=start):
                record = json.dumps({"label": video.label, "path": os.path.basename(video.path)}).encode()
                for name, data in (
                    (f"video{number:04d}.mp4", Path(video.path).read_bytes()),
                    (f"video{number:04d}.json", record),
                ):
                    member = tarfile.TarInfo(name)
                    member.size = len(data)
                    tar.addfile(member, io.BytesIO(data))
    return folder
