"""How sure is a measured accuracy? Intervals and paired comparisons for the course's evaluations.

A test split of a few hundred problems measures an accuracy to a few points, not to a tenth of
one; and two models scored on the *same* problems are compared best problem by problem, because
most problems are solved by both or by neither and only the disagreements carry information.

* :func:`wilson_interval` – the 95 % interval of one accuracy (Wilson score interval; unlike
  ``p ± 1.96·se`` it stays inside [0, 1] and behaves near 0 % and 100 %).
* :func:`paired_difference` – the difference of two models on the same problems, with a paired
  bootstrap 95 % interval (resample problems, keep each problem's pair of outcomes together) and
  McNemar's exact test on the discordant problems (those exactly one model got right).
* :func:`resolvable_difference` – the smallest difference a test of ``n`` problems can tell apart
  (the half-width of a 95 % interval of a difference between two uncorrelated accuracies).
* :func:`format_accuracy` / :func:`describe_difference` – the sentences the notebooks render, so
  that no claim about a difference is stated without its interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054   # the standard normal's 97.5 % quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of ``successes`` out of ``n``."""
    if n <= 0:
        raise ValueError("an interval needs at least one problem (n > 0)")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n]: got {successes} of {n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Accuracy:
    """An accuracy with its 95 % (Wilson) interval."""

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.1%} [{self.low:.1%}, {self.high:.1%}]"


def accuracy(correct: Sequence[bool]) -> Accuracy:
    """The accuracy of per-problem outcomes, with its 95 % interval."""
    n, k = len(correct), sum(bool(c) for c in correct)
    low, high = wilson_interval(k, n)
    return Accuracy(k / n, low, high, n)


def accuracy_of(value: float, n: int) -> Accuracy:
    """The same for an accuracy known only as a fraction of ``n`` problems (rounded to a count)."""
    k = round(value * n)
    low, high = wilson_interval(k, n)
    return Accuracy(k / n, low, high, n)


def format_accuracy(value: float, n: int) -> str:
    """``82.7 % [78.0 %, 86.5 %]``: an accuracy on ``n`` problems with its 95 % interval."""
    return str(accuracy_of(value, n))


@dataclass(frozen=True)
class PairedDifference:
    """Model A minus model B on the same problems (fractions; × 100 for points)."""

    diff: float           # acc(A) − acc(B)
    low: float            # paired bootstrap 95 % interval of diff
    high: float
    p_value: float        # McNemar's exact two-sided test
    only_a: int           # problems A solved and B did not
    only_b: int           # problems B solved and A did not
    n: int

    @property
    def distinguishable(self) -> bool:
        """True when the 95 % interval excludes 0 *and* McNemar's test agrees (p < 0.05): the two
        models differ at this test size. Where the bootstrap and the exact test disagree – a
        borderline difference – the course does not call a winner."""
        return (self.low > 0 or self.high < 0) and self.p_value < 0.05


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p-value: under "no difference" each discordant problem is a fair
    coin, so the smaller count is Binomial(only_a + only_b, 1/2)."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m
    return min(1.0, 2 * tail)


def paired_difference(correct_a: Sequence[bool], correct_b: Sequence[bool], *, n_boot: int = 10_000,
                      seed: int = 0) -> PairedDifference:
    """Accuracy of A minus accuracy of B on the same problems, with a paired bootstrap interval.

    Each bootstrap draw resamples problems with replacement and keeps every problem's two outcomes
    together, so the interval reflects how much the *disagreements* vary – narrower than two
    separate intervals suggest, because the problems both models solve cancel out.
    """
    if len(correct_a) != len(correct_b):
        raise ValueError(f"the two models were scored on different problems ({len(correct_a)} vs {len(correct_b)})")
    n = len(correct_a)
    if n == 0:
        raise ValueError("a comparison needs at least one problem")
    delta = [int(bool(a)) - int(bool(b)) for a, b in zip(correct_a, correct_b)]
    only_a, only_b = delta.count(1), delta.count(-1)
    rng = random.Random(seed)
    draws = sorted(sum(rng.choices(delta, k=n)) / n for _ in range(n_boot))
    low, high = draws[int(0.025 * n_boot)], draws[min(n_boot - 1, int(0.975 * n_boot))]
    return PairedDifference(sum(delta) / n, low, high, mcnemar_p(only_a, only_b), only_a, only_b, n)


def resolvable_difference(n: int, accuracy: float = 0.8) -> float:
    """The half-width of a 95 % interval of the difference between two accuracies near ``accuracy``
    measured on ``n`` problems each, with uncorrelated errors: differences smaller than this cannot be
    told apart. (Paired comparisons of similar models do better; this is the conservative figure.)"""
    if n <= 0:
        raise ValueError("n must be positive")
    return Z95 * math.sqrt(2 * accuracy * (1 - accuracy) / n)


def describe_difference(name_a, name_b, d: PairedDifference):
    """One sentence on A − B, rendered from the measured pair: the difference in points, its paired
    95 % interval, McNemar's p, and whether the two can be told apart at this test size. A message
    (:func:`utils.messages.msg`: ``str()`` renders it in the course's language); the names may be messages too."""
    from .messages import msg

    values = dict(a=name_a, b=name_b, diff=100 * d.diff, low=100 * d.low, high=100 * d.high, p=d.p_value,
                  only_a=d.only_a, only_b=d.only_b, n=d.n)
    if d.distinguishable:
        return msg("{a} − {b}: {diff:+.1f} points (paired 95 % interval [{low:+.1f}, {high:+.1f}], McNemar p = {p:.2g}; "
                   "{only_a} problems only {a} solved, {only_b} only {b}, of {n}) – {better} is better at this test size.",
                   better=name_a if d.diff > 0 else name_b, **values)
    return msg("{a} − {b}: {diff:+.1f} points (paired 95 % interval [{low:+.1f}, {high:+.1f}], McNemar p = {p:.2g}; "
               "{only_a} problems only {a} solved, {only_b} only {b}, of {n}) – not distinguishable at this test size.",
               **values)
