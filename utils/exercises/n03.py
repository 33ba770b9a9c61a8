"""Checkers for notebook 03's exercises (generate, score, filter): each prints ✓/✗ and returns a bool.

The right answers are computed here with the same :mod:`utils.distill_data` functions the
pipeline uses, so a checker never disagrees with the notebook's own funnel.
"""

from __future__ import annotations

import statistics

from .. import distill_data as dd
from ..messages import msg
from . import as_number, verdict


def check_keep_all_precision(precision: float, rows: list[dict]) -> bool:
    """Exercise 1: the precision of the threshold −∞ (keep everything) on scored ``rows``.

    Right: the share of correct samples (the base rate), within 0.005.
    """
    precision = as_number(precision)   # 0.42, "０.４２", "42。", "四十二"
    actual = dd.threshold_sweep(rows, [float("-inf")])[0]["precision"]
    ok = precision is not None and abs(precision - actual) <= 0.005
    return verdict(ok, msg("keeping everything has precision {precision:.1%}: the base rate (share of correct "
                           "samples)", precision=actual),
                   msg("at −∞ nothing is dropped, so precision = correct samples / all samples – no reward model "
                       "needed"))


def check_median_kept(kept: int, rows: list[dict]) -> bool:
    """Exercise 1: how many of ``rows`` the median reward keeps (``reward ≥ median``).

    Right: within 2 % of ``len(rows)`` of the true count. "Half" is right only when few samples
    tie at the median: identical completions get identical scores, and ``≥`` keeps every tie.
    """
    kept = as_number(kept)   # 412, "４１２", "412。", "四百一十二"
    median = statistics.median(r["reward"] for r in rows)
    actual = dd.threshold_sweep(rows, [median])[0]["kept"]
    ok = kept is not None and abs(kept - actual) <= 0.02 * len(rows)
    return verdict(ok, msg("the median reward {median:+.3f} keeps {kept} of {n} samples", median=median,
                           kept=actual, n=len(rows)),
                   msg("at least half are ≥ the median; count the ties too – identical completions share one score "
                       "(the true count is more than yours)") if kept is not None and actual > kept else
                   msg("at least half are ≥ the median; count the ties too – identical completions share one score "
                       "(the true count is less than yours)"))


def check_contamination_caught(n_caught: int, n_inserted: int) -> bool:
    """Exercise 2: every inserted copy of a test prompt is caught by :func:`~utils.distill_data.decontaminate`."""
    n_caught, n_inserted = as_number(n_caught) or 0, as_number(n_inserted) or 0
    ok = n_inserted > 0 and n_caught == n_inserted
    return verdict(ok, msg("decontaminate caught all {n} leaked test prompts", n=n_inserted),
                   msg("insert at least one row whose prompt is a test prompt, and pass val + test problems and "
                       "the profile's decontam_unit to dd.decontaminate; count the inserted rows missing from its "
                       "output")
                   if n_inserted <= 0 or n_caught < n_inserted else
                   msg("more rows were counted as caught than were inserted: count only the inserted rows"))


def check_cap_kept(kept: int, rows: list[dict], m: int) -> bool:
    """Exercise 3: how many of ``rows`` (already format-filtered and deduplicated) the verifier
    stage keeps with at most ``m`` correct samples per prompt (rows need ``answer``). Right: within 1 %."""
    kept = as_number(kept)   # 412, "４１２", "412。", "四百一十二"
    actual = len(dd.filter_verifier(rows, m))
    ok = kept is not None and abs(kept - actual) <= 0.01 * actual
    return verdict(ok, msg("with m = {m} the verifier stage keeps {kept} of {n} samples", m=m, kept=actual,
                           n=len(rows)),
                   msg("each prompt gives min(m, its number of distinct correct samples) – never more than m × "
                       "prompts"))


# ---------------------------------------------------------------------------------------
# Implementation exercise: a step-level filter
# ---------------------------------------------------------------------------------------

def step_filter_rows() -> list[dict]:
    """Rows to filter: right chains of thought, a wrong final answer, a right answer reached through a
    wrong step (two slips that cancel), a missing think block – each with its ``answer``."""
    import random

    from ..tasks import column_addition

    rng, rows = random.Random(5), []
    for _ in range(6):
        p = column_addition(rng.randrange(100, 9999), rng.randrange(10, 999))
        body, answer = p.completion.split("</think>")
        steps = body.removeprefix("<think>").split(";")
        first_sum = steps[0].rsplit("=", 1)
        slipped = ";".join([f"{first_sum[0]}={int(first_sum[1]) + 1}", *steps[1:]])   # a wrong step, same answer
        rows += [
            {"prompt": p.prompt, "completion": p.completion, "answer": p.answer},
            {"prompt": p.prompt, "completion": f"{body}</think>A:{int(p.answer) + 1}", "answer": p.answer},
            {"prompt": p.prompt, "completion": f"<think>{slipped}</think>{answer}", "answer": p.answer},
            {"prompt": p.prompt, "completion": answer, "answer": p.answer},
        ]
    return rows


def _step_filter_reference(rows):
    from ..tasks import steps_hold, verify

    return [r for r in rows if verify(r["completion"], r["answer"]) and steps_hold(r["completion"])]


def _step_filter_mistakes():
    from ..tasks import answer_correct, steps_hold, verify
    from .grading import Mistake

    return [
        Mistake("answer only", lambda rows: [r for r in rows if verify(r["completion"], r["answer"])],
                msg("the final answer is not enough: a chain can reach it through a wrong step – check every step "
                    "of the think block too (utils.tasks.steps_hold)")),
        Mistake("steps only", lambda rows: [r for r in rows if steps_hold(r["completion"])],
                msg("true steps are not enough: the row must also be well-formed with the right final answer "
                    "(utils.tasks.verify)")),
        Mistake("format ignored", lambda rows: [r for r in rows if answer_correct(r["completion"], r["answer"])
                                                and steps_hold(r["completion"])],
                msg("a row with no <think> block has no steps to check – keep only well-formed rows (verify "
                    "checks the format)")),
    ]


def check_step_filter(fn) -> bool:
    """Implementation exercise: ``fn(rows)`` keeps, in order, the rows whose completion is well-formed, ends in
    the right answer (``row["answer"]``) *and* has every arithmetic step true. Checked on rows with right
    chains, wrong answers, right answers through a wrong step, and no think block."""
    from .grading import grade

    return grade(fn, _step_filter_reference, [(step_filter_rows(),)], mistakes=_step_filter_mistakes(),
                 right=msg("your filter keeps exactly the rows whose every step and final answer are right"))
