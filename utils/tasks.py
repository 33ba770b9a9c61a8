"""The task world: small, verifiable reasoning problems that a 2-core CPU can learn.

Taught in notebook 01 ("A tour of the task world"); used by every later notebook.

The reference article says R1's distillation data covers maths, code and logic. We mirror
that with four families, each small enough for a character-level model:

========  =====================================  ==========================================
family    prompt                                 completion (chain of thought, then answer)
========  =====================================  ==========================================
add       ``Q:4759+86=``                          ``<think>9+6+0=15;5+8+1=14;7+0+1=8;4+0+0=4</think>A:4845``
arith     ``Q:7+8-3=``                            ``<think>7+8=15;15-3=12</think>A:12``
trace     ``Q:a=3;b=a+4;a=b-1;a?``                ``<think>a=3;b=7;a=6</think>A:6``
order     ``Q:A=5,B=3,C=8;max?``                  ``<think>A=5;B=3:A=5;C=8:C=8</think>A:C``
========  =====================================  ==========================================

Every completion has the course's answer format: ``<think>`` … ``</think>`` then one final
answer line ``A:<answer>``. The *verifier* (:func:`verify`) extracts that answer with a strict
pattern and compares it with the reference – it is the centre of evaluation (02–04),
rejection sampling (03) and the rule-based reward of GRPO (02).

``add`` is column addition, right to left with carries: every
step is a one-digit fact, so a 2M-parameter model learns it within a CPU budget. The
default ``tiny`` profile trains on it; the other families are there to explore (they need
several times more training steps – see the ``tiny`` profile's comment in
:mod:`utils.config`).

``difficulty`` (1, 2, 3) sets the number of reasoning steps; notebook 04 uses it for a
curriculum. The train/val/test split is a property of the *prompt* (a hash), so no test prompt
can ever appear in training data, whatever seed generated it; a third split, validation, is
where every choice is made.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

FAMILIES = ("add", "arith", "trace", "order")
DIFFICULTIES = (1, 2, 3)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_PREFIX = "A:"

# The whole completion, strictly: one think block, then "A:" and an answer with no spaces.
FORMAT_RE = re.compile(r"^<think>(?:(?!</?think>).)+</think>A:(?:[A-Za-z]|0|-?[1-9][0-9]*)$", re.S)
# Strict answer: a letter, 0, or an integer with no leading zero. "A:070" is *not* 70
# (the field notes' reward hack: an int() parser accepted leading zeros).
ANSWER_RE = re.compile(r"</think>A:([A-Za-z]|0|-?[1-9][0-9]*)$")


@dataclass(frozen=True)
class Problem:
    """One task-world problem: what the model sees, what it should write, and the answer."""

    family: str
    difficulty: int
    prompt: str
    completion: str   # ground-truth chain of thought + answer line (no EOS)
    answer: str

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------
# Generators: one per family. Each takes a random.Random and a difficulty.
# ---------------------------------------------------------------------------------------

def _add(rng: random.Random, difficulty: int) -> Problem:
    """Column addition of two numbers, the longer one with 1–2, 3 or 4–5 digits (difficulty 1–3).

    One step per column, right to left: ``digit + digit + carry = column sum``; the answer is
    read off the steps' last digits (and a final carry). Every step is a one-digit fact.
    """
    digits = rng.choice({1: (1, 2), 2: (3,), 3: (4, 5)}[difficulty])
    a = rng.randint(10 ** (digits - 1), 10 ** digits - 1)
    b = rng.randint(1, 10 ** rng.randint(1, digits) - 1)
    if rng.random() < 0.5:
        a, b = b, a
    return column_addition(a, b)


def column_addition(a: int, b: int) -> Problem:
    """The ``add`` problem ``a+b`` with its canonical chain: one step per column, right to left.

    Difficulty follows the longer operand's digits (1–2, 3, 4+ → 1, 2, 3), as in :func:`_add`.
    """
    ra, rb = str(a)[::-1], str(b)[::-1]
    carry, steps = 0, []
    for i in range(max(len(ra), len(rb))):
        x = int(ra[i]) if i < len(ra) else 0
        y = int(rb[i]) if i < len(rb) else 0
        steps.append(f"{x}+{y}+{carry}={x + y + carry}")
        carry = (x + y + carry) // 10
    digits = max(len(ra), len(rb))
    difficulty = 1 if digits <= 2 else 2 if digits == 3 else 3
    answer = str(a + b)
    return Problem("add", difficulty, f"Q:{a}+{b}=",
                   f"{THINK_OPEN}{';'.join(steps)}{THINK_CLOSE}{ANSWER_PREFIX}{answer}", answer)


def _arith(rng: random.Random, difficulty: int) -> Problem:
    """Multi-step arithmetic: ``difficulty + 1`` one-digit operands, running total kept >= 0.

    Each step adds or subtracts one digit, so every step of the chain is small enough for a
    tiny model; the difficulty is the number of steps it must chain without a slip.
    """
    total = rng.randint(1, 19)
    prompt, steps = [str(total)], []
    for _ in range(difficulty):
        n = rng.randint(1, 9)
        op = rng.choice("+-")
        if op == "-" and total - n < 0:
            op = "+"
        new = total + n if op == "+" else total - n
        steps.append(f"{total}{op}{n}={new}")
        prompt.append(f"{op}{n}")
        total = new
    return Problem("arith", difficulty, f"Q:{''.join(prompt)}=",
                   f"{THINK_OPEN}{';'.join(steps)}{THINK_CLOSE}{ANSWER_PREFIX}{total}", str(total))


def _trace(rng: random.Random, difficulty: int) -> Problem:
    """Trace ``difficulty + 2`` assignments over a, b, c (values kept in 0..30); ask for one."""
    values: dict[str, int] = {}
    statements, steps = [], []
    for i in range(difficulty + 2):
        target = rng.choice("abc")
        known = sorted(values)
        kind = "const" if i == 0 or not known else rng.choice(["const", "add", "sub", "var"])
        if kind == "const":
            value = rng.randint(0, 9)
            text = str(value)
        elif kind == "var":
            src = rng.choice(known)
            other = rng.choice(known)
            value = values[src] + values[other]
            if value > 30:
                value, text = values[src], src
            else:
                text = f"{src}+{other}"
        else:
            src = rng.choice(known)
            n = rng.randint(1, 9)
            if kind == "sub" and values[src] - n < 0:
                kind = "add"
            elif kind == "add" and values[src] + n > 30:
                kind = "sub"
            value = values[src] + n if kind == "add" else values[src] - n
            text = f"{src}{'+' if kind == 'add' else '-'}{n}"
        values[target] = value
        statements.append(f"{target}={text}")
        steps.append(f"{target}={value}")
    asked = rng.choice(sorted(values))
    answer = str(values[asked])
    return Problem("trace", difficulty, f"Q:{';'.join(statements)};{asked}?",
                   f"{THINK_OPEN}{';'.join(steps)}{THINK_CLOSE}{ANSWER_PREFIX}{answer}", answer)


def _order(rng: random.Random, difficulty: int) -> Problem:
    """Which of ``difficulty + 2`` named one-digit values is the largest (or smallest)?

    The chain of thought scans left to right; each step writes the item, then the best so far
    (``B=3:A=5`` reads "B is 3; the best is still A=5"), so the answer is the last best.
    """
    names = rng.sample("ABCDE", difficulty + 2)
    vals = rng.sample(range(1, 10), difficulty + 2)
    goal = rng.choice(["max", "min"])
    best_name, best_val = names[0], vals[0]
    steps = [f"{names[0]}={vals[0]}"]
    for name, val in zip(names[1:], vals[1:]):
        if (val > best_val) == (goal == "max"):
            best_name, best_val = name, val
        steps.append(f"{name}={val}:{best_name}={best_val}")
    prompt = "Q:" + ",".join(f"{n}={v}" for n, v in zip(names, vals)) + f";{goal}?"
    return Problem("order", difficulty, prompt,
                   f"{THINK_OPEN}{';'.join(steps)}{THINK_CLOSE}{ANSWER_PREFIX}{best_name}", best_name)


GENERATORS = {"add": _add, "arith": _arith, "trace": _trace, "order": _order}


SPLITS = ("train", "val", "test")


def split_of(prompt: str) -> str:
    """``"test"`` for about 1 prompt in 8, ``"val"`` for another 1 in 8, ``"train"`` otherwise –
    decided by a hash of the prompt.

    Because the split is a function of the prompt text, the three splits can never overlap.
    *Validation* is where the course makes its choices (checkpoints, arms, thresholds);
    *test* is only reported on, after every choice is made.
    """
    digest = hashlib.sha256(prompt.encode()).digest()
    return {0: "test", 1: "val"}.get(digest[0] % 8, "train")


def generate_problem(family: str, difficulty: int, rng: random.Random) -> Problem:
    """One problem of ``family`` at ``difficulty`` (1–3), drawn with ``rng``."""
    if family not in GENERATORS:
        raise ValueError(f"Unknown task family {family!r}; choose from {FAMILIES}.")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}.")
    return GENERATORS[family](rng, difficulty)


def make_problems(n: int, split: str, seed: int, families: Sequence[str] = FAMILIES,
                  difficulties: Sequence[int] = DIFFICULTIES, unique: bool = True) -> list[Problem]:
    """``n`` problems of ``split`` ("train", "val" or "test"), balanced over families and difficulties.

    Deterministic for a given ``seed``. Problems whose prompt hashes to the other split are
    skipped, and duplicates are skipped when ``unique`` (the default).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"{split}:{seed}")
    combos = [(f, d) for f in families for d in difficulties]
    out: list[Problem] = []
    seen: set[str] = set()
    exhausted: set[tuple[str, int]] = set()  # small spaces (e.g. 1-step arith) run out
    i = 0
    while len(out) < n:
        if len(exhausted) == len(combos):
            raise RuntimeError(f"Could not draw {n} distinct {split} problems; ask for fewer.")
        family, difficulty = combos[i % len(combos)]
        i += 1
        if (family, difficulty) in exhausted:
            continue
        for _ in range(200):
            p = generate_problem(family, difficulty, rng)
            if split_of(p.prompt) == split and not (unique and p.prompt in seen):
                seen.add(p.prompt)
                out.append(p)
                break
        else:
            exhausted.add((family, difficulty))
    return out


# ---------------------------------------------------------------------------------------
# The verifier
# ---------------------------------------------------------------------------------------

def extract_final_answer(completion: str) -> str | None:
    """The answer after ``</think>A:``, or ``None`` if the completion does not end in one.

    Strict on purpose: ``A:070`` is not the answer ``70``, trailing text is not allowed.
    """
    m = ANSWER_RE.search(completion.strip())
    return m.group(1) if m else None


def check_format(completion: str) -> bool:
    """True when the completion is exactly ``<think>…</think>A:<answer>``."""
    return FORMAT_RE.match(completion.strip()) is not None


# An answer with or without a think block before it: R1-Zero's accuracy reward checks the answer only
# (whether the model reasons is the format reward's business).
ANSWER_ONLY_RE = re.compile(r"^(?:<think>(?:(?!</?think>).)+</think>)?A:([A-Za-z]|0|-?[1-9][0-9]*)$", re.S)


def answer_correct(completion: str, answer: str) -> bool:
    """The final answer equals the reference, whether or not a ``<think>`` block comes first.

    For a model that was never shown a chain of thought (notebook 02's R1-Zero miniature), whose
    ``A:12`` :func:`verify` would reject for its missing think block. Just as strict about the
    answer itself: ``A:070`` is not 70, trailing text is not allowed.
    """
    m = ANSWER_ONLY_RE.match(completion.strip())
    return m is not None and m.group(1) == answer


def answer_only(problem: Problem) -> Problem:
    """The problem with its chain of thought removed: the completion is just ``A:<answer>``."""
    return Problem(problem.family, problem.difficulty, problem.prompt, ANSWER_PREFIX + problem.answer, problem.answer)


def verify(completion: str, answer: str) -> bool:
    """The rule-based verifier: well-formed and the final answer equals the reference."""
    return check_format(completion) and extract_final_answer(completion) == answer


def check_steps(problem: Problem, completion: str) -> bool:
    """Stricter than :func:`verify`: the whole chain of thought is the correct one.

    A final-answer check lets a few wrong intermediate steps through. In this task world
    each problem has exactly one canonical chain (one step per operation, assignment or
    comparison), so "every step is right" means "the think block equals the ground truth".
    """
    if not verify(completion, problem.answer):
        return False
    body = completion.split(THINK_CLOSE)[0].removeprefix(THINK_OPEN)
    return body == problem.completion.split(THINK_CLOSE)[0].removeprefix(THINK_OPEN)


def solve(prompt: str) -> str | None:
    """The answer to a task-world prompt, worked out from the prompt text alone.

    An *independent* check for notebook 03: it never reads a problem's stored answer or chain
    of thought, and shares no code with the generators or :func:`verify`. ``None`` for a prompt
    it does not recognise (GSM8K: use :func:`utils.gsm8k.is_correct`).
    """
    body = prompt.removeprefix("Q:")
    if re.fullmatch(r"\d+(?:[+-]\d+)+=", body):                      # add, arith: left to right
        tokens = re.findall(r"[+-]?\d+", body[:-1])
        return str(sum(int(t) for t in tokens))
    m = re.fullmatch(r"((?:[a-c]=[a-c0-9+-]+;)+)([a-c])\?", body)     # trace: run the assignments
    if m:
        env: dict[str, int] = {}
        for statement in m.group(1).rstrip(";").split(";"):
            target, expr = statement.split("=")
            terms = re.findall(r"[+-]?[a-c0-9]+", expr)
            env[target] = sum((-1 if t[0] == "-" else 1) * (env[t.lstrip("+-")] if t.lstrip("+-").isalpha()
                                                               else int(t.lstrip("+-"))) for t in terms)
        return str(env[m.group(2)])
    m = re.fullmatch(r"((?:[A-E]=\d,?)+);(max|min)\?", body)         # order: the extreme item
    if m:
        items = dict(kv.split("=") for kv in m.group(1).split(","))
        pick = max if m.group(2) == "max" else min
        return pick(items, key=lambda k: int(items[k]))
    return None


def steps_hold(completion: str) -> bool:
    """Every arithmetic step ``x+y+z=s`` / ``x-y=s`` in the think block is true.

    Steps without arithmetic (``a=3``, ``B=3:A=5``) are not checked here.
    """
    body = completion.split(THINK_CLOSE)[0].removeprefix(THINK_OPEN)
    for step in body.split(";"):
        m = re.fullmatch(r"(\d+(?:[+-]\d+)+)=(-?\d+)", step)
        if m and sum(int(t) for t in re.findall(r"[+-]?\d+", m.group(1))) != int(m.group(2)):
            return False
    return True


def independent_check(prompt: str, completion: str) -> bool | None:
    """Well-formed, every arithmetic step true, and the answer equal to :func:`solve`'s –
    ``None`` when the prompt is not a task-world prompt."""
    expected = solve(prompt)
    if expected is None:
        return None
    return (FORMAT_RE.match(completion.strip()) is not None and steps_hold(completion)
            and completion.strip().rsplit(ANSWER_PREFIX, 1)[-1] == expected)


def family_counts(problems: Iterable[Problem]) -> dict[str, int]:
    """How many problems of each family."""
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.family] = counts.get(p.family, 0) + 1
    return counts
