"""Every GPU number of the performance issue in one call, into one results folder (run it as benchmarks/gpu_suite.sh).

    bash benchmarks/gpu_suite.sh OUT_DIR                 # GPU machine: about 8 minutes on one H100
    bash benchmarks/gpu_suite.sh --smoke OUT_DIR         # CPU: every part tiny, checks the plumbing (CI runs this)
    bash benchmarks/gpu_suite.sh OUT_DIR --parts step-eager inference --time_scale 2

The parts, each a subprocess with its own time budget (seconds on one H100; the whole fits in 8 minutes):
pretrain_step.py's issue plan eager, compiled (batch 16 and 32 frames), with CUDA graphs and at the largest batch;
inference.py; end_to_end.py on decoded videos with all cores (num_sample 1 and 2); the CUDA-only tests; a short
pretraining on generated videos at 16 x 224^2 with run_pretrain.py, then the sampler evaluation
(adamae_hf.sampler_evaluation, as `adamae-evaluate-sampler`) on held-out videos generated with another seed.

OUT_DIR receives each part's log (<part>.log: its commands and whole output), results.json (machine, versions,
commit, every part's status, seconds and parsed rows, the performance targets), results.md (the Markdown tables for
benchmarks/RESULTS.md, also printed at the end), the sampler evaluation's JSON and PNG, and the pretraining's scalar
log and mask figure. A part that fails or runs out of time is recorded with its log's tail and the suite goes on;
rows a benchmark printed before it stopped are kept.

av, datasets and evaluate (missing on a bare GPU image, which may have no network) are installed from wheel files in
.whl/ beside the repository (or --wheels DIR, or $ADAMAE_WHEELS) into a folder of the scratch space that the parts
get on their PYTHONPATH; where a wheel is missing, one line says how to fetch them on a networked machine.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


try:  # imported as benchmarks.gpu_suite (the tests), or run as a script from benchmarks/ (gpu_suite.sh)
    from .gpu_suite_report import ADAPTIVE, clean, markdown, targets
except ImportError:
    from gpu_suite_report import ADAPTIVE, clean, markdown, targets


REPO = Path(__file__).resolve().parents[1]
# What a bare GPU image lacks (its image has torch, transformers, accelerate, numpy, pandas, pyarrow, ...), at the
# versions the CPU test suite passes with. dill and multiprocess are needs of datasets and evaluate.
WHEELS = {"av": "18.1.0", "datasets": "5.2.0", "evaluate": "0.4.6", "dill": "0.4.1", "multiprocess": "0.70.19"}
SAMPLER_EVALUATION_MODULE = REPO / "adamae_hf" / "sampler_evaluation.py"
SMOKE_BUDGET_S = 300  # per part of a smoke run: only a guard against a hang (CPU timings say nothing about a GPU's)


# ---------------------------------------------------------------------------------------------------------------------
# Wheels


def distribution_name(wheel: Path) -> str:
    """'av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl' -> 'av' (normalised: lower case, '-' for '_' and '.')."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def is_installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def fetch_command() -> str:
    """The pip command that fetches the wheels of `WHEELS` for this machine's Python and processor into .whl/."""
    version, machine = f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine()
    tags = ("manylinux_2_28", "manylinux_2_17", "manylinux2014")  # av's wheels are 2_28; pure-Python ones match any
    platforms = " ".join(f"--platform {tag}_{machine}" for tag in tags)
    pins = " ".join(f"{name}=={pin}" for name, pin in WHEELS.items())
    return (
        f"python3 -m pip download --no-deps --only-binary=:all: --python-version {version} --implementation cp "
        f"{platforms} -d .whl {pins}"
    )


def install_missing(wheel_dir: Path, site: Path) -> list[str]:
    """Install the packages of `WHEELS` that are not installed from the wheels in `wheel_dir` into `site` (without
    touching the environment; the caller puts `site` on the path). Returns what was done, one line each."""
    missing = [name for name in WHEELS if not is_installed(name)]
    if not missing:
        return ["installed: " + ", ".join(f"{name} {importlib.metadata.version(name)}" for name in WHEELS)]
    wheels = {distribution_name(path): path for path in sorted(wheel_dir.glob("*.whl"))} if wheel_dir.is_dir() else {}
    found, absent = [n for n in missing if n in wheels], [n for n in missing if n not in wheels]
    lines = []
    if found:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(wheel_dir),
            "--no-deps",
            "--no-compile",
            "--target",
            str(site),
            *found,
        ]
        completed = subprocess.run(command, capture_output=True, text=True)
        outcome = "installed" if completed.returncode == 0 else f"pip failed: {completed.stderr.strip()[-300:]}"
        lines.append(f"{', '.join(found)} from {wheel_dir}: {outcome}")
    if absent:
        lines.append(
            f"missing {', '.join(absent)} and no wheel for them in {wheel_dir}; on a networked machine, in "
            f"the repository's root: {fetch_command()}"
        )
    return lines


# ---------------------------------------------------------------------------------------------------------------------
# Machine and versions


def gpu_description() -> str:
    """'NVIDIA H100 80GB HBM3 (driver 580.159.04, 81559 MiB)' from nvidia-smi, or 'no GPU'."""
    if shutil.which("nvidia-smi") is None:
        return "no GPU"
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    completed = subprocess.run(query, capture_output=True, text=True)
    if completed.returncode != 0 or not completed.stdout.strip():
        return "no GPU (nvidia-smi failed)"
    fields = [item.strip() for item in completed.stdout.splitlines()[0].split(",")]
    return f"{fields[0]} (driver {fields[1]}, {fields[2]})" if len(fields) == 3 else ", ".join(fields)


def commit() -> str:
    """$ADAMAE_COMMIT (a copy of the tree without .git), else git's HEAD, marked when the tree has changes."""
    if os.environ.get("ADAMAE_COMMIT"):
        return os.environ["ADAMAE_COMMIT"]
    git = ["git", "-C", str(REPO)]
    head = None
    if (REPO / ".git").exists() and shutil.which("git"):
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head is None or head.returncode != 0:
        return "unknown (no git metadata: set ADAMAE_COMMIT)"
    changes = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return head.stdout.strip() + (" with uncommitted changes" if changes.stdout.strip() else "")


def machine_and_versions() -> dict:
    import torch  # here, not at the top: the wheels' folder must be on the path first; no CUDA context is made

    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda or "none"}
    for name in ("transformers", "accelerate", "av", "datasets", "evaluate", "numpy"):
        versions[name] = importlib.metadata.version(name) if is_installed(name) else "missing"
    return {
        "gpu": gpu_description(),
        "cuda_available": torch.cuda.is_available(),
        "cpus": os.cpu_count(),
        "processor": platform.machine(),
        "versions": versions,
        "commit": commit(),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Parts


@dataclass
class Part:
    """One measurement: commands run in order in the repository's root, sharing one log and one time budget.

    `collect(log_text)` turns what the commands wrote into `{"rows": [...], ...}` (also after a failure or a timeout:
    rows printed before are kept). `needs_cuda`: skipped without a CUDA device; `full_only`: not part of a smoke run
    (it compiles the full-size model); `after`: skipped unless that part succeeded; `requires`: a file that must exist.
    """

    name: str
    title: str
    commands: list[list[str]]
    budget_s: float
    collect: Callable[[str], dict] = lambda text: {}
    needs_cuda: bool = False
    full_only: bool = False
    after: str | None = None
    requires: Path | None = None

    def __post_init__(self):
        self.commands = [[str(argument) for argument in command] for command in self.commands]


def python(*args) -> list:
    return [sys.executable, *args]


def json_lines(text: str, key: str) -> list[dict]:
    """Every line of `text` that is a JSON object holding `key` (the benchmarks print one per measured row)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("{") and key in line:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and key in row:
                rows.append(row)
    return rows


def step_rows(text: str) -> dict:
    """pretrain_step.py's rows, and its first line (environment, measured bf16 matmul TFLOP/s)."""
    header = json_lines(text, "peak_tflops")
    return {"rows": json_lines(text, "ms_per_step"), **(header[0] if header else {})}


def end_to_end_rows(text: str) -> dict:
    rows = json_lines(text, "clips_per_s")
    synthetic = next((row["clips_per_s"] for row in rows if row["input"] == "synthetic"), None)
    for row in rows:
        row["vs_synthetic"] = row["clips_per_s"] / synthetic if synthetic else None
    return {"rows": rows}


def summarize_pytest(text: str) -> dict:
    """The counts of pytest's summary line ('1 passed, 2 deselected in 3.10s')."""
    outcome = r"(\d+) (passed|failed|skipped|deselected|errors?|warnings?|xfailed|xpassed)"
    summary = next((line for line in reversed(text.splitlines()) if re.search(outcome + r".* in [\d.]+s", line)), "")
    return {"rows": [{"outcome": name, "count": int(count)} for count, name in re.findall(outcome, summary)]}


def cuda_test_files() -> list[str]:
    """Test files that hold a test skipped without CUDA (the plugin below then keeps only those tests)."""
    files = sorted((REPO / "tests").glob("test_*.py"))
    return [str(path.relative_to(REPO)) for path in files if "torch.cuda.is_available()" in path.read_text()]


def pytest_collection_modifyitems(config, items):
    """pytest plugin (`python -m pytest -p benchmarks.gpu_suite ...`): keep only the CUDA-only tests, those with a
    skipif mark whose reason names CUDA or a GPU."""

    def needs_cuda(item) -> bool:
        reasons = (str(mark.kwargs.get("reason", "")) for mark in item.iter_markers("skipif"))
        return any(re.search(r"\b(cuda|gpu)\b", reason, re.IGNORECASE) for reason in reasons)

    deselected = [item for item in items if not needs_cuda(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if needs_cuda(item)]


def videos_command(*video_sets: tuple[Path, int, dict]) -> list:
    """One process that generates each (folder, seed, sizes) set of videos of a moving object, with their motion masks
    and an index.csv (adamae_hf.data.generate_sample_videos)."""
    calls = [
        f'generate_sample_videos({json.dumps(str(folder))}, index_file="index.csv", seed={seed}, '
        + ", ".join(f"{name}={value}" for name, value in sizes.items())
        + ")"
        for folder, seed, sizes in video_sets
    ]
    return python("-c", "; ".join(["from adamae_hf.data import generate_sample_videos", *calls]))


# The short pretraining: a 6-layer ViT-S-width AdaMAE at 16 x 224^2 (1,568 tokens), 300 steps of 32 clips in bf16,
# with the demo's departures from the paper that make the sampler learn within minutes (raw-pixel targets, lambda
# 1e-2). 48 generated 160x128 videos of 32 frames (cheap to make and decode; the crops are resized to 224).
PRETRAIN_MODEL = (
    "patch_size=16,hidden_size=384,num_hidden_layers=6,num_attention_heads=6,intermediate_size=1536,"
    "decoder_hidden_size=192,decoder_num_hidden_layers=2,decoder_num_attention_heads=3,decoder_intermediate_size=768,"
    "sampler_num_attention_heads=6"
)
PRETRAIN_VIDEOS = {"num_videos": 48, "num_frames": 32, "height": 128, "width": 160}
HELD_OUT_VIDEOS = {"num_videos": 16, "num_frames": 32, "height": 128, "width": 160}  # generated with seed 1
SMOKE_VIDEOS = {"num_videos": 4, "num_frames": 16, "height": 72, "width": 88}


# run_pretrain's flags for the smoke run (the demo's tiny model, two steps on the CPU) and for the GPU run; the number
# of DataLoader workers is added to the GPU run's.
SMOKE_PRETRAIN_FLAGS = {
    "max_steps": 2,
    "logging_steps": 1,
    "dataloader_num_workers": 0,
    "use_cpu": "true",
    "visualize": "false",
}
PRETRAIN_FLAGS = {
    "num_frames": 16,
    "sampling_rate": 2,
    "crop_size": 224,
    "config_overrides": PRETRAIN_MODEL,
    "norm_pix_loss": "false",
    "sampling_loss_weight": 1e-2,
    "per_device_train_batch_size": 32,
    "num_sample": 2,
    "max_steps": 300,
    "warmup_steps": 20,
    "learning_rate": 5e-4,
    "warmup_lr": 1e-5,
    "min_lr": 5e-5,
    "mixed_precision": "bf16",
}


def cli_flags(values: dict) -> list:
    """`{"seed": 0}` -> `["--seed", 0]`, in the dict's order."""
    return [item for name, value in values.items() for item in (f"--{name}", value)]


def pretraining_commands(smoke: bool, work: Path, run_dir: Path, workers: int) -> list[list[str]]:
    """Generate the training and held-out videos, then run run_pretrain.py on the training ones."""
    train, held_out = work / "train_videos", work / "held_out_videos"
    videos = SMOKE_VIDEOS if smoke else PRETRAIN_VIDEOS
    flags = cli_flags({"output_dir": run_dir, "overwrite_output_dir": "true", "train_index": train / "index.csv"})
    flags += cli_flags({"report_to": "none", "seed": 0})
    if smoke:
        flags += ["--demo", *cli_flags(SMOKE_PRETRAIN_FLAGS)]
    else:
        flags += cli_flags(
            {**PRETRAIN_FLAGS, "dataloader_num_workers": workers, "logging_steps": 20, "save_steps": 10**6}
        )
    held_out_videos = SMOKE_VIDEOS if smoke else HELD_OUT_VIDEOS
    return [videos_command((train, 0, videos), (held_out, 1, held_out_videos)), python("run_pretrain.py", *flags)]


def pretraining_summary(run_dir: Path, out_dir: Path) -> Callable[[str], dict]:
    """Collects the run's last logged scalars, and copies its scalar log and mask figure into the results."""

    def collect(text: str) -> dict:
        scalars = run_dir / "logs" / "scalars.jsonl"
        if not scalars.exists():
            return {}
        shutil.copy(scalars, out_dir / "pretraining_scalars.jsonl")
        if (run_dir / "masks.png").exists():
            shutil.copy(run_dir / "masks.png", out_dir / "pretraining_masks.png")
        records = [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]
        return {"rows": records[-1:]}

    return collect


def sampler_evaluation_rows(evaluation_dir: Path) -> Callable[[str], dict]:
    """One row per (group, measure) of the evaluation's summary: {group: {measure: {mean, ci_low, ci_high}}}, where
    the groups are the sampler's p alone and each mask type."""

    def collect(text: str) -> dict:
        results = evaluation_dir / "sampler_evaluation.json"
        if not results.exists():
            return {}
        evaluation = json.loads(results.read_text())
        rows = [
            {"group": group, "measure": measure, **statistic}
            for group, measures in evaluation["summary"].items()
            for measure, statistic in measures.items()
        ]
        return {"rows": rows, "num_clips": evaluation.get("num_clips")}

    return collect


def suite_parts(smoke: bool, out_dir: Path, work: Path) -> list[Part]:
    """The parts in the order they run, with their budgets in seconds on one H100 (they add up to 7.75 minutes: the
    suite's own setup, the wheels and the versions, takes seconds)."""
    workers = max(1, (os.cpu_count() or 2) - 2)  # every core but the training process's and its pin-memory thread's
    parts = [cuda_tests_part(), *step_parts(smoke, out_dir), *workload_parts(smoke, out_dir, work, workers)]
    for part in parts if smoke else ():
        part.budget_s = SMOKE_BUDGET_S
    return parts


def cuda_tests_part() -> Part:
    """One tiny test today; collecting it imports the test module (transformers, datasets)."""
    pytest = ["-m", "pytest", "-q", "-p", "benchmarks.gpu_suite", "-p", "no:cacheprovider"]
    command = python(*pytest, *(cuda_test_files() or ["tests"]))
    return Part("cuda-tests", "CUDA-only tests", [command], 30, summarize_pytest, needs_cuda=True)


def step_parts(smoke: bool, out_dir: Path) -> list[Part]:
    """benchmarks/pretrain_step.py: eager, compiled, with CUDA graphs, and at the largest batch that fits."""
    step = python("benchmarks/pretrain_step.py", "--plan", "issue")
    if smoke:
        step += ["--smoke", "--systems", ADAPTIVE, "videomae-tube-0.9"]  # CI's pretrain_step test runs all 7

    def rows(*arguments) -> list[list]:
        return [step + ["--rows", *arguments]]

    gpu_only = dict(needs_cuda=True, full_only=True)
    cudagraphs = ["compiled", "--compile_mode", "reduce-overhead", "--json", out_dir / "step-cudagraphs.json"]
    largest = ["largest", "--warmup", 3, "--steps", 10, "--json", out_dir / "step-largest.json"]
    return [
        # 7 systems eager at batch 16: model build, FLOP count, 10 + 30 steps of ~50 ms: ~5 s each
        Part(
            "step-eager",
            "pretraining step, eager (the paper's memory table)",
            rows("eager", "--json", out_dir / "step-eager.json"),
            40,
            step_rows,
        ),
        # 4 compilations of forward + backward (AdaMAE and VideoMAE at batch 16 and at 32 frames), ~20-25 s each
        Part(
            "step-compiled",
            "pretraining step, torch.compile",
            rows("compiled", "32frames", "--json", out_dir / "step-compiled.json"),
            100,
            step_rows,
            **gpu_only,
        ),
        # 2 compilations with CUDA graphs at batch 16, the lever on the launch-bound step
        Part(
            "step-cudagraphs",
            "pretraining step, torch.compile with CUDA graphs (reduce-overhead)",
            rows(*cudagraphs),
            60,
            step_rows,
            **gpu_only,
        ),
        # AdaMAE, then VideoMAE, compiled at the first of batch 256/128/64 that fits; 3 + 10 steps of up to ~0.7 s
        Part(
            "step-largest",
            "pretraining step, largest batch that fits (MFU)",
            rows(*largest),
            50,
            step_rows,
            **gpu_only,
        ),
    ]


def workload_parts(smoke: bool, out_dir: Path, work: Path, workers: int) -> list[Part]:
    """Inference against VideoMAE, the end-to-end loop, a short pretraining and the evaluation of its sampler."""
    smoke_flag = ["--smoke"] if smoke else []
    run_dir, evaluation_dir = work / "pretraining", out_dir / "sampler_evaluation"
    inference = python("benchmarks/inference.py", "--json", out_dir / "inference.json", *smoke_flag)
    end_to_end_flags = smoke_flag or ["--workers", workers, "--num_sample", 1, 2]
    end_to_end = python("benchmarks/end_to_end.py", "--json", out_dir / "end-to-end.json", *end_to_end_flags)
    return [
        # AdaMAE and VideoMAE classification at batch 32, eager and compiled (2 forward-only compilations)
        Part(
            "inference",
            "classification inference against VideoMAE",
            [inference],
            45,
            lambda text: {"rows": json_lines(text, "ms_per_batch")},
        ),
        # 32 generated 10-second 320p videos (~10 s on all cores), then 3 runs of ~15 s (ViT-B setup, 100 steps of
        # batch 16): synthetic, num_sample 1 and 2
        Part(
            "end-to-end",
            "run_pretrain's loop on decoded videos against synthetic clips",
            [end_to_end],
            60,
            end_to_end_rows,
        ),
        # 64 small generated videos (~5 s), setup (~10 s), 300 steps of ~40-60 ms, saving and the mask figure
        Part(
            "pretraining",
            "short pretraining on generated videos (16 x 224^2 on a GPU run)",
            pretraining_commands(smoke, work, run_dir, workers),
            60,
            pretraining_summary(run_dir, out_dir),
        ),
        # 16 held-out clips, 4 mask types, bootstrap intervals
        Part(
            "sampler-evaluation",
            "sampler evaluation on held-out generated videos (seed 1)",
            [sampler_evaluation_command(smoke, run_dir, work / "held_out_videos" / "index.csv", evaluation_dir)],
            20,
            sampler_evaluation_rows(evaluation_dir),
            after="pretraining",
            requires=SAMPLER_EVALUATION_MODULE,
        ),
    ]


def sampler_evaluation_command(smoke: bool, run_dir: Path, index: Path, evaluation_dir: Path) -> list:
    """adamae_hf.sampler_evaluation on the short pretraining's model and the held-out videos."""
    flags = {"model": run_dir, "index": index, "output_dir": evaluation_dir, "seed": 0}
    flags.update(max_videos=2 if smoke else 16, device="cpu" if smoke else "cuda")
    return python("-m", "adamae_hf.sampler_evaluation", *cli_flags(flags))


# ---------------------------------------------------------------------------------------------------------------------
# Running


def skip_reason(part: Part, smoke: bool, has_cuda: bool, done: dict[str, dict]) -> str | None:
    if part.full_only and smoke:
        return "GPU run only: it compiles the full-size model"
    if part.needs_cuda and not has_cuda:
        return "no CUDA device"
    if part.after and done.get(part.after, {}).get("status") != "ok":
        return f"needs {part.after}, which did not succeed"
    if part.requires and not part.requires.exists():
        return f"{part.requires.relative_to(REPO)} does not exist"
    return None


def run_commands(commands: list[list[str]], log_path: Path, env: dict, budget_s: float) -> int | None:
    """Run `commands` in order in the repository's root, all output into `log_path`, within `budget_s` together, until
    one fails. Returns the last exit status, None when the budget ran out. Each command runs in its own process
    group, which is killed afterwards, so that no DataLoader or compiler worker outlives it."""
    deadline = time.monotonic() + budget_s
    with open(log_path, "w") as log:
        for command in commands:
            log.write(f"$ {shlex.join(command)}\n")
            log.flush()
            process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                returncode = None
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            if returncode is None:
                log.write(f"\n[gpu_suite] stopped: over its budget of {budget_s:.0f} s\n")
                return None
            if returncode != 0:
                log.write(f"\n[gpu_suite] exit status {returncode}\n")
                return returncode
    return 0


def run_part(part: Part, out_dir: Path, env: dict, time_scale: float) -> dict:
    budget = part.budget_s * time_scale
    log_path = out_dir / f"{part.name}.log"
    start = time.monotonic()
    returncode = run_commands(part.commands, log_path, env, budget)
    status = {None: "timeout", 0: "ok"}.get(returncode, "failed")
    result = {
        "title": part.title,
        "status": status,
        "seconds": round(time.monotonic() - start, 1),
        "budget_s": round(budget),
        "log": log_path.name,
        "commands": [shlex.join(command) for command in part.commands],
    }
    text = log_path.read_text(errors="replace")
    if part.name == "cuda-tests" and returncode == 5:  # pytest's 'no tests collected'
        result.update(status="skipped", reason="no CUDA-only test was found")
    elif status != "ok":
        result["tail"] = text.splitlines()[-20:]
    try:
        result.update(clean(part.collect(text)))
    except Exception as error:  # a parser's mistake must not lose the other parts' numbers
        result["collect_error"] = f"{type(error).__name__}: {error}"
    return result


def child_environment(site: Path) -> dict:
    """The parts' environment: the wheels' folder and the repository on the path, unbuffered output (a part cut short
    keeps its log), and no Hub requests (the GPU machine may have no network; nothing here downloads)."""
    paths = [str(site)] if site.is_dir() else []
    paths += [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="Results folder (created): logs, results.json, results.md.")
    parser.add_argument("--smoke", action="store_true", help="Every part tiny on the CPU; GPU-only parts skipped.")
    parser.add_argument(
        "--wheels",
        default=os.environ.get("ADAMAE_WHEELS", str(REPO / ".whl")),
        help="Folder of wheel files for what is missing (default: $ADAMAE_WHEELS, else .whl/ in the "
        "repository's root).",
    )
    parser.add_argument(
        "--work_dir",
        help="Scratch folder for videos, models and wheels, kept (default: a temporary folder, deleted at the end).",
    )
    parser.add_argument("--parts", nargs="+", help="Run only these parts (names as in results.md).")
    parser.add_argument("--jobs", type=int, default=1, help="Parts run at once (above 1 only with --smoke).")
    parser.add_argument(
        "--time_scale",
        type=float,
        default=1.0,
        help="Multiply every part's time budget (e.g. 2 on a slower GPU, or to let every row finish).",
    )
    return parser.parse_args(argv)


def part_chains(parts: list[Part]) -> list[list[Part]]:
    """The parts grouped so that each runs after the one it needs: [[cuda-tests], ..., [pretraining,
    sampler-evaluation]], in the suite's order."""
    chains: dict[str, list[Part]] = {}
    for part in parts:
        chains.setdefault(part.after if part.after in chains else part.name, []).append(part)
    return list(chains.values())


def run_chain(chain: list[Part], args, has_cuda: bool, out_dir: Path, env: dict) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for part in chain:
        reason = skip_reason(part, args.smoke, has_cuda, results)
        if reason:
            results[part.name] = {"title": part.title, "status": "skipped", "reason": reason}
        else:
            budget = part.budget_s * args.time_scale
            print(f"[gpu_suite] {part.name}: {part.title} (budget {budget:.0f} s)", flush=True)
            try:
                results[part.name] = run_part(part, out_dir, env, args.time_scale)
            except Exception as error:  # the suite's own mistake in one part must not lose the others' numbers
                results[part.name] = {
                    "title": part.title,
                    "status": "failed",
                    "reason": f"gpu_suite: {type(error).__name__}: {error}",
                }
        result = results[part.name]
        print(f"[gpu_suite] {part.name}: {result['status']} {result.get('reason', '')}".rstrip(), flush=True)
    return results


def run_suite(args, command: str, out_dir: Path, work: Path) -> dict:
    parts = suite_parts(args.smoke, out_dir, work)
    unknown = set(args.parts or ()) - {part.name for part in parts}
    if unknown:
        raise SystemExit(f"gpu_suite: --parts expected names among {[p.name for p in parts]}, got {sorted(unknown)}.")
    if args.jobs > 1 and not args.smoke:
        raise SystemExit("gpu_suite: --jobs above 1 only with --smoke: parts sharing the machine distort its timings.")
    site = work / "site"
    for line in install_missing(Path(args.wheels), site):
        print(f"[gpu_suite] {line}", flush=True)
    sys.path.insert(0, str(site))  # what was installed, for the versions below
    importlib.invalidate_caches()
    machine = machine_and_versions()
    if not (args.smoke or machine["cuda_available"]):
        raise SystemExit("gpu_suite: expected a CUDA device for a full run, found none; on a CPU run it with --smoke.")
    start, env = time.monotonic(), child_environment(site)
    chains = part_chains([part for part in parts if not args.parts or part.name in args.parts])
    with ThreadPoolExecutor(args.jobs) as pool:
        done = {}
        for results in pool.map(lambda chain: run_chain(chain, args, machine["cuda_available"], out_dir, env), chains):
            done.update(results)
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "smoke": args.smoke,
        "command": command,
        "seconds": time.monotonic() - start,
        "machine": machine,
        "parts": {part.name: done[part.name] for part in parts if part.name in done},
    }
    report["targets"] = [dict(zip(("target", "measured", "met"), row)) for row in targets(report)]
    return report


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="gpu_suite-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = run_suite(args, shlex.join(["bash", "benchmarks/gpu_suite.sh", *argv]), out_dir, work)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    (out_dir / "results.json").write_text(json.dumps(clean(report), indent=2) + "\n")
    text = markdown(clean(report))
    (out_dir / "results.md").write_text(text)
    print("\n" + text + f"\nResults in {out_dir} (results.json, results.md, one log per part).")
    return int(any(part["status"] in ("failed", "timeout") for part in report["parts"].values()))


if __name__ == "__main__":
    sys.exit(main())
