"""The course as two 90-minute sessions: docs/teaching.md's plan, rendered from this list and measured times.

Every activity is a block of class minutes (a planned length: talking, reading, writing code) in one of the
two sessions, or homework. The machine's time is measured, never typed: how long each notebook takes live
comes from the study (``docs/study/summary.json``, ``make study``) and in classroom replay from ``make class``
(``docs/class.json``). :func:`render` writes the plan; ``tests/test_class_plan.py`` checks that each session
fits 90 minutes, that every exercise and build-it cell of the notebooks is placed (in class or homework) and
that docs/teaching.md holds the current rendering (``python -m utils.class_plan`` rewrites it).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import REPO_ROOT

SESSION_MINUTES = 90
CLASS_JSON = REPO_ROOT / "docs" / "class.json"
TEACHING = REPO_ROOT / "docs" / "teaching.md"
BEGIN, END = "<!-- class-plan -->", "<!-- /class-plan -->"


@dataclass(frozen=True)
class Activity:
    """``minutes`` of class on ``what`` in notebook ``notebook``; ``session`` 1 or 2, or 0 for homework.
    ``cells``: the ids of the exercise / build-it cells (markdown headings) it covers. ``machine``: what
    the laptops do meanwhile – "live" (runs in class, seconds), "replay" (loads the saved run) or ""."""

    session: int
    notebook: str
    what: str
    minutes: int
    cells: tuple[str, ...] = ()
    machine: str = ""


PLAN: tuple[Activity, ...] = (
    # --- Session 1: distillation, then the teacher's RL -------------------------------------
    Activity(1, "01", "Start: `R1LAB_REPLAY=1 make lab`, open 01 and 02, *Run all* on both", 3, machine="live"),
    Activity(1, "01", "§1 Two kinds of distillation; **build it**: the KD loss", 6, ("c1a0b001",)),
    Activity(1, "01", "Toys: T², soft labels, what each kind trains on; the live experiment", 6),
    Activity(1, "01", "Exercise 1(a)–(b): the T² factor, predict the temperature sweep", 5, ("613575fa",)),
    Activity(1, "01", "§2 What DeepSeek-R1 did (2a R1-Zero, 2b four stages, 2c distil or RL) vs the article", 10),
    Activity(1, "01", "§3–5 task world, split, tokenizer, serving cost (skim)", 4),
    Activity(1, "02", "§1–2 warm-up teacher, pass@k, reward model (replayed)", 5, machine="replay"),
    Activity(1, "02", "PPO toys: per-token KL reward, GAE by hand, clipped surrogate, value loss", 8),
    Activity(1, "02", "Exercise 1: GAE with λ = 0 and λ = 1", 4, ("487e8002",)),
    Activity(1, "02", "**Build it**: one PPO update (`ppo_step`), checked against `utils.ppo`", 8, ("b1d0a003",)),
    Activity(1, "02", "PPO on the RM alone vs with the verifier (replayed): is the RM gamed?", 5, machine="replay"),
    Activity(1, "02", "GRPO objective and toy; **build it**: the GRPO loss against TRL's", 9, ("b1d0a006",)),
    Activity(1, "02", "The reward functions in a cell; the GRPO run (replayed)", 4, ("b1d0a001",), machine="replay"),
    Activity(1, "02", "Exercise 6: write the group advantages", 6, ("b1d0a00d",)),
    Activity(1, "02", "§5–7 before/after on test, RL vs more SFT, R1-Zero vs cold start (replayed), summary", 7,
             machine="replay"),
    # --- Session 2: the data, the student, serving ------------------------------------------
    Activity(2, "03", "Open 03, 04 and 05, *Run all* on each (replay); §1–3 sampling and scoring", 5, machine="replay"),
    Activity(2, "03", "§4 the reward threshold, precision vs base rate, scores within a prompt", 7),
    Activity(2, "03", "Exercise 1: keep everything, or cut at the median reward?", 4, ("1dfb6f18",)),
    Activity(2, "03", "§5 the funnel toy; **build it**: the funnel as a list of stages", 7, ("d3b0c001",)),
    Activity(2, "03", "Near-duplicate and leaked prompt, caught on screen; §6 publish", 3),
    Activity(2, "03", "Exercise 4: a step-level filter (the steps checked by hand)", 8, ("d3b0c003",)),
    Activity(2, "04", "§1 the loss mask and epochs toys; **build it**: the curriculum sampler", 7, ("e4c0d001",)),
    Activity(2, "04", "The ablation's four arms (replayed): curves, test intervals, paired differences", 8,
             machine="replay"),
    Activity(2, "04", "Exercise 1: epochs at another batch size", 3, ("6a126fe3",)),
    Activity(2, "04", "§2 teacher vs student: accuracy, latency, memory; the budget-matched teacher", 6),
    Activity(2, "04", "§3 distil or run RL on the student (replayed)", 5, machine="replay"),
    Activity(2, "05", "Notebook 05 live: sampling, streaming, the app in English and 中文, the API table", 12,
             machine="live"),
    Activity(2, "05", "Exercise 1: the teacher beside the student", 4, ("c6a53877",)),
    Activity(2, "05", "Wrap-up: what the numbers showed, what to try next", 3),
    # --- Homework ------------------------------------------------------------------------------
    Activity(0, "01", "Exercise 1(c): write the soft-target loss", 15, ("c1a0b003",)),
    Activity(0, "01", "Exercise 2: a split by seed instead of by hash", 10, ("53abccb8",)),
    Activity(0, "01", "Exercise 3: count tokens before the tokenizer does", 5, ("8880f4ae",)),
    Activity(0, "02", "Exercise 2 (optional): tighten the clip – two short PPO runs", 15, ("84089dc8",)),
    Activity(0, "02", "Exercise 3: double the GRPO group size", 10, ("ed4eef85",)),
    Activity(0, "02", "Exercises 4–5: write GAE and the clipped surrogate", 25, ("b1d0a009", "b1d0a00b")),
    Activity(0, "03", "Exercise 2: contaminate the training set on purpose", 10, ("b1b15165",)),
    Activity(0, "03", "Exercise 3 (optional): the cap of m per prompt", 10, ("136ed6a7",)),
    Activity(0, "04", "Exercise 2: filtered vs unfiltered in 20 steps (two short trainings, live)", 15, ("24101979",)),
    Activity(0, "04", "Exercise 3 (optional): latency at batch 8", 10, ("f97b03cc",)),
    Activity(0, "04", "Exercise 4: build a completion-only training batch, as TRL's collator does", 20, ("e4c0d003",)),
    Activity(0, "05", "Exercises 2–4: temperature, a long prompt, a stop button", 30, ("3fc1ea36", "0d464138", "2827688d")),
)

HEADING = re.compile(r"^#+ .*\b(Exercise|Build it)\b", re.I)


def placed_cells(notebook_dir: Path = REPO_ROOT / "notebooks") -> dict[str, str]:
    """Every exercise and build-it cell of the main notebooks: ``{cell id: its heading}``."""
    out = {}
    for path in sorted(notebook_dir.glob("0[1-5]_*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            first = "".join(cell["source"]).split("\n", 1)[0]
            if cell["cell_type"] == "markdown" and HEADING.match(first):
                out[cell["id"]] = f"{path.name[:2]} {first.lstrip('# ')}"
    return out


def session_minutes(plan=PLAN) -> dict[int, int]:
    """Class minutes per session (1, 2)."""
    return {s: sum(a.minutes for a in plan if a.session == s) for s in (1, 2)}


def _machine_times(summary: dict[str, Any], class_record: dict[str, Any] | None) -> dict[str, str]:
    """Per notebook: its measured live time (the study's range) and, when measured, its replay time."""
    out = {}
    for nb in ("01", "02", "03", "04", "05"):
        figure = summary.get("figures", {}).get(f"wall_s.{nb}")
        live = (f"live {round(min(figure['per_seed'].values()))}–{round(max(figure['per_seed'].values()))} s"
                if figure else "live: not measured")
        replay = (class_record or {}).get("replay_s", {}).get(nb)
        out[nb] = live + (f", replay {replay:.0f} s" if replay is not None else ", replay: not measured")
    return out


def render(summary: dict[str, Any], class_record: dict[str, Any] | None, plan=PLAN) -> str:
    """The plan as Markdown: per session a table (clock, minutes, notebook, activity, what the machine does),
    its total, then the homework; the machine's times are the study's and ``make class``'s."""
    times = _machine_times(summary, class_record)
    lines = []
    if class_record:
        lines.append(f"Measured by `make class` (profile {class_record['profile']}, seed {class_record['seed']}): the "
                     f"replay pack is {class_record['pack_bytes'] / 1e6:.0f} MB; per notebook, "
                     + "; ".join(f"{nb}: {t}" for nb, t in times.items()) + ". Live times: the README's study.")
    else:
        lines.append("Replay times: not measured yet (`make class`). Live times: the README's study: "
                     + "; ".join(f"{nb}: {t}" for nb, t in times.items()) + ".")
    for session in (1, 2):
        lines += ["", f"**Session {session}** ({session_minutes(plan)[session]} of {SESSION_MINUTES} minutes)", "",
                  "| clock | min | notebook | in class | laptops |", "|---|---|---|---|---|"]
        clock = 0
        for a in (a for a in plan if a.session == session):
            machine = {"replay": "replay (saved run)", "live": "run live", "": ""}[a.machine]
            lines.append(f"| {clock // 60}:{clock % 60:02d} | {a.minutes} | {a.notebook} | {a.what} | {machine} |")
            clock += a.minutes
    lines += ["", f"**Homework** (about {sum(a.minutes for a in plan if a.session == 0)} minutes; the checkers and "
              "the solution notebooks grade it)", ""]
    lines += [f"- {a.notebook}: {a.what} (~{a.minutes} min)" for a in plan if a.session == 0]
    return "\n".join(lines)


def update(path: Path = TEACHING, summary_path: Path = REPO_ROOT / "docs" / "study" / "summary.json",
           class_path: Path = CLASS_JSON) -> bool:
    """Rewrite the plan between the markers of ``path``; returns whether anything changed."""
    summary = json.loads(Path(summary_path).read_text())
    record = json.loads(Path(class_path).read_text()) if Path(class_path).exists() else None
    text = Path(path).read_text()
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        raise ValueError(f"{path} has no {BEGIN} … {END} lines: add them where the plan goes")
    new = text[:begin + len(BEGIN)] + "\n" + render(summary, record) + "\n" + text[end:]
    Path(path).write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    """``python -m utils.class_plan [--publish artifacts/<profile>/class.json]``: copy a ``make class``
    measurement to docs/class.json (with --publish) and re-render docs/teaching.md's plan."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--publish"]:
        CLASS_JSON.write_text(Path(argv[1]).read_text())
    print("docs/teaching.md: plan " + ("updated" if update() else "already current"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
