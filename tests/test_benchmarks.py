"""The benchmark scripts run (tiny configs on the CPU); CI checks they work, never their timings."""

import math

import pytest
import torch

from benchmarks import end_to_end, inference, pretrain_step


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
    from adamae_hf.pretraining import parse_pretraining_args

    args = end_to_end.parse_args(["--smoke"])
    argv = end_to_end.pretraining_argv(args, tmp_path, index_file="index.csv", workers=3, num_sample=2,
                                       transport="float32")  # fmt: skip
    _, data_args, clip_config, training_args = parse_pretraining_args(argv)
    assert not data_args.normalize_on_device and not training_args.torch_compile
    assert (training_args.dataloader_num_workers, clip_config.num_sample) == (3, 2)
