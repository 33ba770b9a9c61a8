"""The study's controls: the comparisons a 2-core laptop cannot afford inside the notebooks.

``make study`` runs them once per seed, after the notebooks (``python -m utils.runner``) have left
their artifacts in the seed's folder. They read those artifacts and never change them; what they
measure goes to ``<artifacts>/<profile>/controls.json`` (``results.json`` stays what the notebooks
wrote, so the study's seed 0 and ``make run``'s seed 0 can be compared line by line).

Every figure here is measured on validation and test splits of :data:`STUDY_SPLIT` problems each
(``make run`` uses the profile's, 200 and 300): at 1,000 problems a difference of about 5 points
between two models near 80 % can be told apart (:func:`utils.stats.resolvable_difference`).
The first 300 test problems are the notebooks' test split; all are disjoint from training by
construction (the split is a hash of the prompt, :func:`utils.tasks.split_of`).

1. **The headline models, re-measured** – the warm-up teacher, the PPO and GRPO teachers, the
   saved teacher and the student – on the 1,000 test problems, with intervals, and the paired
   differences the course argues from (RL over the warm-up, student vs teacher).
2. **RL against more SFT at the same compute** (:func:`rl_vs_more_sft`). From the same warm-up
   teacher, the warm-up simply goes on – ground-truth chains of thought, its learning rate and
   schedule – for as much as GRPO used: (a) the same tokens (TRL's count, as in notebook 04's
   §4.1 arms) and (b) the same optimiser steps × batch. Like RL, each keeps its best checkpoint
   on validation.
3. **Filtering against the teacher's error rate** (:func:`filter_grid`). Two teachers of
   different accuracy – the warm-up and the saved RL teacher – sample the same prompts as
   notebook 03 does. On the prompts where both wrote at least one verified solution, each
   teacher gives two datasets of one row per prompt: *filtered* (a verified sample) and
   *unfiltered* (any sample, right or wrong). Same prompts, same size, no duplicates, same steps:
   the epochs are equal, and what differs is only whether the teacher's errors were removed.
4. **A budget-matched teacher** (:func:`budget_matched_teacher`): the teacher's architecture
   trained from scratch exactly as the student is (its filtered rows, steps × batch, checkpoint
   chosen on validation) at the teacher's learning rate. The student/teacher ratio is reported
   against it as well as against the real teacher, whose budget was different (notebook 02's
   warm-up was stopped early on purpose).

Run for one seed with ``python -m utils.controls --profile tiny --seed 0`` (``R1LAB_ARTIFACTS``
says where that seed's artifacts are); :mod:`utils.study` calls it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from .config import Run

STUDY_SPLIT = 1000   # validation and test problems in the study's controls
RELOADED = ("teacher_sft", "teacher_ppo", "teacher_grpo", "teacher", "student")


def study_run(run: Run, n: int = STUDY_SPLIT) -> Run:
    """``run`` with validation and test splits of ``n`` problems each (training unchanged)."""
    return dataclasses.replace(run, profile=run.profile.replace(n_val=n, n_test=n))


def _figure(correct: list[bool], **extra: Any) -> dict[str, Any]:
    """An accuracy with its 95 % interval, the per-problem outcomes (for paired tests) and ``extra``."""
    from .stats import accuracy

    a = accuracy(correct)
    return {"acc": round(a.value, 4), "low": round(a.low, 4), "high": round(a.high, 4), "n": a.n,
            "correct": [int(c) for c in correct], **extra}


def _paired(a: dict, b: dict) -> dict[str, float]:
    """A − B on the same problems: difference, paired bootstrap interval, McNemar's p."""
    from .stats import paired_difference

    d = paired_difference(a["correct"], b["correct"])
    return {"diff": round(d.diff, 4), "low": round(d.low, 4), "high": round(d.high, 4),
            "p_mcnemar": round(d.p_value, 4), "distinguishable": d.distinguishable}


def _test(run: Run, model, tokenizer, **extra: Any) -> dict[str, Any]:
    from .generation import evaluate
    from .splits import test_problems

    ev = evaluate(model, tokenizer, test_problems(run), max_new_tokens=run.profile.max_new_tokens,
                  batch_size=run.profile.gen_batch_size)
    return _figure(ev.correct, **extra)


def remeasure(run: Run) -> dict[str, dict]:
    """Each saved model of :data:`RELOADED` that exists, on ``run``'s test split."""
    from .artifacts import exists
    from .models import load_model_artifact, release

    figures = {}
    for name in RELOADED:
        if not exists(run.name, name):
            continue
        model, tokenizer = load_model_artifact(run.name, name, device=run.device, dtype=run.weights_dtype("sampling"))
        figures[name] = _test(run, model, tokenizer)
        release(model)
        print(f"  {name:13} {figures[name]['acc']:.1%} on {figures[name]['n']} test problems", flush=True)
    return figures


def rl_vs_more_sft(run: Run, grpo: dict, warmup: dict) -> dict[str, Any]:
    """The warm-up teacher trained on with SFT for GRPO's compute. ``grpo``: its test figure (from
    :func:`remeasure`) with ``tokens`` and ``steps`` (from the ``teacher_grpo`` stage's history);
    ``warmup``: the warm-up teacher's test figure.

    Two budgets, both in steps (a run stays deterministic): (a) ``tokens`` – the steps whose rows
    add up to GRPO's token count (TRL's ``num_tokens``; the tokens read are reported beside);
    (b) ``steps`` – GRPO's optimiser steps at GRPO's batch (sequences per step). Each continues the
    warm-up's recipe (ground-truth rows, ``sft_lr``, ``sft_scheduler``), shuffled with a new seed,
    and – as RL does – evaluates on validation about five times and keeps the best checkpoint,
    the warm-up itself (step 0) included.
    """
    from .config import stage_settings
    from .generation import evaluate
    from .models import load_model_artifact, release
    from .sft import to_sft_dataset, train_sft
    from .splits import train_problems, val_problems
    from .teacher import accuracy_on

    prof = run.profile
    grpo_batch = stage_settings(prof, "grpo").batch
    sft_batch = stage_settings(prof, "teacher_sft").batch
    dataset = to_sft_dataset(train_problems(run), seed=run.seed + 1)
    model, tokenizer = load_model_artifact(run.name, "teacher_sft", device=run.device,
                                           dtype=run.weights_dtype("teacher_sft"))
    validate = accuracy_on(val_problems(run), tokenizer, prof.max_new_tokens, prof.gen_batch_size)
    warmup_val = validate(model)
    release(model)
    sample = dataset.select(range(min(len(dataset), 2000)))
    row_tokens = sum(len(tokenizer(r["prompt"] + r["completion"]).input_ids) for r in sample) / len(sample)
    budgets = {"tokens": (max(1, round(grpo["tokens"] / (row_tokens * sft_batch))), sft_batch),
               "steps": (grpo["steps"], grpo_batch)}
    result: dict[str, Any] = {"grpo": {k: grpo[k] for k in ("acc", "low", "high", "n", "tokens", "steps", "seconds")},
                              "warmup_val_acc": warmup_val, "more_sft": {}}
    for arm, (steps, batch) in budgets.items():
        model, tokenizer = load_model_artifact(run.name, "teacher_sft", device=run.device,
                                               dtype=run.weights_dtype("teacher_sft"))
        sft = train_sft(model, tokenizer, dataset, steps=steps, lr=prof.sft_lr, batch_size=batch,
                        scheduler=prof.sft_scheduler, seed=run.seed + 1, max_length=prof.sft_max_length,
                        eval_fn=validate, eval_every=max(1, steps // 5), keep_best=True,
                        **run.mixed_precision(), progress=False)
        best_step, best_val = max(sft.evals, key=lambda e: (e[1], -e[0]))
        budget = {"tokens": sft.tokens, "seconds": round(sft.seconds, 1), "steps": steps, "batch": batch}
        if best_val <= warmup_val:   # no trained checkpoint beat the warm-up on validation: keep step 0
            figure = {**warmup, **budget, "chosen_step": 0, "val_acc": warmup_val}
        else:
            figure = _test(run, model, tokenizer, **budget, chosen_step=best_step, val_acc=best_val)
        release(model)
        result["more_sft"][arm] = {k: v for k, v in figure.items() if k != "correct"}
        result[f"grpo_minus_more_sft_{arm}"] = _paired(grpo, figure)
        print(f"  more SFT ({arm}-matched, {steps} steps of {batch}): {figure['acc']:.1%} on test, checkpoint of "
              f"step {figure['chosen_step']} ({sft.tokens:.0f} tokens read; GRPO {grpo['tokens']:.0f})", flush=True)
    return result


def one_row_per_prompt(rows: list[dict], prompts: list[str], *, verified: bool, seed: int) -> list[dict]:
    """One row for each of ``prompts``: a verified sample (``verified``) or any sample, drawn with ``seed``.

    Raises if a prompt has no row to give (the grid keeps only prompts where every teacher has one).
    """
    by_prompt: dict[str, list[dict]] = {}
    for r in rows:
        if r["correct"] or not verified:
            by_prompt.setdefault(r["prompt"], []).append(r)
    rng = random.Random(seed)
    missing = [p for p in prompts if p not in by_prompt]
    if missing:
        raise ValueError(f"{len(missing)} prompts have no {'verified ' if verified else ''}sample, e.g. {missing[0]!r}")
    return [rng.choice(by_prompt[p]) for p in prompts]


def filter_grid(run: Run, rl_rows: list[dict]) -> dict[str, Any]:
    """Filtered vs unfiltered data from two teachers (module docstring, item 3).

    ``rl_rows``: every sample of the saved (RL) teacher, as notebook 03 drew them
    (``distill_data_unfiltered``). The warm-up teacher samples the same prompts with the same
    settings here. Returns per teacher its sampled error rate on the grid's prompts, both students'
    test figures and filtered − unfiltered (paired), and the grid's size.
    """
    from .distill_data import sample_candidates
    from .models import load_model_artifact, release
    from .splits import train_problems
    from .student import best_val, train_student
    from .tasks import verify

    prof = run.profile
    problems = train_problems(run)[: prof.n_distill_prompts]
    warm, tokenizer = load_model_artifact(run.name, "teacher_sft", device=run.device, dtype=run.weights_dtype("sampling"))
    warm_rows, _ = sample_candidates(warm, tokenizer, problems, k=prof.samples_per_prompt, temperature=prof.temperature,
                                     top_p=prof.top_p, max_new_tokens=prof.max_new_tokens,
                                     batch_size=prof.gen_batch_size, progress=False)
    release(warm)
    for r in warm_rows:
        r["correct"] = verify(r["completion"], r["answer"])
    samples = {"warmup": warm_rows, "rl": [{**r, "correct": bool(r["correct"])} for r in rl_rows]}
    solved = [{r["prompt"] for r in rows if r["correct"]} for rows in samples.values()]
    prompts = [p.prompt for p in problems if all(p.prompt in s for s in solved)]
    grid: dict[str, Any] = {"prompts": len(prompts), "prompts_sampled": len(problems)}
    if not prompts:   # a teacher that never solved a prompt leaves nothing to filter
        print("  filter grid skipped: no prompt has a verified sample from both teachers", flush=True)
        return grid
    grid_prompts = set(prompts)
    for teacher, rows in samples.items():
        on_grid = [r for r in rows if r["prompt"] in grid_prompts]
        cell: dict[str, Any] = {"error_rate": round(1 - sum(r["correct"] for r in on_grid) / max(1, len(on_grid)), 4),
                                "error_rate_all_prompts": round(1 - sum(r["correct"] for r in rows) / len(rows), 4)}
        for arm, verified in (("filtered", True), ("unfiltered", False)):
            data = one_row_per_prompt(rows, prompts, verified=verified, seed=run.seed)
            model, sft, ev = train_student(run, data, progress=False)
            release(model)
            cell[arm] = _figure(ev.correct, val_acc=best_val(sft), seconds=round(sft.seconds, 1),
                                wrong_rows=round(1 - sum(r["correct"] for r in data) / len(data), 4))
            print(f"  {teacher} teacher, {arm}: {cell[arm]['acc']:.1%} on test "
                  f"({cell[arm]['wrong_rows']:.0%} wrong rows, {sft.seconds:.0f} s)", flush=True)
        cell["filtered_minus_unfiltered"] = _paired(cell["filtered"], cell["unfiltered"])
        grid[teacher] = cell
    return grid


def budget_matched_teacher(run: Run, student: dict) -> dict[str, Any]:
    """The teacher's architecture trained as the student was (module docstring, item 4);
    ``student``: the student's test figure. Returns its figure, the student/teacher ratio, the paired
    difference, and the budget."""
    from .distill_data import load_distill_data
    from .models import count_params, release
    from .student import best_val, train_student

    rows = list(load_distill_data(run, "distill_data"))
    model, sft, ev = train_student(run, rows, architecture="teacher", progress=False)
    params = count_params(model)
    release(model)
    matched = _figure(ev.correct, val_acc=best_val(sft), seconds=round(sft.seconds, 1), params=params,
                      steps=sft.evals[-1][0] if sft.evals else 0, batch=run.profile.student_batch_size)
    print(f"  budget-matched teacher: {matched['acc']:.1%} on test ({sft.seconds:.0f} s)", flush=True)
    return {"teacher": matched, "acc_ratio": round(student["acc"] / matched["acc"], 4) if matched["acc"] else None,
            "student_minus_teacher": _paired(student, matched)}


def run_controls(run: Run, n: int = STUDY_SPLIT) -> dict[str, Any]:
    """All four controls for one seed, on validation and test splits of ``n`` problems; written to
    ``controls.json`` beside ``results.json`` as each finishes (an interrupted study keeps what it
    measured). Returns the whole record."""
    from .artifacts import artifact_path, profile_dir, read_manifest
    from .distill_data import load_distill_data

    big = study_run(run, n)
    out = profile_dir(run.name) / "controls.json"
    record: dict[str, Any] = {"n_val": big.profile.n_val, "n_test": big.profile.n_test, "seed": run.seed,
                              "seconds": {}}

    def stage(name: str, fn) -> None:
        start = time.perf_counter()
        print(f"▶ control: {name}", flush=True)
        record[name] = fn()
        record["seconds"][name] = round(time.perf_counter() - start, 1)
        out.write_text(json.dumps(record, indent=1) + "\n")

    stage("models", lambda: remeasure(big))
    models = record["models"]
    record["paired"] = {f"{a}_minus_{b}": _paired(models[a], models[b])
                        for a, b in (("teacher_ppo", "teacher_sft"), ("teacher_grpo", "teacher_sft"),
                                     ("student", "teacher")) if a in models and b in models}
    read_manifest(run.name, "teacher_grpo")   # fails with a clear message if the stage is missing
    grpo_history = json.loads((artifact_path(run.name, "teacher_grpo") / "history.json").read_text())
    grpo = {**models["teacher_grpo"], **{k: grpo_history[k] for k in ("tokens", "steps", "seconds")}}
    stage("rl_vs_more_sft", lambda: rl_vs_more_sft(big, grpo, models["teacher_sft"]))
    stage("filter_grid", lambda: filter_grid(big, list(load_distill_data(run, "distill_data_unfiltered"))))
    stage("budget_matched", lambda: budget_matched_teacher(big, models["student"]))
    return record


def main(argv: list[str] | None = None) -> int:
    from .config import make_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run = make_run(args.profile, args.seed)
    record = run_controls(run)
    print(f"controls of seed {args.seed}: " + ", ".join(f"{k} {v:.0f} s" for k, v in record["seconds"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
