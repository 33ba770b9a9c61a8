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
