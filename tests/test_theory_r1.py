"""Notebook 01, section 5 (utils/theory.py): serving cost with each model's published weight
precision – DeepSeek-R1 in FP8 (1 byte per parameter), the distilled students in bf16 (2 bytes).
Fast: arithmetic only."""

import pytest

from utils import theory


def _model(prefix: str) -> theory.ServedModel:
    (m,) = [m for m in theory.SERVED_MODELS if m.name.startswith(prefix)]
    return m


def test_precision_is_explicit_per_model():
    assert _model("DeepSeek-R1").bytes_per_param == 1.0        # FP8
    assert _model("R1-Distill-Qwen-1.5B").bytes_per_param == 2.0  # bf16
    assert _model("R1-Distill-Qwen-7B").bytes_per_param == 2.0


def test_r1_weights_are_about_671_gb_in_fp8():
    r1 = _model("DeepSeek-R1")
    cost = theory.inference_cost(r1)
    assert cost["weights_gb"] == pytest.approx(r1.params_total / 1e9)   # 1 byte per parameter
    assert cost["weights_gb"] == pytest.approx(671, rel=0.01)


def test_small_student_weights_are_about_3_5_gb_in_bf16():
    small = _model("R1-Distill-Qwen-1.5B")
    cost = theory.inference_cost(small)
    assert cost["weights_gb"] == pytest.approx(small.params_total * 2 / 1e9)
    assert 3.4 < cost["weights_gb"] < 3.7


def test_latency_floor_ratio_uses_active_params_times_each_models_bytes():
    small, big = _model("R1-Distill-Qwen-1.5B"), _model("DeepSeek-R1")
    ratio = theory.inference_cost(big)["min_ms_per_token"] / theory.inference_cost(small)["min_ms_per_token"]
    expected = (big.params_active * big.bytes_per_param) / (small.params_active * small.bytes_per_param)
    assert ratio == pytest.approx(expected)
    assert ratio == pytest.approx(37e9 * 1 / (1.78e9 * 2), rel=1e-6)   # ~10×, not 37/1.78 ≈ 21×


def test_kv_cache_stays_at_two_bytes_per_element_whatever_the_weights():
    r1 = _model("DeepSeek-R1")
    cost = theory.inference_cost(r1, tokens=32_768)
    assert cost["kv_cache_gb"] == pytest.approx(r1.layers * r1.kv_bytes_per_token_per_layer * 32_768 * 2 / 1e9)


def test_bytes_per_param_argument_overrides_the_models_precision():
    r1 = _model("DeepSeek-R1")
    as_bf16 = theory.inference_cost(r1, bytes_per_param=2.0)
    assert as_bf16["weights_gb"] == pytest.approx(2 * theory.inference_cost(r1)["weights_gb"])
    assert as_bf16["kv_cache_gb"] == pytest.approx(theory.inference_cost(r1)["kv_cache_gb"])
