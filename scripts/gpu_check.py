"""Does every colab stage fit a free Colab T4? Plan, trace, and (on a GPU) measure one step each.

    python scripts/gpu_check.py            # a CUDA device: measure; a CPU: dry mode (trace + plan)
    python scripts/gpu_check.py --dry      # trace + plan only, on any machine
    make gpu-check                         # the same (make gpu-check TINY=1: the tiny series on CUDA)

On a CUDA device the colab stages run one real step each with full-size, random-weight models in
fp16 – the same step functions that utils.memory_trace traces with fake tensors – with the process
capped at 15 GB (``torch.cuda.set_per_process_memory_fraction``) and FlashAttention switched off
(a T4 has none: SDPA picks the memory-efficient kernel, as on the T4). It prints the device, each
stage's measured peak (``torch.cuda.max_memory_allocated``) beside the plan and the trace, and the
tokens per second *of this device* – never converted into T4 minutes (utils.time_plan does that).
A GPU with less than 15 GB is refused. Without CUDA (or with ``--dry``) it prints the traced peaks
against the plan: what CI runs (tests/test_memory_trace.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T4_BYTES = 15e9          # a free Colab T4, as the colab profile plans it (gpu_gb)
TRACE_LIMIT_GB = 14.5    # a traced peak above this leaves no room for the CUDA context

#: {stage: traced peak bytes} of the last dry run (tests/test_memory_trace.py reads it).
last_traced: dict[str, int] = {}


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def dry_run(profile, stages) -> dict:
    """Trace every stage (fake tensors) and print the plan beside it; returns {stage: peak bytes}."""
    from utils.memory_planner import format_profile_plan
    from utils.memory_trace import trace_profile

    start = time.perf_counter()
    traced = {r.stage: r.peak_bytes for r in trace_profile(profile, stages=stages)}
    last_traced.clear()
    last_traced.update(traced)
    print(f"dry mode (no CUDA device): traced {len(traced)} stages with fake tensors "
          f"in {time.perf_counter() - start:.0f} s – nothing was allocated")
    print(format_profile_plan(profile, traced))
    over = [s for s, b in traced.items() if b > TRACE_LIMIT_GB * 1e9]
    print("every traced peak fits" if not over else f"TRACED PEAK ABOVE {TRACE_LIMIT_GB} GB: {', '.join(over)}")
    return traced


def gpu_run(profile, stages, repeats: int) -> int:
    """Measure each stage on the CUDA device; returns a process exit code."""
    import torch
    from torch.nn.attention import SDPBackend

    from utils.memory_planner import GB, plan_profile
    from utils.memory_trace import trace_stage

    props = torch.cuda.get_device_properties(0)
    total = props.total_memory
    print(f"device: {props.name} ({total / GB:.1f} GB, sm{props.major}{props.minor}), torch {torch.__version__}")
    if total < T4_BYTES:
        print(f"refused: this GPU has {total / GB:.1f} GB, less than the {T4_BYTES / GB:.0f} GB of a free Colab T4 "
              "the colab profile is planned for; the measurement would not say whether a T4 fits.")
        return 2
    torch.cuda.set_per_process_memory_fraction(T4_BYTES / total)
    print(f"memory capped at {T4_BYTES / GB:.0f} GB ({T4_BYTES / total:.3f} of the device); fp16; "
          "SDPA without FlashAttention (memory-efficient or math kernel, as on a T4)")
    plans = {p["stage"]: p for p in plan_profile(profile)}
    rows = [["stage", "planned GB", "traced GB", "measured GB", "meas/plan", "tokens/s (this GPU)"]]
    failed = []
    for label in stages:
        traced = trace_stage(label, profile).peak_bytes
        plan = plans[label]["total"] - plans[label]["overhead"]
        start = time.perf_counter()
        try:
            with torch.nn.attention.sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
                r = trace_stage(label, profile, device="cuda", fake=False, repeats=repeats)
            measured, speed = f"{r.peak_gb:.2f}", f"{r.tokens_per_s:,.0f}"
            ratio = f"{r.peak_bytes / plan:.2f}"
        except torch.OutOfMemoryError:
            measured, speed, ratio = "OOM", "-", "-"
            failed.append(label)
            torch.cuda.empty_cache()
        rows.append([label, f"{plan / GB:.2f}", f"{traced / GB:.2f}", measured, ratio, speed])
        print(f"  {label}: {measured} GB measured, {time.perf_counter() - start:.0f} s", flush=True)
    print(_table(rows))
    print("planned GB without the 0.5 GB CUDA-context allowance; measured = torch.cuda.max_memory_allocated "
          "after torch.cuda.reset_peak_memory_stats once the models are built; tokens/s: the timed step on "
          "this device (training: batch x sequence per optimizer step; generation: decoded tokens).")
    if failed:
        print(f"OUT OF MEMORY under the 15 GB cap: {', '.join(failed)}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from utils.config import get_profile
    from utils.memory_trace import COLAB_STAGES

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry", action="store_true", help="trace and plan only, even on a GPU")
    ap.add_argument("--profile", default="colab")
    ap.add_argument("--stages", nargs="*", default=list(COLAB_STAGES), help="stage labels (default: all)")
    ap.add_argument("--repeats", type=int, default=1, help="timed steps after the warm-up step (GPU)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import torch

    profile = get_profile(args.profile)
    unknown = [s for s in args.stages if s not in COLAB_STAGES]
    if unknown:
        ap.error(f"unknown stages {unknown}; choose among {list(COLAB_STAGES)}")
    if args.dry or not torch.cuda.is_available():
        traced = dry_run(profile, args.stages)
        return 0 if all(b <= TRACE_LIMIT_GB * 1e9 for b in traced.values()) else 1
    return gpu_run(profile, args.stages, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
