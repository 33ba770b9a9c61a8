"""Batched generation and verifier-based evaluation, shared by notebooks 02–05.

Taught in notebook 01 (the verifier at work) and notebook 03 (sampling). Pitfall 1 of the
field notes: batched generation needs *left* padding plus the attention mask, otherwise the
model continues from pad tokens and most answers break.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .progress import bar
from .tasks import Problem, verify


@torch.no_grad()
def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], *,
             max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0,
             top_p: float = 1.0, num_return_sequences: int = 1, batch_size: int = 1024,
             progress: bool = False, desc: str = "generating") -> tuple[list[str], int]:
    """Complete every prompt; return ``(completions, generated_token_count)``.

    Completions are decoded without the prompt and without special tokens, cut at EOS.
    With ``num_return_sequences = k`` the output holds k completions per prompt, prompt-major
    (``[p0s0, p0s1, …, p1s0, …]``). ``batch_size`` counts *sequences* per ``model.generate``
    call (prompts × samples: what the KV cache holds) – the profile's ``gen_batch_size``, as the
    memory planner counts it.
    """
    if max_new_tokens <= 0:
        raise ValueError("max_new_tokens must be positive")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    texts: list[str] = []
    n_tokens = 0
    per_call = max(1, batch_size // num_return_sequences)  # prompts per call
    batches = range(0, len(prompts), per_call)
    for start in bar(batches, desc=desc, disable=not progress, leave=False):
        chunk = list(prompts[start:start + per_call])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        kwargs = dict(do_sample=do_sample, max_new_tokens=max_new_tokens,
                      num_return_sequences=num_return_sequences,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        out = model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        # Count real generated tokens: up to and including the first EOS.
        is_eos = new == tokenizer.eos_token_id
        lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, new.shape[1])
        n_tokens += int(lengths.sum())
        texts.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    model.train(was_training)
    return texts, n_tokens


@dataclass
class EvalResult:
    """Exact-match accuracy of a model on problems, overall and per task family."""

    accuracy: float
    per_family: dict[str, float]
    completions: list[str] = field(repr=False)
    correct: list[bool] = field(repr=False)
    seconds: float = 0.0
    tokens: int = 0

    def summary(self) -> str:
        fams = ", ".join(f"{k} {v:.0%}" for k, v in sorted(self.per_family.items()))
        return f"accuracy {self.accuracy:.1%} ({fams})"


def evaluate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, problems: Sequence[Problem], *,
             max_new_tokens: int, batch_size: int = 1024, progress: bool = False) -> EvalResult:
    """Greedy-decode every problem and score it with the verifier (exact match)."""
    if not problems:
        raise ValueError("evaluate() needs at least one problem")
    start = time.perf_counter()
    completions, n_tokens = generate(model, tokenizer, [p.prompt for p in problems],
                                     max_new_tokens=max_new_tokens, batch_size=batch_size,
                                     progress=progress, desc="evaluating")
    seconds = time.perf_counter() - start
    correct = [verify(c, p.answer) for c, p in zip(completions, problems)]
    per_family: dict[str, list[bool]] = {}
    for p, ok in zip(problems, correct):
        per_family.setdefault(p.family, []).append(ok)
    return EvalResult(
        accuracy=sum(correct) / len(correct),
        per_family={f: sum(v) / len(v) for f, v in per_family.items()},
        completions=completions, correct=correct, seconds=seconds, tokens=n_tokens)


def pass_at_k_outcomes(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, problems: Sequence[Problem], *,
                       k: int, max_new_tokens: int, temperature: float = 1.0,
                       batch_size: int = 1024) -> tuple[list[bool], list[bool]]:
    """Per problem: is the greedy answer right (pass@1), and is at least one of ``k`` samples at
    ``temperature`` right (pass@k)? Two lists in the order of ``problems``; :func:`pass_at_k_table`
    summarises them, and two models' lists on the same problems can be compared pair by pair."""
    if k < 1:
        raise ValueError("k must be >= 1")
    greedy = evaluate(model, tokenizer, problems, max_new_tokens=max_new_tokens, batch_size=batch_size).correct
    samples, _ = generate(model, tokenizer, [p.prompt for p in problems], max_new_tokens=max_new_tokens,
                          do_sample=True, temperature=temperature, num_return_sequences=k, batch_size=batch_size)
    hit = [any(verify(samples[i * k + j], p.answer) for j in range(k)) for i, p in enumerate(problems)]
    return greedy, hit


def pass_at_k_table(problems: Sequence[Problem], greedy: Sequence[bool], hit: Sequence[bool],
                    k: int) -> dict[str, dict[str, float]]:
    """pass@1 and pass@k per difficulty and overall (``"all"``), from :func:`pass_at_k_outcomes`."""
    groups: dict[str, list[int]] = {"all": list(range(len(problems)))}
    for i, p in enumerate(problems):
        groups.setdefault(str(p.difficulty), []).append(i)
    return {name: {"pass@1": sum(greedy[i] for i in idx) / len(idx),
                   f"pass@{k}": sum(hit[i] for i in idx) / len(idx), "n": len(idx)}
            for name, idx in sorted(groups.items())}


def pass_at_k(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, problems: Sequence[Problem], *,
              k: int, max_new_tokens: int, temperature: float = 1.0,
              batch_size: int = 1024) -> dict[str, dict[str, float]]:
    """Greedy pass@1 and sampled pass@k, per difficulty and overall (``"all"``).

    pass@k is the share of problems where at least one of ``k`` samples at ``temperature`` is
    verified correct: what the model *can* sometimes write. pass@1 (greedy) is what it writes
    every time. Reinforcement learning reinforces what the policy samples, so it mostly moves
    pass@1 towards pass@k; whether pass@k itself moves is measured, not assumed (notebook 02).
    """
    greedy, hit = pass_at_k_outcomes(model, tokenizer, problems, k=k, max_new_tokens=max_new_tokens,
                                     temperature=temperature, batch_size=batch_size)
    return pass_at_k_table(problems, greedy, hit, k)
