"""The benchmark scripts run (tiny configs on the CPU); CI checks they work, never their timings."""

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from benchmarks import end_to_end, gpu_suite, gpu_suite_report, inference, pretrain_step


REPO = Path(__file__).resolve().parents[1]


def test_pretrain_step_benchmark_smoke(capsys):
    results = pretrain_step.main(["--smoke"])
    assert {r.system for r in results} == set(pretrain_step.SYSTEMS)
    assert all(r.ms_per_step > 0 and r.tflop_per_clip > 0 for r in results)
    adaptive = next(r for r in results if r.system == "adamae-adaptive-0.95")
    videomae = next(r for r in results if r.system == "videomae-tube-0.9")
    assert adaptive.tflop_per_clip > videomae.tflop_per_clip  # the sampler runs over every token
    assert "| system | compiled |" in capsys.readouterr().out


def test_the_issue_plan_holds_the_performance_issues_measurements():
    runs = pretrain_step.issue_plan(smoke=False)
    assert {(system, False, 16, 16) for system in pretrain_step.SYSTEMS} <= set(runs)  # the memory table, batch 16
    for system in ("adamae-adaptive-0.95", "videomae-tube-0.9"):
        assert {(system, True, 16, 16), (system, True, (256, 128, 64), 16), (system, True, 16, 32)} <= set(runs)


def test_the_largest_batch_is_the_first_candidate_that_fits(monkeypatch):
    tried = []

    def measure(system, compiled, batch_size, *args, **kwargs):
        tried.append(batch_size)
        if batch_size > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return batch_size

    monkeypatch.setattr(pretrain_step, "measure", measure)
    largest = pretrain_step.measure_largest_batch("adamae-adaptive-0.95", True, (256, 128, 64, 32), 16, None,
                                                  torch.bfloat16, 1, 1, False, 1.0)  # fmt: skip
    assert (largest, tried) == (64, [256, 128, 64])
    with pytest.raises(RuntimeError, match="none of the batch sizes"):
        pretrain_step.measure_largest_batch("videomae-tube-0.9", True, (512, 256), 16, None, torch.bfloat16, 1, 1,
                                            False, 1.0)  # fmt: skip


def test_inference_benchmark_smoke(capsys):
    results = inference.main(["--smoke"])
    assert [r["system"] for r in results] == ["adamae", "videomae"]
    assert all(r["clips_per_s"] > 0 and math.isnan(r["peak_gib"]) for r in results)
    assert "vs VideoMAE" in capsys.readouterr().out


def test_end_to_end_benchmark_smoke(capsys):
    rows = end_to_end.main(["--smoke"])
    assert [(row["input"], row["workers"]) for row in rows] == [("synthetic", 0), ("decoded videos", 0)]
    assert rows[0]["vs_synthetic"] == 1.0 and all(row["clips_per_s"] > 0 for row in rows)
    assert "| decoded videos | 0 | 1 | uint8 |" in capsys.readouterr().out


def test_end_to_end_runs_get_the_flags_of_their_row(tmp_path):
    from adamae_hf.pretrain_arguments import parse_pretraining_args

    args = end_to_end.parse_args(["--smoke"])
    argv = end_to_end.pretraining_argv(args, tmp_path, index_file="index.csv", workers=3, num_sample=2,
                                       transport="float32")  # fmt: skip
    _, data_args, clip_config, training_args = parse_pretraining_args(argv)
    assert not data_args.normalize_on_device and not training_args.torch_compile
    assert (training_args.dataloader_num_workers, clip_config.num_sample) == (3, 2)


# ---------------------------------------------------------------------------------------------------------------------
# benchmarks/gpu_suite.sh: every GPU number in one call


def test_gpu_suite_smoke_records_every_part(tmp_path):
    out_dir = tmp_path / "results"
    env = {**os.environ, "PYTHON": sys.executable}
    command = ["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--smoke", "--jobs", "2", str(out_dir)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads((out_dir / "results.json").read_text())
    names = [part.name for part in gpu_suite.suite_parts(True, out_dir, tmp_path)]
    assert list(report["parts"]) == names
    for name, part in report["parts"].items():
        assert part["status"] in ("ok", "skipped"), (name, part)
        if part["status"] == "skipped":
            assert part["reason"], name
        else:
            assert (out_dir / part["log"]).exists() and part["rows"], name
    skipped = {name for name, part in report["parts"].items() if part["status"] == "skipped"}
    assert {"step-compiled", "step-cudagraphs", "step-largest"} <= skipped  # GPU-only
    assert {"step-eager", "inference", "end-to-end", "pretraining"}.isdisjoint(skipped)
    if gpu_suite.SAMPLER_EVALUATION_MODULE.exists():
        measures = {(row["group"], row["measure"]) for row in report["parts"]["sampler-evaluation"]["rows"]}
        assert {("sampler", "spearman_p_motion"), ("adaptive", "visible_motion_ratio")} <= measures
        assert (out_dir / "sampler_evaluation" / "sampler_evaluation.png").exists()
    assert report["machine"]["versions"]["torch"] == torch.__version__
    markdown = (out_dir / "results.md").read_text()
    assert "| part | status |" in markdown and "### Targets" in markdown and markdown in completed.stdout


def step_row(compiled, batch, frames, clips_per_s, peak_gib, mfu, system="adamae-adaptive-0.95"):
    return {"system": system, "compiled": compiled, "batch_size": batch, "num_frames": frames,
            "clips_per_s": clips_per_s, "peak_gib": peak_gib, "mfu": mfu}  # fmt: skip


def test_gpu_suite_targets_read_the_right_rows():
    rows = [
        step_row("no", 16, 16, 331.0, 5.10, 0.11),
        step_row("default", 16, 16, 700.0, 4.06, 0.20),
        step_row("default", 16, 32, 280.0, 7.0, 0.25),  # 0.40x of the 16-frame step: misses 0.45x
        step_row("default", 128, 16, 900.0, 30.0, 0.36),
        step_row("default", 16, 16, 999.0, 3.0, 0.50, system="videomae-tube-0.9"),  # never counted for AdaMAE
    ]
    inference = [{"system": "adamae", "compiled": False, "clips_per_s": 110.0},
                 {"system": "videomae", "compiled": False, "clips_per_s": 100.0}]  # fmt: skip
    end_to_end = gpu_suite.end_to_end_rows("\n".join(json.dumps(row) for row in [
        {"input": "synthetic", "workers": 2, "num_sample": 1, "transport": "uint8", "clips_per_s": 400.0},
        {"input": "decoded videos", "workers": 14, "num_sample": 1, "transport": "uint8", "clips_per_s": 300.0},
        {"input": "decoded videos", "workers": 14, "num_sample": 2, "transport": "uint8", "clips_per_s": 380.0},
    ]))["rows"]  # fmt: skip
    report = {"parts": {"step-compiled": {"rows": rows}, "inference": {"rows": inference},
                        "end-to-end": {"rows": end_to_end}}}  # fmt: skip
    found = {target.split(" (")[0]: (measured, met) for target, measured, met in gpu_suite_report.targets(report)}
    assert found["step clips/s, batch 16, 16 frames"] == ("700 (compiled: default)", "yes")
    assert found["peak memory of that step"] == ("4.06 GiB", "yes")
    assert found["MFU, best batch"] == ("36.0% (batch 128, compiled: default)", "yes")
    assert found["32 frames / 16 frames clips/s"] == ("0.40x (compiled: default)", "no")
    assert found["inference clips/s vs VideoMAE"] == ("1.10x (eager)", "yes")
    assert found["decoded videos vs synthetic clips/s"][1] == "no"  # 75% with num_sample 1
    assert gpu_suite_report.targets({"parts": {}})[0][1:] == ("not measured", "not measured")


def test_gpu_suite_keeps_the_rows_a_benchmark_printed_before_it_stopped(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text('import json, time\nprint(json.dumps({"system": "a", "ms_per_step": 1.0}), flush=True)\n'
                      'print("not json {")\ntime.sleep(60)\n')  # fmt: skip
    part = gpu_suite.Part("slow", "a part over its budget", [[sys.executable, script]], 3, gpu_suite.step_rows)
    result = gpu_suite.run_part(part, tmp_path, dict(os.environ), time_scale=1.0)
    assert result["status"] == "timeout" and result["seconds"] < 30
    assert result["rows"] == [{"system": "a", "ms_per_step": 1.0}] and "budget" in result["tail"][-1]
    failing = gpu_suite.Part("bad", "a failing part", [[sys.executable, "-c", "raise SystemExit(3)"]], 60)
    result = gpu_suite.run_part(failing, tmp_path, dict(os.environ), time_scale=1.0)
    assert result["status"] == "failed" and "exit status 3" in result["tail"][-1]


def test_gpu_suite_pytest_plugin_keeps_only_cuda_only_tests(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.skipif(False, reason='needs a CUDA device')\ndef test_on_the_gpu():\n    pass\n\n"
        "def test_anywhere():\n    pass\n"
    )  # fmt: skip
    command = [sys.executable, "-m", "pytest", "-q", "-p", "benchmarks.gpu_suite", "-p", "no:cacheprovider",
               str(tmp_path / "test_sample.py")]  # fmt: skip
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    counts = {row["outcome"]: row["count"] for row in gpu_suite.summarize_pytest(completed.stdout)["rows"]}
    assert (counts["passed"], counts["deselected"]) == (1, 1) and "failed" not in counts
    assert "tests/test_pretraining.py" in gpu_suite.cuda_test_files()


def test_gpu_suite_installs_missing_packages_from_wheels_or_says_how_to_fetch_them(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_suite, "WHEELS", {"adamae-suite-probe": "1.0"})
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    [line] = gpu_suite.install_missing(wheels, site)
    assert line.startswith("missing adamae-suite-probe and no wheel") and "pip download --no-deps" in line
    assert f"--python-version {sys.version_info.major}.{sys.version_info.minor}" in line
    assert "-d .whl adamae-suite-probe==1.0" in line
    wheels.mkdir()
    info = "adamae_suite_probe-1.0.dist-info"
    with zipfile.ZipFile(wheels / "adamae_suite_probe-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("adamae_suite_probe/__init__.py", "VALUE = 1\n")
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: adamae-suite-probe\nVersion: 1.0\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    [line] = gpu_suite.install_missing(wheels, site)
    assert line.endswith(": installed"), line
    assert (site / "adamae_suite_probe" / "__init__.py").read_text() == "VALUE = 1\n"


def test_gpu_suite_full_run_asks_for_the_issues_measurements(tmp_path):
    from adamae_hf.pretrain_arguments import parse_pretraining_args
    from adamae_hf.pretrain_model import build_model_config

    parts = {part.name: part for part in gpu_suite.suite_parts(False, tmp_path / "out", tmp_path / "work")}
    assert sum(part.budget_s for part in parts.values()) <= 7.75 * 60  # 8 minutes on one H100, setup included
    runs, step_args = {}, {}
    for name in gpu_suite_report.STEP_PARTS:
        [command] = parts[name].commands
        step_args[name] = pretrain_step.parse_args(command[2:])
        runs[name] = pretrain_step.planned_runs(step_args[name])
    headline = ("adamae-adaptive-0.95", "videomae-tube-0.9")
    assert runs["step-eager"] == [(system, False, 16, 16) for system in pretrain_step.SYSTEMS]
    assert sorted(runs["step-compiled"]) == sorted((s, True, 16, f) for s in headline for f in (16, 32))
    assert runs["step-cudagraphs"] == [(system, True, 16, 16) for system in headline]
    assert step_args["step-cudagraphs"].compile_mode == "reduce-overhead"
    assert runs["step-largest"] == [(system, True, (256, 128, 64), 16) for system in headline]

    *_, train = parts["pretraining"].commands
    model_args, _, clip_config, training_args = parse_pretraining_args(train[2:])
    config = build_model_config(model_args, clip_config)
    assert (config.num_frames, config.image_size, config.num_patches, config.mask_type) == (16, 224, 1568, "adaptive")
    assert training_args.mixed_precision == "bf16" and not training_args.use_cpu and training_args.max_steps > 0

    [e2e] = parts["end-to-end"].commands
    e2e_args = end_to_end.parse_args(e2e[2:])
    assert (e2e_args.num_sample, e2e_args.workers, e2e_args.smoke) == ([1, 2], [max(1, os.cpu_count() - 2)], False)
    [evaluate] = parts["sampler-evaluation"].commands
    assert evaluate[1:3] == ["-m", "adamae_hf.sampler_evaluation"] and evaluate[-2:] == ["--device", "cuda"]
    if gpu_suite.SAMPLER_EVALUATION_MODULE.exists():
        from adamae_hf.sampler_evaluation import build_parser

        assert build_parser().parse_args(evaluate[3:]).max_videos == 16


def test_sampler_study_smoke(tmp_path, capsys):
    from benchmarks import sampler_study

    sampler_study.main(["--smoke", "--output_dir", str(tmp_path)])
    results = json.loads((tmp_path / "study.json").read_text())
    assert list(results) == [name for name, _ in sampler_study.settings(smoke=True)]
    for result in results.values():
        assert result["num_clips"] == 4
        for group, key in sampler_study.COLUMNS:
            assert key in result["summary"][group]
    printed = capsys.readouterr().out
    assert "| setting | rho(p, motion) |" in printed and "untrained (step 0)" in printed
