r"""Notebook 02: PPO for a language model, from scratch, readable top to bottom.

RLHF-PPO (Ouyang et al., 2022; Schulman et al., 2017) holds **four models**:

* the **policy** :math:`\pi_\theta` (the teacher being trained),
* a frozen **reference** :math:`\pi_{ref}` (the warm-up SFT teacher),
* a frozen **reward model** :math:`r_\phi` (notebook 02's ``reward_model``),
* a **value model** (critic) :math:`V_\psi` that predicts the return at every token.

One PPO iteration:

1. *Rollout*: sample completions :math:`y \sim \pi_\theta(\cdot|x)`; keep their token
   log-probabilities :math:`\log\pi_{old}(y_t)`, the reference's :math:`\log\pi_{ref}(y_t)`
   and the values :math:`V(s_t)`.
2. *Rewards per token*: :math:`r_t = -\beta\,(\log\pi_{old}(y_t) - \log\pi_{ref}(y_t))`
   (the ``kl_penalty``), plus the reward-model score (and optionally the verifier) on the
   last token.
3. *Advantages* by GAE: :math:`\delta_t = r_t + \gamma V_{t+1} - V_t`,
   :math:`A_t = \sum_l (\gamma\lambda)^l \delta_{t+l}`, returns :math:`R_t = A_t + V_t`;
   advantages are whitened (zero mean, unit variance over real tokens).
4. *Several epochs over minibatches*: ratio :math:`\rho_t = \exp(\log\pi_\theta - \log\pi_{old})`,
   clipped surrogate :math:`L^{clip} = -\mathbb{E}[\min(\rho_t A_t, \mathrm{clip}(\rho_t, 1-\epsilon, 1+\epsilon) A_t)]`,
   clipped value loss :math:`\tfrac12\mathbb{E}[\max((V-R)^2, (V_{old} + \mathrm{clip}(V - V_{old}, \pm\epsilon_v) - R)^2)]`,
   minus an entropy bonus. Stop early when the approximate KL to the rollout policy is too large.

Only *response* tokens count: every mean is masked so padding and prompt tokens carry no
loss. (The reference article's sketch clips with ``1 + clip_popup`` – an undefined name; the
upper bound is ``1 + clip_epsilon``.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .progress import bar


# ---------------------------------------------------------------------------------------
# The pieces, each a small pure function (unit-tested in tests/test_ppo.py)
# ---------------------------------------------------------------------------------------

def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over masked positions (advantage whitening)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``log π(y_t) - log π_ref(y_t)`` (k1; its mean over samples is the KL)."""
    return logp - ref_logp


def approx_kl(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Low-variance KL(old ‖ new) estimate (k3 = (ρ - 1) - log ρ, always ≥ 0), masked mean."""
    log_ratio = logp - old_logp
    return masked_mean(torch.expm1(log_ratio) - log_ratio, mask)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the response tokens; returns (advantages, returns).

    ``rewards``, ``values``, ``mask``: (batch, T). The value after the last real token is 0.
    """
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    next_adv = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = adv * m
        # Padding positions pass the future through unchanged.
        next_value = torch.where(m.bool(), values[:, t], next_value)
        next_adv = torch.where(m.bool(), adv, next_adv)
    return advantages, (advantages + values) * mask


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_epsilon: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate loss; also returns the fraction of tokens where clipping was active."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_epsilon, 1 + clip_epsilon) * advantages
    loss = -masked_mean(torch.min(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped < unclipped).float(), mask)
    return loss, clip_frac


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, clip_value: float = 0.2) -> torch.Tensor:
    """Clipped value loss: the worse of the clipped and unclipped squared errors."""
    v_clipped = old_values + torch.clamp(values - old_values, -clip_value, clip_value)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (v_clipped - returns) ** 2), mask)


# ---------------------------------------------------------------------------------------
# Model calls
# ---------------------------------------------------------------------------------------

#: Largest fp32 logit block computed at once (rows x tokens x vocabulary): 2**27 numbers = 512 MiB.
#: With Qwen's 152k vocabulary and 640 tokens that is one sequence at a time; a tiny model's whole batch.
LOGIT_CHUNK_NUMBERS = 2**27


def _chunk_logprobs(head, hidden: torch.Tensor, targets: torch.Tensor, with_entropy: bool):
    """log-softmax of ``head(hidden)`` at ``targets``, in fp32 (and the entropy when asked)."""
    logits = head(hidden).float()
    log_z = logits.logsumexp(-1)
    logp = logits.gather(-1, targets[..., None]).squeeze(-1) - log_z
    if not with_entropy:
        return logp
    probs = torch.softmax(logits, dim=-1)
    return logp, log_z - (probs * logits).sum(-1)


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   with_entropy: bool = False):
    r"""log π(token_t | tokens_<t) for t ≥ 1, shape (batch, T-1); optionally the entropy too.

    :math:`\log\pi(y_t) = z_{y_t} - \log\sum_v e^{z_v}` with the logits :math:`z` in fp32. The
    language-model head runs on a few rows at a time (:data:`LOGIT_CHUNK_NUMBERS`), under activation
    checkpointing when gradients flow: the full (batch x T x vocabulary) logits – 0.8 GB in fp32 per
    640-token sequence of a Qwen model – are never held, in the forward pass or for the backward.
    """
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, :-1]
    head, targets = model.get_output_embeddings(), input_ids[:, 1:]
    rows = max(1, LOGIT_CHUNK_NUMBERS // max(1, targets.shape[1] * head.weight.shape[0]))
    checkpointed = torch.is_grad_enabled() and hidden.requires_grad
    parts = []
    for start in range(0, hidden.shape[0], rows):
        args = (head, hidden[start:start + rows], targets[start:start + rows], with_entropy)
        parts.append(torch.utils.checkpoint.checkpoint(_chunk_logprobs, *args, use_reentrant=False)
                     if checkpointed else _chunk_logprobs(*args))
    if not with_entropy:
        return torch.cat(parts)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def reference_logprobs(policy, ref_model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """log π_ref(token_t): from ``ref_model``, or – ``ref_model=None``, a LoRA policy – from the policy
    with its adapters switched off (the warm-up weights themselves: no second copy in memory)."""
    if ref_model is not None:
        return token_logprobs(ref_model, input_ids, attention_mask)
    with policy.disable_adapter():
        return token_logprobs(policy, input_ids, attention_mask)


def token_values(value_model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The critic's value at each position (its 1-output ``score`` head on every hidden state),
    aligned with :func:`token_logprobs` (value of the state *before* token t), shape (batch, T-1).
    The head computes in its own dtype (fp32 where the backbone is half precision)."""
    critic = value_model.get_base_model() if hasattr(value_model, "get_base_model") else value_model  # under LoRA
    hidden = critic.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    head_dtype = next(critic.score.parameters()).dtype
    return critic.score(hidden.to(head_dtype)).squeeze(-1)[:, :-1].float()


@dataclass
class Rollout:
    """One batch of experience: sequences, masks and everything PPO needs from rollout time."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor   # (batch, T-1): 1 where token t+1 is a generated token
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    old_values: torch.Tensor
    scores: torch.Tensor          # the sequence-level reward (reward model [+ verifier])
    completions: list[str] = field(default_factory=list)


@torch.no_grad()
def rollout(policy, ref_model, value_model, tokenizer, prompts: list[str], *, max_new_tokens: int,
            temperature: float = 1.0, reward_fn=None) -> Rollout:
    """Sample one completion per prompt and record log-probs, reference log-probs and values.

    ``reward_fn(prompts, completions) -> list[float]`` gives each sequence its score;
    ``ref_model=None``: the reference is the policy with its LoRA adapters off.
    """
    device = next(policy.parameters()).device
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    policy.eval()
    out = policy.generate(**enc, do_sample=True, temperature=temperature, top_p=1.0,
                          max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    prompt_len = enc["input_ids"].shape[1]
    new = out[:, prompt_len:]
    # A generated token counts up to and including the first EOS; later pads do not.
    is_eos = new == tokenizer.eos_token_id
    after_eos = (is_eos.cumsum(1) - is_eos.int()) > 0
    gen_mask = (~after_eos).long()
    attention_mask = torch.cat([enc["attention_mask"], gen_mask], dim=1)
    response_mask = torch.cat([torch.zeros_like(enc["attention_mask"]), gen_mask], dim=1)[:, 1:].float()
    completions = tokenizer.batch_decode(new, skip_special_tokens=True)
    old_logp = token_logprobs(policy, out, attention_mask)
    ref_logp = reference_logprobs(policy, ref_model, out, attention_mask)
    old_values = token_values(value_model, out, attention_mask)
    scores = torch.tensor(reward_fn(prompts, completions), dtype=torch.float32, device=device)
    return Rollout(out, attention_mask, response_mask, old_logp, ref_logp, old_values, scores, completions)


def token_rewards(r: Rollout, beta: float) -> torch.Tensor:
    """Per-token rewards: ``-β·kl_penalty`` everywhere, plus the score on the last real token."""
    rewards = -beta * kl_penalty(r.old_logp, r.ref_logp) * r.response_mask
    last = (r.response_mask.cumsum(1) == r.response_mask.sum(1, keepdim=True)) & (r.response_mask > 0)
    return rewards + last.float() * r.scores[:, None]


@dataclass
class PPOConfig:
    """PPO's knobs, named as in the paper (defaults suit the tiny profile)."""

    beta: float = 0.05            # weight of the KL penalty against the reference
    gamma: float = 1.0
    lam: float = 0.95
    clip_epsilon: float = 0.2
    clip_value: float = 0.2
    vf_coef: float = 0.5
    entropy_coef: float = 0.0
    ppo_epochs: int = 2
    minibatch_size: int = 32
    target_kl: float | None = 0.1  # stop the epochs early when approx-KL exceeds this
    max_grad_norm: float = 1.0


def ppo_update(policy, value_model, optimizer, r: Rollout, cfg: PPOConfig,
               scaler: "torch.amp.GradScaler | None" = None, autocast_dtype=None) -> dict:
    """Several epochs of minibatch updates on one rollout; returns the logged statistics
    (the policy's entropy only when ``cfg.entropy_coef`` puts it in the loss).

    ``autocast_dtype`` (a GPU run in fp16 or bf16): the forward passes run under ``torch.autocast``
    while the trained weights (LoRA adapters, the critic's head) stay fp32; ``scaler`` (fp16) scales
    the loss so that small fp16 gradients do not underflow to zero, and unscales them before
    clipping. On a CPU both are off and this is plain fp32 PPO.
    """
    rewards = token_rewards(r, cfg.beta)
    advantages, returns = gae(rewards, r.old_values, r.response_mask, cfg.gamma, cfg.lam)
    advantages = whiten(advantages, r.response_mask)
    policy.train()
    value_model.train()
    logged = ("policy_loss", "value_loss", "approx_kl", "clip_frac") + (("entropy",) if cfg.entropy_coef else ())
    stats: dict[str, list[float]] = {k: [] for k in logged}
    n = r.input_ids.shape[0]
    params = [p for p in list(policy.parameters()) + list(value_model.parameters()) if p.requires_grad]
    device_type = r.input_ids.device.type
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(n)
        for start in range(0, n, cfg.minibatch_size):
            idx = order[start:start + cfg.minibatch_size]
            mask = r.response_mask[idx]
            with torch.autocast(device_type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                if cfg.entropy_coef:   # the entropy needs every token's probability: only when it is in the loss
                    logp, entropy = token_logprobs(policy, r.input_ids[idx], r.attention_mask[idx], with_entropy=True)
                    ent = masked_mean(entropy, mask)
                else:
                    logp = token_logprobs(policy, r.input_ids[idx], r.attention_mask[idx])
                    ent = None
                values = token_values(value_model, r.input_ids[idx], r.attention_mask[idx])
            pg_loss, clip_frac = policy_loss(logp, r.old_logp[idx], advantages[idx], mask, cfg.clip_epsilon)
            vf_loss = value_loss(values, r.old_values[idx], returns[idx], mask, cfg.clip_value)
            loss = pg_loss + cfg.vf_coef * vf_loss - (cfg.entropy_coef * ent if ent is not None else 0.0)
            optimizer.zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)           # true gradients, before clipping their norm
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)               # skipped when a gradient overflowed
                scaler.update()
            else:
                optimizer.step()
            with torch.no_grad():
                kl = approx_kl(logp, r.old_logp[idx], mask)
            for key, value in zip(stats, (pg_loss, vf_loss, kl, clip_frac, ent)):
                stats[key].append(float(value.detach()))
        if cfg.target_kl is not None and stats["approx_kl"][-1] > cfg.target_kl:
            break
    out = {k: sum(v) / len(v) for k, v in stats.items()}
    out["kl_ref"] = float(masked_mean(kl_penalty(r.old_logp, r.ref_logp), r.response_mask))
    out["score"] = float(r.scores.mean())
    return out


#: The largest policy (parameters) notebook 02 copies to check its own PPO step and GRPO loss:
#: the tiny profile's teacher is a few million; a hub model (hundreds of millions, under LoRA) skips the check.
STEP_CHECK_MAX_PARAMS = 30_000_000


def build_it_check_skipped(run, policy) -> str | None:
    """Why notebook 02's checks of its own PPO step and GRPO loss against the package's (and TRL's) are
    skipped in this run, or None when they run. Each check copies the policy: seconds for a small
    full-weight model, too heavy for a model over :data:`STEP_CHECK_MAX_PARAMS` parameters or one
    trained with LoRA adapters (``lora_rank``: the hub models)."""
    from .config import stage_settings
    from .models import count_params

    if stage_settings(run.profile, "ppo").lora_rank:
        return "this profile trains LoRA adapters on a hub model (lora_rank): too heavy to copy for a check"
    if (n := count_params(policy)) > STEP_CHECK_MAX_PARAMS:
        return f"the policy has {n / 1e6:.0f} M parameters (the check copies it): too heavy"
    return None


def updates_from_one_start(step_fns: dict, policy, value_model, r: Rollout, cfg: PPOConfig, *, lr: float,
                           seed: int) -> dict[str, tuple[dict, dict[str, torch.Tensor]]]:
    """Notebook 02's check of its own PPO step: each ``fn(policy, value_model, optimizer, rollout, cfg) -> stats``
    of ``step_fns`` (name → function, e.g. the cell's ``ppo_step`` and :func:`ppo_update`) updates its own
    copy of ``policy`` (:func:`utils.models.copy_model`) and ``value_model`` (a deep copy: no TRL trainer has
    patched a critic) with a fresh AdamW at ``lr``, as
    :func:`train_ppo` makes it, from the torch seed ``seed`` (so each draws the same minibatch order).

    Returns name → ``(stats, weights)``: what the function returned and every weight after the update
    (``"policy.<name>"``, ``"critic.<name>"``). The models passed in and the global random state are left as
    they were."""
    import copy

    from .models import copy_model

    out = {}
    with torch.random.fork_rng():
        for name, fn in step_fns.items():
            policy_copy, critic_copy = copy_model(policy), copy.deepcopy(value_model)
            optimizer = torch.optim.AdamW([p for p in list(policy_copy.parameters()) + list(critic_copy.parameters())
                                           if p.requires_grad], lr=lr)
            torch.manual_seed(seed)
            stats = fn(policy_copy, critic_copy, optimizer, r, cfg)
            weights = {f"policy.{k}": v.detach() for k, v in policy_copy.state_dict().items()}
            weights.update({f"critic.{k}": v.detach() for k, v in critic_copy.state_dict().items()})
            out[name] = (stats, weights)
    return out


def trainable_state(model) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights that train (LoRA adapters only, under LoRA): a best checkpoint
    that costs no GPU memory and, with adapters, a few MB."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    """Copy a :func:`trainable_state` back into ``model``'s weights."""
    for n, p in model.named_parameters():
        if n in state:
            p.copy_(state[n])


def train_ppo(policy, ref_model, value_model, tokenizer, prompts: list[str], *, steps: int,
              batch_prompts: int, lr: float, max_new_tokens: int, reward_fn, cfg: PPOConfig | None = None,
              warmup_steps: int = 0, eval_fn=None, eval_every: int = 0, seed: int = 0,
              mixed_precision: str | None = None, progress: bool = True) -> dict:
    """The PPO loop: ``steps`` iterations of rollout → :func:`ppo_update` on ``batch_prompts`` prompts.

    ``eval_fn(policy) -> float`` is called every ``eval_every`` steps; the best-scoring policy
    weights are kept (RL on tiny models swings between nearby checkpoints; only the weights that
    train, on the CPU) and restored at the end. ``ref_model=None``: the reference is the LoRA
    policy with its adapters off. ``mixed_precision`` ("fp16"/"bf16", a GPU run): autocast, and for
    fp16 a loss scaler.
    The learning rate rises linearly over ``warmup_steps`` iterations, then stays constant: a fresh
    Adam's first updates are as large as ``lr`` whatever the gradient, a jolt to a trained policy.
    Returns ``{"history": [...per-step stats...], "evals": [(step, acc)], "best": (step, acc),
    "last_rollout": [{prompt, completion, score}, ...], "seconds"}`` (the last rollout shows what
    the policy writes to please its reward).
    """
    cfg = cfg or PPOConfig()
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in list(policy.parameters()) + list(value_model.parameters())
                                   if p.requires_grad], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / (warmup_steps + 1)))
    autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision or "")
    scaler = torch.amp.GradScaler(next(policy.parameters()).device.type) if mixed_precision == "fp16" else None
    history, evals = [], []
    best = (0, eval_fn(policy)) if eval_fn else (0, float("nan"))
    evals.append(best)
    best_state = trainable_state(policy)
    start = time.perf_counter()
    for step in bar(range(1, steps + 1), desc="PPO", disable=not progress):
        idx = torch.randint(0, len(prompts), (batch_prompts,), generator=g).tolist()
        r = rollout(policy, ref_model, value_model, tokenizer, [prompts[i] for i in idx],
                    max_new_tokens=max_new_tokens, reward_fn=reward_fn)
        stats = ppo_update(policy, value_model, optimizer, r, cfg, scaler, autocast_dtype)
        schedule.step()
        stats["step"] = step
        history.append(stats)
        if eval_fn and eval_every and (step % eval_every == 0 or step == steps):
            acc = eval_fn(policy)
            evals.append((step, acc))
            if acc > best[1]:
                best = (step, acc)
                best_state = trainable_state(policy)
    load_trainable_state(policy, best_state)
    policy.eval()
    last = [{"prompt": p, "completion": c, "score": float(s)}
            for p, c, s in zip([prompts[i] for i in idx], r.completions, r.scores)]
    return {"history": history, "evals": evals, "best": best, "last_rollout": last,
            "seconds": time.perf_counter() - start}
