"""Run a script in a fresh Python process where the project's modules cannot be imported (the Hub remote-code path:
what a user without adamae-hf installed gets), offline, with transformers' module cache in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


PROJECT_MODULES = (
    "adamae_hf",
    "configuration_adamae",
    "modeling_adamae",
    "pipeline_adamae",
    "video_adamae",
    "video_clips_adamae",
)

BLOCK_PROJECT_MODULES = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class BlockProjectModules(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {set(PROJECT_MODULES)!r}:
                raise ModuleNotFoundError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockProjectModules())
    for name in {PROJECT_MODULES!r}:
        try:
            __import__(name)
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit(f"{{name}} is importable")
    """
)


def run_without_project(script: str, args: list[str], work_dir: Path) -> subprocess.CompletedProcess:
    """Write `script` (after the import blocker) to `work_dir/check.py` and run it there with `args`."""
    path = Path(work_dir) / "check.py"
    path.write_text(BLOCK_PROJECT_MODULES + textwrap.dedent(script))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(Path(work_dir) / "modules"))
    return subprocess.run(
        [sys.executable, str(path), *map(str, args)],
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
