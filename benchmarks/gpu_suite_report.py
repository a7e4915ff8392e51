"""The GPU suite's report: its results made JSON-safe, checked against the performance targets, and written as the
Markdown tables of benchmarks/RESULTS.md (gpu_suite.py runs the parts; this turns what they printed into the report).
Only the standard library, as gpu_suite.py: it runs on a bare GPU image."""

from __future__ import annotations

import math


STEP_PARTS = ("step-eager", "step-compiled", "step-cudagraphs", "step-largest")
ADAPTIVE = "adamae-adaptive-0.95"


def clean(value):
    """NaN and infinities as null: results.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------------------------
# Targets and tables


def number(value, form: str = ".1f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, form)


def percent(fraction, form: str = ".1f") -> str:
    return "n/a" if fraction is None else f"{100 * fraction:{form}}%"


def verdict(values: list[float], threshold: float, at_most: bool = False) -> str:
    if not values:
        return "not measured"
    return "yes" if all(v <= threshold if at_most else v >= threshold for v in values) else "no"


def step_targets(rows: list[dict]) -> list[tuple[str, str, str]]:
    """The pretraining step's targets, on AdaMAE adaptive 0.95 at its smallest measured batch and frames (batch 16 and
    16 frames on a GPU run): clips/s and peak memory of the fastest setting, the best MFU, and 2x frames' clips/s."""
    adaptive = [row for row in rows if row["system"] == ADAPTIVE]
    batch = min((row["batch_size"] for row in adaptive), default=16)
    frames = min((row["num_frames"] for row in adaptive), default=16)

    def by_mode(num_frames: int) -> dict[str, dict]:
        return {r["compiled"]: r for r in adaptive if (r["batch_size"], r["num_frames"]) == (batch, num_frames)}

    base, long = by_mode(frames), by_mode(2 * frames)
    fastest = [max(base.values(), key=lambda row: row["clips_per_s"])] if base else []
    with_mfu = [row for row in adaptive if row["mfu"] is not None]
    best_mfu = [max(with_mfu, key=lambda row: row["mfu"])] if with_mfu else []
    ratios = {mode: long[mode]["clips_per_s"] / base[mode]["clips_per_s"] for mode in long if mode in base}
    with_peak = [row for row in fastest if row["peak_gib"] is not None]
    return [
        (
            f"step clips/s, batch {batch}, {frames} frames (>= 650)",
            "; ".join(f"{r['clips_per_s']:.0f} (compiled: {r['compiled']})" for r in fastest) or "not measured",
            verdict([r["clips_per_s"] for r in fastest], 650),
        ),
        (
            "peak memory of that step (<= 4.5 GiB)",
            "; ".join(f"{r['peak_gib']:.2f} GiB" for r in with_peak) or "n/a",
            verdict([r["peak_gib"] for r in with_peak], 4.5, at_most=True),
        ),
        (
            "MFU, best batch (>= 35%)",
            "; ".join(f"{percent(r['mfu'])} (batch {r['batch_size']}, compiled: {r['compiled']})" for r in best_mfu)
            or "n/a",
            verdict([r["mfu"] for r in best_mfu], 0.35),
        ),
        (
            f"{2 * frames} frames / {frames} frames clips/s (>= 0.45x)",
            ", ".join(f"{ratio:.2f}x (compiled: {mode})" for mode, ratio in ratios.items()) or "not measured",
            verdict(list(ratios.values()), 0.45),
        ),
    ]


def inference_target(rows: list[dict]) -> tuple[str, str, str]:
    ratios = {}
    for compiled in (False, True):
        pair = {row["system"]: row["clips_per_s"] for row in rows if row["compiled"] == compiled}
        if {"adamae", "videomae"} <= set(pair):
            ratios["compiled" if compiled else "eager"] = pair["adamae"] / pair["videomae"]
    measured = ", ".join(f"{ratio:.2f}x ({mode})" for mode, ratio in ratios.items()) or "not measured"
    return "inference clips/s vs VideoMAE (>= 1.0x)", measured, verdict(list(ratios.values()), 1.0)


def end_to_end_target(rows: list[dict]) -> tuple[str, str, str]:
    decoded = [row for row in rows if row["input"] != "synthetic" and row.get("vs_synthetic") is not None]
    measured = (
        ", ".join(
            f"{100 * row['vs_synthetic']:.0f}% (num_sample {row['num_sample']}, {row['workers']} workers)"
            for row in decoded
        )
        or "not measured"
    )
    return "decoded videos vs synthetic clips/s (>= 80%)", measured, verdict([r["vs_synthetic"] for r in decoded], 0.8)


def part_rows(report: dict, *names: str) -> list[dict]:
    return [row for name in names for row in report["parts"].get(name, {}).get("rows", [])]


def targets(report: dict) -> list[tuple[str, str, str]]:
    return [
        *step_targets(part_rows(report, *STEP_PARTS)),
        inference_target(part_rows(report, "inference")),
        end_to_end_target(part_rows(report, "end-to-end")),
    ]


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows
    ]


def header_lines(report: dict) -> list[str]:
    machine, versions = report["machine"], report["machine"]["versions"]
    peak = next((part["peak_tflops"] for part in report["parts"].values() if part.get("peak_tflops")), None)
    kind = "smoke run on the CPU: the numbers check the plumbing, not the speed" if report["smoke"] else "GPU run"
    return [
        f"## GPU suite, {report['date']} ({kind})",
        "",
        f"- Machine: {machine['gpu']}; {machine['cpus']} CPUs ({machine['processor']})"
        + (f"; bf16 matrix product {peak:.0f} TFLOP/s measured" if peak else ""),
        f"- Versions: torch {versions['torch']} (CUDA {versions['cuda']}), transformers {versions['transformers']}, "
        f"accelerate {versions['accelerate']}, av {versions['av']}, datasets {versions['datasets']}, evaluate "
        f"{versions['evaluate']}, numpy {versions['numpy']}, Python {versions['python']}",
        f"- Code: commit `{machine['commit']}`",
        f"- Command: `{report['command']}` ({report['seconds']:.0f} s; each part's log is in the results folder)",
    ]


def parts_table(report: dict) -> list[str]:
    rows = []
    for name, part in report["parts"].items():
        note = part.get("reason") or part.get("collect_error") or (part["tail"][-1] if part.get("tail") else "")
        rows.append(
            [
                name,
                part["status"],
                f"{part.get('seconds', 0):.0f} / {part.get('budget_s', '-')}",
                note.replace("|", "/")[:160],
            ]
        )
    return table(["part", "status", "seconds / budget", "note"], rows)


def step_table(rows: list[dict]) -> list[str]:
    header = ["system", "compiled", "batch", "frames", "ms/step", "clips/s", "peak GiB", "TFLOP/clip", "TFLOP/s"]
    cells = [
        [
            r["system"],
            r["compiled"],
            r["batch_size"],
            r["num_frames"],
            number(r["ms_per_step"]),
            number(r["clips_per_s"], ".0f"),
            number(r["peak_gib"], ".2f"),
            number(r["tflop_per_clip"], ".3f"),
            number(r["tflops"], ".0f"),
            percent(r["mfu"]),
        ]
        for r in rows
    ]
    return table([*header, "MFU"], cells)


def inference_table(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        reference = next((r for r in rows if r["system"] == "videomae" and r["compiled"] == row["compiled"]), None)
        ratio = row["clips_per_s"] / reference["clips_per_s"] if reference else None
        lines.append(
            [
                row["system"],
                "yes" if row["compiled"] else "no",
                row["batch_size"],
                row["num_frames"],
                number(row["ms_per_batch"]),
                number(row["clips_per_s"], ".0f"),
                number(ratio, ".2f") + "x",
                number(row["peak_gib"], ".2f"),
            ]
        )
    return table(["model", "compiled", "batch", "frames", "ms/batch", "clips/s", "vs VideoMAE", "peak GiB"], lines)


def end_to_end_table(rows: list[dict]) -> list[str]:
    return table(
        ["input", "workers", "num_sample", "transport", "clips/s", "vs synthetic"],
        [
            [
                r["input"],
                r["workers"],
                r["num_sample"],
                r["transport"],
                number(r["clips_per_s"]),
                percent(r["vs_synthetic"], ".0f"),
            ]
            for r in rows
        ],
    )


def sampler_table(rows: list[dict]) -> list[str]:
    """Measures (rows) by group (columns: the sampler's p alone, then each mask type): mean [95% interval]."""
    groups, measures = list(dict.fromkeys(r["group"] for r in rows)), list(dict.fromkeys(r["measure"] for r in rows))
    cells = {
        (r["group"], r["measure"]): f"{number(r.get('mean'), '.2f')} [{number(r.get('ci_low'), '.2f')}, "
        f"{number(r.get('ci_high'), '.2f')}]"
        for r in rows
    }
    return table(["measure", *groups], [[m, *(cells.get((g, m), "") for g in groups)] for m in measures])


def markdown(report: dict) -> str:
    parts = report["parts"]
    lines = [
        *header_lines(report),
        "",
        *parts_table(report),
        "",
        "### Targets",
        "",
        *table(["target", "measured", "met"], targets(report)),
    ]
    sections = [
        (
            "### Pretraining step (benchmarks/pretrain_step.py --plan issue)",
            part_rows(report, *STEP_PARTS),
            step_table,
        ),
        ("### Classification inference (benchmarks/inference.py)", part_rows(report, "inference"), inference_table),
        ("### End to end (benchmarks/end_to_end.py)", part_rows(report, "end-to-end"), end_to_end_table),
    ]
    for title, rows, make_table in sections:
        if rows:
            lines += ["", title, "", *make_table(rows)]
    last = part_rows(report, "pretraining")
    if last:
        lines += [
            "",
            "### Short pretraining on generated videos (run_pretrain.py): the last logged scalars",
            "",
            *table(
                ["scalar", "value"],
                [
                    [key, number(value, ".4g") if isinstance(value, float) else value]
                    for key, value in last[-1].items()
                ],
            ),
        ]
    evaluation = parts.get("sampler-evaluation", {})
    if evaluation.get("rows"):
        lines += [
            "",
            f"### Sampler evaluation: {evaluation.get('num_clips')} held-out clips, mean [95% bootstrap interval]",
            "",
            *sampler_table(evaluation["rows"]),
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# Main
