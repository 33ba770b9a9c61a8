"""The curriculum arm is a pacing schedule, not the sorted order replayed every epoch."""

from collections import Counter
from types import SimpleNamespace

import pytest

from utils.sft import _EvalEvery, curriculum_final_stage_step, curriculum_schedule, to_sft_dataset


def _rows(counts={1: 10, 2: 6, 3: 4}):
    return [{"prompt": f"Q{d}-{i}:", "completion": "A", "difficulty": d} for d, n in counts.items() for i in range(n)]


def test_stage_k_draws_only_difficulties_up_to_k_and_mixes_them():
    rows = _rows()
    order = curriculum_schedule(rows, steps=30, batch_size=4, seed=0)
    assert len(order) == 30 * 4
    stages = [order[0:40], order[40:80], order[80:120]]          # 10 steps each
    assert {r["difficulty"] for r in stages[0]} == {1}
    assert {r["difficulty"] for r in stages[1]} == {1, 2}
    assert {r["difficulty"] for r in stages[2]} == {1, 2, 3}
    # the last stage reads every row of the pool before reusing one (a shuffled pass, not sorted)
    first_pass = stages[2][:20]
    assert Counter(r["prompt"] for r in first_pass) == Counter(r["prompt"] for r in rows)
    assert [r["difficulty"] for r in first_pass] != sorted(r["difficulty"] for r in first_pass)
    assert curriculum_final_stage_step(rows, 30) == 20


def test_sorted_order_is_the_labelled_anti_pattern_and_shuffle_can_be_kept():
    rows = _rows()
    sorted_ds = to_sft_dataset(rows, sorted_by_difficulty=True, seed=0)
    assert sorted_ds["difficulty"] == sorted(sorted_ds["difficulty"])
    given = to_sft_dataset(rows, shuffle=False)
    assert given["prompt"] == [r["prompt"] for r in rows]
    with pytest.raises(ValueError, match="positive"):
        curriculum_schedule(rows, steps=0, batch_size=4)


def test_patience_counts_only_from_the_last_stage():
    scores = iter([0.5, 0.4, 0.4, 0.4, 0.4, 0.4])
    cb = _EvalEvery(lambda m: next(scores), every=10, history=[], patience=2, patience_from=30)
    model = SimpleNamespace(train=lambda: None)
    for step in (10, 20, 30):                               # no improvement, but still in the easy stages
        control = SimpleNamespace(should_training_stop=False)
        cb.on_step_end(None, SimpleNamespace(global_step=step, max_steps=100), control, model=model)
        assert not control.should_training_stop
    stops = []
    for step in (40, 50):
        control = SimpleNamespace(should_training_stop=False)
        cb.on_step_end(None, SimpleNamespace(global_step=step, max_steps=100), control, model=model)
        stops.append(control.should_training_stop)
    assert stops == [False, True]
