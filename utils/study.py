"""A multi-seed study: the whole default series once per seed, summarized as mean ± sd (``make study``).

One run of the course is one sample: with a 2M-parameter teacher, a different seed can move an
accuracy by several points. The study reruns the series (``python -m utils.runner``) for each
seed in its own artifacts folder and summarizes the headline figures across seeds::

    artifacts/study/
        seed0/tiny/results.json      what ``make run SEED=0`` would have written, kept apart
        seed0/notebooks/             the executed notebooks of seed 0
        seed1/...
        summary.json                 every headline figure: per-seed values, mean, sd, n, min
        summary.md                   the same as a markdown table (also put into README.md)

Run it with ``make study SEEDS="0 1 2"`` or ``python -m utils.study --seeds 0 1 2``;
``--summarize-only`` re-summarizes the ``results.json`` files already there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .artifacts import REPO_ROOT

DEFAULT_ROOT = Path("artifacts/study")
README_BEGIN = "<!-- study:begin -->"
README_END = "<!-- study:end -->"

# The headline figures, in table order: (key path, label, kind).
# Keys under ``derived.`` are not in results.json; :func:`derived_figures` computes them from it.
# Kinds: "pct" – a fraction, shown as a percentage; "pts" – percentage points; "min" – minutes.
HEADLINE: list[tuple[str, str, str]] = [
    ("teacher.acc_sft", "teacher after SFT", "pct"),
    ("teacher.acc_ppo", "teacher after PPO", "pct"),
    ("teacher.acc_grpo", "teacher after GRPO", "pct"),
    ("teacher.acc", "teacher (the saved one)", "pct"),
    ("student.acc_filtered", "student, filtered teacher data", "pct"),
    ("student.acc_unfiltered", "student, unfiltered teacher data", "pct"),
    ("student.acc_groundtruth", "student, ground-truth chains of thought", "pct"),
    ("student.acc_curriculum", "student, filtered data, paced curriculum", "pct"),
    ("r1_zero.acc", "R1-Zero miniature: answer-only warm-up → GRPO (teacher)", "pct"),
    ("r1_zero.acc_cold_start", "cold start: CoT warm-up → GRPO, same rule (teacher)", "pct"),
    ("distil_vs_rl.acc_sft", "§4.1: student, shared warm-up → more SFT", "pct"),
    ("distil_vs_rl.acc_grpo", "§4.1: student, shared warm-up → GRPO", "pct"),
    ("distil_vs_rl.acc_onpolicy", "§4.1: student, shared warm-up → on-policy distillation", "pct"),
    ("derived.params_ratio", "student/teacher parameters", "pct"),
    ("derived.acc_ratio", "student/teacher accuracy", "pct"),
    ("derived.latency_reduction", "latency reduction (1 − student/teacher)", "pct"),
    ("derived.memory_ratio", "student/teacher peak memory", "pct"),
    ("derived.ppo_gain_pts", "PPO − SFT (teacher)", "pts"),
    ("derived.grpo_gain_pts", "GRPO − SFT (teacher)", "pts"),
    ("derived.filter_gain_pts", "filtered − unfiltered (student)", "pts"),
    ("derived.wall_min", "whole series, wall time", "min"),
]

# How each kind is shown: (scale, unit, sign flag of the format spec).
_DISPLAY = {"pct": (100, "%", ""), "pts": (1, "pts", "+"), "min": (1, "min", "")}


# ---------------------------------------------------------------------------------------
# Figures of one run
# ---------------------------------------------------------------------------------------

def get_number(results: dict[str, Any], path: str) -> float | None:
    """The number at the dotted ``path`` of a nested dict, or None if it is missing (or not a number)."""
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    is_number = isinstance(node, (int, float)) and not isinstance(node, bool)
    return float(node) if is_number else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:  # missing, or a zero denominator
        return None
    return numerator / denominator


def _gain_pts(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else 100 * (new - old)


def derived_figures(results: dict[str, Any]) -> dict[str, float]:
    """The teacher-vs-student ratios, the gains (in points) and the wall time (minutes) of one run.

    A figure whose inputs are missing is left out. The student's accuracy is ``student.acc`` if
    present, else the accuracy of the arm it was saved from (``student["acc_" + student["arm"]]``).
    """
    def get(path: str) -> float | None:
        return get_number(results, path)

    student = results.get("student")
    arm = student.get("arm") if isinstance(student, dict) else None
    student_acc = get("student.acc")
    if student_acc is None and arm is not None:
        student_acc = get(f"student.acc_{arm}")
    latency = _ratio(get("latency_ms.student"), get("latency_ms.teacher"))
    wall = results.get("wall_s")
    wall_s = [get_number(wall, key) for key in wall] if isinstance(wall, dict) else []
    wall_s = [s for s in wall_s if s is not None]

    figures = {
        "params_ratio": _ratio(get("student.params"), get("teacher.params")),
        "acc_ratio": _ratio(student_acc, get("teacher.acc")),
        "latency_reduction": None if latency is None else 1 - latency,
        "memory_ratio": _ratio(get("peak_memory_mb.student"), get("peak_memory_mb.teacher")),
        "ppo_gain_pts": _gain_pts(get("teacher.acc_ppo"), get("teacher.acc_sft")),
        "grpo_gain_pts": _gain_pts(get("teacher.acc_grpo"), get("teacher.acc_sft")),
        "filter_gain_pts": _gain_pts(get("student.acc_filtered"), get("student.acc_unfiltered")),
        "wall_min": sum(wall_s) / 60 if wall_s else None,
    }
    return {name: value for name, value in figures.items() if value is not None}


def headline_values(results: dict[str, Any]) -> dict[str, float]:
    """``{key: value}`` for every :data:`HEADLINE` figure that one run's results hold."""
    extended = {**results, "derived": derived_figures(results)}
    values = {key: get_number(extended, key) for key, _, _ in HEADLINE}
    return {key: value for key, value in values.items() if value is not None}


# ---------------------------------------------------------------------------------------
# Across seeds
# ---------------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """Where the study ran: processor, CPU count, architecture, Python and torch versions."""
    try:
        torch_version = version("torch")  # without importing torch (slow)
    except PackageNotFoundError:
        torch_version = "not installed"
    processor, arch, cpus = platform.processor(), platform.machine(), os.cpu_count()
    chip = f"{processor} ({arch})" if processor and processor != arch else arch
    python = platform.python_version()
    return {"processor": processor, "machine": arch, "cpus": cpus, "python": python, "torch": torch_version,
            "description": f"{chip}, {cpus} CPUs, Python {python}, torch {torch_version}"}


def summarize(results_by_seed: dict[int, dict], profile: str = "tiny") -> dict[str, Any]:
    """Summarize the headline figures over seeds.

    For each figure that at least one seed has: its value per seed, the mean, the *sample*
    standard deviation (None for a single seed), n and the minimum. Plus metadata: the seeds,
    the profile, the machine and the UTC date.
    """
    seeds = sorted(results_by_seed)
    values_by_seed = {seed: headline_values(results_by_seed[seed]) for seed in seeds}
    figures: dict[str, dict[str, Any]] = {}
    for key, label, kind in HEADLINE:
        per_seed = {seed: values[key] for seed, values in values_by_seed.items() if key in values}
        if not per_seed:
            continue
        values = list(per_seed.values())
        figures[key] = {"label": label, "kind": kind, "per_seed": per_seed, "n": len(values),
                        "mean": statistics.fmean(values),
                        "sd": statistics.stdev(values) if len(values) > 1 else None,
                        "min": min(values)}
    return {"seeds": seeds, "profile": profile, "machine": machine_info(),
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "figures": figures}


def _number(value: float, kind: str, signed: bool = True) -> str:
    scale, _, sign = _DISPLAY[kind]
    return f"{value * scale:{sign if signed else ''}.1f}"


def format_value(value: float, kind: str) -> str:
    """One value as the table shows it: ``35.7 %``, ``+12.3 pts``, ``11.9 min``."""
    return f"{_number(value, kind)} {_DISPLAY[kind][1]}"


def format_mean_sd(figure: dict[str, Any]) -> str:
    """``35.7 ± 1.2 %`` (just the mean when there is no sd, i.e. one seed)."""
    kind, unit = figure["kind"], _DISPLAY[figure["kind"]][1]
    if figure["sd"] is None:
        return format_value(figure["mean"], kind)
    return f"{_number(figure['mean'], kind)} ± {_number(figure['sd'], kind, signed=False)} {unit}"


def markdown_table(summary: dict[str, Any]) -> str:
    """The summary as a caption line and a markdown table: figure | mean ± sd | per seed."""
    seeds = summary["seeds"]
    caption = (f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}), "
               f"profile `{summary['profile']}`, on {summary['machine']['description']}, "
               f"{summary['date_utc']} (UTC); mean ± sample standard deviation over the seeds.")
    if summary.get("failed_seeds"):
        caption += f" Failed, left out: seed {', '.join(map(str, summary['failed_seeds']))}."
    lines = [caption, "", "| figure | mean ± sd | per seed |", "|---|---|---|"]
    for figure in summary["figures"].values():
        per_seed = ", ".join(format_value(v, figure["kind"]) for v in figure["per_seed"].values())
        lines.append(f"| {figure['label']} | {format_mean_sd(figure)} | {per_seed} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# Files: results in, summary out, README
# ---------------------------------------------------------------------------------------

def load_study(root: Path, profile: str = "tiny") -> dict[int, dict]:
    """``{seed: results}`` from every ``<root>/seed<N>/<profile>/results.json`` there is."""
    found = {}
    for path in sorted(Path(root).glob(f"seed*/{profile}/results.json")):
        seed = path.parents[1].name.removeprefix("seed")
        if seed.isdigit():
            found[int(seed)] = json.loads(path.read_text())
    return found


def write_summary(summary: dict[str, Any], root: Path) -> tuple[Path, Path]:
    """Write ``<root>/summary.json`` and ``<root>/summary.md``; return their paths."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    json_path, md_path = root / "summary.json", root / "summary.md"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    md_path.write_text(markdown_table(summary))
    return json_path, md_path


def update_readme(summary: dict[str, Any], readme: Path = REPO_ROOT / "README.md") -> None:
    """Replace the text between the lines ``<!-- study:begin -->`` and ``<!-- study:end -->`` with the table."""
    readme = Path(readme)
    text = readme.read_text()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{readme} has no {README_BEGIN} … {README_END} marker lines (in that order): "
                         "add them where the study's table should go")
    start = begin + len(README_BEGIN)
    readme.write_text(text[:start] + "\n" + markdown_table(summary) + text[end:])


# ---------------------------------------------------------------------------------------
# Running the study
# ---------------------------------------------------------------------------------------

def run_study(seeds: list[int], profile: str = "tiny", root: Path = DEFAULT_ROOT) -> dict[str, Any] | None:
    """Run the whole series once per seed, each in ``<root>/seed<N>``, then summarize and write the summary.

    Each seed runs ``python -m utils.runner`` in a subprocess with ``R1LAB_ARTIFACTS=<root>/seed<N>``,
    so seeds never share (or overwrite) artifacts. A seed that fails is reported and left out; the
    summary covers the seeds that have results. Returns the summary (None if no seed has results).
    """
    root = Path(root).resolve()
    start, failed, results_by_seed = time.perf_counter(), [], {}
    for i, seed in enumerate(seeds, 1):
        seed_dir = root / f"seed{seed}"
        print(f"\n=== seed {seed} ({i}/{len(seeds)}) → {seed_dir}", flush=True)
        seed_start = time.perf_counter()
        env = {**os.environ, "R1LAB_ARTIFACTS": str(seed_dir), "R1LAB_PROFILE": profile, "R1LAB_SEED": str(seed)}
        cmd = [sys.executable, "-m", "utils.runner", "--profile", profile, "--seed", str(seed),
               "--out", str(seed_dir / "notebooks")]
        code = subprocess.run(cmd, env=env, cwd=REPO_ROOT).returncode
        results_file = seed_dir / profile / "results.json"
        minutes, total = (time.perf_counter() - seed_start) / 60, (time.perf_counter() - start) / 60
        if code != 0 or not results_file.exists():
            print(f"✗ seed {seed} failed (exit code {code}) after {minutes:.1f} min; "
                  f"going on with the other seeds (elapsed {total:.1f} min)", file=sys.stderr, flush=True)
            failed.append(seed)
            continue
        results_by_seed[seed] = json.loads(results_file.read_text())
        print(f"✓ seed {seed} in {minutes:.1f} min (elapsed {total:.1f} min)", flush=True)

    if not results_by_seed:
        print("✗ no seed has results: nothing to summarize", file=sys.stderr)
        return None
    summary = summarize(results_by_seed, profile)
    summary["failed_seeds"] = failed
    json_path, md_path = write_summary(summary, root)
    print(f"\nStudy summary – {json_path}, {md_path}\n\n{markdown_table(summary)}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="seeds to run (default 0 1 2); with --summarize-only: keep only these")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the study's folder")
    parser.add_argument("--summarize-only", action="store_true",
                        help="do not run: re-summarize <root>/seed*/<profile>/results.json")
    parser.add_argument("--no-readme", action="store_true", help="do not put the table into README.md")
    args = parser.parse_args(argv)

    if args.summarize_only:
        results_by_seed = load_study(args.root, args.profile)
        if args.seeds:
            results_by_seed = {s: r for s, r in results_by_seed.items() if s in args.seeds}
        if not results_by_seed:
            print(f"✗ no {args.root}/seed*/{args.profile}/results.json to summarize", file=sys.stderr)
            return 1
        summary = summarize(results_by_seed, args.profile)
        json_path, md_path = write_summary(summary, args.root)
        print(f"Study summary – {json_path}, {md_path}\n\n{markdown_table(summary)}")
    else:
        summary = run_study(args.seeds or [0, 1, 2], args.profile, args.root)
        if summary is None:
            return 1
    if not args.no_readme:
        update_readme(summary)
        print(f"README.md updated (between {README_BEGIN} and {README_END})")
    return 1 if summary.get("failed_seeds") else 0  # a failed seed fails `make study`, after the summary


if __name__ == "__main__":
    sys.exit(main())
