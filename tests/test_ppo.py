"""PPO pieces against hand-worked numbers, and one real update on a tiny model."""

import math

import pytest
import torch

from utils.ppo import (PPOConfig, Rollout, approx_kl, gae, kl_penalty, masked_mean, policy_loss,
                       ppo_update, token_logprobs, token_rewards, value_loss, whiten)


def test_gae_hand_worked():
    # Three response tokens, reward only at the end, gamma=1, lambda=0.5:
    # V = [0.5, 0.2, 0.4], r = [0, 0, 1]
    # delta_2 = 1 + 0 - 0.4 = 0.6;  A_2 = 0.6
    # delta_1 = 0 + 0.4 - 0.2 = 0.2; A_1 = 0.2 + 0.5 * 0.6 = 0.5
    # delta_0 = 0 + 0.2 - 0.5 = -0.3; A_0 = -0.3 + 0.5 * 0.5 = -0.05
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.4]])
    mask = torch.ones(1, 3)
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[-0.05, 0.5, 0.6]]))
    assert torch.allclose(ret, torch.tensor([[0.45, 0.7, 1.0]]))


def test_gae_skips_padding_and_prompt():
    # The same sequence with a prompt token in front and padding after: same advantages.
    rewards = torch.tensor([[9.0, 0.0, 0.0, 1.0, 7.0]])
    values = torch.tensor([[3.0, 0.5, 0.2, 0.4, 5.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[0.0, -0.05, 0.5, 0.6, 0.0]]))
    assert ret[0, 0] == 0 and ret[0, 4] == 0


def test_gae_discount():
    adv, _ = gae(torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2), gamma=0.9, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[0.9, 1.0]]))


def test_clipped_policy_loss_and_gradient_at_the_edges():
    eps = 0.2
    old = torch.zeros(4)
    # ratios: 1.1 (inside), 1.3 (above, positive advantage: clipped), 0.7 (below, negative adv: clipped),
    # 1.3 with negative advantage (unclipped side is smaller: not clipped)
    logp = torch.log(torch.tensor([1.1, 1.3, 0.7, 1.3])).requires_grad_()
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    mask = torch.ones(4)
    loss, clip_frac = policy_loss(logp, old, adv, mask, eps)
    expected = -(1.1 * 1 + 1.2 * 1 + 0.8 * -1 + 1.3 * -1) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert clip_frac.item() == pytest.approx(0.5)
    loss.backward()
    # d(-ratio*A/4)/dlogp = -ratio*A/4 where not clipped, 0 where clipped
    assert torch.allclose(logp.grad, torch.tensor([-1.1 / 4, 0.0, 0.0, 1.3 / 4]), atol=1e-6)


def test_value_loss_is_clipped():
    old = torch.tensor([0.0])
    returns = torch.tensor([1.0])
    mask = torch.ones(1)
    # v moves to 1.0 (error 0) but the clipped v is 0.2 (error 0.8): the max is taken
    assert value_loss(torch.tensor([1.0]), old, returns, mask, 0.2).item() == pytest.approx(0.5 * 0.64)
    assert value_loss(torch.tensor([0.1]), old, returns, mask, 0.2).item() == pytest.approx(0.5 * 0.81)


def test_kl_estimators():
    p = torch.distributions.Categorical(probs=torch.tensor([0.5, 0.3, 0.2]))
    q = torch.distributions.Categorical(probs=torch.tensor([0.4, 0.4, 0.2]))
    torch.manual_seed(0)
    y = p.sample((200_000,))
    true_kl = torch.distributions.kl_divergence(p, q).item()
    k1 = kl_penalty(p.log_prob(y), q.log_prob(y)).mean().item()
    assert k1 == pytest.approx(true_kl, abs=3e-3)
    # k3 estimates KL(old || new) from samples of old: here old = p, new = q
    k3 = approx_kl(q.log_prob(y), p.log_prob(y), torch.ones(len(y))).item()
    assert k3 == pytest.approx(true_kl, abs=3e-3) and k3 >= 0


def test_masked_mean_and_whiten_ignore_padding():
    x = torch.tensor([[1.0, 2.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == 1.5
    w = whiten(x, mask)
    assert w[0, 2] == 0 and masked_mean(w, mask).abs().item() < 1e-6
    assert math.isclose(masked_mean(w**2, mask).item(), 1.0, rel_tol=1e-4)


def _tiny_rollout(char_tokenizer):
    from utils.config import ModelSize
    from utils.models import build_causal_lm, build_scalar_head

    size = ModelSize(32, 1, 2, 64)
    torch.manual_seed(0)
    policy = build_causal_lm(size, char_tokenizer, seed=0)
    value = build_scalar_head(size, char_tokenizer, seed=1)
    texts = ["Q:1+2=<think>1+2=3</think>A:3", "Q:5-1=<think>5-1=4</think>A:4<pad><pad>"]
    enc = char_tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, attn = enc["input_ids"], enc["attention_mask"]
    prompt_len = 6
    resp = attn.clone().float()
    resp[:, :prompt_len] = 0
    resp = resp[:, 1:]
    with torch.no_grad():
        old = token_logprobs(policy, ids, attn)
        from utils.ppo import token_values
        vals = token_values(value, ids, attn)
    r = Rollout(ids, attn, resp, old, old.clone(), vals, torch.tensor([1.0, -1.0]))
    return policy, value, r


def test_token_rewards_put_the_score_on_the_last_response_token(char_tokenizer):
    _, _, r = _tiny_rollout(char_tokenizer)
    rewards = token_rewards(r, beta=0.1)
    for i in range(2):
        last = int(r.response_mask[i].nonzero().max())
        assert rewards[i, last].item() == pytest.approx(r.scores[i].item())
        assert (rewards[i] * (1 - r.response_mask[i])).abs().sum() == 0  # nothing on prompt/padding


def test_one_ppo_update_lowers_the_loss(char_tokenizer):
    policy, value, r = _tiny_rollout(char_tokenizer)
    cfg = PPOConfig(ppo_epochs=1, minibatch_size=2, target_kl=None, beta=0.0)
    opt = torch.optim.SGD(list(policy.parameters()) + list(value.parameters()), lr=0.5)

    def total_loss():
        from utils.ppo import token_values
        rewards = token_rewards(r, cfg.beta)
        adv, ret = gae(rewards, r.old_values, r.response_mask, cfg.gamma, cfg.lam)
        adv = whiten(adv, r.response_mask)
        with torch.no_grad():
            logp = token_logprobs(policy, r.input_ids, r.attention_mask)
            v = token_values(value, r.input_ids, r.attention_mask)
        return (policy_loss(logp, r.old_logp, adv, r.response_mask)[0]
                + cfg.vf_coef * value_loss(v, r.old_values, ret, r.response_mask)).item()

    before = total_loss()
    stats = ppo_update(policy, value, opt, r, cfg)
    assert total_loss() < before
    assert set(stats) >= {"policy_loss", "value_loss", "approx_kl", "kl_ref"}
    assert "entropy" not in stats           # not computed: entropy_coef is 0
