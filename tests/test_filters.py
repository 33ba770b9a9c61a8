"""Each filter stage of notebook 03 on hand-made rows: it keeps what it should and drops what it should."""

import math
import random

import pytest

from utils.distill_data import (decontaminate, dedup_exact, dedup_near, filter_format, filter_reward,
                                filter_verifier, funnel_counts, run_filters, score_rows, threshold_sweep)
from utils.tasks import generate_problem, make_problems
from utils import distill_data as dd


def _row(problem, completion=None, reward=0.0, sample=0):
    return {"prompt": problem.prompt, "completion": completion or problem.completion, "answer": problem.answer,
            "family": problem.family, "difficulty": problem.difficulty, "reward": reward, "sample": sample}


@pytest.fixture
def problems():
    return make_problems(30, "train", seed=3)


def test_format_drops_malformed(problems):
    p = problems[0]
    rows = [_row(p), _row(p, "no think block A:3"), _row(p, p.completion + " trailing")]
    assert filter_format(rows) == rows[:1]
    assert filter_format(rows[:1], max_length=5) == []


def test_verifier_keeps_only_correct_and_at_most_m_per_prompt(problems):
    p, q = problems[0], problems[1]
    wrong = p.completion.rsplit("A:", 1)[0] + "A:999"
    rows = [_row(p, sample=0), _row(p, wrong, sample=1), _row(p, sample=2), _row(p, sample=3), _row(q)]
    kept = filter_verifier(rows, max_per_prompt=2)
    assert [r["sample"] for r in kept if r["prompt"] == p.prompt] == [0, 2]
    assert sum(r["prompt"] == q.prompt for r in kept) == 1


def test_reward_threshold(problems):
    rows = [_row(problems[i], reward=r) for i, r in enumerate([-1.0, 0.0, 0.5])]
    assert [r["reward"] for r in filter_reward(rows, 0.0)] == [0.0, 0.5]


def test_exact_dedup_removes_every_duplicate(problems):
    rows = [_row(problems[0]), _row(problems[1]), _row(problems[0]), _row(problems[0])]
    kept = dedup_exact(rows)
    assert len(kept) == 2 and len({(r["prompt"], r["completion"]) for r in kept}) == 2


def test_near_dedup_catches_a_one_character_change_but_keeps_different_problems():
    p = generate_problem("trace", 3, random.Random(1))
    other = "a" if p.prompt[-2] != "a" else "b"
    near = dict(_row(p), prompt=p.prompt[:-2] + other + "?")  # same program, another variable asked
    others = [_row(generate_problem(f, 3, random.Random(i))) for i, f in enumerate(["arith", "order"] * 3)]
    kept = dedup_near([_row(p), near] + others, threshold=0.8)
    assert near not in kept and _row(p) in kept
    assert all(o in kept for o in others)


def test_decontamination_removes_an_eval_problem_and_its_near_copy(problems):
    """decontaminate drops a row whose prompt shares a 13-character span with an eval prompt:
    the eval problem itself and near-copies of it, but not a row sharing only 12 characters."""
    evals = make_problems(50, "test", seed=0)
    leaked = _row(evals[7])
    assert leaked["prompt"] == "Q:a=0;b=a+1;b=8;a=a+6;a?"
    # Near-copies: another variable asked (one character), one constant changed in the middle.
    other_question = dict(leaked, prompt="Q:a=0;b=a+1;b=8;a=a+6;b?")
    other_constant = dict(leaked, prompt="Q:a=0;b=a+1;b=5;a=a+6;a?")  # shares "Q:a=0;b=a+1;b=" (14)
    # Not copies: the same first 12 characters only ("Q:a=0;b=a+1;"), and an unrelated program.
    twelve_shared = dict(leaked, prompt="Q:a=0;b=a+1;c=9;c?")
    different = dict(leaked, prompt="Q:c=5;b=c-2;c=b+b;b?")
    clean = [_row(p) for p in problems]
    kept = decontaminate(clean + [leaked, other_question, twelve_shared, other_constant, different], evals, n=13)
    assert leaked not in kept and other_question not in kept and other_constant not in kept
    assert twelve_shared in kept and different in kept
    assert kept[-2:] == [twelve_shared, different]  # order kept
    assert len(kept) >= len(clean) - 3 + 2  # short train prompts rarely share a 13-character span
    # With 12-character spans the boundary row counts as a copy too.
    assert twelve_shared not in decontaminate([twelve_shared], evals, n=12)


def test_pipeline_keeps_only_verified_rows_and_counts_every_stage(problems):
    rows = []
    for p in problems:
        rows += [_row(p, sample=0), _row(p, p.completion.rsplit("A:", 1)[0] + "A:77", sample=1),
                 _row(p, "garbage", sample=2), _row(p, sample=3)]
    score_rows(rows, lambda prompts, completions: [1.0 if "A:77" not in c and "<think>" in c else -1.0
                                               for c in completions])
    kept, stages = run_filters(rows, make_problems(50, "test", seed=0), max_per_prompt=2, reward_threshold=0.0)
    assert kept and all(r["correct"] for r in kept)
    counts = funnel_counts(stages)
    alls = [c["all"] for c in counts.values()]
    assert alls == sorted(alls, reverse=True) and alls[0] == len(rows)
    sweep = threshold_sweep(rows, [-2.0, 0.0, 2.0])
    assert sweep[0]["kept"] == len(rows) and sweep[1]["precision"] == 1.0 and sweep[2]["kept"] == 0


def test_reward_threshold_chosen_on_validation_keeps_everything_for_a_useless_reward_model():
    from utils.distill_data import choose_reward_threshold

    rng = random.Random(0)
    noise = [{"reward": rng.gauss(0, 1), "correct": rng.random() < 0.8} for _ in range(400)]
    assert choose_reward_threshold(noise)["threshold"] == float("-inf")


def test_reward_threshold_chosen_on_validation_cuts_where_the_reward_model_separates():
    from utils.distill_data import choose_reward_threshold

    rows = [{"reward": 1.0 + i / 100, "correct": True} for i in range(60)] + \
           [{"reward": -1.0 - i / 100, "correct": False} for i in range(60)]
    choice = choose_reward_threshold(rows)
    assert -1.0 <= choice["threshold"] <= 1.0 and choice["f1"] > 0.98  # quantile candidates: at most one wrong kept


def test_exact_copies_do_not_use_up_a_prompts_quota():
    """Dedup runs before the per-prompt cap: two copies of one correct sample and a second, different
    correct sample must keep both distinct samples (cap first would keep the copies, then dedup one)."""
    from utils.tasks import column_addition

    p = column_addition(47, 38)
    other = p.completion.replace("<think>", "<think>0+0+0=0;", 1)  # correct answer, a different chain
    rows = [_row(p, sample=0), _row(p, sample=1), _row(p, other, sample=2)]
    score_rows(rows, lambda prompts, completions: [1.0] * len(completions))
    kept, _ = run_filters(rows, make_problems(5, "test", seed=0), max_per_prompt=2, reward_threshold=float("-inf"))
    assert sorted(r["completion"] for r in kept) == sorted([p.completion, other])


def _scored(prompt, reward, correct):
    return {"prompt": prompt, "completion": f"{prompt}{reward}", "reward": reward, "correct": correct}


def test_a_reward_model_right_within_prompts_can_be_wrong_across_them():
    # Prompt "easy:" sits at scores near 0, "hard:" near 5 (a per-prompt offset, which the Bradley–Terry loss
    # cannot see). Within each prompt the correct sample scores higher; across prompts the hard prompt's wrong
    # samples outscore the easy prompt's correct ones.
    rows = [_scored("easy:", 1.0, True), _scored("easy:", 0.9, True), _scored("easy:", 0.0, False),
            _scored("hard:", 6.0, True), _scored("hard:", 5.0, False), _scored("hard:", 4.0, False)]
    assert dd.ranking_accuracy(rows, within_prompt=True) == 1.0
    # across: correct {1.0, 0.9, 6.0} vs wrong {0.0, 5.0, 4.0}: 1.0 and 0.9 beat only 0.0; 6.0 beats all three
    assert dd.ranking_accuracy(rows, within_prompt=False) == pytest.approx(5 / 9)
    best = dd.best_of_n_by_reward(rows)
    assert [r["reward"] for r in best] == [1.0, 6.0] and all(r["correct"] for r in best)
    # a global threshold at 4.5 keeps the hard prompt's wrong sample and drops both easy correct ones
    assert dd.threshold_sweep(rows, [4.5])[0]["precision"] == 0.5


def test_ranking_accuracy_counts_ties_as_half_and_needs_pairs():
    rows = [_scored("p", 1.0, True), _scored("p", 1.0, False), _scored("p", 0.0, False)]
    assert dd.ranking_accuracy(rows, within_prompt=True) == pytest.approx(0.75)
    assert math.isnan(dd.ranking_accuracy([_scored("p", 1.0, True)], within_prompt=True))
