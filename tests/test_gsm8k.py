"""Tests for utils/gsm8k.py: answer extraction, grading and loading."""

from __future__ import annotations

import json
import sys
import time
import types
from decimal import Decimal
from pathlib import Path

import pytest

from utils.gsm8k import extract_answer, is_correct, load_gsm8k, load_gsm8k_hub, normalize_number

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "gsm8k_sample.jsonl"
FULL_DATA = Path(__file__).resolve().parents[2] / "shared/data/gsm8k"


def perturbations(reference: str) -> list[str]:
    """Wrong answers close to ``reference``: +1, times ten and negated."""
    value = Decimal(reference)
    wrong = {value + 1, value * 10 if value else Decimal(1), -value if value else Decimal(-1)}
    return [format(number, "f") for number in wrong]


# --------------------------------------------------------------------------
# extract_answer: one table of formats
# --------------------------------------------------------------------------

EXTRACTION_TABLE = [
    # the GSM8K format
    ("She makes 9 * 2 = $<<9*2=18>>18 a day.\n#### 18", "18"),
    ("####18", "18"),
    ("#### 1,080", "1080"),
    # \boxed{}
    ("So the total is \\boxed{18}.", "18"),
    ("\\boxed{\\$18}", "18"),
    ("\\boxed{18 \\text{ eggs}}", "18"),
    ("\\boxed{\\frac{3}{4}}", "3/4"),
    ("\\boxed{-\\dfrac{1}{2}}", "-1/2"),
    ("\\boxed{2\\sqrt{2}}", "2\\sqrt{2}"),  # symbolic: kept verbatim
    # "answer is" / "answer:" / "A:"
    ("The answer is 18", "18"),
    ("Therefore, the answer is 18.", "18"),
    ("Answer: 18", "18"),
    ("ANSWER: 18 dollars", "18"),
    ("answer: $1,800.00", "1800"),
    ("The final answer is: **42**", "42"),
    ("Q: How many?\nA: 18", "18"),
    # currency, separators, decimals, negatives, fractions
    ("It costs $1,800.00 in total", "1800"),
    ("It costs 1800 in total", "1800"),
    ("about 3.50 per cup", "3.5"),
    ("12.0", "12"),
    ("The temperature fell to -5 degrees", "-5"),
    ("She lost -$5 on the deal", "-5"),
    ("It is \u22127 outside", "-7"),  # unicode minus
    ("0.25 of the cake", "0.25"),
    ("1{,}800 sheep", "1800"),  # LaTeX thousands separator
    ("3/4 of the pie", "3/4"),
    # fallback: last number
    ("First 3 apples, then 4 more, so 7", "7"),
    ("16-3-4=9", "9"),
    ("16 - 3 - 4", "4"),
    # words glued to digits are not numbers
    ("Qwen2.5 and R1", None),
    # no number at all
    ("I do not know.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACTION_TABLE)
def test_extract_answer_formats(text, expected):
    assert extract_answer(text) == expected


PRIORITY_TABLE = [
    # #### beats \boxed{}, which beats "answer is", which beats the last number
    ("\\boxed{5} and the answer is 6\n#### 7 and then 8", "7"),
    ("The answer is 6, i.e. \\boxed{5}, 8 apples", "5"),
    ("The answer is 6 (we had 8 apples earlier, 9 later)", "6"),
    # several cue phrases: the last one wins
    ("The answer is 6. Wait, no: the answer is 9. Checked 10 times.", "9"),
    ("\\boxed{5} then \\boxed{9}", "9"),
    # a markdown heading is not a GSM8K answer line
    ("#### Step 2: add 5\nThe answer is 7", "7"),
]


@pytest.mark.parametrize(("text", "expected"), PRIORITY_TABLE)
def test_extract_answer_priority(text, expected):
    assert extract_answer(text) == expected


THINK_TABLE = [
    # text after </think> is preferred ...
    ("<think>The answer is 12? \\boxed{12}</think>\nSo the total is 18.", "18"),
    ("<think>#### 12</think>The answer is \\boxed{18}", "18"),
    # ... and the whole text is the fallback when the tail has no number
    ("<think>the answer is 12</think>\nDone.", "12"),
    ("<think>I think it is 12", "12"),  # truncated: no </think>
]


@pytest.mark.parametrize(("text", "expected"), THINK_TABLE)
def test_extract_answer_prefers_text_after_think(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1,800.00", "1800"),
        ("3.50", "3.5"),
        ("-0", "0"),
        ("007", "7"),
        ("100", "100"),  # trailing zeros of integers stay
        ("6/8", "6/8"),  # fractions keep their form
        ("1/0", None),
        ("abc", None),
    ],
)
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


# --------------------------------------------------------------------------
# is_correct
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "reference"),
    [
        ("The answer is 1800", "#### 1,800"),
        ("\\boxed{1800.00}", "1800"),
        ("She earns $1,800.", "1800"),
        ("#### -5", "-5"),
        ("\\boxed{\\frac{1}{2}}", "0.5"),
        ("3/4", "0.75"),
        ("\\boxed{2\\sqrt{2}}", "\\boxed{\\sqrt{8}}"),  # math_verify's opinion
        ("<think>maybe 7</think> The answer is 18.", "Long solution...\n#### 18"),
    ],
)
def test_is_correct_accepts_equal_answers(completion, reference):
    assert is_correct(completion, reference)


@pytest.mark.parametrize(
    ("completion", "reference"),
    [
        ("18", "180"),
        ("180", "18"),
        ("-5", "5"),
        ("5", "-5"),
        ("18.5", "18"),
        ("1800.01", "1800"),
        ("\\boxed{\\pi}", "\\boxed{3}"),
        ("I do not know", "18"),  # no answer is never correct
        ("18", "no reference number"),
        ("<think>18</think> The answer is 17.", "18"),  # the final answer counts
    ],
)
def test_is_correct_is_strict(completion, reference):
    assert not is_correct(completion, reference)


SQRT2 = "\\boxed{\\sqrt{2}}"


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        # correct: the same symbol, and an equal expression only math_verify can see
        ("\\boxed{\\sqrt{2}}", True),
        ("\\boxed{\\frac{\\sqrt{8}}{2}}", True),
        # wrong
        ("\\boxed{\\sqrt{3}}", False),
        ("\\boxed{2\\sqrt{2}}", False),
        # malformed: unbalanced braces, empty fractions, no answer at all
        ("\\boxed{", False),
        ("\\boxed{\\frac{}{}}", False),
        ("}}}{{{", False),
        ("\\boxed{x^{", False),
        ("$$$", False),
    ],
)
def test_is_correct_on_symbolic_and_odd_input(completion, expected):
    assert is_correct(completion, SQRT2) is expected


def fake_math_verify(parse=None, verify=None) -> types.ModuleType:
    module = types.ModuleType("math_verify")
    module.parse = parse or (lambda text: [text])
    module.verify = verify or (lambda gold, guess: True)
    return module


def test_is_correct_without_math_verify_only_compares_numbers(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)  # "import math_verify" raises ImportError
    assert not is_correct("\\boxed{\\frac{\\sqrt{8}}{2}}", SQRT2)  # equal, but nobody can tell
    assert is_correct("\\boxed{\\sqrt{2}}", SQRT2)  # identical text needs no second opinion
    assert is_correct("The answer is 1,800.", "#### 1800")


def test_is_correct_outside_the_main_thread_says_not_equal():
    """math_verify's timeout uses signal.alarm, which raises ValueError in a worker thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(is_correct, "\\boxed{\\frac{\\sqrt{8}}{2}}", SQRT2).result() is False
        assert pool.submit(is_correct, "\\boxed{18}", "#### 18").result() is True  # numbers: no math_verify


@pytest.mark.parametrize(
    ("parse", "verify", "error"),
    [
        (lambda text: 1 / 0, None, ZeroDivisionError),
        (None, lambda gold, guess: {}["missing"], KeyError),
        (lambda text: (_ for _ in ()).throw(RuntimeError("a bug")), None, RuntimeError),
    ],
)
def test_is_correct_lets_unexpected_errors_propagate(monkeypatch, parse, verify, error):
    """Only the expected failures (no package, not the main thread) read as "not equal"."""
    monkeypatch.setitem(sys.modules, "math_verify", fake_math_verify(parse, verify))
    assert is_correct("\\boxed{18}", "18")  # plain numbers never ask math_verify
    with pytest.raises(error):
        is_correct("\\boxed{\\frac{\\sqrt{8}}{2}}", SQRT2)


def test_is_correct_uses_math_verify_verdict(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", fake_math_verify(verify=lambda gold, guess: False))
    assert not is_correct("\\boxed{\\frac{\\sqrt{8}}{2}}", SQRT2)
    monkeypatch.setitem(sys.modules, "math_verify", fake_math_verify(parse=lambda text: []))
    assert not is_correct("\\boxed{\\frac{\\sqrt{8}}{2}}", SQRT2)  # nothing parsed: not equal
    monkeypatch.setitem(sys.modules, "math_verify", fake_math_verify())
    assert is_correct("\\boxed{\\pi}", SQRT2)  # the fake says equal: its verdict is used


def test_perturbations_helper_really_perturbs():
    assert sorted(perturbations("18")) == ["-18", "180", "19"]
    assert "0" not in perturbations("0")


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_fixture_is_the_documented_sample():
    assert len(read_jsonl(FIXTURE)) == 40
    assert (FIXTURE.parent / "GSM8K_LICENSE").read_text().startswith("MIT License")


def test_load_gsm8k_reads_a_file():
    rows = load_gsm8k(FIXTURE)
    assert len(rows) == 40
    assert set(rows[0]) == {"question", "answer", "reference"}
    assert rows[0]["reference"] == "18"  # Janet's ducks
    assert rows[0]["answer"].endswith("#### 18")


def test_load_gsm8k_reads_a_split_from_a_folder(tmp_path):
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    (tmp_path / "test.jsonl").write_text("\n".join(lines[:20]) + "\n\n", encoding="utf-8")
    (tmp_path / "train.jsonl").write_text("\n".join(lines[20:]), encoding="utf-8")
    assert len(load_gsm8k(tmp_path, "test")) == 20
    assert load_gsm8k(tmp_path, "train")[0]["reference"] == "72"


def test_load_gsm8k_explains_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        load_gsm8k(tmp_path, "validation")


def test_load_gsm8k_rejects_rows_without_answer(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text('{"question": "q?"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="answer"):
        load_gsm8k(path)


def reference_failures(rows: list[dict]) -> list[tuple[str, str | None, str]]:
    """Every way ``rows`` break the grader: a reference not extracted as the ``####`` number, a
    worked answer (or an R1-style reply) not judged equal to itself, a near-miss accepted."""
    failures = []
    for row in rows:
        expected = row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        if row["reference"] != expected:
            failures.append(("extract", row["reference"], expected))
        if not is_correct(row["answer"], row["answer"]) or not is_correct(expected, row["answer"]):
            failures.append(("self", row["reference"], expected))
        r1_style = f"<think>Let me try 1, 2 and 999.</think>\nThe answer is \\boxed{{{expected}}}."
        if not is_correct(r1_style, row["answer"]):
            failures.append(("r1-style", r1_style, expected))
        failures += [("perturbed", w, expected) for w in perturbations(expected) if is_correct(w, row["answer"])]
    return failures


def test_reference_failures_finds_each_kind_of_break(monkeypatch):
    """The checker itself must be able to fail (else the tests below prove nothing)."""
    good = {"answer": "2+2=4\n#### 4", "reference": "4"}
    assert reference_failures([good]) == []
    assert [f[0] for f in reference_failures([dict(good, reference="5")])] == ["extract"]
    # A grader that accepts everything lets every perturbation through ...
    monkeypatch.setitem(globals(), "is_correct", lambda completion, reference: True)
    assert [f[0] for f in reference_failures([good])] == ["perturbed"] * 3
    # ... and one that accepts nothing judges the reference wrong.
    monkeypatch.setitem(globals(), "is_correct", lambda completion, reference: False)
    assert [f[0] for f in reference_failures([good])] == ["self", "r1-style"]


def test_fixture_references_judge_themselves_correct():
    """The 40-line sample (first 20 test + first 20 train rows of GSM8K) runs everywhere, CI included."""
    rows = load_gsm8k(FIXTURE)
    assert len(rows) == 40
    assert reference_failures(rows) == []


def test_fixture_is_a_verbatim_slice_of_the_full_files():
    """Optional: when the full GSM8K files sit beside the checkout, the sample must be copied from them."""
    if not (FULL_DATA / "train.jsonl").is_file() or not (FULL_DATA / "test.jsonl").is_file():
        pytest.skip(f"full GSM8K files not found in {FULL_DATA} (optional: the fixture test above covers CI)")
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    for split, sample in (("test", lines[:20]), ("train", lines[20:])):
        with (FULL_DATA / f"{split}.jsonl").open(encoding="utf-8") as full:
            assert [next(full).rstrip("\n") for _ in sample] == sample, split


@pytest.mark.skipif(
    not (FULL_DATA / "train.jsonl").is_file() or not (FULL_DATA / "test.jsonl").is_file(),
    reason=f"optional extra check: full GSM8K files not found in {FULL_DATA} "
           "(test_fixture_references_judge_themselves_correct runs the same checks on the sample)",
)
def test_full_gsm8k_references_judge_themselves_correct():
    start = time.perf_counter()
    rows = load_gsm8k(FULL_DATA, "train") + load_gsm8k(FULL_DATA, "test")
    assert len(rows) > 8_000
    failures = reference_failures(rows)
    assert not failures, failures[:10]
    assert time.perf_counter() - start < 20


# --------------------------------------------------------------------------
# The hub loader (never touches the network in tests)
# --------------------------------------------------------------------------


def test_load_gsm8k_hub_refuses_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="unreachable.*load_gsm8k\\(path\\)"):
        load_gsm8k_hub("test")


def fake_datasets(load_dataset) -> types.ModuleType:
    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    return module


def test_load_gsm8k_hub_wraps_download_errors(monkeypatch):
    def failing_load_dataset(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(failing_load_dataset))
    with pytest.raises(RuntimeError, match="unreachable") as caught:
        load_gsm8k_hub("train")
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_load_gsm8k_hub_returns_records(monkeypatch):
    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return read_jsonl(FIXTURE)[:3]

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(fake_load_dataset))
    rows = load_gsm8k_hub("test")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert [row["reference"] for row in rows] == ["18", "3", "70000"]


def test_gsm8k_records_become_verifiable_problems():
    """The colab profile grades GSM8K with the task world's own verifier."""
    from utils.gsm8k import load_gsm8k
    from utils.gsm8k import from_gsm8k
    from utils.tasks import check_format, verify

    records = load_gsm8k(FIXTURE)
    problems = [from_gsm8k(r) for r in records]
    assert len(problems) == len(records) == 40
    for p, r in zip(problems, records):
        assert p.answer == r["reference"] and "<<" not in p.completion
        assert check_format(p.completion) and verify(p.completion, p.answer)
        assert not verify(p.completion.rsplit("A:", 1)[0] + f"A:{int(p.answer) + 1}", p.answer)
        assert 1 <= p.difficulty <= 3
