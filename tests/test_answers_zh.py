"""Exercises answerable in Chinese: every checker that takes a word or a number accepts the Chinese words its
Chinese text asks for, full-width digits, trailing punctuation and the number forms the question invites – and
answers anything else with the accepted forms."""

import pytest

from utils.exercises import as_number, chinese_number, choose, normalise
from utils.exercises import n01, n02, n03, n04, n05


def test_normalise_full_width_quotes_and_punctuation():
    assert normalise("１６") == "16" and normalise("更高。") == "更高" and normalise(" “更高”！") == "更高"
    assert normalise("Higher.") == "higher" and normalise("ｈｉｇｈｅｒ") == "higher"


@pytest.mark.parametrize("text, value", [("十六", 16), ("十", 10), ("二十", 20), ("一百零五", 105), ("四百一十二", 412),
                                         ("两千", 2000), ("十六倍", None), ("abc", None)])
def test_chinese_numbers(text, value):
    assert chinese_number(text) == value


@pytest.mark.parametrize("answer, value", [(16, 16.0), ("16", 16.0), ("１６", 16.0), ("16。", 16.0), ("十六", 16.0),
                                           ("1/16", 1 / 16), ("１/１６", 1 / 16), ("0.25", 0.25), ("1,024", 1024.0),
                                           ("", None), ("sixteen", None), (None, None), (True, None)])
def test_as_number(answer, value):
    assert as_number(answer) == value


def test_choose_reads_both_languages():
    assert choose("更高。", n02.CLIP_CHOICES) == "higher" and choose("HIGHER", n02.CLIP_CHOICES) == "higher"
    assert choose("不变", n02.CLIP_CHOICES) == "the same" and choose("也许", n02.CLIP_CHOICES) is None


# --- 01 -------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [16, "16", "１６", "十六", "1/16", 1 / 16, "16。", 15])
def test_t2_factor_accepts_the_forms_the_question_invites(answer, capsys):
    assert n01.check_t2_factor(answer)


@pytest.mark.parametrize("answer, hint", [(4, "two factors of 1/T"), ("四", "two factors of 1/T"),
                                          ("1/4", "two factors of 1/T"), ("一半", "answer with a number")])
def test_t2_factor_rejects_with_a_hint(answer, hint, capsys):
    assert n01.check_t2_factor(answer) is False
    assert hint in capsys.readouterr().out


def test_counts_in_chinese_or_full_width(capsys):
    distinct, _ = n01._seed_split_overlap()
    full_width = str(distinct).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert n01.check_seed_split_leak(full_width) and n01.check_seed_split_leak(f"{distinct}。")
    n = len(n01.TOKEN_EXAMPLE) - len("<think>") - len("</think>") + 2
    assert n01.check_token_count(str(n)) and not n01.check_token_count(str(n + 1))


# --- 02 -------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["更高", "升高", "增大", "higher", "更高。", "“更高”", "ＨＩＧＨＥＲ"])
def test_clip_prediction_accepts_higher_in_both_languages(answer, capsys):
    assert n02.check_clip_prediction(answer)


@pytest.mark.parametrize("answer", ["更低", "不变", "lower", "the same"])
def test_clip_prediction_rejects_the_other_words_with_the_reason(answer, capsys):
    assert n02.check_clip_prediction(answer) is False
    assert "how many ρ_t fall outside it" in capsys.readouterr().out


def test_clip_prediction_lists_the_accepted_forms(capsys):
    assert n02.check_clip_prediction("也许") is False
    out = capsys.readouterr().out
    assert '"higher"' in out and "更高" in out and "更低" in out and "不变" in out


def test_zero_variance_share_in_other_forms(capsys):
    rewards, g = [1, 1, 0, 0, 1, 0, 0, 0], 4   # [1, 1, 0, 0] and [1, 0, 0, 0]: no all-equal group
    assert n02.check_zero_variance_share("0", rewards, g) and n02.check_zero_variance_share("０", rewards, g)
    assert n02.check_zero_variance_share("1/2", [1, 1, 1, 1, 1, 0, 0, 0], 4)
    assert n02.check_zero_variance_share("半", rewards, g) is False
    assert "answer with a number" in capsys.readouterr().out


# --- 03 -------------------------------------------------------------------------------

def test_funnel_counts_in_chinese_or_full_width(capsys):
    rows = [{"prompt": "p", "completion": "<think>1+1=2</think>A:2", "answer": "2", "reward": r, "correct": c}
            for r, c in ((0.1, True), (0.5, False), (0.9, True), (0.9, True))]
    assert n03.check_keep_all_precision("０.７５", rows) and n03.check_keep_all_precision("3/4", rows)
    assert n03.check_median_kept("二", rows) and n03.check_median_kept("2。", rows)   # median 0.7: two rows ≥
    assert n03.check_contamination_caught("十", 10)


# --- 04 -------------------------------------------------------------------------------

def test_epochs_in_other_forms(capsys):
    assert n04.check_epochs("６.１２", rows=2092, steps=400, batch=32)
    assert n04.check_epochs("6.12。", rows=2092, steps=400, batch=32)


def test_short_run_in_chinese(capsys):
    loss, tied = {"filtered": 1.2, "unfiltered": 1.3}, {"filtered": [False] * 20, "unfiltered": [False] * 20}
    assert n04.check_short_run({"lower loss": "过滤组", "higher validation accuracy": "持平", "enough to tell": "不能"},
                               loss, tied)
    assert n04.check_short_run({"lower loss": "未过滤", "higher validation accuracy": "持平。", "enough to tell": "否"},
                               loss, tied) is False
    assert "which rows are easier" in capsys.readouterr().out
    assert n04.check_short_run({"lower loss": "干净的", "higher validation accuracy": "持平", "enough to tell": "否"},
                               loss, tied) is False
    assert "过滤组" in capsys.readouterr().out


def test_batch_speedup_in_chinese(capsys):
    tps = {("teacher", 1): 100.0, ("student", 1): 200.0, ("teacher", 8): 400.0, ("student", 8): 1200.0}
    assert n04.check_batch_speedup("变大", tps) and n04.check_batch_speedup("变大。", tps)
    assert n04.check_batch_speedup("不变", tps) is False
    assert n04.check_batch_speedup("也许", tps) is False
    assert "变小" in capsys.readouterr().out


# --- 05 -------------------------------------------------------------------------------

def test_student_vs_teacher_in_chinese(capsys):
    latency, close = {"student": 40.0, "teacher": 90.0}, {"student": 0.85, "teacher": 0.80}
    assert n05.check_student_vs_teacher({"faster": "学生", "more_accurate": "持平"}, latency, close, n=20)
    assert n05.check_student_vs_teacher({"faster": "学生模型。", "more_accurate": "学生"}, latency, close, n=20)
    assert n05.check_student_vs_teacher({"faster": "教师", "more_accurate": "持平"}, latency, close, n=20) is False
    assert n05.check_student_vs_teacher({"faster": "快的那个", "more_accurate": "持平"}, latency, close, n=20) is False
    assert "学生" in capsys.readouterr().out.splitlines()[-1]


def test_long_prompt_in_chinese(capsys):
    assert n05.check_long_prompt("字符", "prompt too long: 201 characters (max 200)")
    assert n05.check_long_prompt("上下文", "prompt and reply do not fit in the model's context")
    assert n05.check_long_prompt("接受", "")
    assert n05.check_long_prompt("不知道", "") is False
    assert "字符数" in capsys.readouterr().out.splitlines()[-1]
