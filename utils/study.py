"""A multi-seed study: the whole default series once per seed, summarized as mean ± sd (``make study``).

One run of the course is one sample: with a 2M-parameter teacher, a different seed can move an
accuracy by several points. The study reruns the series (``python -m utils.runner``) for each
seed in its own artifacts folder and summarizes the headline figures across seeds::

    artifacts/study/
        seed0/tiny/results.json      what ``make run SEED=0`` would have written, kept apart
        seed0/tiny/controls.json     the study's controls (:mod:`utils.controls`, 1,000-problem splits)
        seed0/notebooks/             the executed notebooks of seed 0
        seed0/study_run.json         the commit it ran and its minutes
        seed1/...
        summary.json                 every headline figure: per-seed values, mean, sd, 95 % interval, n, min
        summary.md                   the same as a markdown table (also put into README.md)

Run it with ``make study SEEDS="0 1 2"`` or ``python -m utils.study --seeds 0 1 2``;
``--summarize-only`` re-summarizes the seeds already there (seeds run in several sittings, on one
commit, are summarized together this way; the table says if their commits differ).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
# Kinds: "pct" – a fraction, shown as a percentage; "pts" – percentage points; "diff" – a difference
# of two fractions, shown in points; "min" – minutes; "s" – seconds.
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
    *[(f"wall_s.{nb}", f"notebook {nb}, wall time", "s") for nb in ("01", "02", "03", "04", "05")],
    # The study's controls (utils.controls): validation and test of 1,000 problems each.
    ("controls.models.teacher_sft.acc", "1,000 test: teacher after SFT (warm-up)", "pct"),
    ("controls.models.teacher_ppo.acc", "1,000 test: teacher after PPO", "pct"),
    ("controls.models.teacher_grpo.acc", "1,000 test: teacher after GRPO", "pct"),
    ("controls.models.student.acc", "1,000 test: student (the saved one)", "pct"),
    ("controls.paired.teacher_ppo_minus_teacher_sft.diff", "1,000 test: PPO − warm-up (teacher)", "diff"),
    ("controls.paired.teacher_grpo_minus_teacher_sft.diff", "1,000 test: GRPO − warm-up (teacher)", "diff"),
    ("controls.rl_vs_more_sft.more_sft.tokens.acc", "1,000 test: warm-up + more SFT, GRPO's tokens", "pct"),
    ("controls.rl_vs_more_sft.more_sft.steps.acc", "1,000 test: warm-up + more SFT, GRPO's steps × batch", "pct"),
    ("controls.rl_vs_more_sft.grpo_minus_more_sft_tokens.diff", "1,000 test: GRPO − more SFT (same tokens)", "diff"),
    ("controls.rl_vs_more_sft.grpo_minus_more_sft_steps.diff", "1,000 test: GRPO − more SFT (same steps × batch)",
     "diff"),
    ("controls.filter_grid.warmup.error_rate", "grid: warm-up teacher's sampled error rate", "pct"),
    ("controls.filter_grid.warmup.filtered.acc", "grid: student, warm-up teacher's data, filtered", "pct"),
    ("controls.filter_grid.warmup.unfiltered.acc", "grid: student, warm-up teacher's data, unfiltered", "pct"),
    ("controls.filter_grid.warmup.filtered_minus_unfiltered.diff", "grid: filtered − unfiltered, warm-up teacher",
     "diff"),
    ("controls.filter_grid.rl.error_rate", "grid: RL teacher's sampled error rate", "pct"),
    ("controls.filter_grid.rl.filtered.acc", "grid: student, RL teacher's data, filtered", "pct"),
    ("controls.filter_grid.rl.unfiltered.acc", "grid: student, RL teacher's data, unfiltered", "pct"),
    ("controls.filter_grid.rl.filtered_minus_unfiltered.diff", "grid: filtered − unfiltered, RL teacher", "diff"),
    ("derived.filter_gain_gap_pts", "grid: filtering's worth, warm-up teacher − RL teacher", "pts"),
    ("controls.budget_matched.teacher.acc", "1,000 test: teacher architecture trained as the student", "pct"),
    ("controls.budget_matched.acc_ratio", "student / budget-matched teacher accuracy", "pct"),
    ("controls.budget_matched.student_minus_teacher.diff", "1,000 test: student − budget-matched teacher", "diff"),
    ("derived.controls_min", "the study's controls, wall time", "min"),
]

# How each kind is shown: (scale, unit, sign flag of the format spec).
_DISPLAY = {"pct": (100, "%", ""), "pts": (1, "pts", "+"), "diff": (100, "pts", "+"), "min": (1, "min", ""),
            "s": (1, "s", "")}

# Student's t quantile (0.975) by degrees of freedom, for the 95 % interval of a mean over a few seeds.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


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


def _controls_minutes(controls: Any) -> float | None:
    seconds = controls.get("seconds") if isinstance(controls, dict) else None
    return sum(seconds.values()) / 60 if isinstance(seconds, dict) and seconds else None


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
        "controls_min": _controls_minutes(results.get("controls")),
        "filter_gain_gap_pts": _gain_pts(get("controls.filter_grid.warmup.filtered_minus_unfiltered.diff"),
                                         get("controls.filter_grid.rl.filtered_minus_unfiltered.diff")),
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
        mean, sd = statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None
        figures[key] = {"label": label, "kind": kind, "per_seed": per_seed, "n": len(values),
                        "mean": mean, "sd": sd, "min": min(values), "ci95": mean_interval(values, figure_bounds(key, kind))}
        intervals = {seed: own for seed in per_seed if (own := seed_interval(results_by_seed[seed], key))}
        if intervals:   # each seed's own 95 % interval over its test problems (controls' figures)
            figures[key]["per_seed_ci95"] = intervals
    commits = sorted({r["_study_run"]["commit"] for r in results_by_seed.values()
                      if isinstance(r.get("_study_run"), dict) and r["_study_run"].get("commit")})
    hashes = {measuring_code(c) for c in commits} if len(commits) > 1 else set()
    same_code = (len(hashes) == 1 and None not in hashes) if hashes else None
    return {"seeds": seeds, "profile": profile, "machine": machine_info(), "commits": commits,
            "same_measuring_code": same_code,
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "figures": figures}


def _git(*args: str) -> str | None:
    """``git args`` in the repository: its standard output, or None when git fails."""
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def measuring_code(commit: str) -> str | None:
    """A hash of the code a seed measures with at ``commit``: ``utils/`` (all but this module, which only
    summarizes and publishes, and the exercises' checkers, which only grade a learner's answers), the code
    cells of the main notebooks, and ``pyproject.toml``. Seeds run
    at two commits with the same hash ran the same measurements. None when git cannot tell (a commit
    with uncommitted changes, or one this clone does not have)."""
    import hashlib

    if not commit or commit.endswith("+changes"):
        return None
    listing = _git("ls-tree", "-r", "--name-only", commit, "--", "utils", "notebooks", "pyproject.toml")
    if listing is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(listing.split()):
        top_notebook = re.fullmatch(r"notebooks/\d\d_[^/]+\.ipynb", path)
        measuring = path.endswith(".py") and path != "utils/study.py" and not path.startswith("utils/exercises/")
        if not (top_notebook or path == "pyproject.toml" or measuring):
            continue
        text = _git("show", f"{commit}:{path}")
        if text is None:
            return None
        if top_notebook:   # the code, not the outputs of the run that committed it
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "code")
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]


def seed_interval(results: dict[str, Any], key: str) -> list[float] | None:
    """The 95 % interval one seed measured for figure ``key`` over its test problems – the ``low`` and
    ``high`` beside an ``acc`` or a paired ``diff`` in the controls – or None."""
    parent, _, leaf = key.rpartition(".")
    if leaf not in ("acc", "diff"):
        return None
    low, high = get_number(results, f"{parent}.low"), get_number(results, f"{parent}.high")
    return None if low is None or high is None else [low, high]


def mean_interval(values: list[float], bounds: tuple[float | None, float | None] = (None, None)) -> list[float] | None:
    """The 95 % interval of the mean of ``values`` (Student's t, n − 1 degrees of freedom): where the
    mean over *other* seeds would be expected to fall, cut to ``bounds`` – the values the figure can take
    (an accuracy lies in [0, 1]: with three seeds t's interval can reach past it). None for fewer than
    two values."""
    n = len(values)
    if n < 2:
        return None
    t = _T975.get(n - 1, 1.96 + 2.5 / (n - 1))   # beyond 10 seeds: close to the normal quantile
    half = t * statistics.stdev(values) / n ** 0.5
    mean = statistics.fmean(values)
    low, high = bounds
    return [mean - half if low is None else max(low, mean - half), mean + half if high is None else min(high, mean + half)]


def figure_bounds(key: str, kind: str) -> tuple[float | None, float | None]:
    """The values figure ``key`` can take: accuracies and error rates in [0, 1], differences of two accuracies
    in [−1, 1] (in points: [−100, 100]), times, ratios and shares not below 0."""
    last = key.rsplit(".", 1)[-1]
    if kind == "pct" and (last.startswith("acc") and "ratio" not in last or last == "error_rate"):
        return (0.0, 1.0)
    if last == "latency_reduction":   # 1 − student/teacher: below 0 when the student is slower
        return (None, 1.0)
    if kind == "diff":
        return (-1.0, 1.0)
    if kind == "pts":
        return (-100.0, 100.0)
    return (0.0, None)


def _number(value: float, kind: str, signed: bool = True) -> str:
    scale, _, sign = _DISPLAY[kind]
    return f"{value * scale:{sign if signed else ''}.1f}"


def _bracket(interval: list[float], kind: str) -> str:
    """``[-0.5, +2.9]``: an interval as the table and the notebooks show it."""
    return f"[{_number(interval[0], kind)}, {_number(interval[1], kind)}]"


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
    commits = summary.get("commits") or []
    if len(commits) == 1:
        caption += f" Code: commit {commits[0]}."
    elif len(commits) > 1 and summary.get("same_measuring_code"):
        caption += (f" Code: commits {', '.join(commits)}, with the same measuring code (utils/ but the summary module"
                    " and the exercises' checkers, the notebooks' code cells and pyproject.toml are identical).")
    elif len(commits) > 1:
        caption += f" ⚠ The seeds ran on different code (commits {', '.join(commits)})."
    caption += (" The 95 % interval is that of the mean over the seeds (Student's t), cut to the values the figure can"
                " take (an accuracy to [0, 100 %]). In the per-seed column, the"
                " study's controls (rows on 1,000 test problems) carry each seed's own 95 % interval over its test"
                " problems (paired, for differences); the notebooks' figures (300 test problems) have theirs in the"
                " notebooks.")
    lines = [caption, "", "| figure | mean ± sd | 95 % interval of the mean | per seed |", "|---|---|---|---|"]
    for figure in summary["figures"].values():
        own = figure.get("per_seed_ci95") or {}
        per_seed = ", ".join(format_value(v, figure["kind"]) + (f" {_bracket(own[seed], figure['kind'])}" if seed in own else "")
                             for seed, v in figure["per_seed"].items())
        ci = figure.get("ci95")
        interval = _bracket(ci, figure["kind"]) if ci else "–"
        lines.append(f"| {figure['label']} | {format_mean_sd(figure)} | {interval} | {per_seed} |")
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
            found[int(seed)] = read_seed(path.parents[1], profile)
    return found


def read_seed(seed_dir: Path, profile: str = "tiny") -> dict[str, Any]:
    """One seed's figures: its ``results.json``, with its controls (``controls.json``) under ``controls``
    and how it was run (``study_run.json``: commit, minutes) under ``_study_run`` when they exist."""
    results = json.loads((seed_dir / profile / "results.json").read_text())
    for key, path in (("controls", seed_dir / profile / "controls.json"), ("_study_run", seed_dir / "study_run.json")):
        if path.exists():
            results[key] = json.loads(path.read_text())
    return results


def code_version() -> dict[str, Any]:
    """The commit the study runs (short hash) and whether the working tree differs from it."""
    commit = (_git("rev-parse", "--short", "HEAD") or "").strip() or "unknown"
    dirty = bool((_git("status", "--porcelain", "--untracked-files=no") or "").strip())
    return {"commit": commit + ("+changes" if dirty else ""), "dirty": dirty}


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


DOCS = REPO_ROOT / "docs" / "study"
TIME_MARK = re.compile(r"<!-- time:(\d\d) -->(.*?)<!-- /time -->", re.DOTALL)


def notebook_time(summary: dict[str, Any], notebook: str) -> str | None:
    """``about 380–410 s on a 2-core CPU (the README's study: 3 seeds, commit abc1234)``: notebook
    ``notebook``'s wall time over the study's seeds, as docs/teaching.md states it; None if unmeasured."""
    figure = summary["figures"].get(f"wall_s.{notebook}")
    if figure is None:
        return None
    values = list(figure["per_seed"].values())
    low, high = round(min(values)), round(max(values))
    span = f"{low} s" if low == high else f"{low}–{high} s"
    commits = summary.get("commits") or []
    code = f", commit {commits[0]}" if len(commits) == 1 else ""
    cpus = summary.get("machine", {}).get("cpus")
    return (f"about {span} on a {cpus}-core CPU (the README's study: {figure['n']} seed"
            f"{'s' if figure['n'] != 1 else ''}{code})")


def update_teaching(summary: dict[str, Any], path: Path = REPO_ROOT / "docs" / "teaching.md") -> int:
    """Replace each ``<!-- time:NN -->…<!-- /time -->`` of the instructor notes with notebook NN's
    measured time (:func:`notebook_time`); returns how many were replaced."""
    path = Path(path)
    count = 0

    def fill(match: re.Match) -> str:
        nonlocal count
        text = notebook_time(summary, match.group(1))
        if text is None:
            return match.group(0)
        count += 1
        text = text[0].upper() + text[1:] if match.group(2)[:1].isupper() else text
        return f"<!-- time:{match.group(1)} -->{text}<!-- /time -->"

    path.write_text(TIME_MARK.sub(fill, path.read_text()))
    return count


def publish(root: Path, profile: str = "tiny", docs: Path = DOCS, notebooks: Path | None = None) -> list[Path]:
    """Make the study the course's one source of figures: copy its summary and its seed 0 (results,
    controls, how it ran) into ``docs`` (committed: ``docs/study/``), and seed 0's executed notebooks
    over the course's (``notebooks``, default ``notebooks/``; the Chinese ones are rebuilt from them),
    so the committed notebooks are the study's seed-0 run. Returns the files written."""
    import shutil

    root, docs = Path(root), Path(docs)
    notebooks = REPO_ROOT / "notebooks" if notebooks is None else Path(notebooks)
    written = []
    docs.mkdir(parents=True, exist_ok=True)
    for name in ("summary.json", "summary.md"):
        if (root / name).exists():
            written.append(Path(shutil.copy2(root / name, docs / name)))
    seed0 = root / "seed0"
    if (seed0 / profile / "results.json").exists():
        (docs / "seed0").mkdir(exist_ok=True)
        for path in (seed0 / profile / "results.json", seed0 / profile / "controls.json", seed0 / "study_run.json"):
            if path.exists():
                written.append(Path(shutil.copy2(path, docs / "seed0" / path.name)))
        executed = sorted((seed0 / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        summary = load_summary(docs / "summary.json")
        for path in executed:
            written.append(Path(shutil.copy2(path, notebooks / path.name)))
            refresh_study_cells(notebooks / path.name, summary)
        if executed and notebooks == REPO_ROOT / "notebooks":
            from .runner import rebuild_chinese

            rebuild_chinese()
    return written


# ---------------------------------------------------------------------------------------
# Running the study
# ---------------------------------------------------------------------------------------

def run_study(seeds: list[int], profile: str = "tiny", root: Path = DEFAULT_ROOT) -> dict[str, Any] | None:
    """Run the whole series once per seed, each in ``<root>/seed<N>``, then summarize and write the summary.

    Each seed runs ``python -m utils.runner`` (the notebooks), then ``python -m utils.controls`` (the
    study's controls, on 1,000-problem splits), in subprocesses with ``R1LAB_ARTIFACTS=<root>/seed<N>``,
    so seeds never share (or overwrite) artifacts; ``<root>/seed<N>/study_run.json`` records the commit
    and the minutes. A seed that fails is reported and left out; the
    summary covers the seeds that have results. Returns the summary (None if no seed has results).
    """
    root = Path(root).resolve()
    start, failed, results_by_seed, version = time.perf_counter(), [], {}, code_version()
    if version["dirty"]:
        print(f"⚠ the working tree differs from commit {version['commit']}: the study will not name the code "
              "it ran exactly (commit first)", file=sys.stderr, flush=True)
    for i, seed in enumerate(seeds, 1):
        seed_dir = root / f"seed{seed}"
        print(f"\n=== seed {seed} ({i}/{len(seeds)}) → {seed_dir}", flush=True)
        seed_start = time.perf_counter()
        env = {**os.environ, "R1LAB_ARTIFACTS": str(seed_dir), "R1LAB_PROFILE": profile, "R1LAB_SEED": str(seed)}
        cmd = [sys.executable, "-m", "utils.runner", "--profile", profile, "--seed", str(seed),
               "--out", str(seed_dir / "notebooks")]
        code = subprocess.run(cmd, env=env, cwd=REPO_ROOT).returncode
        results_file = seed_dir / profile / "results.json"
        notebooks_min = (time.perf_counter() - seed_start) / 60
        if code == 0 and results_file.exists():   # the controls read the notebooks' artifacts
            print(f"--- seed {seed}: the study's controls (utils.controls)", flush=True)
            controls = [sys.executable, "-m", "utils.controls", "--profile", profile, "--seed", str(seed)]
            code = subprocess.run(controls, env=env, cwd=REPO_ROOT).returncode
        minutes, total = (time.perf_counter() - seed_start) / 60, (time.perf_counter() - start) / 60
        seed_dir.mkdir(parents=True, exist_ok=True)
        (seed_dir / "study_run.json").write_text(json.dumps(
            {**version, "notebooks_min": round(notebooks_min, 2), "minutes": round(minutes, 2)}, indent=1) + "\n")
        if code != 0 or not results_file.exists():
            print(f"✗ seed {seed} failed (exit code {code}) after {minutes:.1f} min; "
                  f"going on with the other seeds (elapsed {total:.1f} min)", file=sys.stderr, flush=True)
            failed.append(seed)
            continue
        results_by_seed[seed] = read_seed(seed_dir, profile)
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
    parser.add_argument("--no-readme", action="store_true",
                        help="do not put the table into README.md, nor the summary, seed 0 and its notebooks "
                             "into docs/study/ and notebooks/")
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
        for readme in ("README.md", "README.zh-CN.md"):
            update_readme(summary, REPO_ROOT / readme)
        print(f"README.md and README.zh-CN.md updated (between {README_BEGIN} and {README_END})")
        update_teaching(summary)
        written = publish(args.root, args.profile)
        print(f"published {len(written)} file(s): docs/study/ (summary, seed 0), notebooks/ (seed 0's run)")
    return 1 if summary.get("failed_seeds") else 0  # a failed seed fails `make study`, after the summary


# ---------------------------------------------------------------------------------------
# The study's controls, rendered in the notebooks
# ---------------------------------------------------------------------------------------

STUDY_SECTIONS = ("teacher", "filter_grid", "student")


def load_summary(path: Path = DOCS / "summary.json") -> dict[str, Any] | None:
    """The committed study summary (``docs/study/summary.json``), or None if there is none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def _fig(summary: dict[str, Any], key: str) -> dict[str, Any] | None:
    return summary["figures"].get(key)


def _interval(figure: dict[str, Any]) -> list[float] | None:
    """The interval that goes with a figure: over the seeds (mean of several), else the one seed's own
    over its test problems; None if it has neither."""
    if figure.get("ci95"):
        return figure["ci95"]
    own = list((figure.get("per_seed_ci95") or {}).values())
    return own[0] if own else None


def _mean_ci(figure: dict[str, Any]) -> str:
    """``+1.2 pts [-0.5, +2.9]`` – the mean over seeds with its interval (or one seed's value with its
    own interval over its test problems; a figure without one, such as an error rate, stands alone)."""
    ci = _interval(figure)
    return format_value(figure["mean"], figure["kind"]) + (f" {_bracket(ci, figure['kind'])}" if ci else "")


def _verdict(figure: dict[str, Any], better, worse, same):
    """Which way a difference points: only when its interval (of the mean over seeds, or one seed's
    paired interval over its test problems) excludes 0."""
    from .messages import msg

    ci = _interval(figure)
    if not ci:
        return msg("Nothing was measured that could say which way this goes.")
    if ci[0] > 0:
        return better
    if ci[1] < 0:
        return worse
    return same


def study_messages(section: str, summary: dict[str, Any] | None = None) -> list:
    """One notebook's part of the study's controls (:mod:`utils.controls`) as messages (one per line,
    :mod:`utils.messages`), rendered from the committed summary: ``"teacher"`` (notebook 02: RL on 1,000
    test problems, RL vs more SFT), ``"filter_grid"`` (notebook 04: filtering against the teacher's error
    rate), ``"student"`` (notebook 04: the budget-matched teacher, §4.1 over seeds). Says so when the study
    has not measured it yet."""
    from .messages import msg

    if section not in STUDY_SECTIONS:
        raise ValueError(f"section must be one of {STUDY_SECTIONS}, not {section!r}")
    summary = load_summary() if summary is None else summary
    needed = {"teacher": "controls.rl_vs_more_sft.grpo_minus_more_sft_steps.diff",
              "filter_grid": "controls.filter_grid.rl.filtered_minus_unfiltered.diff",
              "student": "controls.budget_matched.acc_ratio"}[section]
    if summary is None or _fig(summary, needed) is None:
        return [msg("*The study's controls for this section have not been run on this code yet: `make study` measures "
                    "them (the README gives how long it takes) and this cell then shows them.*")]
    commits, n = summary.get("commits") or [], len(summary["seeds"])
    intervals = (msg("the mean over the seeds, with the 95 % interval of that mean in brackets") if n > 1 else
                 msg("one seed so far; in brackets its 95 % intervals over the test problems (paired, for differences) – "
                     "over seeds, the other seeds of `make study` will tell"))
    head = msg("**From the study** ({n} {seeds}, profile `{profile}`{commit}, {date}; validation and test of 1,000 "
               "problems each, `make study`; {intervals}):\n", n=n, seeds=msg("seed") if n == 1 else msg("seeds"),
               profile=summary["profile"],
               commit=", commit " + commits[0] if len(commits) == 1 else "", date=summary["date_utc"], intervals=intervals)
    f = lambda key: _fig(summary, key)  # noqa: E731
    lines: list = [head]
    if section == "teacher":
        gain, vs_steps, vs_tokens = (f("controls.paired.teacher_grpo_minus_teacher_sft.diff"),
                                     f("controls.rl_vs_more_sft.grpo_minus_more_sft_steps.diff"),
                                     f("controls.rl_vs_more_sft.grpo_minus_more_sft_tokens.diff"))
        lines += [msg("- GRPO − warm-up teacher: {gain}.", gain=_mean_ci(gain)),
                  msg("- The warm-up trained on with SFT instead: {tokens} for GRPO's tokens, {steps} for GRPO's "
                      "steps × batch.", tokens=_mean_ci(f("controls.rl_vs_more_sft.more_sft.tokens.acc")),
                      steps=_mean_ci(f("controls.rl_vs_more_sft.more_sft.steps.acc"))),
                  msg("- GRPO − more SFT: {tokens} at the same tokens; {steps} at the same steps × batch.\n",
                      tokens=_mean_ci(vs_tokens), steps=_mean_ci(vs_steps)),
                  _verdict(vs_steps, msg("At the same steps × batch, RL beat simply training the warm-up longer."),
                           msg("At the same steps × batch, training the warm-up longer beat RL: here RL's gain over the "
                               "warm-up is a gain of more training, not of RL."),
                           msg("At the same steps × batch, RL and more SFT cannot be told apart in this study: part or "
                               "all of RL's gain over the warm-up may be a gain of more training. (Matched on tokens, "
                               "SFT reads fewer rows: see the first comparison.)"))]
        r1z, cold = f("r1_zero.acc"), f("r1_zero.acc_cold_start")
        if r1z and cold:
            lines += [msg("\nSection 6 over the seeds (300 test problems each): the R1-Zero miniature {r1z}, the cold "
                          "start {cold}.", r1z=_mean_ci(r1z), cold=_mean_ci(cold))]
    elif section == "filter_grid":
        for teacher, name in (("warmup", msg("warm-up teacher")), ("rl", msg("RL teacher"))):
            base = f"controls.filter_grid.{teacher}"
            lines.append(msg("- {name}: sampled error rate {error}; student on its filtered data {filtered}, on its "
                             "unfiltered data {unfiltered}; filtered − unfiltered {diff}.", name=name,
                             error=_mean_ci(f(base + ".error_rate")), filtered=_mean_ci(f(base + ".filtered.acc")),
                             unfiltered=_mean_ci(f(base + ".unfiltered.acc")),
                             diff=_mean_ci(f(base + ".filtered_minus_unfiltered.diff"))))
        warm, rl, gap = (f("controls.filter_grid.warmup.filtered_minus_unfiltered.diff"),
                         f("controls.filter_grid.rl.filtered_minus_unfiltered.diff"), f("derived.filter_gain_gap_pts"))
        lines += [msg("\nEvery one of the four datasets has one row per prompt on the same prompts (those both teachers "
                      "solved at least once), and every student the same steps: only the teacher's errors differ."),
                  msg("Filtering was worth {warm:+.1f} points with the warm-up teacher and {rl:+.1f} with the RL teacher "
                      "(means over the seeds; their intervals above); the gap: {gap}.", warm=warm["mean"] * 100,
                      rl=rl["mean"] * 100, gap=_mean_ci(gap)),
                  _verdict(gap, msg("Filtering is worth more with the weaker teacher: it buys back what the teacher gets "
                                    "wrong."),
                           msg("Filtering was worth more with the stronger teacher – against the lesson; a finding to "
                               "investigate (the error rates above say how different the two teachers really were)."),
                           msg("In this study the two teachers' gains from filtering cannot be told apart."))]
    else:
        ratio, diff = f("controls.budget_matched.acc_ratio"), f("controls.budget_matched.student_minus_teacher.diff")
        lines += [msg("- The teacher's architecture trained exactly as the student (same rows, steps × batch, checkpoint "
                      "choice): {teacher} on 1,000 test problems; the student: {student}.",
                      teacher=_mean_ci(f("controls.budget_matched.teacher.acc")),
                      student=_mean_ci(f("controls.models.student.acc"))),
                  msg("- Student / budget-matched teacher: {ratio}; student − budget-matched teacher: {diff}.\n",
                      ratio=_mean_ci(ratio), diff=_mean_ci(diff)),
                  _verdict(diff, msg("Even against a teacher trained on its budget the student is better in this study."),
                           msg("Against a teacher trained on the same budget the student is worse: its lead over the real "
                               "teacher came from the budgets, not from being small."),
                           msg("Against a teacher trained on the same budget the student cannot be told apart from it in "
                               "this study."))]
        arms = [(k, f(f"distil_vs_rl.acc_{k}")) for k in ("sft", "grpo", "onpolicy")]
        if all(a for _, a in arms):
            sft, grpo, onpolicy = (_mean_ci(a) for _, a in arms)
            lines += [msg("\n§4.1 over the seeds (300 test problems each): more SFT {sft}; GRPO on the student {grpo}; "
                          "on-policy distillation {onpolicy}.", sft=sft, grpo=grpo, onpolicy=onpolicy)]
    return lines


def render_study(section: str, summary: dict[str, Any] | None = None, lang: str = "en") -> str:
    """:func:`study_messages` as Markdown in ``lang``."""
    from .messages import render_parts

    return render_parts(study_messages(section, summary), "\n", lang)


SHOW_CALL = re.compile(r"show_study\(\s*[\"'](\w+)[\"']\s*\)")


def refresh_study_cells(notebook: Path, summary: dict[str, Any] | None) -> int:
    """Give every ``show_study("…")`` cell of ``notebook`` the output it now renders from ``summary``
    (what executing it would display), so that notebooks executed *before* the study's summary was
    written show that summary. Returns the number of cells refreshed."""
    import nbformat

    from .messages import META, render_parts

    nb = nbformat.read(notebook, as_version=4)
    count = 0
    for cell in nb.cells:
        match = SHOW_CALL.search(cell.source) if cell.cell_type == "code" else None
        if match:
            parts = study_messages(match.group(1), summary)
            text = render_parts(parts, "\n", "en")   # as show_study displays it (make zh renders the Chinese)
            cell.outputs = [nbformat.v4.new_output(
                "display_data", data={"text/markdown": text, "text/plain": text},
                metadata={META: {"parts": [p.to_json() for p in parts], "sep": "\n"}})]
            count += 1
    if count:
        nbformat.write(nb, notebook)
    return count


def show_study(section: str) -> None:
    """Display :func:`study_messages` as Markdown (in a notebook), in the course's language."""
    from .messages import show

    show(*study_messages(section))


if __name__ == "__main__":
    sys.exit(main())
