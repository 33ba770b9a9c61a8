"""GSM8K answer handling: pull the final number out of a text and grade it.

The colab profile of notebooks 02-04 uses GSM8K (grade-school maths word
problems) as its task, and notebook 03 teaches this module in its verifier
section: a *verifier* is the small, boring, strict piece of code that turns a
model's free-form answer into a reward of 0 or 1.

A GSM8K reference answer ends with ``#### <number>``. Model outputs are much
messier, so :func:`extract_answer` tries a few well-known answer formats in a
fixed priority order:

1. ``#### 18``                      (the GSM8K format itself)
2. ``\\boxed{18}``                   (the R1 / maths-model convention)
3. ``The answer is 18``, ``answer: 18``, ``A: 18``   (the last such phrase)
4. the last number anywhere in the text (fallback)

R1-style outputs think first (``<think> ... </think>``) and answer afterwards,
so the text after ``</think>`` is searched first and the whole text only if
that finds nothing.

Numbers are normalised so that equal values look equal: ``$1,800.00`` becomes
``"1800"`` and ``3.50`` becomes ``"3.5"``. :func:`is_correct` then compares
numbers exactly (within 1e-6) and asks ``math_verify`` for a second opinion
only when an answer is symbolic (``2\\sqrt{2}``), never for plain numbers.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from .tasks import ANSWER_PREFIX, THINK_CLOSE, THINK_OPEN, Problem

__all__ = [
    "extract_answer",
    "is_correct",
    "load_gsm8k",
    "load_gsm8k_hub",
    "load_problems",
    "normalize_number",
]

# Two numbers count as equal when they differ by at most this much.
TOLERANCE = Fraction(1, 10**6)

# A number as people write it: optional minus, digits with optional
# thousands separators ("1,800"), optional decimals, optional "/denominator".
# The look-behind stops us reading "3" out of "x3" or "-3" out of "16-3".
_NUMBER = r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?"
_NUMBER_RE = re.compile(_NUMBER)

# "The answer is 18", "Answer: $18", "A: 18". At most 20 characters of
# non-digits ("is: $", " **") may sit between the cue and the number.
# "A:" must be an upper-case A on its own, so "data: 5" does not count.
_CUE_RE = re.compile(
    r"(?:\banswer\s*(?:is\b|:)|(?<![\w.])(?-i:A)\s*:)[^\d\n-]{0,20}?(" + _NUMBER + ")",
    re.IGNORECASE,
)

# "#### 18": the number must follow the hashes directly, so a markdown
# heading such as "#### Step 2: add 5" is not mistaken for an answer.
_HASHES_RE = re.compile(r"####[ \t]*(" + _NUMBER + ")")

_THINK_END = "</think>"
_BOXED = "\\boxed{"


# --------------------------------------------------------------------------
# Normalising numbers
# --------------------------------------------------------------------------


def normalize_number(raw: str) -> str | None:
    """Write a number in one canonical way, or return None if it is not one.

    Strips ``$`` and thousands separators and drops trailing decimal zeros:
    ``"$1,800.00" -> "1800"``, ``"3.50" -> "3.5"``, ``"-0" -> "0"``.
    Fractions keep their form with each part normalised: ``"3/4" -> "3/4"``.
    """
    text = raw.strip().replace("$", "").replace(",", "").replace("\u2212", "-")
    if "/" in text:
        numerator, _, denominator = text.partition("/")
        top, bottom = normalize_number(numerator), normalize_number(denominator)
        if top is None or bottom is None or Fraction(bottom) == 0:
            return None
        return f"{top}/{bottom}"
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == 0:
        return "0"
    # normalize() drops trailing zeros; format "f" avoids "1.8E+3".
    return format(value.normalize(), "f")


def _to_fraction(answer: str | None) -> Fraction | None:
    """Exact value of a normalised answer, or None if it is not a plain number."""
    if answer is None:
        return None
    numerator, _, denominator = answer.partition("/")
    try:
        value = Fraction(numerator)
        return value / Fraction(denominator) if denominator else value
    except (ValueError, ZeroDivisionError):
        return None


# --------------------------------------------------------------------------
# Finding the answer, one format at a time
# --------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Undo typography that hides numbers: unicode minus, ``\\$``, ``1{,}800``."""
    text = text.replace("\u2212", "-").replace("{,}", ",")
    # Drop "$" and "\$" in front of a number so "-$5" reads as "-5".
    return re.sub(r"\\?\$(?=\s?-?\d)", "", text)


def _last_number(text: str) -> str | None:
    """The last number in ``text``, normalised (the fallback format)."""
    matches = _NUMBER_RE.findall(text)
    return normalize_number(matches[-1]) if matches else None


def _from_hashes(text: str) -> str | None:
    """The number right after the last ``####`` that has one (GSM8K format)."""
    matches = _HASHES_RE.findall(text)
    return normalize_number(matches[-1]) if matches else None


def _last_boxed_content(text: str) -> str | None:
    """What is inside the last ``\\boxed{...}``, honouring nested braces."""
    start = text.rfind(_BOXED)
    if start == -1:
        return None
    depth, begin = 1, start + len(_BOXED)
    for position in range(begin, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:position]
    return None  # unbalanced: the output was probably cut off


def _simplify_latex(latex: str) -> str:
    """Remove LaTeX that decorates a number: units, ``\\%``, spacing, fractions."""
    latex = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", latex)
    latex = re.sub(r"\^\{?\\circ\}?|\\[%,!;: ]|%", "", latex)
    latex = re.sub(r"\\[dt]?frac\{(-?[\d.,]+)\}\{([\d.,]+)\}", r"\1/\2", latex)
    return latex.strip()


def _from_boxed(text: str) -> str | None:
    """The answer inside the last ``\\boxed{}``.

    Plain numbers (even with units, ``\\$`` or ``\\frac{3}{4}``) come back
    normalised. Anything still containing LaTeX (``2\\sqrt{2}``) is returned
    verbatim as a *symbolic* answer, for :func:`is_correct` to hand to
    ``math_verify``.
    """
    content = _last_boxed_content(text)
    if content is None:
        return None
    simple = _simplify_latex(content)
    if _NUMBER_RE.fullmatch(simple):
        return normalize_number(simple)
    if any(symbol in simple for symbol in "\\^{"):
        return content.strip()
    return _last_number(simple)


def _from_cue(text: str) -> str | None:
    """The number after the last "answer is" / "answer:" / "A:" phrase."""
    matches = _CUE_RE.findall(text)
    return normalize_number(matches[-1]) if matches else None


def _extract(text: str) -> str | None:
    """Try every format in priority order on one piece of text."""
    text = _clean(text)
    for finder in (_from_hashes, _from_boxed, _from_cue, _last_number):
        answer = finder(text)
        if answer is not None:
            return answer
    return None


def extract_answer(text: str) -> str | None:
    """Return the final answer of a GSM8K-style text as a normalised string.

    Priority: ``####`` > ``\\boxed{}`` > the last "answer is"/"answer:"/"A:"
    > the last number. When the text contains ``</think>`` the part after it
    is searched first, then the whole text. Returns None if the text holds no
    number at all.

    >>> extract_answer("She makes $1,800.00 a week.\\n#### 1800")
    '1800'
    >>> extract_answer("<think>maybe 12?</think> The answer is 3.50")
    '3.5'
    """
    if not text:
        return None
    if _THINK_END in text:
        after_thinking = text.rsplit(_THINK_END, 1)[1]
        answer = _extract(after_thinking)
        if answer is not None:
            return answer
    return _extract(text)


# --------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------


def _math_verify_equal(predicted: str, reference: str) -> bool:
    """Second opinion from ``math_verify`` for symbolic answers.

    ``math_verify`` already turns parser errors and timeouts into "no match" (``parse``
    returns ``[]``, ``verify`` returns False). Two failures are expected on top of that and
    read as "not equal": the package is missing (``ImportError``), or the call runs outside
    the main thread, where its ``signal.alarm`` timeout cannot work (``ValueError``). Any
    other exception is a bug and propagates rather than silently grading an answer wrong.
    """
    try:
        from math_verify import parse, verify
    except ImportError:  # the package is optional for plain-number answers
        return False
    try:
        gold, guess = parse(f"${reference}$"), parse(f"${predicted}$")
        return bool(gold) and bool(guess) and bool(verify(gold, guess))
    except ValueError:  # "signal only works in main thread": math_verify's timeout needs it
        return False


def is_correct(completion: str, reference: str) -> bool:
    """Judge whether ``completion`` reaches the same final answer as ``reference``.

    ``reference`` may be a full GSM8K answer (ending in ``#### 18``) or a bare
    number. Both answers are extracted with :func:`extract_answer`; plain
    numbers are compared exactly (tolerance 1e-6, so ``1800 == 1800.00`` and
    ``3/4 == 0.75`` but ``18 != 180`` and ``-5 != 5``). Only when one side is
    symbolic is ``math_verify`` asked for a second opinion.
    """
    predicted, expected = extract_answer(completion), extract_answer(reference)
    if predicted is None or expected is None:
        return False
    predicted_value, expected_value = _to_fraction(predicted), _to_fraction(expected)
    if predicted_value is not None and expected_value is not None:
        return abs(predicted_value - expected_value) <= TOLERANCE
    if predicted == expected:
        return True
    return _math_verify_equal(predicted, expected)


# --------------------------------------------------------------------------
# Loading the data set
# --------------------------------------------------------------------------


def _record(question: str, answer: str) -> dict[str, str | None]:
    """One GSM8K example with its extracted reference number."""
    return {"question": question, "answer": answer, "reference": extract_answer(answer)}


def load_gsm8k(path_or_dir: str | os.PathLike, split: str = "test") -> list[dict]:
    """Read a local GSM8K JSONL file into a list of dicts.

    ``path_or_dir`` is either a ``.jsonl`` file or a folder holding
    ``train.jsonl`` and ``test.jsonl`` (then ``split`` picks the file). Each
    line is ``{"question": ..., "answer": ...}``; each returned dict has
    ``question``, ``answer`` (the full worked solution) and ``reference``
    (the final number, e.g. ``"18"``).
    """
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"No GSM8K file at {path}. Expected a folder with train.jsonl/test.jsonl "
            "or the path of one such file."
        )
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "question" not in row or "answer" not in row:
                raise ValueError(f"{path}:{number} lacks a 'question' or 'answer' field")
            records.append(_record(row["question"], row["answer"]))
    return records


def _hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks the Hugging Face libraries not to go online."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def load_gsm8k_hub(split: str = "test") -> list[dict]:
    """Load GSM8K from the Hugging Face hub (``openai/gsm8k``, config ``main``).

    Returns the same list of dicts as :func:`load_gsm8k`. Raises a
    RuntimeError explaining the local alternative when ``HF_HUB_OFFLINE`` is
    set or the download fails for any reason.
    """
    advice = (
        "The Hugging Face hub is unreachable (HF_HUB_OFFLINE is set or the download "
        "failed). Copy train.jsonl/test.jsonl locally and use load_gsm8k(path)."
    )
    if _hub_offline():
        raise RuntimeError(advice)
    try:
        from datasets import load_dataset

        dataset = load_dataset("openai/gsm8k", "main", split=split)
    except Exception as error:
        raise RuntimeError(f"{advice} Cause: {error!r}") from error
    return [_record(row["question"], row["answer"]) for row in dataset]


def load_problems(source: str | os.PathLike | None, split: str) -> list:
    """GSM8K ``split`` ("train" or "test") as course problems (:func:`from_gsm8k`).

    ``source`` is a local folder or file for :func:`load_gsm8k`, or None for the hub
    (:func:`load_gsm8k_hub`). When the hub is unreachable the error says what to do instead.
    """
    if source is not None:
        records = load_gsm8k(source, split)
    else:
        try:
            records = load_gsm8k_hub(split)
        except RuntimeError as error:
            raise RuntimeError(
                f"{error}\nIn a profile, point data_path at that folder "
                "(PROFILES['colab'].replace(data_path='path/to/gsm8k')), or run the colab code path "
                "offline with local stand-ins: profile 'colab-dryrun' (make colab-dryrun)."
            ) from error
    return [from_gsm8k(r) for r in records]


def from_gsm8k(record: dict) -> Problem:
    """A GSM8K record (``utils.gsm8k.load_gsm8k``) in the course's format (colab profile).

    The worked solution becomes the chain of thought (calculator annotations ``<<…>>`` removed)
    and ``#### 1,800`` becomes the answer line ``A:1800``, so the same verifier grades GSM8K
    and the task world. Difficulty = number of solution lines (1–3, capped).
    """
    solution, _, _ = record["answer"].rpartition("####")
    steps = re.sub(r"<<[^>]*>>", "", solution).strip()
    answer = extract_answer(record["answer"])
    if answer is None or not re.fullmatch(r"0|-?[1-9][0-9]*", answer):
        raise ValueError(f"GSM8K answer {answer!r} is not an integer")
    lines = [line for line in steps.splitlines() if line.strip()]
    return Problem("gsm8k", min(3, max(1, len(lines) - 1)), f"Q:{record['question'].strip()}\n",
                   f"{THINK_OPEN}\n{steps}\n{THINK_CLOSE}{ANSWER_PREFIX}{answer}", answer)
