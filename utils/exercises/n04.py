"""Checkers for notebook 04's exercises (the student: SFT on the distilled data)."""

from __future__ import annotations

import math

from . import verdict


def check_epochs(answer: float | None, rows: int, steps: int, batch: int) -> bool:
    """Exercise 1: how many times an arm reads its ``rows`` in ``steps`` optimiser steps of
    ``batch`` rows each – ``steps × batch / rows`` epochs (within 5 %)."""
    if answer is None:
        return verdict(False, "", "set your_answer to a number of epochs, then rerun the cell")
    right = steps * batch / rows
    ok = math.isfinite(float(answer)) and abs(float(answer) - right) <= 0.05 * right
    return verdict(ok, f"{right:.1f} epochs: {steps} steps × {batch} rows per step = {steps * batch} rows read, "
                       f"over a dataset of {rows} rows",
                   "each step reads one batch of rows; how many rows is that over all the steps, "
                   "and how many datasets' worth is it?")


# ---------------------------------------------------------------------------------------
# Implementation exercise: the paced curriculum's sampler
# ---------------------------------------------------------------------------------------

def curriculum_rows() -> list[dict]:
    """A small dataset with three difficulty levels, of unequal sizes (as the filtered data's are)."""
    return [{"prompt": f"Q{d}-{i}", "completion": "c", "difficulty": d} for d, n in ((1, 10), (2, 7), (3, 5))
            for i in range(n)]


def curriculum_problems(order, rows: list[dict], steps: int, batch_size: int) -> str | None:
    """What is wrong with a pacing schedule ``order`` (None if nothing): its length, the stages' pools,
    mixing within a stage, and whether every row of a stage's pool is read (when the stage is long enough)."""
    levels = sorted({r["difficulty"] for r in rows})
    if order is None:
        return "your function returned None: write its body and end it with `return order`"
    if not isinstance(order, list) or not all(isinstance(r, dict) for r in order):
        return "return the rows themselves, in training order: a list of the dicts you were given"
    if len(order) != steps * batch_size:
        return (f"a run of {steps} steps × {batch_size} rows reads {steps * batch_size} rows; your schedule has "
                f"{len(order)}")
    if any(r not in rows for r in order):
        return "every row of the schedule must come from `rows` (unchanged)"
    for k, level in enumerate(levels):
        start = k * steps // len(levels) * batch_size
        end = (k + 1) * steps // len(levels) * batch_size
        stage = order[start:end]
        if any(r["difficulty"] > level for r in stage):
            return (f"stage {k + 1} holds rows harder than level {level}: stage k draws only from difficulties ≤ its "
                    "level (easy first; harder levels join stage by stage)")
        allowed = [r for r in rows if r["difficulty"] <= level]
        if len(stage) >= len(allowed) and any(r not in stage for r in allowed):
            missing = {r["difficulty"] for r in allowed if r not in stage}
            return (f"stage {k + 1} never reads some rows of difficulty {sorted(missing)}: its pool is *every* "
                    "level up to its own, so the earlier levels keep being seen")
        if k > 0 and all(r["difficulty"] == level for r in stage):
            return (f"stage {k + 1} reads only level {level}: its pool is every level up to its own, so the "
                    "earlier levels keep being seen")
        batches = [stage[i:i + batch_size] for i in range(0, len(stage), batch_size)]
        if k > 0 and all(len({r["difficulty"] for r in b}) == 1 for b in batches):
            return (f"every batch of stage {k + 1} holds one difficulty: shuffle each stage's pool, so that "
                    "batches mix levels (the sorted order is the anti-pattern the curriculum arm replaced)")
    return None


def check_curriculum_sampler(fn) -> bool:
    """Implementation exercise: ``fn(rows, steps, batch_size, seed)`` returns the ``steps × batch_size`` rows a
    paced curriculum reads, in order: the run cut into one equal stage per difficulty level; stage k draws
    shuffled rows of difficulty ≤ its level (reshuffling when the pool is used up). Checked for its length, its
    stages' pools, mixing within a stage and coverage – any shuffle that meets them is right (the course's is
    :func:`utils.sft.curriculum_schedule`)."""
    from .grading import call_learner

    for steps, batch_size, seed in ((6, 4, 0), (9, 5, 1), (3, 8, 2)):
        rows = curriculum_rows()
        order, hint = call_learner(fn, (rows, steps, batch_size, seed),
                                   mutated="your function changed `rows` (sorted or shuffled it in place?): "
                                           "work on a copy – random.sample, or list(rows) before shuffling")
        if hint:
            return verdict(False, "", hint)
        problem = curriculum_problems(order, rows, steps, batch_size)
        if problem:
            return verdict(False, "", f"{problem} (steps={steps}, batch_size={batch_size})")
    return verdict(True, "a pacing schedule: easy rows first, harder levels mixed in stage by stage, every batch "
                         "shuffled within its stage's pool", "")
