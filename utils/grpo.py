"""Notebook 02: GRPO with rule-based rewards, as DeepSeek-R1 did, through TRL's ``GRPOTrainer``.

GRPO (Shao et al., 2024, DeepSeekMath) drops PPO's critic: for each prompt it samples a
*group* of G completions and uses each one's reward, normalised within its group, as the
advantage of all its tokens: ``A_i = (r_i - mean(r)) / std(r)``. R1's rewards were rules,
not a neural reward model: an **accuracy** reward (the verifier) and a **format** reward
(the ``<think>…</think>`` structure). Two models in memory instead of four.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager

from datasets import Dataset
from transformers import TrainerCallback

from .config import Run, stage_settings
from .models import load_causal_lm, release, weights_bytes
from .progress import calm_trainer_progress
from .sft import TokenBudget
from .tasks import Problem, answer_correct, check_format, verify


def accuracy_reward(completions: list[str], answer: list[str], **_) -> list[float]:
    """1.0 when the verifier accepts the completion, else 0.0 (R1's accuracy reward)."""
    return [float(verify(c, a)) for c, a in zip(completions, answer)]


def format_reward(completions: list[str], **_) -> list[float]:
    """0.1 for a well-formed ``<think>…</think>A:…`` completion (R1's format reward)."""
    return [0.1 * float(check_format(c)) for c in completions]


def zero_variance_share(rewards: list[float], group_size: int) -> float:
    """Share of groups whose ``group_size`` rewards are all equal (prompt-major order).

    Such a group has zero advantage for every sample – ``r_i - mean(r) = 0`` – so it teaches
    nothing: all right (too easy) or all wrong (out of reach). The share per step says how much
    of GRPO's sampling budget is wasted.
    """
    groups = [rewards[i:i + group_size] for i in range(0, len(rewards), group_size)]
    return sum(len(set(g)) == 1 for g in groups) / max(1, len(groups))


def group_advantages(rewards: list[float], group_size: int, scale: str = "group") -> list[float]:
    r"""GRPO's group-relative advantage of each sample (prompt-major order), as TRL's ``GRPOTrainer``
    computes it: :math:`A_i = (r_i - \mathrm{mean}(r_{group})) / (\mathrm{std} + 10^{-4})`.

    ``scale``: ``"group"`` divides by each group's standard deviation (DeepSeekMath's GRPO),
    ``"batch"`` by the whole batch's (the ``grpo_scale_rewards`` default here), ``"none"`` not at
    all (Dr. GRPO). Standard deviations are unbiased (n − 1), as in TRL. Notebook 02 uses it on
    toy groups: a group of all-equal rewards gets zero advantage whatever the scaling.
    """
    import torch

    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be 'group', 'batch' or 'none', not {scale!r}")
    r = torch.tensor(rewards, dtype=torch.float64)
    if r.numel() % group_size:
        raise ValueError(f"{r.numel()} rewards do not split into groups of {group_size}")
    groups = r.view(-1, group_size)
    advantages = groups - groups.mean(dim=1, keepdim=True)
    if scale == "group" and group_size > 1:
        advantages = advantages / (groups.std(dim=1, keepdim=True) + 1e-4)
    elif scale == "batch" and r.numel() > 1:
        advantages = advantages / (r.std() + 1e-4)
    return advantages.flatten().tolist()


@contextmanager
def reloaded_policy(model, *, device: str, dtype=None, release_source: bool = False):
    """A copy of ``model`` to train with GRPO, reloaded from a temporary folder that lasts while the
    ``with`` block runs: TRL builds GRPO's KL reference from the policy's folder (its
    ``name_or_path``), so the folder must hold the starting weights until training ends.
    ``release_source``: move ``model`` off the GPU once it is saved (before the copy is loaded)."""
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        if release_source:
            release(model)
        yield load_causal_lm(folder, device=device, dtype=dtype)


class _EvalCallback(TrainerCallback):
    """Evaluate every ``every`` steps; keep the best weights (RL swings between checkpoints)."""

    def __init__(self, eval_fn, every: int):
        self.eval_fn, self.every, self.evals = eval_fn, every, []
        self.best, self.best_state = (0, float("-inf")), None

    def _check(self, step, model):
        acc = self.eval_fn(model)
        self.evals.append((step, acc))
        if acc > self.best[1]:
            self.best = (step, acc)
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.train()

    def on_train_begin(self, args, state, control, model=None, **kw):
        self._check(0, model)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._check(state.global_step, model)


def train_grpo(run: Run, policy, tokenizer, problems: list[Problem], *, eval_fn, eval_every: int,
               reward: str = "verifier", format_bonus: bool | None = None, token_budget: float | None = None,
               progress: bool = True) -> dict:
    """Train ``policy`` in place with TRL's GRPOTrainer; the best evaluated checkpoint is kept.

    ``eval_fn=None``: no evaluation and no checkpoint choice – the policy keeps its last weights.
    ``token_budget``: stop once the sampled sequences add up to that many prompt + completion
    tokens (:class:`utils.sft.TokenBudget`; ``grpo_steps`` stays the upper bound).

    ``reward="verifier"`` rewards a correct, well-formed completion (:func:`accuracy_reward`);
    ``"answer"`` rewards the right answer with or without a think block (R1-Zero's accuracy reward,
    :func:`utils.tasks.answer_correct`). ``format_bonus`` (default: ``profile.grpo_format_reward``)
    adds :func:`format_reward`. Per generation batch the run records the share of samples with a
    ``<think>`` block (``think_share``) and their mean length in characters (``mean_length``).

    Returns ``{"evals", "best", "log", "zero_variance", "think_share", "mean_length", "seconds", …}``.
    Budget: ``profile.grpo_steps`` steps of ``rl_batch_prompts`` prompts × ``num_generations`` samples (pitfall 4 of the field
    notes: the generation batch must divide by the group size; LR 1e-4, not TRL's 1e-6).

    What held GRPO back in the course's first version, and the settings that fix it:
    TRL decays the LR linearly to 0 unless told otherwise (``constant_with_warmup`` here);
    per-group scaling inflates a 0.1 format reward in an all-wrong group to a full advantage
    (``grpo_scale_rewards="batch"``, and the format reward off by default: the warm-up teacher's
    format is already right); and a group of all-equal rewards teaches nothing (logged as
    ``zero_variance``).
    """
    from trl import GRPOConfig, GRPOTrainer

    prof = run.profile
    stage = stage_settings(prof, "grpo")
    dataset = Dataset.from_list([{"prompt": p.prompt, "answer": p.answer} for p in problems])
    callback = _EvalCallback(eval_fn, eval_every) if eval_fn is not None else None
    budget = TokenBudget(token_budget) if token_budget is not None else None
    zero_variance: list[float] = []   # per generation batch: groups whose accuracy rewards are all equal
    think_share: list[float] = []     # per generation batch: samples with a <think>…</think> block
    mean_length: list[float] = []     # per generation batch: mean completion length (characters)
    if reward not in ("verifier", "answer"):
        raise ValueError(f"reward must be 'verifier' or 'answer', not {reward!r}")

    def accuracy(completions, answer, **_):
        if reward == "verifier":
            rewards = accuracy_reward(completions, answer)
        else:
            rewards = [float(answer_correct(c, a)) for c, a in zip(completions, answer)]
        zero_variance.append(zero_variance_share(rewards, prof.num_generations))
        think_share.append(sum(check_format(c) for c in completions) / len(completions))
        mean_length.append(sum(len(c) for c in completions) / len(completions))
        return rewards
    accuracy.__name__ = "accuracy_reward"  # TRL logs each reward under its function's name
    with_format = prof.grpo_format_reward if format_bonus is None else format_bonus
    reward_funcs = [accuracy] + ([format_reward] if with_format else [])
    calm_trainer_progress()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, max_steps=prof.grpo_steps, learning_rate=prof.rl_lr,
            lr_scheduler_type="constant_with_warmup", warmup_steps=prof.rl_warmup_steps,
            per_device_train_batch_size=stage.batch,
            num_generations=prof.num_generations, max_completion_length=prof.max_new_tokens,
            scale_rewards=prof.grpo_scale_rewards, loss_type=prof.grpo_loss_type,
            num_iterations=prof.grpo_iterations,
            temperature=1.0, beta=prof.kl_beta, logging_steps=1, save_strategy="no",
            report_to="none", seed=run.seed, use_cpu=run.device == "cpu", **run.mixed_precision(),
            activation_checkpointing=stage.gradient_checkpointing,  # (gradient_checkpointing: its deprecated alias)
            disable_tqdm=not progress)
        trainer = GRPOTrainer(model=policy, reward_funcs=reward_funcs, args=args,
                              train_dataset=dataset, processing_class=tokenizer,
                              callbacks=[c for c in (callback, budget) if c is not None])
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    if callback is not None and callback.best_state is not None:
        policy.load_state_dict(callback.best_state)
    policy.eval()
    # The models TRL held: the policy, plus a frozen reference copy when beta > 0 and no LoRA
    # (with LoRA the reference is the policy with its adapters switched off).
    ref_model = getattr(trainer, "ref_model", None)
    held = 1 + (ref_model is not None)
    weights = {"policy": policy, **({"reference": ref_model} if ref_model is not None else {})}
    return {"evals": callback.evals if callback else [], "best": callback.best if callback else None,
            "log": trainer.state.log_history, "steps": trainer.state.global_step,
            "tokens": float(trainer.state.num_input_tokens_seen),
            "zero_variance": zero_variance, "think_share": think_share, "mean_length": mean_length,
            "seconds": seconds, "models_in_memory": held,
            "weights_held_mb": {name: round(weights_bytes(m) / 2**20, 2) for name, m in weights.items()}}
