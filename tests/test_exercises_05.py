"""Checkers of notebook 05's exercises: a right answer passes, a typical wrong one does not (no models)."""

import pytest

from utils.exercises.n05 import (check_long_prompt, check_stop_button, check_student_vs_teacher,
                                 check_temperature_effect, long_prompt_outcome)

LATENCY = {"student": 40.0, "teacher": 90.0}


def test_student_vs_teacher_right_and_wrong(capsys):
    close = {"student": 0.85, "teacher": 0.80}   # within noise on 20 prompts
    assert check_student_vs_teacher({"faster": "student", "more_accurate": "tie"}, LATENCY, close, n=20)
    assert check_student_vs_teacher({"faster": "student", "more_accurate": "student"}, LATENCY, close, n=20)
    assert "✓" in capsys.readouterr().out
    # the typical wrong guess: the bigger model is faster
    assert not check_student_vs_teacher({"faster": "teacher", "more_accurate": "tie"}, LATENCY, close, n=20)
    assert "hint" in capsys.readouterr().out
    # far apart on many prompts: only the model ahead is right
    apart = {"student": 0.95, "teacher": 0.60}
    assert check_student_vs_teacher({"faster": "student", "more_accurate": "student"}, LATENCY, apart, n=300)
    assert not check_student_vs_teacher({"faster": "student", "more_accurate": "teacher"}, LATENCY, apart, n=300)
    assert not check_student_vs_teacher({"faster": "student", "more_accurate": "tie"}, LATENCY, apart, n=300)


def test_student_vs_teacher_tie_in_latency_and_placeholders():
    similar = {"student": 100.0, "teacher": 105.0}
    acc = {"student": 0.9, "teacher": 0.5}
    assert check_student_vs_teacher({"faster": "tie", "more_accurate": "student"}, similar, acc, n=300)
    assert check_student_vs_teacher({"faster": "student", "more_accurate": "student"}, similar, acc, n=300)
    assert not check_student_vs_teacher({"faster": "?", "more_accurate": "?"}, LATENCY, acc, n=20)
    assert not check_student_vs_teacher({"faster": "student"}, LATENCY, acc, n=20)
    with pytest.raises(ValueError):
        check_student_vs_teacher({"faster": "tie", "more_accurate": "tie"}, LATENCY, acc, n=0)


def test_temperature_effect():
    assert check_temperature_effect({0: 0.85, 0.6: 0.82, 1.5: 0.40})
    assert check_temperature_effect({0.0: 0.80, 1.5: 0.82})              # equal within noise
    assert not check_temperature_effect({0: 0.50, 0.6: 0.7, 1.5: 0.90})  # "hotter explores, so it is better"
    assert not check_temperature_effect({0: 85, 1.5: 40})                # percentages, not fractions
    assert not check_temperature_effect({0.6: 0.8})                      # 0 and 1.5 missing
    assert not check_temperature_effect(None)
    pd = pytest.importorskip("pandas")
    assert check_temperature_effect(pd.Series([0.85, 0.8, 0.5], index=[0.0, 0.6, 1.5]))


def test_long_prompt():
    chars = "The prompt is too long: 2,001 characters; this app accepts at most 2,000."
    context = ("The prompt is too long for this model: 2001 tokens plus 64 new tokens exceed its context "
               "of 256 tokens.")
    assert long_prompt_outcome("") == "accepted"
    assert long_prompt_outcome(chars) == "characters"
    assert long_prompt_outcome(context) == "context"
    assert check_long_prompt("context", context)
    assert check_long_prompt("characters", chars)
    assert check_long_prompt("accepted", "")
    assert not check_long_prompt("accepted", context)   # "it is under the app's limit, so it passes"
    assert not check_long_prompt("?", context)


def _config(cancels):
    return {"dependencies": [
        {"id": 0, "targets": [(3, "click")], "cancels": [], "types": {"generator": True, "cancel": False}},
        {"id": 1, "targets": [(4, "click")], "cancels": cancels, "types": {"generator": False, "cancel": True}},
    ]}


def test_stop_button():
    assert check_stop_button(_config([0]))
    assert not check_stop_button(_config([]))       # a Stop button wired to nothing
    assert not check_stop_button(_config([1]))      # cancels an event that does not stream
    assert not check_stop_button({})
