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
    "StageDoesNotFit",
    "check_fits",
    "code_plan",
    "format_profile_plan",
    "hub_shape",
    "inference_activation_bytes",
    "plan_profile",
    "ppo_logits_bytes",
    "require_fits",
    "training_activation_bytes",
    "trl_logits_bytes",
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


def _attention_params(hidden: int, n_heads: int, n_kv_heads: int, head_dim: int,
                      qkv_bias: bool = True, o_bias: bool = False) -> int:
    """q/k/v/o projections of one layer: in Qwen2 q, k and v have a bias and o does not; in Llama
    (SmolLM2) none has one unless ``attention_bias`` (then all four)."""
    q_width, kv_width = n_heads * head_dim, n_kv_heads * head_dim
    q = hidden * q_width + (q_width if qkv_bias else 0)
    k = v = hidden * kv_width + (kv_width if qkv_bias else 0)
    o = q_width * hidden + (hidden if o_bias else 0)
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
    Qwen) and Llama models (SmolLM2): embeddings + per layer (attention, with
    q/k/v biases in Qwen2, MLP, two RMSNorms) + final RMSNorm + ``lm_head``
    unless it is tied to the embeddings.
    """
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    hidden, n_heads = config.hidden_size, config.num_attention_heads
    n_kv_heads = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or hidden // n_heads
    layers, vocab, intermediate = config.num_hidden_layers, config.vocab_size, config.intermediate_size

    if getattr(config, "model_type", "qwen2") == "llama":
        qkv_bias = o_bias = bool(getattr(config, "attention_bias", False))
    else:
        qkv_bias, o_bias = True, False
    per_layer = (
        _attention_params(hidden, n_heads, n_kv_heads, head_dim, qkv_bias, o_bias)
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


def optimizer_bytes(trainable_params: int, master_copy: bool = True) -> int:
    """AdamW state: 8 bytes per trainable parameter (fp32 m and v), + 4 with a master copy.

    ``master_copy=True``: half-precision weights trained through an fp32 master copy (4 bytes)
    that the optimizer updates – with fp16 weights and fp16 gradients the familiar 2 + 2 + 12 =
    16 bytes per parameter of the ZeRO paper (Rajbhandari et al., 2020). ``False``: torch's AdamW
    on fp32 parameters (full fine-tuning with fp32 weights and autocast, or PEFT's fp32 LoRA
    adapters): the parameters are their own master copy, only m and v are added.
    """
    return (12 if master_copy else 8) * trainable_params


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
    "HuggingFaceTB/SmolLM2-360M-Instruct": dict(model_type="llama", hidden_size=960, num_hidden_layers=32, num_attention_heads=15,
                                                num_key_value_heads=5, intermediate_size=2560, vocab_size=49152,
                                                tie_word_embeddings=True),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                                                      num_key_value_heads=2, intermediate_size=8960,
                                                      vocab_size=151936, tie_word_embeddings=False),
}


def hub_shape(model_id: str) -> ModelShape:
    """The :class:`ModelShape` of a hub model listed in :data:`HUB_CONFIGS` (no download)."""
    from transformers import LlamaConfig, Qwen2Config

    if model_id not in HUB_CONFIGS:
        raise KeyError(f"No stored shape for {model_id!r}; add its config numbers to HUB_CONFIGS "
                       "or call shape_from_config(AutoConfig.from_pretrained(...)).")
    numbers = dict(HUB_CONFIGS[model_id])
    config_cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[numbers.pop("model_type", "qwen2")]
    return shape_from_config(config_cls(**numbers))


def plan_profile(profile, prompt_tokens: int = 256) -> list[dict]:
    """One plan per stage of the course – the code's plan – for a profile whose models are hub ids.

    Every batch, precision, LoRA rank and gradient-checkpointing switch comes from
    :func:`utils.config.stage_settings` – the settings the trainers read – and every sequence
    length from the profile's truncation lengths. Each stage is counted the way its code runs it
    (see :func:`code_plan`): what stays alive (weights, fp32 LoRA adapters, AdamW state), plus the
    largest of the moments the stage passes through (backward, rollout, prefill, decode).
    ``utils.memory_trace`` traces the same steps; ``tests/test_memory_trace.py`` holds the two
    within 20 % of each other.
    """
    from .config import stage_settings

    def s(stage):
        return stage_settings(profile, stage)

    rollout = prompt_tokens + profile.max_new_tokens
    teacher, student, reward = (hub_shape(m) for m in (profile.teacher, profile.student, profile.reward_model))
    serve = hub_shape(profile.serve_model)
    return [
        code_plan("02 teacher SFT", "sft", teacher, s("teacher_sft"), profile.sft_max_length),
        code_plan("02 reward model", "reward", reward, s("reward_model"), profile.rm_max_length),
        code_plan("02 PPO", "ppo", teacher, s("ppo"), rollout, prompt_tokens=prompt_tokens, critic=reward),
        code_plan("02 GRPO", "grpo", teacher, s("grpo"), rollout, prompt_tokens=prompt_tokens),
        code_plan("03 sampling", "generate", teacher, s("sampling"), rollout, prompt_tokens=prompt_tokens),
        code_plan("04 student SFT", "sft", student, s("student_sft"), profile.sft_max_length),
        code_plan("05 serving", "generate", serve, s("serving"), prompt_tokens + profile.serve_max_new_tokens,
                  prompt_tokens=prompt_tokens),
    ]


# --------------------------------------------------------------------------
# The code's plan: each stage as the course's code runs it on a T4 (fp16 autocast)
# --------------------------------------------------------------------------

#: TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``, SFTTrainer and GRPOTrainer):
#: logits are projected in tiles of at most 4096 tokens x 32768 vocabulary entries, in fp16.
TRL_TOKEN_TILE, TRL_VOCAB_TILE = 4096, 32768
#: utils.ppo.LOGIT_CHUNK_NUMBERS: the largest fp32 logit block PPO's token_logprobs computes at once.
PPO_LOGIT_CHUNK_NUMBERS = 2**27

#: Bytes per token and hidden unit that one decoder layer saves for backward beyond its MLP
#: (norms, q/k/v/o, rotary, attention output) under fp16 autocast; measured by tracing one Qwen2 /
#: Llama layer (utils.memory_trace): 25 with a half-precision residual stream, 41 when fp32
#: master weights keep the stream in fp32 (RMSNorm multiplies by its fp32 weight). LoRA adapters
#: add about 4 (their fp16 input copies and rank-r outputs).
SAVED_PER_HIDDEN = {2: 25, 4: 41}
LORA_SAVED_PER_HIDDEN = 4
#: The MLP saves gate, up, act(gate) and their product: 4 intermediate-width fp16 numbers a token.
SAVED_PER_INTERMEDIATE = 8
#: Inference (no grad) holds about 3 intermediate-width and 3.5 hidden-width fp16 numbers a token
#: at the widest point of a layer (traced: 64.7 kB a token for Qwen2.5-1.5B).
INFER_PER_INTERMEDIATE, INFER_PER_HIDDEN = 6, 7


def _layer_saved(shape: ModelShape, tokens: int, stream: int, lora: bool) -> int:
    per_token = SAVED_PER_INTERMEDIATE * shape.intermediate + (SAVED_PER_HIDDEN[stream] + (
        LORA_SAVED_PER_HIDDEN if lora else 0)) * shape.hidden
    return tokens * per_token


def training_activation_bytes(shape: ModelShape, tokens: int, stream: int, lora: bool, checkpointing: bool) -> int:
    """Activations alive in a training step's backward, counted from the layer's saved tensors.

    With checkpointing: every layer's input (``tokens x hidden`` in the stream dtype) plus one
    layer recomputed with its backward working set (1.5 x what it saves). Without: every layer's
    saved tensors plus half a layer of working set.
    """
    one_layer = _layer_saved(shape, tokens, stream, lora)
    if checkpointing:
        return shape.n_layers * tokens * shape.hidden * stream + math.ceil(1.5 * one_layer)
    return shape.n_layers * one_layer + one_layer // 2


def inference_activation_bytes(shape: ModelShape, tokens: int) -> int:
    """The widest point of a no-grad forward over ``tokens`` tokens (fp16), one layer at a time."""
    return tokens * (INFER_PER_INTERMEDIATE * shape.intermediate + INFER_PER_HIDDEN * shape.hidden)


def trl_logits_bytes(shape: ModelShape, tokens: int, full_head_grad: bool) -> int:
    """TRL's fused LM head: one fp16 tile, the hidden-state copy (fp16) and its fp32 gradient, and
    with a trained head (full fine-tuning) an fp32 gradient of the whole head."""
    tile = min(tokens, TRL_TOKEN_TILE) * min(shape.vocab, TRL_VOCAB_TILE) * 2
    head = shape.vocab * shape.hidden * 4 if full_head_grad else 0
    return tile + tokens * shape.hidden * (2 + 4) + head


def ppo_logits_bytes(shape: ModelShape, seq_len: int) -> int:
    """utils.ppo.token_logprobs: rows of ``seq_len`` tokens at a time (PPO_LOGIT_CHUNK_NUMBERS),
    recomputed in backward: fp16 logits, their fp32 copy, softmax and the fp32 gradient."""
    rows = max(1, PPO_LOGIT_CHUNK_NUMBERS // (seq_len * shape.vocab))
    return rows * seq_len * shape.vocab * (2 + 4 + 4 + 4)


def _trainable_parts(shape: ModelShape, settings, prefix: str = "") -> dict[str, int]:
    """Weights, adapters, gradients and AdamW state of one trained model as the code holds it.

    LoRA (``settings.lora_rank``): half-precision base, fp32 adapters (PEFT's
    ``autocast_adapter_dtype``), fp32 gradients, AdamW's m and v in fp32 – no master copy, the
    adapters are fp32 already. Full fine-tuning: fp32 weights (the master copy *is* the model),
    fp32 gradients, m and v.
    """
    if settings.lora_rank:
        trainable = lora_params(shape, settings.lora_rank, "all-linear")
        weights = weights_bytes(shape, 2) + 4 * trainable
    else:
        trainable = shape.params
        weights = weights_bytes(shape, 4)
    return {f"{prefix}weights": weights, f"{prefix}optimizer": optimizer_bytes(trainable, master_copy=False),
            f"{prefix}gradients": gradient_bytes(trainable, 4)}


def code_plan(label: str, kind: str, shape: ModelShape, settings, seq_len: int, *, prompt_tokens: int = 256,
              critic: ModelShape | None = None, overhead_bytes: int = DEFAULT_OVERHEAD_BYTES) -> dict:
    """The plan of one stage as the course's code runs it on a T4.

    ``kind``: ``"sft"`` (TRL SFTTrainer), ``"reward"`` (TRL RewardTrainer: chosen and rejected,
    ``2 x batch`` sequences), ``"ppo"`` (utils.ppo: policy, reference = adapters off, critic on
    ``critic``'s backbone, frozen reward model of that shape), ``"grpo"`` (TRL GRPOTrainer) or
    ``"generate"``. Returns the components in bytes and ``total`` = what stays alive (weights,
    adapters, optimizer state) + the largest *phase*: a training step's backward (activations,
    logits, and the gradients, which the backward writes as it frees each layer's activations:
    the larger of the two is counted), a rollout or a generation's prefill or last decode step.
    """
    half = bool(settings.half_weights)
    batch, lora = settings.batch, bool(settings.lora_rank)
    stream = 2 if half else 4
    parts: dict[str, int] = {}
    phases: list[int] = []

    def backward_phase(shape_, tokens, logits, grads):
        acts = training_activation_bytes(shape_, tokens, stream, lora, settings.gradient_checkpointing)
        return acts, max(acts + logits, grads)

    if kind in ("sft", "grpo"):
        tokens = batch * seq_len
        parts |= _trainable_parts(shape, settings)
        logits = trl_logits_bytes(shape, tokens, full_head_grad=not lora)
        acts, phase = backward_phase(shape, tokens, logits, parts["gradients"])
        parts |= {"activations": acts, "logits": logits}
        phases.append(phase)
        if kind == "grpo":   # generation of the group's completions, before the update
            kv = kv_cache_bytes(shape, batch, seq_len, 2)
            prefill = inference_activation_bytes(shape, batch * prompt_tokens)
            parts |= {"kv_cache": kv, "prefill": prefill}
            phases.append(max(kv, prefill + kv_cache_bytes(shape, batch, prompt_tokens, 2)))
    elif kind == "reward":
        tokens = 2 * batch * seq_len
        parts |= _trainable_parts(shape, settings)
        acts, phase = backward_phase(shape, tokens, 0, parts["gradients"])
        parts["activations"] = acts
        phases.append(phase)
    elif kind == "ppo":
        if critic is None:
            raise ValueError("a PPO plan needs the critic's (reward model's) shape")
        tokens = batch * seq_len
        parts |= _trainable_parts(shape, settings, "policy_")
        parts |= _trainable_parts(critic, settings, "critic_")
        parts["critic_weights"] += 2 * 4 * critic.hidden   # fp32 score head + PEFT's trained copy
        parts["reward_weights"] = weights_bytes(critic, 2)  # frozen, half precision
        logits = ppo_logits_bytes(shape, seq_len)
        acts = (training_activation_bytes(shape, tokens, stream, lora, settings.gradient_checkpointing)
                + training_activation_bytes(critic, tokens, stream, lora, settings.gradient_checkpointing))
        grads = parts["policy_gradients"] + parts["critic_gradients"]
        parts |= {"activations": acts, "logits": logits}
        phases.append(max(acts + logits, grads))
        kv = kv_cache_bytes(shape, batch, seq_len, 2)
        prefill = inference_activation_bytes(shape, batch * prompt_tokens) + kv_cache_bytes(
            shape, batch, prompt_tokens, 2)
        parts["kv_cache"] = kv
        phases.append(max(kv, prefill))
    elif kind == "generate":
        parts["weights"] = weights_bytes(shape, 2)
        kv = kv_cache_bytes(shape, batch, seq_len, 2)
        prefill = inference_activation_bytes(shape, batch * prompt_tokens)
        logits = logits_bytes(shape, batch, 1, 2)
        parts |= {"kv_cache": kv, "prefill": prefill, "logits": logits}
        phases.append(max(kv + logits, prefill + kv_cache_bytes(shape, batch, prompt_tokens, 2)))
    else:
        raise ValueError(f"unknown kind {kind!r}: sft, reward, ppo, grpo or generate")
    resident = sum(v for k, v in parts.items() if k.endswith(("weights", "optimizer")))
    parts["overhead"] = overhead_bytes
    return {"stage": label, **parts, "total": resident + max(phases) + overhead_bytes}


class StageDoesNotFit(RuntimeError):
    """Raised by :func:`require_fits` when a stage's plan needs more memory than the GPU has."""


def require_fits(profile, stage_label: str, gpu_gb: float | None = None) -> dict:
    """Raise :class:`StageDoesNotFit` unless stage ``stage_label`` of ``profile`` fits ``gpu_gb``
    (default ``profile.gpu_gb``); returns its plan. Call it before loading anything.

    The message names the stage, the GB it needs and has, and its largest component with the
    profile settings that shrink it.
    """
    gpu_gb = profile.gpu_gb if gpu_gb is None else gpu_gb
    plans = {p["stage"]: p for p in plan_profile(profile)}
    if stage_label not in plans:
        raise ValueError(f"unknown stage {stage_label!r}; choose one of {', '.join(plans)}")
    plan = plans[stage_label]
    if plan["total"] <= gpu_gb * GB:
        return plan
    name, value = max(((k, v) for k, v in _components(plan).items() if k != "overhead"), key=lambda kv: kv[1])
    raise StageDoesNotFit(
        f"Stage '{stage_label}' of profile '{profile.name}' needs {plan['total'] / GB:.1f} GB but the GPU has "
        f"{gpu_gb:.1f} GB. Largest component: {name} ({value / GB:.1f} GB) – {_FIXES.get(name.split('_')[-1], _FIXES['*'])}"
    )


_FIXES = {
    "weights": "a smaller checkpoint, or LoRA on a half-precision base (lora_rank).",
    "optimizer": "LoRA (lora_rank): AdamW keeps 8 bytes per trained parameter.",
    "gradients": "LoRA (lora_rank): one fp32 gradient per trained parameter.",
    "activations": "a smaller batch (the stage's batch setting) or gradient_checkpointing=True.",
    "logits": "a smaller batch or shorter sequences (the logit tiles grow with the tokens per step).",
    "cache": "a smaller gen_batch_size / ppo_batch or fewer new tokens (max_new_tokens).",
    "prefill": "a smaller gen_batch_size (the prompt's prefill grows with the sequences per call).",
    "*": "a smaller batch, shorter sequences, LoRA or gradient checkpointing.",
}


def format_profile_plan(profile, traced: dict | None = None, prompt_tokens: int = 256) -> str:
    """A table of planned GB per stage (and, with ``traced`` – {stage: peak bytes} – the traced or
    measured peak and the plan's difference to it)."""
    rows = []
    head = f"{'stage':<18}{'planned GB':>11}"
    if traced:
        head += f"{'traced GB':>11}{'plan-trace':>11}"
    rows.append(head + "  largest component")
    for plan in plan_profile(profile, prompt_tokens):
        name, value = max(((k, v) for k, v in _components(plan).items() if k != "overhead"), key=lambda kv: kv[1])
        row = f"{plan['stage']:<18}{plan['total'] / GB:>11.2f}"
        if traced:
            peak = traced.get(plan["stage"])
            row += (f"{peak / GB:>11.2f}{(plan['total'] - plan['overhead'] - peak) / peak:>+11.0%}"
                    if peak else f"{'-':>11}{'-':>11}")
        rows.append(row + f"  {name} {value / GB:.2f}")
    rows.append(f"(GB = 10**9 bytes; planned totals include {DEFAULT_OVERHEAD_BYTES / GB:.1f} GB of CUDA context"
                + ("; plan-trace compares the plan without it to the traced allocator peak)" if traced else ")"))
    return "\n".join(rows)
