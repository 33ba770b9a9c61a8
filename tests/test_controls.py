"""The study's controls (utils.controls): their data are built as stated, and the whole chain runs
on real (micro) artifacts, writing controls.json stage by stage."""

from __future__ import annotations

import dataclasses
import json

import pytest

from utils import controls, pipeline
from utils.artifacts import profile_dir
from utils.config import make_run
from utils import splits


def rows_of(prompt: str, outcomes: list[bool]) -> list[dict]:
    return [{"prompt": prompt, "completion": f"{prompt}#{i}", "correct": ok} for i, ok in enumerate(outcomes)]


def test_one_row_per_prompt_verified_or_any():
    rows = rows_of("a", [False, True, False, True]) + rows_of("b", [False, False, True, False])
    for seed in range(20):
        filtered = controls.one_row_per_prompt(rows, ["a", "b"], verified=True, seed=seed)
        assert [r["prompt"] for r in filtered] == ["a", "b"] and all(r["correct"] for r in filtered)
    drawn = {controls.one_row_per_prompt(rows, ["b"], verified=False, seed=s)[0]["completion"] for s in range(40)}
    assert drawn == {"b#0", "b#1", "b#2", "b#3"}          # any sample, right or wrong
    assert controls.one_row_per_prompt(rows, ["a"], verified=True, seed=3) == \
        controls.one_row_per_prompt(rows, ["a"], verified=True, seed=3)     # deterministic per seed
    with pytest.raises(ValueError, match="1 prompts have no verified sample"):
        controls.one_row_per_prompt(rows + rows_of("c", [False]), ["a", "c"], verified=True, seed=0)


def test_study_splits_extend_the_notebooks_splits():
    run = make_run("tiny", 0, quiet=True)
    big = controls.study_run(run)
    assert (big.profile.n_val, big.profile.n_test) == (1000, 1000)
    assert splits.test_problems(big)[: run.profile.n_test] == splits.test_problems(run)   # the notebooks' 300 come first
    assert splits.val_problems(big)[: run.profile.n_val] == splits.val_problems(run)
    assert big.profile.n_train == run.profile.n_train and big.seed == run.seed


def fake_samples(model, tokenizer, problems, *, k, **_):
    """A teacher's samples without sampling: prompt i gets (i % k) right ones (its ground-truth chain
    of thought), the others wrong – micro-trained teachers solve nothing, and filters need something."""
    rows = []
    for i, p in enumerate(problems):
        for j in range(k):
            rows.append({"prompt": p.prompt, "completion": p.completion if j < i % k else "<think>1+1=2</think>A:x",
                         "answer": p.answer, "family": p.family, "difficulty": p.difficulty, "sample": j})
    return rows, {"seconds": 1.0, "tokens": 100, "tokens_per_s": 100.0}


def micro_run():
    """The tiny profile with budgets of a few steps: real artifacts in seconds, not minutes."""
    run = make_run("tiny", 0, quiet=True)
    micro = run.profile.replace(n_train=64, n_val=8, n_test=8, teacher_sft_steps=2, sft_batch_size=8,
                                rm_prompts=8, rm_steps=2, ppo_steps=2, ppo_batch=8, grpo_steps=2,
                                rl_batch_prompts=2, rl_eval_every=1, n_distill_prompts=8,
                                student_sft_steps=2, student_eval_every=1, student_batch_size=8,
                                max_new_tokens=16, r1_zero=False, distil_vs_rl_steps=0)
    return dataclasses.replace(run, profile=micro)


def test_controls_run_end_to_end_on_micro_artifacts(artifacts_tmp, monkeypatch):
    from utils import distill_data

    monkeypatch.setattr(distill_data, "sample_candidates", fake_samples)   # both teachers' samples
    run = micro_run()
    pipeline.ensure(run, "student")          # every artifact the controls read, built for real
    record = controls.run_controls(run, n=16)
    saved = json.loads((profile_dir(run.name) / "controls.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert (saved["n_val"], saved["n_test"]) == (16, 16)
    assert set(saved["seconds"]) == {"models", "rl_vs_more_sft", "filter_grid", "budget_matched"}
    for name in controls.RELOADED:
        figure = saved["models"][name]
        assert figure["n"] == 16 and len(figure["correct"]) == 16
        assert figure["low"] <= figure["acc"] <= figure["high"]
    assert set(saved["paired"]) == {"teacher_ppo_minus_teacher_sft", "teacher_grpo_minus_teacher_sft",
                                    "student_minus_teacher"}
    more = saved["rl_vs_more_sft"]["more_sft"]
    grpo_batch = run.profile.rl_batch_prompts * run.profile.num_generations
    assert more["steps"]["steps"] == saved["rl_vs_more_sft"]["grpo"]["steps"] and more["steps"]["batch"] == grpo_batch
    assert more["tokens"]["steps"] >= 1 and more["tokens"]["tokens"] > 0
    matched = saved["budget_matched"]["teacher"]
    from utils.models import count_params, load_model_artifact

    assert matched["params"] == count_params(load_model_artifact(run.name, "teacher")[0])   # the teacher's architecture
    assert matched["batch"] == run.profile.student_batch_size
    grid = saved["filter_grid"]
    assert grid["prompts_sampled"] == run.profile.n_distill_prompts and 0 < grid["prompts"] < grid["prompts_sampled"]
    for teacher in ("warmup", "rl"):
        assert grid[teacher]["filtered"]["wrong_rows"] == 0 < grid[teacher]["unfiltered"]["wrong_rows"]
        assert set(grid[teacher]["filtered_minus_unfiltered"]) >= {"diff", "low", "high", "p_mcnemar"}


def test_filter_grid_trains_four_students_on_equal_data(artifacts_tmp, monkeypatch):
    """With teachers that solve some prompts (samples faked), the grid's four datasets hold the same
    prompts, one row each; filtered rows are all right, unfiltered rows carry the teacher's errors."""
    from utils import distill_data, student
    from utils.generation import EvalResult
    from utils.splits import train_problems

    run = micro_run()
    pipeline.ensure(run, "teacher_sft")
    problems = train_problems(run)[: run.profile.n_distill_prompts]

    trained = []

    def fake_train(run_, rows, **kw):
        trained.append(rows)
        ev = EvalResult(0.5, {}, completions=[], correct=[True, False] * 8)
        from utils.sft import SFTResult
        import torch

        return torch.nn.Linear(1, 1), SFTResult(evals=[(1, 0.5)], seconds=1.0), ev

    monkeypatch.setattr(distill_data, "sample_candidates", fake_samples)
    monkeypatch.setattr(student, "train_student", fake_train)
    rl_rows = [{**r, "correct": i % 2 == 0} for i, r in enumerate(fake_samples(None, None, problems, k=4)[0])]
    grid = controls.filter_grid(controls.study_run(run, 16), rl_rows)
    assert len(trained) == 4 and grid["prompts"] > 0
    prompts = [sorted(r["prompt"] for r in rows) for rows in trained]
    assert all(p == prompts[0] and len(p) == len(set(p)) == grid["prompts"] for p in prompts)
    warm_filtered, warm_unfiltered = trained[0], trained[1]
    assert all(r["correct"] for r in warm_filtered) and not all(r["correct"] for r in warm_unfiltered)
    assert grid["warmup"]["filtered"]["wrong_rows"] == 0 and grid["warmup"]["unfiltered"]["wrong_rows"] > 0
    assert 0 < grid["warmup"]["error_rate"] < 1
