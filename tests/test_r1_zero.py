"""R1-Zero's accuracy reward judges the answer alone; the format reward judges the think block."""

import pytest

from utils import config
from utils.grpo import format_reward
from utils.tasks import Problem, answer_correct, answer_only, check_format, verify


def test_answer_only_rows_drop_the_chain_of_thought():
    p = Problem("arith", 2, "Q:7+8-3=", "<think>7+8=15;15-3=12</think>A:12", "12")
    q = answer_only(p)
    assert q.completion == "A:12" and (q.prompt, q.answer, q.difficulty) == (p.prompt, p.answer, p.difficulty)


@pytest.mark.parametrize("completion, right, formatted", [
    ("A:12", True, False),                                  # no think block: R1-Zero's reward still pays
    ("<think>7+8=15;15-3=12</think>A:12", True, True),
    ("<think>7+8=15;15-3=13</think>A:13", False, True),
    ("A:012", False, False),                                # strict as the verifier: leading zero is not 12
    ("A:12 because", False, False),                         # trailing text
    ("<think></think>A:12", False, False),                  # an empty think block is no think block
    ("12", False, False),
])
def test_answer_correct_against_verify(completion, right, formatted):
    assert answer_correct(completion, "12") is right
    assert check_format(completion) is formatted
    assert verify(completion, "12") is (right and formatted)      # the verifier wants both
    assert format_reward([completion]) == [0.1 if formatted else 0.0]


def test_r1_zero_runs_on_the_tiny_profile_and_not_on_colab():
    assert config.PROFILES["tiny"].r1_zero is True
    assert config.PROFILES["colab"].r1_zero is False             # not in the T4 time plan
