"""Checkers for notebook 01's exercises (distillation theory, the task world, the tokenizer).

Each ``check_...(answer)`` prints ✓ or ✗ with a hint and returns ``True``/``False``; the
solutions (``notebooks/solutions/01_distillation_theory.ipynb``) and
``tests/test_exercises_01.py`` assert on the return value.
"""

from __future__ import annotations

import random

from ..messages import msg
from . import as_number, verdict

# Exercise 2's "split by seed" world: train drawn with seed 0, test with the course's eval seed.
SEED_SPLIT = {"family": "add", "difficulty": 1, "n_train": 1000, "n_test": 300,
              "train_seed": 0, "test_seed": 20250122}
# Exercise 3's example: a column addition, prompt + completion as the teacher sees them.
TOKEN_EXAMPLE = "Q:4759+86=<think>9+6+0=15;5+8+1=14;7+0+1=8;4+0+0=4</think>A:4845"


def check_t2_factor(answer: float, temperature: float = 4.0) -> bool:
    """Exercise 1(a): by what factor does the soft-target gradient shrink from T=1 to ``temperature``
    without the T² in :func:`utils.theory.kd_loss`? (About T², i.e. 16 at T=4; ±15 % accepted,
    since at finite T the 1/T² rate is approximate – the toy measured it.) Accepted forms: 16, 1/16 (the
    shrink as a fraction), "十六", full-width "１６"."""
    target = temperature**2
    value = as_number(answer)        # 16, "１６", "十六" – or the shrink written as a fraction, 1/16
    if value is not None and 0 < value < 1:
        value = 1 / value
    if value is None:
        return verdict(False, "", msg("answer with a number – the factor (16 means \"to 1/16\"; 1/16 is accepted "
                                      "too) – got {answer}", answer=repr(answer)))
    ok = abs(value - target) <= 0.15 * target
    return verdict(ok, msg("about T² = {target:g}: d KL/dz = (p_s − p_t)/T, and p_s − p_t itself shrinks "
                           "like 1/T – so kd_loss multiplies by T² to undo it", target=target),
                   msg("the gradient has two factors of 1/T: one from z/T inside the softmax, one because "
                       "both softened distributions get closer to uniform (look at the toy's table)"))


def _seed_split_overlap() -> tuple[int, int]:
    """Distinct test prompts that also occur among the train prompts, and the number of draws of
    train prompts that are test prompts, in the :data:`SEED_SPLIT` world."""
    from ..tasks import generate_problem

    s = SEED_SPLIT

    def draw(n, seed):
        rng = random.Random(seed)
        return [generate_problem(s["family"], s["difficulty"], rng).prompt for _ in range(n)]

    train, test = draw(s["n_train"], s["train_seed"]), draw(s["n_test"], s["test_seed"])
    return len(set(test) & set(train)), sum(p in set(test) for p in train)


def check_seed_split_leak(answer: int | None) -> bool:
    """Exercise 2: how many *distinct* test prompts would also be training prompts if the split
    were by seed (train: 1,000 ``add`` difficulty-1 prompts drawn with ``random.Random(0)``; test:
    300 drawn with ``random.Random(20250122)``) instead of by a hash of the prompt?"""
    distinct, draws = _seed_split_overlap()
    answer = as_number(answer) if answer is not None else None
    ok = answer is not None and answer == distinct
    hint = (msg("that counts repeated train draws; count distinct prompts: len(set(test) & set(train))")
            if answer == draws else
            msg("draw both lists with tasks.generate_problem(\"add\", 1, rng), one rng per seed, and "
                "intersect the two sets of prompts – small problem spaces repeat a lot"))
    return verdict(ok, msg("{distinct} distinct test prompts would be seen in training – a different "
                           "seed is no protection; a hash of the prompt makes the overlap zero by construction",
                           distinct=distinct),
                   hint)


def check_token_count(answer: int | None, text: str = TOKEN_EXAMPLE) -> bool:
    """Exercise 3: how many tokens does the course's character tokenizer make of ``text``?
    (One per character, except ``<think>`` and ``</think>``, which are one token each.)"""
    from ..tokenizer import build_char_tokenizer

    n = len(build_char_tokenizer()(text)["input_ids"])
    answer = as_number(answer) if answer is not None else None
    ok = answer is not None and answer == n
    hint = (msg("<think> and </think> are one token each, not 7 and 8 characters")
            if answer == len(text) else msg("one token per character, <think> and </think> count as one each"))
    return verdict(ok, msg("{n} tokens: the chain of thought, not the question, is most of the sequence", n=n), hint)


# ---------------------------------------------------------------------------------------
# Implementation exercise: write the soft-target KD loss
# ---------------------------------------------------------------------------------------

def _kd_cases():
    import torch

    g = torch.Generator().manual_seed(1)
    cases = [(torch.randn(4, 10, generator=g) * 3, torch.randn(4, 10, generator=g) * 3, t) for t in (2.0, 4.0, 1.0)]
    same = torch.randn(3, 7, generator=g)
    cases.append((same.clone(), same.clone(), 4.0))                           # identical logits: loss 0
    cases.append((torch.randn(1, 5, generator=g), torch.randn(1, 5, generator=g), 0.5))   # one row, T < 1
    return cases


def _kd_mistakes():
    import torch.nn.functional as F

    from .grading import Mistake

    def no_t2(s, t, T):
        return F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean")

    def reversed_kl(s, t, T):
        return F.kl_div(F.log_softmax(t / T, -1), F.softmax(s / T, -1), reduction="batchmean") * T**2

    def teacher_not_softened(s, t, T):
        return F.kl_div(F.log_softmax(s / T, -1), F.softmax(t, -1), reduction="batchmean") * T**2

    def mean_over_everything(s, t, T):
        p_teacher = F.softmax(t / T, -1)   # what reduction="mean" computes: divided by rows × vocabulary
        return (p_teacher * (p_teacher.log() - F.log_softmax(s / T, -1))).mean() * T**2

    return [
        Mistake("missing T²", no_t2, msg("multiply the KL by T²: dividing the logits by T shrinks the soft-target "
                "gradients by about 1/T², and T² brings them back to the scale of T = 1 (Hinton et al., 2015)")),
        Mistake("reversed KL", reversed_kl, msg("the direction: KL(teacher ‖ student) = Σ p_teacher · (log p_teacher "
                "− log p_student) – the teacher's probabilities weight the log-ratio")),
        Mistake("teacher not softened", teacher_not_softened, msg("soften both distributions: divide the teacher's "
                "logits by T as well as the student's")),
        Mistake("mean over every number", mean_over_everything, msg("sum over the vocabulary and average over the "
                "rows (`reduction=\"batchmean\"`); `\"mean\"` also divides by the vocabulary size")),
    ]


def check_kd_loss(fn) -> bool:
    """Implementation exercise: ``fn(student_logits, teacher_logits, temperature)`` – (rows, vocab) logits –
    returns the soft-target distillation loss T² · KL(p_T^teacher ‖ p_T^student), averaged over the rows.
    Checked against :func:`utils.theory.kd_loss` (with ``labels=None``) on random logits and edge cases."""
    from ..theory import kd_loss
    from .grading import grade

    return grade(fn, lambda s, t, T: kd_loss(s, t, None, temperature=T), _kd_cases(),
                 right=msg("your loss is the course's kd_loss: T² · KL(teacher ‖ student) on softened distributions"),
                 mistakes=_kd_mistakes())
