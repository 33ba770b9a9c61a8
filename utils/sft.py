"""Supervised fine-tuning with TRL's ``SFTTrainer`` (teacher warm-up in 02, the student in 04).

Data is in TRL's standard *prompt/completion* format, so the loss is computed on the
completion only (the chain of thought and the answer), never on the prompt. ``SFTTrainer``
appends the EOS token to each completion, which teaches the model to stop.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from .progress import calm_trainer_progress
from .tasks import Problem


def to_sft_dataset(rows: Sequence[Problem | dict[str, Any]], *, shuffle: bool = True,
                   sorted_by_difficulty: bool = False, seed: int = 0) -> Dataset:
    """A ``datasets.Dataset`` with ``prompt``/``completion`` columns (TRL's format).

    ``rows`` are task-world problems or dicts with ``prompt``, ``completion`` and optionally
    ``difficulty``. Rows are shuffled with ``seed`` unless ``shuffle=False`` (a schedule from
    :func:`curriculum_schedule` is already in training order). ``sorted_by_difficulty`` then sorts
    them easy → hard – the course's first "curriculum", kept as an anti-pattern: read in that order
    epoch after epoch, each batch holds one difficulty and the run replays easy → hard many times.
    """
    dicts = [r.to_dict() if isinstance(r, Problem) else dict(r) for r in rows]
    if not dicts:
        raise ValueError("No training rows: the dataset is empty.")
    if shuffle:
        random.Random(seed).shuffle(dicts)
    if sorted_by_difficulty:
        dicts.sort(key=lambda r: r.get("difficulty", 1))
    keep = ("prompt", "completion", "family", "difficulty")
    return Dataset.from_list([{k: r[k] for k in keep if k in r} for r in dicts])


def curriculum_schedule(rows: Sequence[dict[str, Any]], *, steps: int, batch_size: int,
                        seed: int = 0) -> list[dict[str, Any]]:
    """A curriculum as a pacing schedule: the ``steps × batch_size`` rows a run reads, in order.

    The run is cut into as many equal stages as there are difficulty levels in ``rows``; stage k
    draws its batches from the rows of difficulty ≤ the k-th level, shuffled (and reshuffled each
    time that pool is used up). Easy problems first, then easy and medium mixed, and so on – never a
    batch of one difficulty replayed in sorted order (Bengio et al., 2009, *Curriculum learning*;
    pacing functions: Hacohen & Weinshall, 2019, arXiv:1904.03626). :func:`train_sft` reads the
    result with ``curriculum=True`` (in order, one pass).
    """
    if steps <= 0 or batch_size <= 0:
        raise ValueError("steps and batch_size must be positive")
    levels = sorted({r.get("difficulty", 1) for r in rows})
    if not levels:
        raise ValueError("No training rows: the dataset is empty.")
    rng = random.Random(seed)
    order: list[dict[str, Any]] = []
    for k, level in enumerate(levels):
        stage_steps = (k + 1) * steps // len(levels) - k * steps // len(levels)
        pool = [r for r in rows if r.get("difficulty", 1) <= level]
        need = stage_steps * batch_size
        while need > 0:
            chunk = list(pool)
            rng.shuffle(chunk)
            order += chunk[:need]
            need -= min(need, len(chunk))
    return order


def curriculum_final_stage_step(rows: Sequence[dict[str, Any]], steps: int) -> int:
    """The step at which :func:`curriculum_schedule` starts its last stage (all difficulties)."""
    n = len({r.get("difficulty", 1) for r in rows})
    return (n - 1) * steps // n if n else 0


def sft_batch(tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict[str, Any]], *,
              max_length: int = 128) -> dict[str, Any]:
    """One batch exactly as :func:`train_sft` feeds it to the model – ``input_ids``,
    ``attention_mask`` and ``labels`` – built by TRL itself, nothing trained (notebook 04's toy).

    ``SFTTrainer`` (with ``completion_only_loss``, as in :func:`train_sft`) prepares each
    prompt/completion row: it appends the EOS token to the completion, tokenizes the prompt and
    prompt + completion, marks the completion's tokens (``completion_mask``: 0 on the prompt,
    1 after), turns that into ``labels`` (``-100`` – no loss – on the prompt) and truncates to
    ``max_length``; its collator pads the rows into a batch. Rows keep their order. The trainer
    needs a model, so a throwaway one-layer model stands in.
    """
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from trl import SFTConfig, SFTTrainer

    from .config import ModelSize
    from .models import build_causal_lm

    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    bars_were_on = not are_progress_bars_disabled()
    disable_progress_bars()  # TRL's five preparation bars would bury a one-row toy's output
    try:
        with tempfile.TemporaryDirectory() as out_dir:
            args = SFTConfig(output_dir=out_dir, completion_only_loss=True, max_length=max_length, packing=False,
                             report_to="none", use_cpu=True, activation_checkpointing=False, dataset_num_proc=None)
            trainer = SFTTrainer(model=build_causal_lm(ModelSize(8, 1, 1, 8), tokenizer), args=args,
                                 train_dataset=dataset, processing_class=tokenizer)
            return trainer.data_collator(list(trainer.train_dataset))
    finally:
        if bars_were_on:
            enable_progress_bars()


class TokenBudget(TrainerCallback):
    """Stop a TRL trainer once it has processed ``budget`` tokens.

    The count is the one TRL logs as ``num_tokens``: prompt + completion tokens (no padding) of
    every sequence the trainer trained on – for SFT the rows read, for GRPO and on-policy
    distillation the sequences sampled (counted once, when generated). Log every step
    (``logging_steps=1``) for the stop to land within one step of the budget. ``tokens`` holds
    the last count seen; ``reached`` says whether the budget was spent (not cut by ``max_steps``).
    """

    def __init__(self, budget: float):
        if budget <= 0:
            raise ValueError("a token budget must be positive")
        self.budget, self.tokens, self.reached = budget, 0.0, False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "num_tokens" in logs:
            self.tokens = float(logs["num_tokens"])
            if self.tokens >= self.budget:
                self.reached = True
                control.should_training_stop = True


class _EvalEvery(TrainerCallback):
    """Calls ``eval_fn(model)`` every ``every`` steps and at the end; stores the history and,
    with ``keep_best``, a copy of the best-scoring weights."""

    def __init__(self, eval_fn: Callable[[PreTrainedModel], float], every: int, history: list,
                 keep_best: bool = False, patience: int | None = None, patience_from: int = 0):
        self.eval_fn, self.every, self.history, self.keep_best = eval_fn, every, history, keep_best
        self.patience, self.since_best, self.patience_from = patience, 0, patience_from
        self.best_state, self.best = None, float("-inf")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            score = self.eval_fn(model)
            model.train()
            self.history.append((state.global_step, score))
            if score > self.best:
                self.best, self.since_best = score, 0
                if self.keep_best:
                    self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif state.global_step > self.patience_from:   # a curriculum's easy stages do not count
                self.since_best += 1
                if self.patience is not None and self.since_best >= self.patience:
                    control.should_training_stop = True  # early stopping: converged on validation


@dataclass
class SFTResult:
    """What :func:`train_sft` returns: the loss curve and any periodic evaluations."""

    losses: list[tuple[int, float]] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    tokens: float = 0.0          # prompt + completion tokens trained on (TRL's count, no padding)


def train_sft(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, *,
              steps: int, lr: float, batch_size: int, seed: int, warmup_ratio: float = 0.05,
              scheduler: str = "cosine", curriculum: bool = False, packing: bool = False,
              packing_strategy: str = "bfd", max_length: int = 128,
              eval_fn: Callable[[PreTrainedModel], float] | None = None, eval_every: int = 0,
              keep_best: bool = False, patience: int | None = None, patience_from: int = 0,
              bf16: bool = False, fp16: bool = False,
              gradient_checkpointing: bool = False, progress: bool = True) -> SFTResult:
    """Fine-tune ``model`` in place on ``dataset`` for ``steps`` optimiser steps.

    * completion-only loss (TRL's default for prompt/completion data);
    * cosine schedule with warm-up (``warmup_ratio`` of the steps);
    * ``curriculum``: read the data in the order given (a pacing schedule from
      :func:`curriculum_schedule`) instead of shuffling;
    * ``packing``: concatenate short examples into ``max_length`` rows (fewer pad tokens).
      ``packing_strategy`` is TRL's: ``"bfd"`` (best-fit decreasing) keeps examples whole and
      trains *padding-free* – the batch becomes one long sequence whose attention is block-
      diagonal. That pays off with FlashAttention's variable-length kernels (GPU); with plain
      SDPA (CPU) attention becomes quadratic in the whole batch, and it is several times slower
      (``make bench`` measures it). ``"wrapped"`` cuts the token stream into ``max_length``
      rows, cheap everywhere, but an example may attend to the end of the previous one;
    * ``eval_fn`` every ``eval_every`` steps gives a curve (on validation); with ``keep_best``
      the best-scoring weights are restored at the end; with ``patience`` training stops once
      ``patience`` evaluations in a row after step ``patience_from`` bring no improvement (early
      stopping, on validation; a curriculum sets ``patience_from`` to its last stage's first step);
    * on a GPU, pass ``bf16``/``fp16`` for mixed precision; on CPU both stay off;
      ``gradient_checkpointing`` recomputes activations in the backward pass (less memory).

    The same function runs under ``accelerate launch`` on several GPUs (see ``utils.cli``).
    """
    import time

    import torch
    from trl import SFTConfig, SFTTrainer

    if steps <= 0:
        raise ValueError("steps must be positive")
    on_cpu = not torch.cuda.is_available()
    calm_trainer_progress()
    with tempfile.TemporaryDirectory() as out_dir:
        args = SFTConfig(
            output_dir=out_dir,
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            learning_rate=lr,
            lr_scheduler_type=scheduler,
            warmup_steps=warmup_ratio,
            weight_decay=0.0,
            logging_steps=max(1, steps // 20),
            save_strategy="no",
            report_to="none",
            seed=seed,
            data_seed=seed,
            use_cpu=on_cpu,
            bf16=bf16 and not on_cpu,
            fp16=fp16 and not on_cpu,
            # transformers 5: `activation_checkpointing` is the setting; `gradient_checkpointing` its
            # deprecated alias, overwritten by it – passing both with False here switched it off.
            activation_checkpointing=gradient_checkpointing,
            completion_only_loss=True,
            packing=packing,
            packing_strategy=packing_strategy,
            max_length=max_length,
            train_sampling_strategy="sequential" if curriculum else "random",
            dataloader_num_workers=0,
            disable_tqdm=not progress,
            dataset_num_proc=None,
        )
        history: list[tuple[int, float]] = []
        callbacks = [_EvalEvery(eval_fn, eval_every, history, keep_best, patience, patience_from)] if eval_fn and eval_every else []
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset,
                             processing_class=tokenizer, callbacks=callbacks)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    if callbacks and callbacks[0].best_state is not None:
        model.load_state_dict(callbacks[0].best_state)
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    # Real (non-padding) tokens trained on, as TRL logs them.
    n_tokens = trainer.state.num_input_tokens_seen or max(
        (float(h.get("num_tokens", 0)) for h in trainer.state.log_history), default=0)
    model.eval()
    return SFTResult(losses=losses, evals=history, seconds=seconds, tokens=float(n_tokens),
                     tokens_per_s=(n_tokens / seconds) if seconds and n_tokens else math.nan)
