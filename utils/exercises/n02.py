"""Checkers for notebook 02's exercises (PPO's GAE and clip, GRPO's groups).

Each compares the learner's answer with what the pipeline's own code computes
(:func:`utils.ppo.gae`, :func:`utils.grpo.zero_variance_share`), prints ✓ or ✗ with a hint,
and returns ``True``/``False``.
"""

from __future__ import annotations

from ..messages import msg
from . import accepted, as_number, choose, verdict


def _floats(x) -> list[float]:
    """A list, tuple or 1-row tensor of numbers as a flat list of floats."""
    if hasattr(x, "detach"):
        x = x.detach().flatten().tolist()
    return [float(v) for v in x]


def check_gae(answer, rewards, values, gamma: float = 1.0, lam: float = 0.95, tol: float = 1e-3) -> bool:
    """Exercise 1: ``answer`` – the advantages A_0 … A_{T-1} you worked out for one sequence with
    per-token ``rewards`` and critic ``values`` – against :func:`utils.ppo.gae` (value after the
    last token = 0)."""
    import torch

    from ..ppo import gae

    r, v, mine = _floats(rewards), _floats(values), _floats(answer)
    if len(mine) != len(r):
        return verdict(False, "", msg("give one advantage per token: {n} numbers, not {yours}", n=len(r),
                                      yours=len(mine)))
    adv, _ = gae(torch.tensor([r]), torch.tensor([v]), torch.ones(1, len(r)), gamma, lam)
    right = adv[0].tolist()
    ok = all(abs(a - b) <= tol for a, b in zip(mine, right))
    return verdict(ok, msg("these are GAE's advantages for γ = {gamma}, λ = {lam}", gamma=gamma, lam=lam),
                   msg("go backwards from the last token: δ_t = r_t + γ·V_{{t+1}} − V_t (V after the last "
                       "token is 0), then A_t = δ_t + γ·λ·A_{{t+1}}. With λ = 0, A_t is just δ_t; with "
                       "γ = λ = 1 it is (sum of the rewards from t on) − V_t."))


def check_zero_variance_share(answer: float, rewards, group_size: int) -> bool:
    """Exercise 3: ``answer`` – the share (0–1) of groups of ``group_size`` consecutive rewards
    that are all equal, counted by you – against :func:`utils.grpo.zero_variance_share`."""
    from ..grpo import zero_variance_share

    r = _floats(rewards)
    n_groups = max(1, len(r) // group_size)
    right = zero_variance_share(r, group_size)
    value = as_number(answer)   # 0.25, "0.25", "1/4", "０.２５"
    if value is None:
        return verdict(False, "", msg("answer with a number between 0 and 1 (0.25, or 1/4) – got {answer}",
                                      answer=repr(answer)))
    ok = abs(value - right) <= 0.5 / n_groups   # the right count of groups, as a share
    hint = (msg("a share is between 0 and 1 (0.25, not 25)") if value > 1 else
            msg("split the rewards into {n_groups} groups of {group_size} consecutive values and count the "
                "groups whose values are all the same (all right or all wrong); divide by the number of groups. "
                "For a prompt the policy solves with probability p, a group is all-equal with probability "
                "p^G + (1 − p)^G, which shrinks as G grows.", n_groups=n_groups, group_size=group_size))
    return verdict(ok, msg("{share:.0%} of the groups of {group_size} are all-equal: they get zero advantage",
                           share=right, group_size=group_size), hint)


CLIP_CHOICES = {"higher": ("more", "up", "increase", "increases", "larger", "更高", "升高", "增大", "变大", "上升",
                           "提高", "增加", "更多"),
                "lower": ("less", "down", "decrease", "decreases", "smaller", "更低", "降低", "减小", "变小", "下降",
                          "减少", "更少"),
                "the same": ("same", "unchanged", "不变", "一样", "相同", "持平")}


def check_clip_prediction(answer: str) -> bool:
    """Exercise 2: does a smaller ``clip_epsilon`` make PPO's ``clip_frac`` (share of tokens whose
    clipped term is the active one) "higher", "lower" or "the same"? Accepts the English and Chinese words
    of :data:`CLIP_CHOICES` (更高, 更低, 不变, …)."""
    said = choose(answer, CLIP_CHOICES)
    if said is None:
        return verdict(False, "", msg("answer one of {choices} – got {answer}", choices=accepted(CLIP_CHOICES),
                                      answer=repr(answer)))
    return verdict(said == "higher", msg("a narrower band [1 − ε, 1 + ε] leaves more tokens' ratios outside it, so "
                                         "more tokens are clipped (and get no gradient)"),
                   msg("the same ratios ρ_t, a narrower band [1 − ε, 1 + ε]: how many ρ_t fall outside it?"))


# ---------------------------------------------------------------------------------------
# Implementation exercises 4–6: GAE, the clipped surrogate, GRPO's group advantages
# ---------------------------------------------------------------------------------------

def _gae_cases():
    import torch

    g = torch.Generator().manual_seed(2)
    cases = [(torch.randn(6, generator=g), torch.randn(6, generator=g), gamma, lam)
             for gamma, lam in ((1.0, 0.95), (0.9, 0.5), (0.99, 0.0), (1.0, 1.0))]
    cases.append((torch.tensor([0.0, 0.0, 0.0, 1.0]), torch.tensor([0.2, 0.4, 0.5, 0.7]), 1.0, 0.95))  # reward at the end
    cases.append((torch.tensor([0.5]), torch.tensor([0.3]), 1.0, 0.95))                                  # one token
    return cases


def _gae_loop(rewards, values, gamma, lam, *, next_value, lam_used=True):
    """The learner's backward loop with one step of it swapped (for the typical mistakes)."""
    import torch

    adv, last = torch.zeros_like(rewards), 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_value(values, t) - values[t]
        last = delta + gamma * (lam if lam_used else 1.0) * last
        adv[t] = last
    return adv


def _gae_mistakes():
    from .grading import Mistake

    def nxt(v, t):
        return v[t + 1] if t + 1 < len(v) else 0.0

    return [
        Mistake("off by one step", lambda r, v, g, l: _gae_loop(r, v, g, l, next_value=lambda v, t: v[t]),
                msg("off by one step: δ_t = r_t + γ·V_{{t+1}} − V_t needs the value of the *next* token, V_{{t+1}}, "
                    "not V_t")),
        Mistake("bootstrapped past the end", lambda r, v, g, l: _gae_loop(
                    r, v, g, l, next_value=lambda v, t: v[t + 1] if t + 1 < len(v) else v[t]),
                msg("after the last token the value is 0 – the response has ended, there is no next state to "
                    "bootstrap from")),
        Mistake("λ left out", lambda r, v, g, l: _gae_loop(r, v, g, l, next_value=nxt, lam_used=False),
                msg("the recursion is A_t = δ_t + γ·λ·A_{{t+1}}: λ belongs in it (λ = 0 gives one-step TD, λ = 1 "
                    "Monte Carlo)")),
    ]


def check_gae_impl(fn) -> bool:
    """Exercise 4 (implementation): ``fn(rewards, values, gamma, lam)`` – 1-D tensors over one response's
    tokens – returns the GAE advantages A_0 … A_{T-1} (value after the last token = 0). Checked against
    :func:`utils.ppo.gae` on random sequences and edge cases (one token, λ = 0, λ = 1)."""
    import torch

    from ..ppo import gae
    from .grading import grade

    def reference(r, v, gamma, lam):
        return gae(r[None], v[None], torch.ones(1, len(r)), gamma, lam)[0][0]

    return grade(fn, reference, _gae_cases(), mistakes=_gae_mistakes(),
                 right=msg("your GAE matches utils.ppo.gae: δ_t backwards, A_t = δ_t + γ·λ·A_{{t+1}}"))


def _surrogate_cases():
    import torch

    g = torch.Generator().manual_seed(3)
    cases = []
    for eps in (0.2, 0.1):
        logp = torch.randn(3, 5, generator=g) * 0.3 - 1
        old = logp + torch.randn(3, 5, generator=g) * 0.4       # ratios well outside [1 − ε, 1 + ε] too
        adv = torch.randn(3, 5, generator=g)
        mask = (torch.rand(3, 5, generator=g) > 0.3).float()
        mask[:, 0] = 1.0
        cases.append((logp, old, adv, mask, eps))
    return cases


def _surrogate_mistakes():
    import torch

    from .grading import Mistake

    def terms(logp, old, adv, eps):
        ratio = torch.exp(logp - old)
        return ratio * adv, torch.clamp(ratio, 1 - eps, 1 + eps) * adv

    def masked(x, mask):
        return (x * mask).sum() / mask.sum()

    return [
        Mistake("max instead of min", lambda lp, o, a, m, e: -masked(torch.max(*terms(lp, o, a, e)), m),
                msg("the clip is on the wrong side: take the *minimum* of ρ·A and clip(ρ)·A – the pessimistic bound – "
                    "so a large ratio can never earn more than the clipped one")),
        Mistake("no minus sign", lambda lp, o, a, m, e: masked(torch.min(*terms(lp, o, a, e)), m),
                msg("an optimiser minimises the loss and PPO maximises the surrogate: return −mean(min(…))")),
        Mistake("mask ignored", lambda lp, o, a, m, e: -torch.min(*terms(lp, o, a, e)).mean(),
                msg("average over the real tokens only – Σ(x·mask)/Σ mask – padding must not count")),
        Mistake("clipped term only", lambda lp, o, a, m, e: -masked(terms(lp, o, a, e)[1], m),
                msg("the clipped term alone is not PPO's objective: min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)")),
    ]


def check_clipped_surrogate(fn) -> bool:
    """Exercise 5 (implementation): ``fn(logp, old_logp, advantages, mask, clip_epsilon)`` – (batch, T)
    tensors – returns PPO's clipped surrogate loss, −masked mean of min(ρ·A, clip(ρ)·A), ρ = exp(logp −
    old_logp). Checked against :func:`utils.ppo.policy_loss` on random batches with padding."""
    from ..ppo import policy_loss
    from .grading import grade

    return grade(fn, lambda lp, o, a, m, e: policy_loss(lp, o, a, m, e)[0], _surrogate_cases(),
                 mistakes=_surrogate_mistakes(), right=msg("your loss is PPO's clipped surrogate (utils.ppo.policy_loss)"))


def _group_cases():
    import torch

    g = torch.Generator().manual_seed(4)
    return [(torch.randint(0, 2, (12,), generator=g).float(), 4),
            (torch.rand(8, generator=g), 2),
            (torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]), 4),     # an all-equal group: advantage 0
            (torch.tensor([0.1, 1.1, 0.0, 1.0, 0.0, 0.0]), 3)]


def _group_mistakes():
    from .grading import Mistake

    def groups(r, n):
        return r.reshape(-1, n)

    return [
        Mistake("biased std", lambda r, n: ((groups(r, n) - groups(r, n).mean(1, keepdim=True))
                                            / (groups(r, n).std(1, keepdim=True, unbiased=False) + 1e-4)).flatten(),
                msg("the standard deviation is the unbiased one (n − 1), as torch.std and TRL compute it – "
                    "not `unbiased=False`")),
        Mistake("no mean subtracted", lambda r, n: (groups(r, n) / (groups(r, n).std(1, keepdim=True) + 1e-4)).flatten(),
                msg("subtract each group's mean first: the advantage says how much better a sample is than its "
                    "siblings")),
        Mistake("batch statistics", lambda r, n: (r - r.mean()) / (r.std() + 1e-4),
                msg("normalise within each group of one prompt's samples, not over the whole batch")),
        Mistake("no epsilon", lambda r, n: ((groups(r, n) - groups(r, n).mean(1, keepdim=True))
                                            / groups(r, n).std(1, keepdim=True)).flatten(),
                msg("add 1e-4 to the standard deviation before dividing: a group whose rewards are all equal has "
                    "std 0, and its advantages must come out 0, not NaN")),
        Mistake("no std scaling", lambda r, n: (groups(r, n) - groups(r, n).mean(1, keepdim=True)).flatten(),
                msg("divide by the group's standard deviation (+ 1e-4) – leaving it out is Dr. GRPO's variant, not "
                    "GRPO's")),
    ]


def check_group_advantages_impl(fn) -> bool:
    """Exercise 6 (implementation): ``fn(rewards, group_size)`` – a 1-D tensor, prompt-major (each prompt's
    ``group_size`` samples together) – returns GRPO's advantages (r − group mean) / (group std + 1e-4),
    std unbiased. Checked against :func:`utils.grpo.group_advantages` (``scale="group"``)."""
    import torch

    from ..grpo import group_advantages
    from .grading import grade

    return grade(fn, lambda r, n: torch.tensor(group_advantages(r.tolist(), n, "group")), _group_cases(),
                 mistakes=_group_mistakes(), tol=1e-4,
                 right=msg("your advantages are GRPO's: each sample against its own group's mean and spread"))
