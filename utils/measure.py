"""Notebook 04: teacher vs student, measured – latency, throughput, memory, size on disk.

Peak generation memory on a CPU: PyTorch has no ``max_memory_allocated`` for the CPU, so we
run one generation under ``torch.profiler`` with ``profile_memory=True`` and replay its
allocation events in time order; the highest running total is the peak of what generation
allocated (KV cache + activations), to which the weights are added. The interpreter and
the libraries (~340 MB) are left out. On CUDA we use ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .generation import generate
from .models import weights_bytes
from .tasks import Problem


def latency_ms(model, tokenizer, problems: Sequence[Problem], max_new_tokens: int, n: int = 30) -> float:
    """Median wall time of one greedy answer at batch 1, in milliseconds."""
    times = []
    generate(model, tokenizer, [problems[0].prompt], max_new_tokens=max_new_tokens, batch_size=1)  # warm-up
    for p in problems[:n]:
        start = time.perf_counter()
        generate(model, tokenizer, [p.prompt], max_new_tokens=max_new_tokens, batch_size=1)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def batched_tokens_per_s(model, tokenizer, problems: Sequence[Problem], max_new_tokens: int,
                         batch_size: int = 256) -> float:
    """Generated tokens per second when answering all ``problems`` in batches (greedy)."""
    start = time.perf_counter()
    _, n_tokens = generate(model, tokenizer, [p.prompt for p in problems], max_new_tokens=max_new_tokens,
                           batch_size=batch_size)
    return n_tokens / (time.perf_counter() - start)


def peak_generation_memory_mb(model, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> float:
    """Peak memory of the model while generating (weights + KV cache + activations), in MB."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, batch_size=len(prompts))
        return torch.cuda.max_memory_allocated(device) / 2**20
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
