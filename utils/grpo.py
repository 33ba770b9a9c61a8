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


def default_rewards(profile) -> list:
    """The package's GRPO reward functions for ``profile``: :func:`accuracy_reward`, plus
    :func:`format_reward` when ``profile.grpo_format_reward`` is on. Notebook 02 defines the same two
    functions in a cell and passes its own list to :func:`utils.teacher.run_grpo`."""
    return [accuracy_reward] + ([format_reward] if profile.grpo_format_reward else [])


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
               reward: str = "verifier", format_bonus: bool | None = None, reward_funcs: list | None = None,
               token_budget: float | None = None, progress: bool = True) -> dict:
    """Train ``policy`` in place with TRL's GRPOTrainer; the best evaluated checkpoint is kept.

    ``eval_fn=None``: no evaluation and no checkpoint choice – the policy keeps its last weights.
    ``token_budget``: stop once the sampled sequences add up to that many prompt + completion
    tokens (:class:`utils.sft.TokenBudget`; ``grpo_steps`` stays the upper bound).

    ``reward="verifier"`` rewards a correct, well-formed completion (:func:`accuracy_reward`);
    ``"answer"`` rewards the right answer with or without a think block (R1-Zero's accuracy reward,
    :func:`utils.tasks.answer_correct`). ``format_bonus`` (default: ``profile.grpo_format_reward``)
    adds :func:`format_reward`. ``reward_funcs`` (a notebook's own list, TRL's signature
    ``f(completions, answer, **kwargs) -> list[float]``) replaces both: its first function is the
    accuracy reward (logged as ``accuracy_reward``, and the one the zero-variance share counts), the
    rest go to TRL as they are. Per generation batch the run records the share of samples with a
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
    if reward_funcs is not None and (reward != "verifier" or format_bonus is not None or not list(reward_funcs)):
        raise ValueError("pass a non-empty reward_funcs, or reward= and format_bonus=, not both")
    given = list(reward_funcs) if reward_funcs is not None else None

    def accuracy(completions, answer, **kwargs):
        if given is not None:
            rewards = list(given[0](completions, answer, **kwargs))
        elif reward == "verifier":
            rewards = accuracy_reward(completions, answer)
        else:
            rewards = [float(answer_correct(c, a)) for c, a in zip(completions, answer)]
        zero_variance.append(zero_variance_share(rewards, prof.num_generations))
        think_share.append(sum(check_format(c) for c in completions) / len(completions))
        mean_length.append(sum(len(c) for c in completions) / len(completions))
        return rewards
    accuracy.__name__ = "accuracy_reward"  # TRL logs each reward under its function's name
    if given is not None:
        reward_funcs = [accuracy] + given[1:]
    else:
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


# ---------------------------------------------------------------------------------------
# Notebook 02's check of its own GRPO loss against TRL's
# ---------------------------------------------------------------------------------------

#: The TRL version :func:`trl_grpo_loss` is written against: it calls ``GRPOTrainer._compute_loss(model, inputs)``,
#: a private method whose inputs and arithmetic may change in any release.
TRL_LOSS_VERSION = "1.16."


@contextmanager
def kept_random_state():
    """Python's, NumPy's and torch's (CPU and CUDA) random states, put back when the ``with`` block ends
    (a ``Trainer`` seeds all three when it is built)."""
    import random

    import numpy as np
    import torch

    python, numpy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng():
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


def _no_reward(completions, **_):
    """A reward function for a GRPOTrainer that is built only to compute its loss."""
    return [0.0] * len(completions)


def trl_grpo_loss(model, tokenizer, inputs: dict, *, loss_type: str, beta: float, epsilon: float,
                  max_completion_length: int):
    """TRL's own GRPO loss on one batch – what notebook 02's ``grpo_loss`` cell is checked against.

    Builds a ``GRPOTrainer`` on copies of ``model`` and ``tokenizer`` and calls its private
    ``_compute_loss`` on ``inputs`` (TRL's keys: ``prompt_ids``, ``prompt_mask``, ``completion_ids``,
    ``completion_mask``, ``advantages`` – one per completion –, ``old_per_token_logps`` and, with
    ``beta`` > 0, ``ref_per_token_logps``), in fp32, without gradients, in evaluation mode (no
    gradient-accumulation divisor). ``beta`` is set after the trainer is built: built with ``beta`` > 0,
    TRL would load a reference model from the policy's folder, and the loss only reads the reference's
    log-probs from ``inputs``. ``model``, ``tokenizer`` and the global random state are left as they were.

    Written against TRL :data:`TRL_LOSS_VERSION` x: another version, or a ``_compute_loss`` that is
    missing or takes other arguments, raises a ``RuntimeError`` naming the installed version.
    """
    with kept_random_state():   # importing TRL's trainer and building it both draw random numbers
        return _trl_grpo_loss(model, tokenizer, inputs, loss_type=loss_type, beta=beta, epsilon=epsilon,
                              max_completion_length=max_completion_length)


def _trl_grpo_loss(model, tokenizer, inputs, *, loss_type, beta, epsilon, max_completion_length):
    import copy
    import inspect

    import torch
    import trl
    from trl import GRPOConfig, GRPOTrainer

    from .models import copy_model

    if not trl.__version__.startswith(TRL_LOSS_VERSION):
        raise RuntimeError(f"trl_grpo_loss is written against TRL {TRL_LOSS_VERSION}x and calls the private "
                           f"GRPOTrainer._compute_loss; TRL {trl.__version__} is installed. Install "
                           f"trl=={TRL_LOSS_VERSION}* or update utils.grpo.trl_grpo_loss.")
    compute = getattr(GRPOTrainer, "_compute_loss", None)
    if compute is None or list(inspect.signature(compute).parameters) != ["self", "model", "inputs"]:
        raise RuntimeError(f"TRL {trl.__version__}'s GRPOTrainer has no _compute_loss(model, inputs), which "
                           "trl_grpo_loss calls: update utils.grpo.trl_grpo_loss for this version.")
    device = next(model.parameters()).device
    calm_trainer_progress()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(output_dir=out, loss_type=loss_type, beta=0.0, epsilon=epsilon,
                          max_completion_length=max_completion_length, num_generations=2,
                          per_device_train_batch_size=2, temperature=1.0, report_to="none", save_strategy="no",
                          use_cpu=device.type == "cpu", bf16=False, fp16=False, disable_tqdm=True)
        trainer = GRPOTrainer(model=copy_model(model), reward_funcs=[_no_reward], args=args,
                              train_dataset=Dataset.from_list([{"prompt": "Q:"}] * 2),
                              processing_class=copy.deepcopy(tokenizer))
        trainer.beta = beta
        trainer.model.eval()
        with torch.no_grad():
            loss = trainer._compute_loss(trainer.model, {k: v.to(device) if hasattr(v, "to") else v
                                                         for k, v in inputs.items()})
    return loss.detach()


def loss_check_batch(model, tokenizer, problems: list[Problem], *, group_size: int, max_new_tokens: int,
                     scale: str, seed: int, shift: float = 0.1):
    """One GRPO batch sampled from ``model``, in the form TRL's loss reads it – for notebook 02's check of
    its ``grpo_loss`` cell. Returns ``(inputs, logps)``.

    ``inputs`` holds ``group_size`` completions per problem (temperature 1; prompts padded on the left,
    completions on the right, each masked after its first EOS), their advantages (the verifier's rewards,
    :func:`group_advantages` with ``scale``) and two stand-ins: on GRPO's first step π_old and π_ref are both
    the model itself – ratio 1, KL 0, half the loss untested – so here ``old_per_token_logps`` and
    ``ref_per_token_logps`` are the model's log-probs shifted by seeded noise of size ``shift``, and the
    ratio, the clip and the KL term all count. ``logps``: the model's log-probs of the completion tokens
    (:func:`utils.ppo.token_logprobs`). The global random state is left as it was.
    """
    import torch

    from .ppo import token_logprobs

    device = next(model.parameters()).device
    prompts = [p.prompt for p in problems for _ in range(group_size)]
    answers = [p.answer for p in problems for _ in range(group_size)]
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                        add_special_tokens=False).to(device)
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        completion_ids = out[:, enc["input_ids"].shape[1]:]
        is_eos = completion_ids == tokenizer.eos_token_id
        completion_mask = ((is_eos.cumsum(1) - is_eos.int()) == 0).long()   # up to and including the first EOS
        completions = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        advantages = group_advantages(accuracy_reward(completions, answers), group_size, scale)
        attention_mask = torch.cat([enc["attention_mask"], completion_mask], dim=1)
        logps = token_logprobs(model, out, attention_mask)[:, -completion_ids.shape[1]:]
        noise = torch.Generator().manual_seed(seed)
        old, ref = (logps + shift * torch.randn(logps.shape, generator=noise).to(device) for _ in range(2))
    inputs = {"prompt_ids": enc["input_ids"], "prompt_mask": enc["attention_mask"],
              "completion_ids": completion_ids, "completion_mask": completion_mask,
              "advantages": torch.tensor(advantages, dtype=torch.float32, device=device),
              "old_per_token_logps": old, "ref_per_token_logps": ref}
    return inputs, logps
