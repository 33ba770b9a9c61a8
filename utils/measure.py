"""Notebook 04: teacher vs student, measured – latency, throughput, memory, size on disk.

Peak generation memory on a CPU: PyTorch has no ``max_memory_allocated`` for the CPU, so we
run one generation under ``torch.profiler`` with ``profile_memory=True`` and replay its
allocation events in time order; the highest running total is the peak of what generation
allocated (KV cache + activations), to which the weights are added. The interpreter and
the libraries (~340 MB) are left out. On CUDA, ``torch.cuda.max_memory_allocated``
above the baseline allocated before the call (other resident models excluded), plus the weights.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .generation import generate
from .models import weights_bytes
from .tasks import Problem

if TYPE_CHECKING:
    import pandas as pd


def latency_ms(model, tokenizer, problems: Sequence[Problem], max_new_tokens: int, n: int = 30) -> float:
    """Median wall time of one greedy answer at batch 1, in milliseconds."""
    return interleaved_latency_ms({"model": (model, tokenizer)}, problems, max_new_tokens, n)["model"]


def interleaved_latency_ms(models: dict[str, tuple], problems: Sequence[Problem], max_new_tokens: int,
                           n: int = 30) -> dict[str, float]:
    """Median batch-1 greedy answer time of several models, in ms, timed *in turns*.

    ``models`` maps a name to ``(model, tokenizer)``. For each of the first ``n`` problems every
    model answers once, one after the other, so a slow moment of the machine (another process,
    a frequency change) lands on all of them instead of on whichever was measured then: the
    ratio between models is what we report, and this keeps it steady. One warm-up answer each.
    """
    if n <= 0 or not problems:
        raise ValueError("need n > 0 and at least one problem")
    for model, tokenizer in models.values():  # warm-up
        generate(model, tokenizer, [problems[0].prompt], max_new_tokens=max_new_tokens, batch_size=1)
    times: dict[str, list[float]] = {name: [] for name in models}
    for p in problems[:n]:
        for name, (model, tokenizer) in models.items():
            start = time.perf_counter()
            generate(model, tokenizer, [p.prompt], max_new_tokens=max_new_tokens, batch_size=1)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def batched_tokens_per_s(model, tokenizer, problems: Sequence[Problem], max_new_tokens: int,
                         batch_size: int = 256) -> float:
    """Generated tokens per second when answering all ``problems`` in batches (greedy)."""
    start = time.perf_counter()
    _, n_tokens = generate(model, tokenizer, [p.prompt for p in problems], max_new_tokens=max_new_tokens,
                           batch_size=batch_size)
    return n_tokens / (time.perf_counter() - start)


def cuda_peak_above_baseline_mb(device, weights: int, work) -> float:
    """Peak CUDA memory of ``work()`` in MB: the rise of ``max_memory_allocated`` above what was
    allocated before (every other resident model is in that baseline), plus ``weights`` bytes."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    work()
    torch.cuda.synchronize(device)
    return (weights + torch.cuda.max_memory_allocated(device) - baseline) / 2**20


def peak_generation_memory_mb(model, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> float:
    """Peak memory of the model while generating (weights + KV cache + activations), in MB."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        return cuda_peak_above_baseline_mb(device, weights_bytes(model), lambda: generate(
            model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, batch_size=len(prompts)))
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, batch_size=len(prompts))
    # Self allocations (children excluded, frees negative), replayed in time order.
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    running = peak = 0
    for e in events:
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    return (weights_bytes(model) + peak) / 2**20


def disk_mb(path: str | Path) -> float:
    """Size of the model's weight files (safetensors) in MB."""
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors")) / 2**20


def accuracy_by(problems: Sequence[Problem], correct: dict[str, Sequence[bool]], key) -> pd.DataFrame:
    """Accuracy of several models per group of problems, e.g. ``key=lambda p: p.difficulty``.

    ``correct`` maps a model's name to its per-problem verdicts (in ``problems``' order).
    Returns a DataFrame: one row per group (sorted), one column per model, plus ``n``.
    """
    import pandas as pd

    for name, verdicts in correct.items():
        if len(verdicts) != len(problems):
            raise ValueError(f"{name}: {len(verdicts)} verdicts for {len(problems)} problems")
    groups = [key(p) for p in problems]
    frame = pd.DataFrame({"group": groups, **{name: [bool(v) for v in vs] for name, vs in correct.items()}})
    table = frame.groupby("group").mean()
    table["n"] = frame.groupby("group").size()
    table.index.name = None
    return table.sort_index()
