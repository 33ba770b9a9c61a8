"""On-policy distillation (notebook 04's optional cell): the loss is the teacher-student divergence."""

import copy
import math

import pytest
import torch

from utils.config import ModelSize
from utils.pipeline import setup
from utils.models import build_causal_lm
from utils.student import onpolicy_distill, shares_vocabulary
from utils.tasks import make_problems

SMALL = ModelSize(32, 1, 2, 64)


@pytest.fixture(scope="module")
def run():
    return setup("tiny", 0, quiet=True)


@pytest.fixture(scope="module")
def prompts():
    return [p.prompt for p in make_problems(16, "train", seed=0)]


def _losses(result):
    return [h["loss"] for h in result["log"] if "loss" in h]


def test_loss_is_zero_when_the_student_is_the_teacher(run, prompts, char_tokenizer):
    teacher = build_causal_lm(SMALL, char_tokenizer, seed=1)
    student = copy.deepcopy(teacher)
    result = onpolicy_distill(run, student, teacher, char_tokenizer, prompts, steps=1, lr=1e-3,
                              batch_size=8, progress=False)
    assert _losses(result)[0] == pytest.approx(0.0, abs=1e-5)


def test_student_moves_towards_a_sharp_teacher(run, prompts, char_tokenizer):
    teacher = build_causal_lm(SMALL, char_tokenizer, seed=1)
    with torch.no_grad():
        teacher.model.norm.weight.mul_(20.0)  # peaked next-token distributions: a large divergence
    student = build_causal_lm(SMALL, char_tokenizer, seed=2)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    result = onpolicy_distill(run, student, teacher, char_tokenizer, prompts, steps=12, lr=1e-2,
                              batch_size=8, progress=False)
    losses = _losses(result)
    assert all(math.isfinite(x) for x in losses) and losses[0] > 0.1
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_refuses_models_without_a_shared_vocabulary(run, prompts, char_tokenizer):
    teacher = build_causal_lm(SMALL, char_tokenizer, seed=1)
    student = build_causal_lm(SMALL, char_tokenizer, seed=2)
    student.resize_token_embeddings(char_tokenizer.vocab_size + 8)
    with pytest.raises(ValueError, match="shared vocabulary"):
        onpolicy_distill(run, student, teacher, char_tokenizer, prompts, steps=1, lr=1e-3, batch_size=8,
                         progress=False)


def test_shares_vocabulary(char_tokenizer):
    other = copy.deepcopy(char_tokenizer)
    assert shares_vocabulary(char_tokenizer, other)
    other.add_tokens(["<extra>"])
    assert not shares_vocabulary(char_tokenizer, other)


def test_a_token_budget_stops_training_once_spent(run, prompts, char_tokenizer):
    """The §4.1 arms are matched on tokens: on-policy distillation stops at the first step whose
    samples reach the budget, well before its step cap."""
    teacher = build_causal_lm(SMALL, char_tokenizer, seed=1)
    student = build_causal_lm(SMALL, char_tokenizer, seed=2)
    first = onpolicy_distill(run, copy.deepcopy(student), teacher, char_tokenizer, prompts, steps=1, lr=1e-3,
                             batch_size=8, progress=False)
    per_step = first["tokens"]
    assert first["steps"] == 1 and per_step > 0
    capped = onpolicy_distill(run, student, teacher, char_tokenizer, prompts, steps=50, lr=1e-3, batch_size=8,
                              token_budget=2.5 * per_step, progress=False)
    assert capped["tokens"] >= 2.5 * per_step
    assert 3 <= capped["steps"] < 50        # stopped by the budget, not the cap


def test_token_budget_callback():
    from types import SimpleNamespace

    from utils.sft import TokenBudget
    budget, control = TokenBudget(100), SimpleNamespace(should_training_stop=False)
    budget.on_log(None, None, control, logs={"loss": 1.0})
    budget.on_log(None, None, control, logs={"num_tokens": 99})
    assert not control.should_training_stop and budget.tokens == 99 and not budget.reached
    budget.on_log(None, None, control, logs={"num_tokens": 130})
    assert control.should_training_stop and budget.reached
    with pytest.raises(ValueError):
        TokenBudget(0)


def test_distil_or_rl_refuses_an_empty_budget_or_foreign_tokenizers(run, char_tokenizer, monkeypatch):
    import dataclasses

    from utils import student
    from utils.student import distil_or_rl
    monkeypatch.setattr(student, "student_tokenizer", lambda _run: char_tokenizer)   # no tokenizer artifact needed
    off = dataclasses.replace(run, profile=run.profile.replace(distil_vs_rl_steps=0))
    with pytest.raises(ValueError, match="positive"):
        distil_or_rl(off, None, char_tokenizer, [])
    other = copy.deepcopy(char_tokenizer)
    other.add_tokens(["<extra>"])
    with pytest.raises(ValueError, match="shared vocabulary"):
        distil_or_rl(run, None, other, [])
