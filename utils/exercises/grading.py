"""Grading a function the learner wrote: run it beside the course's own on random inputs and edge cases.

:func:`grade` is what every implementation exercise's checker calls. For each case it copies the
inputs, calls the learner's function and answers the first problem it finds with a hint:

* the function raised (the error, and where to look), or returned ``None`` (not written yet, or no
  ``return``);
* the result is not a tensor of the expected shape, not a floating-point dtype, or holds NaN/inf;
* the function changed its inputs in place (a caller's tensors must stay as they were);
* the values differ from the reference's – then each *typical wrong answer* the checker knows
  (GAE off by one step, a missing T², a biased standard deviation, …) is tried on the same inputs,
  and if the learner's result matches one, that mistake's own hint is given.

Nothing is timed. Every checker built on it is tested against the wrong answers it names.
"""

from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..messages import Msg, msg
from . import verdict


@dataclass
class Mistake:
    """A typical wrong answer: a function computing it (same signature as the exercise's) and its hint."""

    name: str
    compute: Callable[..., Any]
    hint: Msg | str


def _as_tensor(x: Any):
    import torch

    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        return None


def _snapshot(args: Sequence[Any]) -> list[Any]:
    return [a.detach().clone() if hasattr(a, "detach") else copy.deepcopy(a) for a in args]


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def _close(mine, right, tol: float) -> bool:
    import torch

    return mine.shape == right.shape and bool(torch.allclose(mine.double(), right.double(), atol=tol, rtol=tol))


def _where(exc: BaseException) -> Msg | str:
    """The learner's line that raised (the last frame outside this package), for the hint."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "utils/exercises" not in f.filename.replace("\\", "/")]
    if frames and frames[-1].line:
        return msg(" (line {lineno}: `{line}`)", lineno=frames[-1].lineno, line=frames[-1].line)
    return ""


def and_list(items: Sequence[Any]) -> Any:
    """``a``, ``a and b``, ``a and b and c`` – a message value (in Chinese ``a 和 b``, ``a、b 和 c``)."""
    if len(items) <= 1:
        return items[0] if items else ""
    if len(items) == 2:
        return msg("{a} and {b}", a=items[0], b=items[1])
    return msg("{a} and {b} and {c}", a=and_list(items[:-2]), b=items[-2], c=items[-1])


def call_learner(fn: Callable[..., Any], args: Sequence[Any], *,
                 mutated: Msg | str | None = None) -> tuple[Any, Msg | str | None]:
    """Call the learner's ``fn`` on copies of ``args``: ``(result, None)``, or ``(None, hint)`` when it is not
    a function, raises (its line quoted), is not written yet, returns None, or changes its inputs
    (``mutated``: that hint in the exercise's own words)."""
    if not callable(fn):
        return None, msg("pass the function itself (its name, no parentheses), not {type}", type=type(fn).__name__)
    theirs = _snapshot(args)
    try:
        got = fn(*theirs)
    except NotImplementedError:
        return None, msg("the function is not written yet: replace `raise NotImplementedError` with its body")
    except Exception as exc:  # noqa: BLE001 – any error of the learner's code is a hint, not a crash
        return None, msg("your function raised {error}: {message}{where}", error=type(exc).__name__, message=str(exc),
                         where=_where(exc))
    if got is None:
        return None, msg("your function returned None: write its body and end it with `return …`")
    if any(not _same(a, b) for a, b in zip(theirs, args)):
        return None, mutated or msg("your function changed its inputs in place (an in-place op such as `+=`, "
                                    "`[...] =`, `.sort()` or `.sub_()` on an argument): work on new objects and leave "
                                    "the caller's alone")
    return got, None


def _compare_rows(got: Any, expected: list[dict], args: tuple, mistakes: Sequence[Mistake]) -> tuple[bool, Msg | str]:
    """A function that returns rows (a filter): the same rows, in the same order, as the reference."""
    if not isinstance(got, list) or not all(isinstance(r, dict) for r in got):
        return False, msg("return a list of the rows you keep – the row dicts themselves, unchanged")
    if got == expected:
        return True, ""
    for mistake in mistakes:
        if got == mistake.compute(*_snapshot(args)):
            return False, mistake.hint
    extra = [r for r in got if r not in expected]
    missing = [r for r in expected if r not in got]
    if extra:
        return False, msg("you keep {n} row(s) the course drops, e.g. {example}", n=len(extra),
                          example=repr(extra[0].get("completion", extra[0])))
    if missing:
        return False, msg("you drop {n} row(s) the course keeps, e.g. {example}", n=len(missing),
                          example=repr(missing[0].get("completion", missing[0])))
    return False, msg("the right rows, in another order: keep the order they came in")


def diagnose(fn: Callable[..., Any], reference: Callable[..., Any], cases: Sequence[tuple],
             mistakes: Sequence[Mistake] = (), tol: float = 1e-5) -> tuple[bool, Msg | str]:
    """``(True, "")`` when ``fn`` agrees with ``reference`` on every case, else ``(False, hint)``.

    ``cases``: argument tuples (each copied before the call). ``reference`` gives the right result
    (a tensor, or a number); ``mistakes`` are tried, in order, when the values differ.
    """
    for args in cases:
        got, hint = call_learner(fn, args)
        if hint:
            return False, hint
        expected = reference(*_snapshot(args))
        if isinstance(expected, list) and all(isinstance(x, dict) for x in expected):   # rows, not numbers
            ok, hint = _compare_rows(got, expected, args, mistakes)
            if not ok:
                return False, hint
            continue
        right = _as_tensor(expected)
        mine = _as_tensor(got)
        if mine is None:
            return False, msg("return a tensor (or a number), not {type}", type=type(got).__name__)
        if mine.shape != right.shape:
            return False, msg("the result should have shape {shape}, yours has {yours}",
                              shape=str(tuple(right.shape)), yours=str(tuple(mine.shape)))
        if not mine.is_floating_point():
            return False, msg("the result should be floating point (like {dtype}), yours is {yours}: "
                              "an integer division or an integer tensor somewhere?",
                              dtype=str(right.dtype), yours=str(mine.dtype))
        if not bool(mine.isfinite().all()):
            return False, msg("your result holds NaN or inf – a division by zero? (a group whose rewards are all "
                              "equal has standard deviation 0: add the small epsilon to the denominator)")
        if _close(mine, right, tol):
            continue
        for mistake in mistakes:
            wrong = _as_tensor(mistake.compute(*_snapshot(args)))
            if wrong is not None and _close(mine, wrong, tol):
                return False, mistake.hint
        return False, msg("the values differ from the course's on at least one input; re-read the docstring's formula")
    return True, ""


def grade(fn: Callable[..., Any], reference: Callable[..., Any], cases: Sequence[tuple], *, right: Msg | str,
          mistakes: Sequence[Mistake] = (), tol: float = 1e-5) -> bool:
    """Print ✓ ``right`` or ✗ with the hint of :func:`diagnose`; return whether ``fn`` is right."""
    ok, hint = diagnose(fn, reference, cases, mistakes, tol)
    return verdict(ok, right, hint)
