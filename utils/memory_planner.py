"""GPU memory planner: will this stage fit on the GPU before we try it?

The colab profile runs on a free Colab T4: about 15 GB of memory, fp16 only
(no bf16 on that card). An out-of-memory crash after a 10-minute model
download is a poor way to learn that, so the notebooks plan every stage first::

    shape = shape_from_config(AutoConfig.from_pretrained(model_id))
    plan = plan_stage("sft_lora", shape, batch=4, seq_len=512, lora_rank=16)
    print(format_plan(plan))
    check_fits(plan, gpu_gb=15.0)        # warns when it will not fit

Everything is counted in bytes; a "GB" is 10**9 bytes. Colab's "15 GB" T4
really offers about 14.75 GiB (15.8e9 bytes) to PyTorch, so planning against
15e9 bytes leaves a small safety margin. The numbers are estimates: weights,
KV cache and optimizer state are exact arithmetic, activations are a
documented rule of thumb (see :func:`activation_bytes`).

Stages (``batch`` always counts sequences, ``seq_len`` prompt + completion):

* ``generate`` -- inference: weights + KV cache.
* ``sft_full`` / ``sft_lora`` -- supervised fine-tuning of all weights / of
  LoRA adapters only.
* ``reward`` -- training a reward model on preference pairs (each pair is a
  chosen and a rejected sequence, so ``2 * batch`` sequences go through it).
* ``grpo`` -- policy (trained) + reference model (frozen).
* ``ppo`` -- policy + value model (both trained) + reference + reward model
  (both frozen).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

__all__ = [
    "DEFAULT_LORA_RANK",
    "DEFAULT_OVERHEAD_BYTES",
    "DTYPE_BYTES",
    "GB",
    "STAGES",
    "MemoryPlanWarning",
    "ModelShape",
    "activation_bytes",
    "check_fits",
    "hub_shape",
    "plan_profile",
    "HUB_CONFIGS",
    "format_plan",
    "gradient_bytes",
    "kv_cache_bytes",
    "logits_bytes",
    "lora_params",
    "optimizer_bytes",
    "plan_stage",
    "shape_from_config",
    "weights_bytes",
]

GB = 10**9

# Bytes per number. A T4 has no bf16 support, so the colab profile uses fp16.
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}

# CUDA context + allocator fragmentation: a rough, fixed allowance.
DEFAULT_OVERHEAD_BYTES = 500 * 10**6

DEFAULT_LORA_RANK = 16

STAGES = ("generate", "sft_full", "sft_lora", "reward", "ppo", "grpo")


class MemoryPlanWarning(UserWarning):
    """Emitted by :func:`check_fits` when a plan needs more than the GPU has."""


# --------------------------------------------------------------------------
# Model shape
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """The few numbers of a decoder-only transformer that decide its memory.

    ``intermediate`` (the MLP width) is optional; it is only needed to count
    LoRA adapters on the MLP projections.
    """

    params: int
    n_layers: int
    hidden: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    intermediate: int | None = None


def _attention_params(hidden: int, n_heads: int, n_kv_heads: int, head_dim: int) -> int:
    """q/k/v/o projections of one Qwen2 layer: q, k and v have a bias, o does not."""
    q_width, kv_width = n_heads * head_dim, n_kv_heads * head_dim
    q = hidden * q_width + q_width
    k = v = hidden * kv_width + kv_width
    o = q_width * hidden
    return q + k + v + o


def _mlp_params(hidden: int, intermediate: int) -> int:
    """gate, up and down projections of a SwiGLU MLP, without biases."""
    return 3 * hidden * intermediate


def shape_from_config(config) -> ModelShape:
    """Read a :class:`ModelShape` from a transformers ``PretrainedConfig``.

    Uses the Qwen2 names (``num_hidden_layers``, ``hidden_size``,
    ``num_key_value_heads``, ``head_dim`` or ``hidden_size //
    num_attention_heads``, ``intermediate_size``, ``vocab_size``). The
    parameter count is exact for Qwen2 models (Qwen2.5, DeepSeek-R1-Distill-
    Qwen): embeddings + per layer (attention with q/k/v biases, MLP, two
    RMSNorms) + final RMSNorm + ``lm_head`` unless it is tied to the
    embeddings. For other Llama-like models it is a close estimate.
    """
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    hidden, n_heads = config.hidden_size, config.num_attention_heads
    n_kv_heads = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or hidden // n_heads
    layers, vocab, intermediate = config.num_hidden_layers, config.vocab_size, config.intermediate_size

    per_layer = (
        _attention_params(hidden, n_heads, n_kv_heads, head_dim)
        + _mlp_params(hidden, intermediate)
        + 2 * hidden  # input and post-attention RMSNorm weights
    )
    embeddings = vocab * hidden
    lm_head = 0 if getattr(config, "tie_word_embeddings", False) else vocab * hidden
    params = embeddings + layers * per_layer + hidden + lm_head  # + hidden: final norm
    return ModelShape(params, layers, hidden, n_kv_heads, head_dim, vocab, intermediate)


def lora_params(shape: ModelShape, rank: int, targets: str = "auto") -> int:
    """Number of trainable LoRA parameters.

    A rank-``r`` adapter on a ``d_in x d_out`` linear layer adds
    ``r * (d_in + d_out)`` parameters (matrices A and B). ``targets`` is
    ``"attention"`` (q, k, v, o) or ``"all-linear"`` (also gate, up, down);
    ``"auto"`` picks all-linear when ``shape.intermediate`` is known. Assumes
    ``n_heads * head_dim == hidden``, true for Qwen2 models.
    """
    if targets == "auto":
        targets = "attention" if shape.intermediate is None else "all-linear"
    hidden, kv_width, mlp_width = shape.hidden, shape.n_kv_heads * shape.head_dim, shape.intermediate
    sizes = [(hidden, hidden), (hidden, kv_width), (hidden, kv_width), (hidden, hidden)]  # q k v o
    if targets == "all-linear":
        if mlp_width is None:
            raise ValueError("all-linear LoRA needs ModelShape.intermediate (the MLP width)")
        sizes += [(hidden, mlp_width), (hidden, mlp_width), (mlp_width, hidden)]  # gate up down
    elif targets != "attention":
        raise ValueError(f"targets must be 'auto', 'attention' or 'all-linear', not {targets!r}")
    return shape.n_layers * sum(rank * (d_in + d_out) for d_in, d_out in sizes)


# --------------------------------------------------------------------------
# Components, each in bytes
# --------------------------------------------------------------------------


def weights_bytes(shape: ModelShape, dtype_bytes: float) -> int:
    """Memory of the model weights: ``params * dtype_bytes``."""
    return math.ceil(shape.params * dtype_bytes)


def kv_cache_bytes(shape: ModelShape, batch: int, seq_len: int, dtype_bytes: float) -> int:
    """Memory of the KV cache when generating.

    ``2 (keys and values) * layers * kv_heads * head_dim * seq_len * batch *
    dtype_bytes``. Grouped-query attention (few KV heads) keeps this small.
    """
    return math.ceil(2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * seq_len * batch * dtype_bytes)


def gradient_bytes(trainable_params: int, dtype_bytes: float) -> int:
    """One gradient per trainable parameter, in the training dtype."""
    return math.ceil(trainable_params * dtype_bytes)


def optimizer_bytes(trainable_params: int) -> int:
    """AdamW state for mixed-precision training: 12 bytes per trainable parameter.

    Two fp32 moment estimates (m and v, 4 + 4 bytes) plus an fp32 master copy
    of the weights (4 bytes) that the optimizer updates. With the fp16 weights
    and fp16 gradients this gives the familiar 2 + 2 + 12 = 16 bytes per
    parameter of the ZeRO paper (Rajbhandari et al., 2020).
    """
    return 12 * trainable_params


def activation_bytes(
    shape: ModelShape, batch: int, seq_len: int, dtype_bytes: float, gradient_checkpointing: bool = False
) -> int:
    """Rough memory of the activations kept for the backward pass.

    Formula (Korthikanti et al., 2022, "Reducing Activation Recomputation in
    Large Transformer Models"): one layer stores about ``34 * seq * batch *
    hidden`` bytes at 16-bit precision, i.e. 17 numbers per token and hidden
    unit. Their extra ``5 * heads * seq^2 * batch`` term for attention scores
    is left out because PyTorch's SDPA kernels never store the score matrix.
    With gradient checkpointing only each layer's input (1 number per token
    and hidden unit) is kept, plus one layer's full activations while it is
    recomputed. Logits are counted separately by :func:`logits_bytes`.
    """
    tokens_x_hidden = batch * seq_len * shape.hidden
    one_layer = 17 * tokens_x_hidden * dtype_bytes
    if gradient_checkpointing:
        return math.ceil(shape.n_layers * tokens_x_hidden * dtype_bytes + one_layer)
    return math.ceil(shape.n_layers * one_layer)


def logits_bytes(shape: ModelShape, batch: int, seq_len: int, dtype_bytes: float) -> int:
    """Memory of the output logits: ``batch * seq_len * vocab * (dtype_bytes + 4)``.

    The model returns logits in its own dtype and the loss makes an fp32 copy.
    With Qwen's 152k-token vocabulary this is often the biggest activation.
    """
    return math.ceil(batch * seq_len * shape.vocab * (dtype_bytes + 4))


# --------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------


def _trained_model(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing) -> dict[str, int]:
    """Weights, gradients, optimizer state and activations of one trained model."""
    trainable = shape.params if lora_rank is None else lora_params(shape, lora_rank)
    stored = shape.params if lora_rank is None else shape.params + trainable
    return {
        "weights": math.ceil(stored * dtype_bytes),
        "gradients": gradient_bytes(trainable, dtype_bytes),
        "optimizer": optimizer_bytes(trainable),
        "activations": activation_bytes(shape, batch, seq_len, dtype_bytes, checkpointing),
    }


def _add(total: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    """Add ``part`` to ``total`` component by component."""
    for name, value in part.items():
        total[name] = total.get(name, 0) + value
    return total


def _generate(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing) -> dict[str, int]:
    """Inference: weights, KV cache, and the logits of the newest token."""
    return {
        "weights": weights_bytes(shape, dtype_bytes),
        "kv_cache": kv_cache_bytes(shape, batch, seq_len, dtype_bytes),
        "logits": logits_bytes(shape, batch, 1, dtype_bytes),
    }


def _sft(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing) -> dict[str, int]:
    """Supervised fine-tuning of one causal LM."""
    plan = _trained_model(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing)
    plan["logits"] = logits_bytes(shape, batch, seq_len, dtype_bytes)
    return plan


def _reward(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing) -> dict[str, int]:
    """Reward-model training: chosen and rejected sequences, a scalar head, no vocab logits."""
    return _trained_model(shape, 2 * batch, seq_len, dtype_bytes, lora_rank, checkpointing)


def _grpo(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing) -> dict[str, int]:
    """GRPO: a trained policy that also generates, plus a frozen reference.

    With LoRA the reference is the policy with its adapters switched off
    (what TRL does), so it costs no extra weights.
    """
    plan = _sft(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing)
    plan["ref_weights"] = 0 if lora_rank is not None else weights_bytes(shape, dtype_bytes)
    plan["kv_cache"] = kv_cache_bytes(shape, batch, seq_len, dtype_bytes)
    return plan


def _ppo(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing) -> dict[str, int]:
    """PPO: GRPO's policy and reference plus a frozen reward model and a trained value model.

    The value model has the policy's backbone, is trained the same way (LoRA
    or full) and has no vocabulary logits.
    """
    plan = _grpo(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing)
    plan["reward_weights"] = weights_bytes(shape, dtype_bytes)
    value = _trained_model(shape, batch, seq_len, dtype_bytes, lora_rank, checkpointing)
    plan["value_weights"] = value.pop("weights")
    return _add(plan, value)


_STAGE_PLANNERS = {
    "generate": _generate,
    "sft_full": _sft,
    "sft_lora": _sft,
    "reward": _reward,
    "ppo": _ppo,
    "grpo": _grpo,
}


def plan_stage(
    stage: str,
    shape: ModelShape,
    batch: int,
    seq_len: int,
    dtype_bytes: float = 2,
    lora_rank: int | None = None,
    *,
    gradient_checkpointing: bool = False,
    overhead_bytes: int = DEFAULT_OVERHEAD_BYTES,
) -> dict:
    """Estimate the GPU memory of one stage, component by component.

    Returns a dict: ``"stage"`` (the name), then one entry per component in
    bytes (``weights``, ``gradients``, ``optimizer``, ``activations``,
    ``logits``, ``kv_cache``, ... as the stage needs), ``overhead`` (CUDA
    context and fragmentation) and ``total``. ``lora_rank`` switches the
    trained models to LoRA adapters; ``sft_lora`` uses rank 16 when it is
    None and ``sft_full`` ignores it. Generation (KV cache) and training are
    counted as if alive at once, which errs on the safe side.
    """
    if stage not in _STAGE_PLANNERS:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    if batch < 1 or seq_len < 1:
        raise ValueError("batch and seq_len must be at least 1")
    if stage == "sft_full":
        lora_rank = None
    elif stage == "sft_lora" and lora_rank is None:
        lora_rank = DEFAULT_LORA_RANK
    components = _STAGE_PLANNERS[stage](shape, batch, seq_len, dtype_bytes, lora_rank, gradient_checkpointing)
    components["overhead"] = overhead_bytes
    return {"stage": stage, **components, "total": sum(components.values())}


def _components(plan: dict) -> dict[str, int]:
    """The byte-valued components of a plan (everything but stage and total)."""
    return {name: value for name, value in plan.items() if name not in ("stage", "total")}


def check_fits(plan: dict, gpu_gb: float = 15.0) -> bool:
    """True if ``plan`` fits in ``gpu_gb`` GB; otherwise warn and return False.

    The :class:`MemoryPlanWarning` names the stage, the GB needed, the GB
    available and the biggest component, so the fix is easy to pick.
    """
    needed, available = plan["total"], gpu_gb * GB
    if needed <= available:
        return True
    biggest = max(_components(plan).items(), key=lambda item: item[1])[0]
    warnings.warn(
        f"Stage '{plan.get('stage', '?')}' needs {needed / GB:.1f} GB but the GPU has "
        f"{gpu_gb:.1f} GB (biggest part: {biggest}). Try LoRA, gradient checkpointing, "
        "a smaller batch or shorter sequences.",
        MemoryPlanWarning,
        stacklevel=2,
    )
    return False


def format_plan(plan: dict) -> str:
    """A short table of the plan in GB (10**9 bytes), one component per line."""
    rows = [f"{plan.get('stage', 'plan')} (GB)"]
    rows += [f"  {name:<15}{value / GB:>8.2f}" for name, value in _components(plan).items()]
    rows.append(f"  {'total':<15}{plan['total'] / GB:>8.2f}")
    return "\n".join(rows)


# --------------------------------------------------------------------------
# The colab profile's plan: every stage of notebooks 02-05 on a free T4
# --------------------------------------------------------------------------

# Shapes of the hub models the colab profile names, from their public config.json files
# (so the plan needs no download). Qwen2.5 ties embeddings at 0.5B/1.5B; the R1 distill does not.
HUB_CONFIGS: dict[str, dict] = {
    "Qwen/Qwen2.5-1.5B-Instruct": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                                       num_key_value_heads=2, intermediate_size=8960, vocab_size=151936,
                                       tie_word_embeddings=True),
    "Qwen/Qwen2.5-0.5B-Instruct": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                                       num_key_value_heads=2, intermediate_size=4864, vocab_size=151936,
                                       tie_word_embeddings=True),
    "HuggingFaceTB/SmolLM2-360M-Instruct": dict(hidden_size=960, num_hidden_layers=32, num_attention_heads=15,
                                                num_key_value_heads=5, intermediate_size=2560, vocab_size=49152,
                                                tie_word_embeddings=True),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                                                      num_key_value_heads=2, intermediate_size=8960,
                                                      vocab_size=151936, tie_word_embeddings=False),
}


def hub_shape(model_id: str) -> ModelShape:
    """The :class:`ModelShape` of a hub model listed in :data:`HUB_CONFIGS` (no download)."""
    from transformers import Qwen2Config

    if model_id not in HUB_CONFIGS:
        raise KeyError(f"No stored shape for {model_id!r}; add its config numbers to HUB_CONFIGS "
                       "or call shape_from_config(AutoConfig.from_pretrained(...)).")
    return shape_from_config(Qwen2Config(**HUB_CONFIGS[model_id]))


def _ppo_with_small_critic(policy: ModelShape, reward: ModelShape, batch: int, seq_len: int,
                           settings) -> dict:
    """PPO as notebook 02 runs it: the policy (LoRA on a half-precision base, or full), a frozen
    half-precision reference and reward model, and a critic with the reward model's backbone,
    fully trained in fp32. Activations are counted at the policy's size (an overestimate)."""
    plan = plan_stage("ppo", policy, batch, seq_len, _dtype_bytes(settings), lora_rank=settings.lora_rank,
                      gradient_checkpointing=settings.gradient_checkpointing)
    plan["reward_weights"] = weights_bytes(reward, 2)
    plan["value_weights"] = weights_bytes(reward, 4)
    plan["total"] = sum(_components(plan).values())
    return plan | {"stage": "02 PPO"}


def _dtype_bytes(settings) -> int:
    """Bytes per number of a stage: 2 with half-precision weights, 4 with fp32 master weights
    (activations under mixed precision are half that: counting them at 4 errs on the safe side)."""
    return 2 if settings.half_weights else 4


def plan_profile(profile, prompt_tokens: int = 256) -> list[dict]:
    """One plan per stage of the course for a profile whose models are hub ids.

    Every batch, precision, LoRA rank and gradient-checkpointing switch comes from
    :func:`utils.config.stage_settings` – the settings the trainers read – and every sequence
    length from the profile's truncation lengths, so the plan is the code's plan.
    """
    from .config import stage_settings

    def plan(stage: str, planner_stage: str, shape: ModelShape, seq: int, label: str) -> dict:
        s = stage_settings(profile, stage)
        return plan_stage(planner_stage, shape, s.batch, seq, _dtype_bytes(s), lora_rank=s.lora_rank,
                          gradient_checkpointing=s.gradient_checkpointing) | {"stage": label}

    rollout = prompt_tokens + profile.max_new_tokens
    teacher, student = hub_shape(profile.teacher), hub_shape(profile.student)
    reward = hub_shape(profile.reward_model)
    sft_stage = "sft_lora" if stage_settings(profile, "teacher_sft").lora_rank else "sft_full"
    return [
        plan("teacher_sft", sft_stage, teacher, profile.sft_max_length, "02 teacher SFT"),
        plan("reward_model", "reward", reward, profile.rm_max_length, "02 reward model"),
        _ppo_with_small_critic(teacher, reward, stage_settings(profile, "ppo").batch, rollout,
                               stage_settings(profile, "ppo")),
        plan("grpo", "grpo", teacher, rollout, "02 GRPO"),
        plan("sampling", "generate", teacher, rollout, "03 sampling"),
        plan("student_sft", "sft_full", student, profile.sft_max_length, "04 student SFT"),
        plan_stage("generate", hub_shape(profile.serve_model), stage_settings(profile, "serving").batch,
                   prompt_tokens + profile.serve_max_new_tokens) | {"stage": "05 serving"},
    ]
