"""Notebook 02's exercise checkers (utils.exercises.n02) and the GRPO toy helper – fast, no training."""

import pytest
import torch

from utils.exercises.n02 import check_clip_prediction, check_gae, check_zero_variance_share
from utils.grpo import group_advantages, zero_variance_share
from utils.ppo import gae

# The notebook's toy: five response tokens, the sequence reward on the last one.
REWARDS = [-0.01, 0.0, -0.02, 0.0, 1.0]
VALUES = [0.3, 0.4, 0.5, 0.7, 0.9]


def test_check_gae_accepts_gae_and_rejects_the_wrong_lambda():
    for lam in (0.0, 0.95, 1.0):
        adv, _ = gae(torch.tensor([REWARDS]), torch.tensor([VALUES]), torch.ones(1, 5), 1.0, lam)
        assert check_gae(adv[0].tolist(), REWARDS, VALUES, gamma=1.0, lam=lam)
        assert check_gae(adv[0], REWARDS, VALUES, gamma=1.0, lam=lam)  # a tensor works too
    # λ = 0 by hand: A_t = δ_t = r_t + V_{t+1} − V_t
    by_hand = [-0.01 + 0.4 - 0.3, 0.0 + 0.5 - 0.4, -0.02 + 0.7 - 0.5, 0.0 + 0.9 - 0.7, 1.0 - 0.9]
    assert check_gae(by_hand, REWARDS, VALUES, gamma=1.0, lam=0.0)
    # a typical mistake: answering with the λ = 1 advantages (returns − V) when λ = 0 was asked
    lam1, _ = gae(torch.tensor([REWARDS]), torch.tensor([VALUES]), torch.ones(1, 5), 1.0, 1.0)
    assert not check_gae(lam1[0].tolist(), REWARDS, VALUES, gamma=1.0, lam=0.0)
    assert not check_gae(by_hand[:4], REWARDS, VALUES, gamma=1.0, lam=0.0)  # one number short


def test_check_zero_variance_share():
    rewards = [1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1]  # groups of 4: equal, mixed, equal, mixed
    assert check_zero_variance_share(0.5, rewards, 4)
    assert not check_zero_variance_share(0.25, rewards, 4)   # counted only the all-right group
    assert not check_zero_variance_share(50, rewards, 4)     # a percentage, not a share
    assert check_zero_variance_share(0.0, rewards, 8)        # both groups of 8 are mixed
    assert check_zero_variance_share(zero_variance_share([1.0] * 8, 2), [1.0] * 8, 2)


def test_check_clip_prediction():
    assert check_clip_prediction("higher")
    assert check_clip_prediction(" Higher ")
    assert not check_clip_prediction("lower")
    assert not check_clip_prediction("the same")


def test_group_advantages_by_hand():
    # [1, 1, 0, 0]: mean 0.5, unbiased std sqrt(1/3) → ±0.5 / (0.57735 + 1e-4)
    adv = group_advantages([1, 1, 0, 0], 4)
    assert adv == pytest.approx([0.8659, 0.8659, -0.8659, -0.8659], abs=1e-4)
    # an all-equal group teaches nothing, whatever the scaling
    for scale in ("group", "batch", "none"):
        assert group_advantages([1, 1, 1, 1], 4, scale) == [0.0] * 4
    # "none" only centres; "batch" divides by the batch's std
    assert group_advantages([1, 0, 0.1, 0], 2, "none") == pytest.approx([0.5, -0.5, 0.05, -0.05])
    batch = group_advantages([1, 1, 0, 0, 1, 1, 1, 1], 4, "batch")
    std = torch.tensor([1.0, 1, 0, 0, 1, 1, 1, 1]).std().item()
    assert batch == pytest.approx([0.5 / (std + 1e-4)] * 2 + [-0.5 / (std + 1e-4)] * 2 + [0.0] * 4)
    assert sum(group_advantages([0.3, 0.9, 0.1, 0.5], 4)) == pytest.approx(0.0, abs=1e-9)
    assert group_advantages([1, 0], 1) == [0.0, 0.0]  # a group of one has no baseline to beat
    with pytest.raises(ValueError):
        group_advantages([1, 0, 1], 2)
    with pytest.raises(ValueError):
        group_advantages([1, 0], 2, "mean")


# ---------------------------------------------------------------------------------------
# The implementation exercises 4–6 as the notebooks hold them
# ---------------------------------------------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# (exercise cell in 02_ppo_teacher, its solution in solutions/02_ppo_teacher, the function's name)
IMPL_EXERCISES = [("b1d0a00a", "b1d0a0f2", "my_gae"), ("b1d0a00c", "b1d0a0f4", "my_clipped_surrogate"),
                  ("b1d0a00e", "b1d0a0f6", "my_group_advantages")]


def _cell(path: Path, cell_id: str) -> str:
    return next("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["id"] == cell_id)


@pytest.mark.parametrize("exercise, _, name", IMPL_EXERCISES)
def test_an_unwritten_exercise_prints_a_hint_and_does_not_raise(exercise, _, name, capsys):
    ns = {"torch": torch}
    exec(_cell(_NOTEBOOKS / "02_ppo_teacher.ipynb", exercise), ns)
    assert ns["passed"] is False
    assert "not written yet" in capsys.readouterr().out
    assert callable(ns[name])


@pytest.mark.parametrize("_, solution, name", IMPL_EXERCISES)
def test_the_worked_solutions_pass_their_checkers(_, solution, name, capsys):
    ns = {"torch": torch}
    exec(_cell(_NOTEBOOKS / "solutions" / "02_ppo_teacher.ipynb", solution), ns)   # asserts the checker's True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("exercise, solution, name", IMPL_EXERCISES)
def test_exercise_and_solution_share_the_signature_and_docstring(exercise, solution, name):
    import inspect

    funcs = []
    for path, cell in ((_NOTEBOOKS / "02_ppo_teacher.ipynb", exercise), (_NOTEBOOKS / "solutions" / "02_ppo_teacher.ipynb", solution)):
        ns = {"torch": torch}
        source = _cell(path, cell).rsplit("\n\n\n", 1)[0]     # the import and the def, not the checker's call
        exec(source, ns)
        funcs.append(ns[name])
    assert inspect.signature(funcs[0]) == inspect.signature(funcs[1])
    assert funcs[0].__doc__ == funcs[1].__doc__
