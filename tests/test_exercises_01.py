"""Notebook 01's exercise checkers (utils/exercises/n01.py): a right answer passes, a typical wrong
one fails. Fast: no training."""

import torch

from utils import theory
from utils.exercises import n01


def test_check_t2_factor():
    assert n01.check_t2_factor(16)
    assert n01.check_t2_factor(16.5)         # what the notebook's toy measures
    assert not n01.check_t2_factor(4)        # "1/T" – a typical wrong answer
    assert not n01.check_t2_factor(None)
    assert n01.check_t2_factor(4, temperature=2.0)


def test_t2_toy_matches_the_checker():
    """The notebook's toy: without T², the soft-target gradient at T=4 is ~1/16 of T=1's."""
    teacher, student = torch.tensor([[3.0, 1.5, 0.5, -1.0]]), torch.tensor([[1.0, 2.0, 0.0, 0.5]])
    norms = {}
    for T in (1.0, 4.0):
        z = student.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(theory.kd_loss(z, teacher, None, temperature=T), z)
        by_hand = (theory.soft_labels(student, T) - theory.soft_labels(teacher, T)) / T
        assert torch.allclose(g / T**2, by_hand, atol=1e-6)
        norms[T] = (g / T**2).norm().item()
    assert n01.check_t2_factor(norms[1.0] / norms[4.0])


def test_check_seed_split_leak():
    distinct, draws = n01._seed_split_overlap()
    assert 0 < distinct < draws
    assert n01.check_seed_split_leak(distinct)
    assert not n01.check_seed_split_leak(0)        # "different seeds never collide"
    assert not n01.check_seed_split_leak(draws)    # counted repeated draws
    assert not n01.check_seed_split_leak(None)


def test_check_token_count():
    n = len(n01.TOKEN_EXAMPLE) - len("<think>") - len("</think>") + 2
    assert n01.check_token_count(n)
    assert not n01.check_token_count(len(n01.TOKEN_EXAMPLE))   # <think> counted as 7 characters
    assert not n01.check_token_count(None)
