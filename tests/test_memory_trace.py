"""The colab profile against a free T4, traced: utils.memory_trace and scripts/gpu_check.py.

One module-scoped run of ``scripts/gpu_check.py --dry`` traces every colab stage with fake tensors
(full-size models, nothing allocated; about 1-2 min on two cores, < 1 GB of RAM) and prints the
plan beside it; the tests read its numbers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

import pytest

from utils.config import get_profile
from utils.memory_planner import GB, StageDoesNotFit, plan_profile, require_fits
from utils.memory_trace import COLAB_STAGES

ROOT = Path(__file__).resolve().parents[1]
TRACE_LIMIT = 14.5 * GB


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run():
    """``gpu_check.py --dry`` on this CPU: (exit code, printed text, {stage: traced bytes})."""
    gpu_check = _gpu_check()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = gpu_check.main(["--dry"])
    return code, out.getvalue(), dict(gpu_check.last_traced)


def test_gpu_check_dry_mode_runs_on_a_cpu_and_prints_the_table(dry_run):
    code, text, traced = dry_run
    assert code == 0, text
    assert "dry mode" in text and "planned GB" in text and "traced GB" in text
    for stage in COLAB_STAGES:
        assert any(line.startswith(stage) for line in text.splitlines()), text
    assert set(traced) == set(COLAB_STAGES)


def test_every_traced_colab_stage_fits_a_t4(dry_run):
    _, text, traced = dry_run
    over = {s: round(b / GB, 2) for s, b in traced.items() if b > TRACE_LIMIT}
    assert not over, text


def test_the_plan_is_within_20_percent_of_the_trace(dry_run):
    """The planner is the code's plan: its total (less the CUDA-context allowance, which the
    allocator's peak does not see) is within 20 % of each traced peak."""
    _, text, traced = dry_run
    for plan in plan_profile(get_profile("colab")):
        planned = plan["total"] - plan["overhead"]
        assert abs(planned - traced[plan["stage"]]) <= 0.2 * traced[plan["stage"]], (plan["stage"], text)


def test_traced_weights_are_the_checkpoints_at_full_size(dry_run):
    """Sanity of the trace: a generation stage holds at least its fp16 weights and KV cache."""
    from utils.memory_planner import hub_shape, kv_cache_bytes, weights_bytes

    _, _, traced = dry_run
    prof = get_profile("colab")
    teacher = hub_shape(prof.teacher)
    assert traced["03 sampling"] >= weights_bytes(teacher, 2) + kv_cache_bytes(
        teacher, prof.gen_batch_size, 256 + prof.max_new_tokens, 2)
    assert traced["05 serving"] >= weights_bytes(hub_shape(prof.serve_model), 2)


def test_require_fits_refuses_a_stage_and_names_its_largest_component():
    prof = get_profile("colab")
    assert require_fits(prof, "02 teacher SFT")["stage"] == "02 teacher SFT"   # the colab plan fits
    too_big = prof.replace(sft_batch_size=128)   # 128 x 640 tokens through a 1.5B model
    with pytest.raises(StageDoesNotFit, match=r"Stage '02 teacher SFT'.*needs \d+\.\d GB but the GPU has 15\.0 GB"
                                              r".*Largest component: activations .*batch"):
        require_fits(too_big, "02 teacher SFT")
    with pytest.raises(StageDoesNotFit, match="Largest component: optimizer"):
        require_fits(prof, "02 reward model", gpu_gb=8.0)
    with pytest.raises(ValueError, match="unknown stage"):
        require_fits(prof, "06 nothing")


def test_live_bytes_counts_storages_once_and_frees_them():
    import torch

    from utils.memory_trace import fake_mode

    with fake_mode() as live:
        a = torch.empty(1000, dtype=torch.float32)          # 4000 bytes
        view = a.view(10, 100)                               # same storage: not counted again
        assert live.current == 4000
        b = a * 2                                            # a new storage
        assert live.current == 8000 and live.peak == 8000
        del a, view
        assert live.current == 4000                          # a's storage is gone with its last view
        del b
        assert live.current == 0 and live.peak == 8000


def test_the_same_steps_run_for_real(monkeypatch):
    """``fake=False`` runs the very step functions on real tensors (what gpu_check does on CUDA);
    here on the CPU with tiny stand-ins of the checkpoints' configs, every stage once."""
    import torch

    from utils import memory_planner, memory_trace

    tiny = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=64, vocab_size=128, tie_word_embeddings=True)
    prof = get_profile("colab").replace(max_new_tokens=8, sft_max_length=16, rm_max_length=16,
                                        serve_max_new_tokens=8, gen_batch_size=4)
    configs = {m: dict(tiny) for m in memory_planner.HUB_CONFIGS}
    configs[prof.student]["model_type"] = "llama"
    monkeypatch.setattr(memory_planner, "HUB_CONFIGS", configs)
    monkeypatch.setattr(memory_trace, "HUB_CONFIGS", configs)
    torch.manual_seed(0)
    for stage in COLAB_STAGES:
        r = memory_trace.trace_stage(stage, prof, device="cpu", fake=False, prompt_tokens=8)
        assert r.method == "measured" and r.tokens > 0 and r.seconds > 0, stage
