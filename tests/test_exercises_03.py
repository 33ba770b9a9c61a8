"""Notebook 03's exercise checkers and the funnel helper its toy cells use: fast, no models."""

import pytest

from utils import distill_data as dd
from utils.exercises.n03 import (check_cap_kept, check_contamination_caught, check_keep_all_precision,
                                 check_median_kept)
from utils.tasks import column_addition


def _row(a, b, completion=None, reward=0.0):
    p = column_addition(a, b)
    completion = completion or p.completion
    return {"prompt": p.prompt, "completion": completion, "answer": p.answer, "family": p.family,
            "difficulty": p.difficulty, "reward": reward, "correct": completion == p.completion}


@pytest.fixture
def scored():
    """Ten samples, 3 correct; rewards 0..9 with the correct ones spread out."""
    rows = [_row(10 + i, 5, reward=float(i)) for i in range(10)]
    for i in (0, 1, 2, 4, 6, 8, 9):
        rows[i] = _row(10 + i, 5, completion=rows[i]["completion"].rsplit("A:", 1)[0] + "A:0", reward=float(i))
    return rows


def test_funnel_table_percentages():
    stages = [("generated", [{}] * 8), ("format", [{}] * 6), ("dedup", [{}] * 3), ("empty", []), ("after", [])]
    t = dd.funnel_table(stages)
    assert [s["kept"] for s in t] == [8, 6, 3, 0, 0]
    assert [s["dropped"] for s in t] == [0, 2, 3, 3, 0]
    assert t[0]["of_previous"] == 1.0 and t[1]["of_previous"] == 0.75 and t[2]["of_previous"] == 0.5
    assert [s["of_generated"] for s in t[:3]] == [1.0, 0.75, 0.375]
    assert t[4]["of_previous"] != t[4]["of_previous"]  # nan after an empty stage
    assert dd.funnel_table([]) == []


def test_funnel_table_matches_run_filters_on_a_toy():
    p, q = column_addition(12, 30), column_addition(61, 7)
    rows = [_row(12, 30), _row(12, 30), _row(12, 30, "52"), _row(61, 7)]
    _, stages = dd.run_filters(rows, [q], max_per_prompt=2, reward_threshold=float("-inf"))
    t = dd.funnel_table(stages)
    assert [s["kept"] for s in t] == [4, 3, 2, 2, 2, 2, 1]
    assert t[-1]["of_generated"] == 0.25 and p.prompt == stages[-1][1][0]["prompt"]


def test_keep_all_precision(scored):
    assert check_keep_all_precision(0.3, scored)
    assert not check_keep_all_precision(1.0, scored)   # "the threshold keeps only good samples"
    assert not check_keep_all_precision(None, scored)


def test_median_kept_counts_ties():
    rows = [_row(10 + i, 5, reward=r) for i, r in enumerate([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0])]
    assert check_median_kept(9, rows)       # median 1.0: every tie is kept
    assert not check_median_kept(5, rows)   # "half of them"


def test_median_kept_without_ties(scored):
    assert check_median_kept(5, scored)
    assert not check_median_kept(2, scored)


def test_contamination_caught():
    assert check_contamination_caught(10, 10)
    assert not check_contamination_caught(7, 10)
    assert not check_contamination_caught(0, 0)


def test_cap_kept():
    wrong_step = "<think>2+0+0=2;1+3+0=5</think>A:42"   # right answer, a wrong step: the verifier accepts it
    rows = [_row(12, 30), _row(12, 30, wrong_step), _row(12, 30, "<think>x</think>A:41"), _row(47, 5)]
    assert check_cap_kept(2, rows, 1) and check_cap_kept(3, rows, 2) and check_cap_kept(3, rows, 4)
    assert not check_cap_kept(4, rows, 2)   # m × prompts
    assert not check_cap_kept(None, rows, 2)
