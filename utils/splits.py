"""The three splits of a run's problems: train, validation, test (taught in notebook 01).

Every choice (RL checkpoint, student arm, reward threshold) is made on validation; every
reported figure is on test; training reads train. Validation and test never depend on the
run's seed. Used by every stage, so it sits below them all.
"""

from __future__ import annotations

import random

from .config import Run
from .tasks import Problem, make_problems


def _gsm8k_train_and_val(p) -> tuple[list[Problem], list[Problem]]:
    """GSM8K has no validation split: carve ``n_val`` problems out of its train split.

    The carving uses ``eval_seed`` (not the run's seed), so validation is the same for every
    seed and never overlaps any run's training problems.
    """
    from .gsm8k import load_problems

    problems = load_problems(p.data_path, "train")
    random.Random(p.eval_seed).shuffle(problems)
    return problems[p.n_val:], problems[: p.n_val]


def train_problems(run: Run) -> list[Problem]:
    """The training problems of this run (they depend on ``run.seed``).

    Task world: ``n_train`` problems of the train split, drawn with the seed. GSM8K
    (``data_source="gsm8k"``): its train split less the validation problems – from
    ``data_path``, or the hub – shuffled with the seed, the first ``n_train``.
    """
    p = run.profile
    if p.data_source == "gsm8k":
        problems, _ = _gsm8k_train_and_val(p)
        random.Random(run.seed).shuffle(problems)
        return problems[: p.n_train]
    return make_problems(p.n_train, "train", seed=run.seed, families=p.families,
                         difficulties=p.difficulties)


def val_problems(run: Run) -> list[Problem]:
    """The validation problems: every choice (RL checkpoint, student arm, threshold) is made
    on these. The same for every seed. GSM8K: ``n_val`` problems carved from its train split."""
    p = run.profile
    if p.data_source == "gsm8k":
        return _gsm8k_train_and_val(p)[1]
    return make_problems(p.n_val, "val", seed=p.eval_seed, families=p.families,
                         difficulties=p.difficulties)


def test_problems(run: Run) -> list[Problem]:
    """The test problems every reported figure is measured on – never used to choose anything.
    The same for every seed. GSM8K: the first ``n_test`` problems of its test split."""
    p = run.profile
    if p.data_source == "gsm8k":
        from .gsm8k import load_problems

        return load_problems(p.data_path, "test")[: p.n_test]
    return make_problems(p.n_test, "test", seed=p.eval_seed, families=p.families,
                         difficulties=p.difficulties)
