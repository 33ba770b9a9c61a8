"""The exercise checkers speak Chinese: under ``speaking("zh")`` a wrong answer's verdict and hint are Chinese,
and every template of ``utils/exercises/`` has a Chinese entry with the same fields."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import utils.messages as messages
from utils.exercises import n01, n02, n03, n04, n05

CHINESE = re.compile(r"[\u4e00-\u9fff]")
EXERCISES = Path(messages.__file__).parent / "exercises"


def _rows():
    return [{"prompt": f"p{i}", "completion": "c", "answer": "1", "reward": float(i % 4), "correct": i % 3 == 0}
            for i in range(20)]


def _raises(*args):
    return 1 / 0


WRONG = {
    # notebook 01
    "t2_factor": lambda: n01.check_t2_factor(4),
    "t2_factor_not_a_number": lambda: n01.check_t2_factor("many"),
    "token_count": lambda: n01.check_token_count(len(n01.TOKEN_EXAMPLE)),
    "kd_loss_mistake": lambda: n01.check_kd_loss(n01._kd_mistakes()[0].compute),
    "kd_loss_raises": lambda: n01.check_kd_loss(_raises),
    # notebook 02
    "gae_length": lambda: n02.check_gae([1.0, 2.0], [1, 0, 0], [0, 0, 0]),
    "zero_variance_share": lambda: n02.check_zero_variance_share(25, [1, 1, 0, 1, 0, 0, 0, 0], 4),
    "clip_prediction": lambda: n02.check_clip_prediction("sideways"),
    "group_advantages": lambda: n02.check_group_advantages_impl(n02._group_mistakes()[0].compute),
    # notebook 03
    "keep_all_precision": lambda: n03.check_keep_all_precision(0.9, _rows()),
    "median_kept": lambda: n03.check_median_kept(1, _rows()),
    "contamination": lambda: n03.check_contamination_caught(1, 3),
    "step_filter": lambda: n03.check_step_filter(lambda rows: rows[:1]),
    # notebook 04
    "epochs": lambda: n04.check_epochs(None, rows=2092, steps=400, batch=32),
    "short_run": lambda: n04.check_short_run({"lower loss": "x", "higher validation accuracy": "tie",
                                              "enough to tell": "no"}, {}, {}),
    "curriculum": lambda: n04.check_curriculum_sampler(lambda rows, steps, batch_size, seed: None),
    "completion_batch": lambda: n04.check_completion_batch(
        lambda *case: tuple(t + 1 for t in n04.completion_batch_reference(*case))),
    # notebook 05
    "student_vs_teacher": lambda: n05.check_student_vs_teacher(
        {"faster": "teacher", "more_accurate": "teacher"}, {"student": 40.0, "teacher": 90.0},
        {"student": 0.95, "teacher": 0.6}, n=300),
    "temperature": lambda: n05.check_temperature_effect({0: 80, 1.5: 50}),
    "long_prompt": lambda: n05.check_long_prompt("maybe", ""),
    "stop_button": lambda: n05.check_stop_button({"dependencies": []}),
}


@pytest.mark.parametrize("name", WRONG)
def test_a_wrong_answer_is_answered_in_chinese(name, capsys):
    with messages.speaking("zh"):
        assert WRONG[name]() is False
    out = capsys.readouterr().out
    assert "还不对" in out and CHINESE.search(out.split("还不对", 1)[1]), out
    assert "not yet" not in out


def test_a_right_answer_is_confirmed_in_chinese(capsys):
    with messages.speaking("zh"):
        assert n01.check_t2_factor(16) is True
        assert n02.check_clip_prediction("更高") is True
    out = capsys.readouterr().out
    assert out.count("✓") == 2 and "约为 T²" in out and "裁剪" in out


def test_hints_are_still_english_by_default(capsys):
    assert n02.check_clip_prediction("sideways") is False
    out = capsys.readouterr().out
    assert out.startswith("✗ not yet – hint: answer one of \"higher\" (more,") and not CHINESE.search(out.split("(")[0])


@pytest.mark.parametrize("path", sorted(EXERCISES.glob("*.py")), ids=lambda p: p.name)
def test_every_exercise_template_has_a_chinese_entry_with_the_same_fields(path):
    catalogue = messages.catalogue()
    templates = messages.templates_in(path.read_text(encoding="utf-8"))
    missing = [t for t in templates if t not in catalogue]
    assert not missing, f"untranslated in {path.name}: {missing}"
    differ = [t for t in templates if messages.placeholders(catalogue[t]) != messages.placeholders(t)]
    assert not differ, f"fields differ in {path.name}: {differ}"


def test_every_template_renders_in_chinese_with_dummy_values():
    import string

    for path in EXERCISES.glob("*.py"):
        for template in messages.templates_in(path.read_text(encoding="utf-8")):
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            with messages.speaking("zh"):
                messages.msg(template, **{n: 0.5 for n in names}).render()
