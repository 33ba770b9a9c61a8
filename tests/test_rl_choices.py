"""The pieces behind notebook 02's RL fixes and the validation-based choices (fast, no training)."""

import types

import pytest
import torch

from utils.grpo import zero_variance_share
from utils.tasks import make_problems


def test_zero_variance_share_counts_groups_with_equal_rewards():
    rewards = [1, 1, 0, 0] + [1, 1, 1, 1] + [0, 0, 0, 0]
    assert zero_variance_share(rewards, 4) == pytest.approx(2 / 3)
    assert zero_variance_share([1, 0, 1, 0], 2) == 0.0
    assert zero_variance_share([0, 0, 0, 0], 2) == 1.0


def test_ppo_reward_is_the_verifier_plus_a_small_standardised_rm_term(monkeypatch):
    import utils.reward
    from utils.teacher import ppo_reward_fn

    problems = make_problems(6, "train", seed=0, families=("add",))
    answers = {p.prompt: p.answer for p in problems}
    raw = [10.0, -3.0, 7.0, 100.0, 0.0, 2.0]  # an unbounded, badly scaled reward model
    monkeypatch.setattr(utils.reward, "score", lambda model, tok, prompts, completions, batch_size=256: raw[:len(prompts)])
    prompts = [p.prompt for p in problems]
    completions = [p.completion if i % 2 == 0 else "<think>1+1+0=2</think>A:2" for i, p in enumerate(problems)]
    right = torch.tensor([1.0 if i % 2 == 0 else 0.0 for i in range(6)])

    article = ppo_reward_fn(None, None, answers, use_verifier=False)(prompts, completions)
    assert article == raw  # the article's recipe: the reward model alone

    shaped = torch.tensor(ppo_reward_fn(None, None, answers, use_verifier=True, rm_weight=0.1)(prompts, completions))
    shaping = shaped - right
    assert shaping.mean().abs() < 1e-5 and shaping.std().item() == pytest.approx(0.1, rel=1e-3)
    assert shaping.abs().max() < 0.5  # small next to the verifier's step of 1

    plain = ppo_reward_fn(None, None, answers, use_verifier=True, rm_weight=0.0)(prompts, completions)
    assert plain == right.tolist()


def test_pass_at_k_by_difficulty(monkeypatch):
    import utils.generation as g

    problems = [p for p in make_problems(30, "val", seed=1, families=("add",))][:6]
    greedy_ok = [True, False, False, True, False, False]
    sample_ok = [[1, 0], [0, 1], [0, 0], [1, 1], [0, 0], [0, 1]]  # k = 2 samples each

    def fake_evaluate(model, tok, probs, max_new_tokens, batch_size=None):
        return types.SimpleNamespace(correct=greedy_ok)

    def fake_generate(model, tok, prompts, **kw):
        texts = [probs.completion if ok else "<think>x</think>A:0" for probs, oks in zip(problems, sample_ok) for ok in oks]
        return texts, 0

    monkeypatch.setattr(g, "evaluate", fake_evaluate)
    monkeypatch.setattr(g, "generate", fake_generate)
    out = g.pass_at_k(None, None, problems, k=2, max_new_tokens=8)
    assert out["all"]["pass@1"] == pytest.approx(2 / 6) and out["all"]["pass@2"] == pytest.approx(4 / 6)
    for level in {str(p.difficulty) for p in problems}:
        idx = [i for i, p in enumerate(problems) if str(p.difficulty) == level]
        assert out[level]["n"] == len(idx)
        assert out[level]["pass@2"] == pytest.approx(sum(any(sample_ok[i]) for i in idx) / len(idx))
    with pytest.raises(ValueError):
        g.pass_at_k(None, None, problems, k=0, max_new_tokens=8)


def test_sft_keeps_the_best_checkpoint_on_validation():
    from utils.sft import _EvalEvery

    model = torch.nn.Linear(2, 1)
    scores = iter([0.2, 0.7, 0.4])
    history = []
    cb = _EvalEvery(lambda m: next(scores), every=1, history=history, keep_best=True)
    state = types.SimpleNamespace(global_step=0, max_steps=3)
    weights = []
    for step in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(float(step))
        weights.append(model.weight.clone())
        state.global_step = step
        cb.on_step_end(None, state, None, model=model)
    assert history == [(1, 0.2), (2, 0.7), (3, 0.4)]
    assert cb.best == 0.7 and torch.equal(cb.best_state["weight"], weights[1])


def test_sft_stops_early_after_patience_evaluations_without_improvement():
    from utils.sft import _EvalEvery

    model = torch.nn.Linear(2, 1)
    scores = iter([0.5, 0.6, 0.6, 0.55, 0.9])
    cb = _EvalEvery(lambda m: next(scores), every=1, history=[], keep_best=True, patience=2)
    state, control = types.SimpleNamespace(global_step=0, max_steps=10), types.SimpleNamespace(should_training_stop=False)
    for step in (1, 2, 3):
        state.global_step = step
        cb.on_step_end(None, state, control, model=model)
    assert not control.should_training_stop  # one evaluation without improvement: go on
    state.global_step = 4
    cb.on_step_end(None, state, control, model=model)
    assert control.should_training_stop and cb.best == 0.6
