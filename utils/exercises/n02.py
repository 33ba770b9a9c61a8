"""Checkers for notebook 02's exercises (PPO's GAE and clip, GRPO's groups).

Each compares the learner's answer with what the pipeline's own code computes
(:func:`utils.ppo.gae`, :func:`utils.grpo.zero_variance_share`), prints ✓ or ✗ with a hint,
and returns ``True``/``False``.
"""

from __future__ import annotations

from . import verdict


def _floats(x) -> list[float]:
    """A list, tuple or 1-row tensor of numbers as a flat list of floats."""
    if hasattr(x, "detach"):
        x = x.detach().flatten().tolist()
    return [float(v) for v in x]


def check_gae(answer, rewards, values, gamma: float = 1.0, lam: float = 0.95, tol: float = 1e-3) -> bool:
    """Exercise 2: ``answer`` – the advantages A_0 … A_{T-1} you worked out for one sequence with
    per-token ``rewards`` and critic ``values`` – against :func:`utils.ppo.gae` (value after the
    last token = 0)."""
    import torch

    from ..ppo import gae

    r, v, mine = _floats(rewards), _floats(values), _floats(answer)
    if len(mine) != len(r):
        return verdict(False, "", f"give one advantage per token: {len(r)} numbers, not {len(mine)}")
    adv, _ = gae(torch.tensor([r]), torch.tensor([v]), torch.ones(1, len(r)), gamma, lam)
    right = adv[0].tolist()
    ok = all(abs(a - b) <= tol for a, b in zip(mine, right))
    return verdict(ok, f"these are GAE's advantages for γ = {gamma}, λ = {lam}",
                   "go backwards from the last token: δ_t = r_t + γ·V_{t+1} − V_t (V after the last "
                   "token is 0), then A_t = δ_t + γ·λ·A_{t+1}. With λ = 0, A_t is just δ_t; with "
                   "γ = λ = 1 it is (sum of the rewards from t on) − V_t.")


def check_zero_variance_share(answer: float, rewards, group_size: int) -> bool:
    """Exercise 1: ``answer`` – the share (0–1) of groups of ``group_size`` consecutive rewards
    that are all equal, counted by you – against :func:`utils.grpo.zero_variance_share`."""
    from ..grpo import zero_variance_share

    r = _floats(rewards)
    n_groups = max(1, len(r) // group_size)
    right = zero_variance_share(r, group_size)
    ok = abs(float(answer) - right) <= 0.5 / n_groups   # the right count of groups, as a share
    hint = ("a share is between 0 and 1 (0.25, not 25)" if float(answer) > 1 else
            f"split the rewards into {n_groups} groups of {group_size} consecutive values and count the "
            "groups whose values are all the same (all right or all wrong); divide by the number of groups. "
            "For a prompt the policy solves with probability p, a group is all-equal with probability "
            "p^G + (1 − p)^G, which shrinks as G grows.")
    return verdict(ok, f"{right:.0%} of the groups of {group_size} are all-equal: they get zero advantage", hint)


def check_clip_prediction(answer: str) -> bool:
    """Exercise 3: does a smaller ``clip_epsilon`` make PPO's ``clip_frac`` (share of tokens whose
    clipped term is the active one) "higher", "lower" or "the same"?"""
    ok = str(answer).strip().lower() in ("higher", "more", "up", "increase", "increases", "larger")
    return verdict(ok, "a narrower band [1 − ε, 1 + ε] leaves more tokens' ratios outside it, so more "
                       "tokens are clipped (and get no gradient)",
                   "the same ratios ρ_t, a narrower band [1 − ε, 1 + ε]: how many ρ_t fall outside it?")
