"""The task world: ground truths verify, perturbations fail, splits are disjoint, seeds repeat."""

import random

import utils.tasks as tasks

import pytest

from utils.tasks import (DIFFICULTIES, FAMILIES, check_format, check_steps, extract_final_answer,
                         generate_problem, make_problems, split_of, verify)


@pytest.fixture(scope="module")
def train():
    return make_problems(3000, "train", seed=0)


@pytest.fixture(scope="module")
def evals():
    return make_problems(300, "test", seed=20250122)


def test_every_ground_truth_verifies(train, evals):
    for p in train + evals:
        assert check_format(p.completion), p
        assert verify(p.completion, p.answer), p
        assert check_steps(p, p.completion), p


def _perturb(answer: str) -> str:
    if answer.isdigit():
        return str(int(answer) + 1)
    return "ABCDE"[("ABCDE".index(answer) + 1) % 5]


def test_perturbed_answers_fail(train):
    for p in train[:500]:
        wrong = p.completion.rsplit("A:", 1)[0] + "A:" + _perturb(p.answer)
        assert not verify(wrong, p.answer)


@pytest.mark.parametrize("text", [
    "<think>1+2=3</think>A:03",          # leading zero: the reward hack of the field notes
    "<think>1+2=3</think>A:3 extra",     # trailing text
    "1+2=3</think>A:3",                  # no opening tag
    "<think>1+2=3A:3",                   # no closing tag
    "<think></think>A:3",                # empty chain of thought
    "<think>1+2=3</think><think>x</think>A:3",
    "<think>1+2=3</think>A:",
    "",
])
def test_malformed_completions_are_rejected(text):
    assert not verify(text, "3")


def test_extract_final_answer():
    assert extract_final_answer("<think>a=1</think>A:12") == "12"
    assert extract_final_answer("<think>x</think>A:C") == "C"
    assert extract_final_answer("<think>x</think>A:012") is None
    assert extract_final_answer("no answer") is None


def test_wrong_step_with_right_answer_is_caught_by_check_steps():
    p = generate_problem("arith", 3, random.Random(3))
    body, answer = p.completion.split("</think>")
    first = body.split(";")[0]
    bad_first = first[: first.index("=") + 1] + "99"
    bad = body.replace(first, bad_first, 1) + "</think>" + answer
    assert verify(bad, p.answer) and not check_steps(p, bad)


def test_splits_are_disjoint_and_labelled(train, evals):
    val = make_problems(300, "val", seed=20250122)
    assert not {p.prompt for p in train} & {p.prompt for p in evals}
    assert not {p.prompt for p in val} & ({p.prompt for p in train} | {p.prompt for p in evals})
    assert all(split_of(p.prompt) == "train" for p in train)
    assert all(split_of(p.prompt) == "test" for p in evals)
    assert all(split_of(p.prompt) == "val" for p in val)


def test_split_shares_are_about_six_one_one():
    counts = {s: 0 for s in ("train", "val", "test")}
    for a in range(100, 2100):
        counts[split_of(f"Q:{a}+7=")] += 1
    assert 0.7 < counts["train"] / 2000 < 0.8 and 0.09 < counts["val"] / 2000 < 0.16 and 0.09 < counts["test"] / 2000 < 0.16


def test_deterministic_per_seed():
    a = make_problems(200, "train", seed=7)
    b = make_problems(200, "train", seed=7)
    c = make_problems(200, "train", seed=8)
    assert a == b and a != c


def test_balanced_over_families_and_difficulties(evals):
    for family in FAMILIES:
        for d in DIFFICULTIES:
            assert sum(p.family == family and p.difficulty == d for p in evals) >= 25


def test_difficulty_is_number_of_steps():
    rng = random.Random(0)
    for family in FAMILIES:
        lengths = [generate_problem(family, d, rng).completion.count(";") for d in DIFFICULTIES]
        assert lengths == sorted(lengths) and lengths[0] < lengths[-1]


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="Unknown task family"):
        generate_problem("poetry", 1, random.Random(0))
    with pytest.raises(ValueError, match="difficulty"):
        generate_problem("arith", 9, random.Random(0))
    with pytest.raises(ValueError, match="split"):
        make_problems(3, "eval", seed=0)  # the old name: validation and test are named apart


def test_independent_check_agrees_with_ground_truth_on_every_family():
    from utils.tasks import independent_check, solve

    for family in tasks.FAMILIES:
        for p in tasks.make_problems(60, "train", seed=3, families=(family,)):
            assert solve(p.prompt) == p.answer
            assert independent_check(p.prompt, p.completion) is True


def test_independent_check_catches_what_the_verifier_lets_through():
    from utils.tasks import independent_check

    p = tasks.column_addition(47, 38)  # <think>7+8+0=15;4+3+1=8</think>A:85
    slipped = p.completion.replace("4+3+1=8", "4+3+1=9")  # a wrong step, the right answer
    assert tasks.verify(slipped, p.answer) and independent_check(p.prompt, slipped) is False
    wrong_answer = p.completion.replace("A:85", "A:86")
    assert independent_check(p.prompt, wrong_answer) is False
    assert independent_check("Q:How many apples?\n", "<think>x</think>A:3") is None
