"""Traced GPU memory of every ``colab`` stage: one real training step, allocated by nobody.

:mod:`utils.memory_planner` *estimates* each stage's memory with arithmetic. This module *traces*
it: for each stage of the ``colab`` profile it builds the models at full size (the exact configs
of the colab checkpoints, :data:`utils.memory_planner.HUB_CONFIGS`) with random weights and runs
one step the way the course's code runs it – forward, loss, backward, optimizer step – under
PyTorch's ``FakeTensorMode`` (tensors with shapes, dtypes and devices but no memory). A dispatch
mode (:class:`LiveBytes`) sees every tensor the step creates, adds its storage's size while the
storage is alive (released when a C++ weak reference to the storage expires) and records the peak. Weights,
gradients, optimizer state, saved activations, recomputation under gradient checkpointing, the
logits TRL's chunked LM head builds, the KV cache – whatever the code allocates is counted,
because it is the code that runs.

The *same* step functions run for real on a CUDA device (``scripts/gpu_check.py``, ``make
gpu-check``): ``trace_stage(label, profile, device="cuda", fake=False)`` measures
``torch.cuda.max_memory_allocated`` instead. ::

    from utils.memory_trace import trace_profile
    for r in trace_profile(get_profile("colab")):
        print(r.stage, r.peak_gb)

Figures from the fake run are labelled *traced*; they are the allocator's live bytes (no CUDA
context, no fragmentation, no allocator rounding: :data:`utils.memory_planner.DEFAULT_OVERHEAD_BYTES`
allows for those).

How the fake run differs from a T4, and why it does not matter for memory:

* A CPU-only PyTorch cannot run autograd on fake *CUDA* tensors, so the trace uses fake *CPU*
  tensors with CPU autocast in fp16. Linear layers and matmuls are cast to fp16 by both; CUDA's
  autocast also upcasts softmax/exp/sum to fp32, which here only touches per-token tensors.
* Attention: the trace runs SDPA's CPU flash kernel, a T4 the memory-efficient kernel (no
  FlashAttention on sm75); both keep O(sequence) memory (the output and a log-sum-exp per row).
* TRL's chunked LM head uses Triton kernels on a GPU that write in place; on a CPU it falls back
  to torch tiles with fp32 temporaries. The trace swaps in allocation-free stand-ins for the
  Triton kernels (the GPU's memory behaviour; the values of a fake run are meaningless anyway).
* ``.item()`` on a fake tensor has no value: :class:`LiveBytes` answers 1 (``False`` for a bool),
  which sends data-dependent branches the worst way for memory (e.g. HF keeps the padding mask).
  The GradScaler's inf check would then skip the optimizer step, so a fake step calls the
  optimizer directly after unscaling (the same tensors, minus a branch).
* Generation: ``generate()``'s loop is data-dependent, so the trace runs the prefill and the
  *last* decode step (a KV cache of the full length, :func:`kv_cache_bytes` exactly), the two
  moments a generation peaks.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from dataclasses import dataclass
from typing import Callable

import torch

from .memory_planner import GB, HUB_CONFIGS, hub_shape, kv_cache_bytes

__all__ = [
    "COLAB_STAGES",
    "LiveBytes",
    "StageResult",
    "build_causal_lm",
    "build_scalar_head",
    "fake_mode",
    "hub_config",
    "trace_profile",
    "trace_stage",
]

FP16 = torch.float16


# ---------------------------------------------------------------------------------------
# Counting live bytes
# ---------------------------------------------------------------------------------------

class LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """A dispatch mode that tracks the bytes of every live tensor storage and their peak.

    Each tensor an op returns is looked up by its storage (a C++ weak reference to it, as
    ``torch.multiprocessing`` keeps them: no Python weak reference to a storage object, which
    PyTorch's storage-object resurrection does not survive); a storage seen for the first time adds
    ``nbytes``. Views share their base's storage and are counted once. A storage is released when
    its weak reference expires: checked when a tracked tensor dies (a Python weak reference to the
    tensor: its callback runs before the tensor lets go of the storage) and, for storages no
    tracked tensor holds any more (a tensor just freed; an output autograd saved), before every
    new allocation and every read of :attr:`current` – so the peak is exact. Under ``FakeTensorMode`` it also answers ``.item()`` (1, or
    ``False``) so that code that logs a metric or checks a mask still runs.
    """

    def __init__(self):
        super().__init__()
        self._storages: dict[int, tuple[int, object]] = {}   # StorageImpl address -> (bytes, weak ref)
        self._holders: dict[int, int] = {}                   # StorageImpl address -> tracked live tensors
        self._orphans: set[int] = set()                      # alive, but no tracked tensor holds them
        self._tensor_refs: dict[int, object] = {}
        self._current = 0
        self.peak = 0

    @property
    def current(self) -> int:
        """Bytes of the storages alive now."""
        self._purge_orphans()
        return self._current

    def _release(self, key: int) -> None:
        size, _ = self._storages.pop(key)
        self._holders.pop(key, None)
        self._orphans.discard(key)
        self._current -= size

    def _tensor_died(self, ref, key: int) -> None:
        self._tensor_refs.pop(id(ref), None)
        if key not in self._storages or torch.Storage is None:   # (interpreter shutdown)
            return
        self._holders[key] -= 1
        if self._holders[key] <= 0:
            if self._storages[key][1].expired():
                self._release(key)
            else:
                self._orphans.add(key)

    def _purge_orphans(self) -> None:
        for key in [k for k in self._orphans if self._storages[k][1].expired()]:
            self._release(key)

    def track(self, tensor) -> None:
        """Count ``tensor``'s storage if it is not counted yet (also for tensors made outside)."""
        from torch.multiprocessing.reductions import StorageWeakRef

        if not isinstance(tensor, torch.Tensor):
            return
        storage = tensor.untyped_storage()
        key = storage._cdata
        entry = self._storages.get(key)
        if entry is not None and entry[1].expired():   # a freed storage's address, reused
            self._release(key)
            entry = None
        if entry is None:
            self._purge_orphans()
            size = storage.nbytes()
            self._storages[key] = (size, StorageWeakRef(storage))
            self._holders[key] = 0
            self._current += size
            self.peak = max(self.peak, self._current)
        self._holders[key] += 1
        self._orphans.discard(key)
        ref = weakref.ref(tensor, lambda r, key=key: self._tensor_died(r, key))
        self._tensor_refs[id(ref)] = ref

    def reset_peak(self) -> None:
        self.peak = self.current

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            dtype = args[0].dtype
            return False if dtype == torch.bool else (1.0 if dtype.is_floating_point else 1)
        out = func(*args, **(kwargs or {}))
        for tensor in torch.utils._pytree.tree_leaves(out):
            self.track(tensor)
        return out


class _Meter:
    """Peak memory of a stage: fake (``LiveBytes``) or CUDA (``max_memory_allocated``)."""

    def __init__(self, device: str, live: LiveBytes | None):
        self.device, self.live = device, live
        self.resident = 0   # bytes alive when the step starts: weights (+ optimizer state)

    def reset(self) -> None:
        if self.live is not None:
            self.live.reset_peak()
            self.resident = self.live.current
        elif self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.resident = torch.cuda.memory_allocated()

    def peak(self) -> int:
        if self.live is not None:
            return self.live.peak
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        return 0

    def sync(self) -> None:
        if self.live is None and self.device.startswith("cuda"):
            torch.cuda.synchronize()


def _noop_fold(*args, **kwargs) -> None:
    """Stand-in for TRL's Triton fold kernels in a fake run: they write in place, allocate nothing."""


def _fake_module_apply(self, fn, recurse=True):
    """``Module._apply`` for fake parameters: ``Module.to()`` swaps a FakeTensor parameter's
    implementation, which fails (fake tensors carry weakrefs). Here the parameter keeps its
    identity (tied weights stay tied) and takes the converted tensor through ``.data``, as
    ``Module._apply`` does for ordinary tensors."""
    if recurse:
        for module in self.children():
            module._apply(fn)
    for param in self._parameters.values():
        if param is not None:
            with torch.no_grad():
                converted = fn(param)
            if converted is not param:
                param.data = converted
            if param.grad is not None:
                param.grad.data = fn(param.grad)
    for key, buf in self._buffers.items():
        if buf is not None:
            self._buffers[key] = fn(buf)
    return self


def _fake_deepcopy(self, memo):
    """``copy.deepcopy`` of a fake tensor or parameter (PEFT copies the critic's trained score head):
    torch's Tensor.__deepcopy__ mishandles FakeTensor parameters and corrupts the heap."""
    if id(self) in memo:
        return memo[id(self)]
    with torch.no_grad():
        copied = self.detach().clone()
    if isinstance(self, torch.nn.Parameter):
        copied = torch.nn.Parameter(copied, requires_grad=self.requires_grad)
    else:
        copied.requires_grad_(self.requires_grad)
    memo[id(self)] = copied
    return copied


@contextlib.contextmanager
def fake_mode():
    """``FakeTensorMode`` + :class:`LiveBytes`; yields the ``LiveBytes`` counter.

    Also patches, for the duration only: TRL's chunked-log-prob tile functions (see the module
    docstring), ``Module._apply`` and ``FakeTensor.__deepcopy__`` (torch's versions fail or
    corrupt memory on fake parameters: :func:`_fake_module_apply`, :func:`_fake_deepcopy`).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    patches = []
    try:
        from trl.kernels import chunked_logprob

        patches += [(chunked_logprob, "_forward_tile", _noop_fold), (chunked_logprob, "_backward_tile", _noop_fold),
                    (chunked_logprob, "_addmm_fp32", _noop_fold)]
    except ImportError:  # pragma: no cover - TRL is a dependency
        pass
    from torch._subclasses.fake_tensor import FakeTensor

    patches.append((torch.nn.Module, "_apply", _fake_module_apply))
    patches.append((FakeTensor, "__deepcopy__", _fake_deepcopy))
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, value in patches:
        setattr(obj, name, value)
    live = LiveBytes()
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), live:
            yield live
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


# ---------------------------------------------------------------------------------------
# Full-size models with random weights
# ---------------------------------------------------------------------------------------

def hub_config(model_id: str, **overrides):
    """The transformers config of a colab checkpoint, from :data:`HUB_CONFIGS` (no download)."""
    from transformers import LlamaConfig, Qwen2Config

    numbers = dict(HUB_CONFIGS[model_id])
    cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[numbers.pop("model_type", "qwen2")]
    return cls(**(numbers | overrides))


def _from_config(auto_cls, config, dtype, device):
    with torch.device(device):
        model = auto_cls.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model


def build_causal_lm(model_id: str, dtype=FP16, device: str = "cpu"):
    """A causal LM of ``model_id``'s exact shape with random weights, built on ``device``."""
    from transformers import AutoModelForCausalLM

    return _from_config(AutoModelForCausalLM, hub_config(model_id), dtype, device)


def build_scalar_head(model_id: str, dtype=FP16, device: str = "cpu", head_dtype=torch.float32):
    """A 1-output sequence classifier of ``model_id``'s shape (reward model, critic), random weights.

    ``head_dtype``: the ``score`` head's dtype: fp32 (``utils.models.fp32_score_head``, as the
    course loads reward and value models: the hidden states are cast to fp32 for it).
    """
    from transformers import AutoModelForSequenceClassification

    model = _from_config(AutoModelForSequenceClassification, hub_config(model_id, num_labels=1, pad_token_id=0),
                         dtype, device)
    if head_dtype == torch.float32:
        try:   # as the course loads reward and value models: an fp32 head that casts its input
            from .models import fp32_score_head
        except ImportError:  # pragma: no cover - an older utils.models
            model.score.float()
        else:
            fp32_score_head(model)
    return model


# ---------------------------------------------------------------------------------------
# The step of each stage
# ---------------------------------------------------------------------------------------

@dataclass
class StageResult:
    """The peak memory (bytes) of one step of one stage, and what was run."""

    stage: str
    peak_bytes: int
    tokens: int                  # tokens the timed step processed
    seconds: float               # wall time of the timed step (meaningless when traced)
    method: str                  # "traced" (fake tensors) or "measured" (a real device)
    device: str = ""
    kv_cache_bytes: int = 0      # generation stages: the full-length KV cache, exact arithmetic
    note: str = ""
    resident_bytes: int = 0      # alive before the step: weights, LoRA, optimizer state

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GB

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class _Ctx:
    device: str
    fake: bool
    meter: _Meter
    repeats: int = 1           # timed repetitions on a real device (the first step warms up)

    @property
    def device_type(self) -> str:
        return torch.device(self.device).type

    def autocast(self):
        return torch.autocast(self.device_type, dtype=FP16)

    def scaler(self):
        return torch.amp.GradScaler(self.device_type)

    def ints(self, high: int, *shape) -> torch.Tensor:
        return torch.randint(1, high, shape, device=self.device)


def _trainable(*models) -> list:
    return [p for m in models for p in m.parameters() if p.requires_grad]


def _enable_checkpointing(model) -> None:
    """What Trainer (and utils.teacher for PPO) do: non-reentrant checkpointing of every layer.

    ``enable_input_require_grads`` as transformers does with PEFT (frozen embeddings would
    otherwise cut the graph in front of the first checkpointed layer)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.activation_checkpointing_enable()
    if hasattr(model, "get_base_model"):
        base.enable_input_require_grads()


def _warm_optimizer(optimizer, params) -> None:
    """Create AdamW's state (m and v) with one step on zero gradients, so the traced step is a
    steady-state one: from the second step on, the state is alive during forward and backward."""
    for p in params:
        p.grad = torch.zeros_like(p)
    lrs = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    optimizer.step()
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)


def _optimizer_step(ctx: _Ctx, loss, optimizer, scaler, params, max_grad_norm: float = 1.0) -> None:
    """Trainer's fp16 step: scaled backward, unscale, clip, (fused) AdamW step, zero grads."""
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if ctx.fake:   # the scaler's found-inf check reads a (fake) value; step as if none was found
        optimizer.step()
    else:
        scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def _timed(ctx: _Ctx, step: Callable[[], int]) -> tuple[int, float]:
    """Run ``step`` (returns tokens) once, or ``1 + repeats`` times on a device; time the last."""
    tokens, seconds = step(), 0.0
    for _ in range(0 if ctx.fake else ctx.repeats):
        ctx.meter.sync()
        start = time.perf_counter()
        tokens = step()
        ctx.meter.sync()
        seconds = time.perf_counter() - start
    return tokens, seconds


def _sft_step(ctx: _Ctx, model_id: str, settings, seq: int, lr: float) -> tuple[int, float]:
    """TRL SFTTrainer's step: fused (chunked) LM head with entropy and top-1 metrics, fp16 mixed
    precision with a GradScaler, fused AdamW (Trainer's default ``adamw_torch_fused``)."""
    from trl.trainer.utils import add_fused_lm_head

    from .models import add_lora

    model = build_causal_lm(model_id, FP16 if settings.half_weights else torch.float32, ctx.device)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    model = add_lora(model, settings.lora_rank)
    if settings.gradient_checkpointing:
        _enable_checkpointing(model)
    model.train()
    params = _trainable(model)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    _warm_optimizer(optimizer, params)
    scaler = ctx.scaler()
    vocab = model.config.vocab_size
    ctx.meter.reset()

    def step() -> int:
        input_ids = ctx.ints(vocab, settings.batch, seq)
        mask = torch.ones_like(input_ids)
        with ctx.autocast():
            out = model(input_ids=input_ids, attention_mask=mask, labels=input_ids, fused_lm_head=True,
                        use_cache=False)
            loss = -out.log_probs.sum() / out.label_mask.sum().clamp(min=1)
        _ = (out.entropy.detach().sum() / out.label_mask.sum()).item(), out.is_top1.sum().item()
        del out
        _optimizer_step(ctx, loss, optimizer, scaler, params)
        return input_ids.numel()

    return _timed(ctx, step)


def _reward_step(ctx: _Ctx, model_id: str, settings, seq: int, lr: float) -> tuple[int, float]:
    """TRL RewardTrainer's step: chosen and rejected in one forward (2 x batch sequences), the
    pairwise -log σ(r_c - r_r) loss, fp32 master weights with fp16 autocast, fused AdamW."""
    import torch.nn.functional as F

    model = build_scalar_head(model_id, FP16 if settings.half_weights else torch.float32, ctx.device)
    if settings.gradient_checkpointing:
        _enable_checkpointing(model)
    model.train()
    params = _trainable(model)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    _warm_optimizer(optimizer, params)
    scaler = ctx.scaler()
    vocab = model.config.vocab_size
    ctx.meter.reset()

    def step() -> int:
        input_ids = ctx.ints(vocab, 2 * settings.batch, seq)
        with ctx.autocast():
            logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits
            chosen, rejected = torch.chunk(logits.squeeze(-1), chunks=2)
            loss = -F.logsigmoid(chosen - rejected).mean()
        _optimizer_step(ctx, loss, optimizer, scaler, params)
        return input_ids.numel()

    return _timed(ctx, step)


def _prefill_and_last_decode(ctx: _Ctx, model, batch: int, prompt: int, total: int, with_grad_models=()) -> int:
    """The two peaks of ``generate()``: the prompt's prefill (logits of the last position only,
    as generate asks) and the last decode step, over a KV cache ``total - 1`` tokens long.

    Returns the generated tokens the step stands for (``batch * (total - prompt)``)."""
    from transformers import DynamicCache

    cfg = model.config
    vocab = cfg.vocab_size
    kv_heads = cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    dtype = next(p.dtype for p in model.parameters() if p.dtype.is_floating_point)
    with torch.no_grad(), ctx.autocast():
        ids = ctx.ints(vocab, batch, prompt)
        mask = torch.ones_like(ids)
        cache = DynamicCache(config=cfg)
        out = model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
        probs = torch.softmax(out.logits[:, -1].float(), -1)
        del out, cache, probs
        steps = 1 if ctx.fake else min(16, total - prompt)
        past = total - steps
        cache = DynamicCache(config=cfg)
        for layer in range(cfg.num_hidden_layers):
            shape = (batch, kv_heads, past, head_dim)
            cache.update(torch.zeros(shape, dtype=dtype, device=ctx.device),
                         torch.zeros(shape, dtype=dtype, device=ctx.device), layer)
        for i in range(steps):
            n = past + i + 1
            out = model(input_ids=ctx.ints(vocab, batch, 1), attention_mask=torch.ones(batch, n, dtype=torch.long,
                        device=ctx.device), past_key_values=cache, use_cache=True,
                        position_ids=torch.full((batch, 1), n - 1, device=ctx.device))
            logits = out.logits[:, -1].float()
            probs = torch.softmax(logits, -1)
            torch.multinomial(probs, 1) if not ctx.fake else None
            del out, logits, probs
        del cache
    return batch * steps


def _generate_step(ctx: _Ctx, model_id: str, settings, prompt: int, total: int) -> tuple[int, float]:
    model = build_causal_lm(model_id, FP16, ctx.device).eval()
    ctx.meter.reset()
    return _timed(ctx, lambda: _prefill_and_last_decode(ctx, model, settings.batch, prompt, total))


# ---- PPO (utils.ppo) --------------------------------------------------------------------

def _critic(model, rank: int | None):
    """PPO's critic as utils.teacher.build_critic makes it: the reward model's backbone with
    rank-``rank`` LoRA adapters (fp32) and a trained fp32 score head; all fp32 when ``rank`` is None."""
    import inspect

    from .models import add_lora

    if not rank:
        return model.float()
    if "task_type" in inspect.signature(add_lora).parameters:
        return add_lora(model, rank, task_type="SEQ_CLS")
    from peft import LoraConfig, get_peft_model  # pragma: no cover - an older utils.models

    from .models import LORA_TARGETS

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                            target_modules=LORA_TARGETS, task_type="SEQ_CLS"))


def _ppo_step(ctx: _Ctx, profile, settings, prompt: int, total: int) -> tuple[int, float]:
    """utils.ppo as notebook 02 runs it on colab: the rollout (generation with a KV cache, then
    no-grad ``token_logprobs`` of the policy, ``reference_logprobs`` = the policy with its adapters
    off, ``token_values`` of the critic and the reward model's scores), then ``ppo_update`` under
    fp16 autocast with a GradScaler and torch's default (foreach on a GPU) AdamW."""
    from .models import add_lora
    from .ppo import PPOConfig, Rollout, ppo_update, reference_logprobs, token_logprobs, token_values

    policy = add_lora(build_causal_lm(profile.teacher, FP16, ctx.device), settings.lora_rank)
    critic = _critic(build_scalar_head(profile.reward_model, FP16, ctx.device), settings.lora_rank)
    reward_model = build_scalar_head(profile.reward_model, FP16, ctx.device).eval().requires_grad_(False)
    if settings.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
        critic.gradient_checkpointing_enable()
    params = _trainable(policy, critic)
    optimizer = torch.optim.AdamW(params, lr=profile.ppo_lr, foreach=ctx.fake or None)
    _warm_optimizer(optimizer, params)
    scaler = ctx.scaler()
    cfg = PPOConfig(beta=profile.kl_beta, lam=profile.ppo_lambda)
    vocab, batch = policy.config.vocab_size, settings.batch
    ctx.meter.reset()

    def step() -> int:
        policy.eval()
        _prefill_and_last_decode(ctx, policy, batch, prompt, total)
        ids = ctx.ints(vocab, batch, total)
        mask = torch.ones_like(ids)
        response = torch.ones(batch, total - 1, device=ctx.device)
        response[:, :prompt - 1] = 0
        with torch.no_grad():
            old_logp = token_logprobs(policy, ids, mask)
            ref_logp = reference_logprobs(policy, None, ids, mask)
            old_values = token_values(critic, ids, mask)
            scores = reward_model(input_ids=ids, attention_mask=mask).logits.squeeze(-1).float()
        r = Rollout(ids, mask, response, old_logp, ref_logp, old_values, scores)
        # A fake run reads .item() as 1: approx-KL 1 > target_kl stops after the first epoch, and
        # the scaler skips the (already warmed) optimizer step: the peak, in the backward, is met.
        ppo_update(policy, critic, optimizer, r, cfg, scaler, FP16)
        return batch * total

    return _timed(ctx, step)


# ---- GRPO (TRL GRPOTrainer) -------------------------------------------------------------

def _grpo_step(ctx: _Ctx, profile, settings, prompt: int, total: int) -> tuple[int, float]:
    """TRL GRPOTrainer's step: generate the group's completions (KV cache), no-grad old and
    reference log-probs through TRL's fused LM head (reference = adapters off), then the GRPO
    loss on the same fused head with gradients; fp16 mixed precision, fused AdamW."""
    from trl.trainer.utils import add_fused_lm_head

    from .models import add_lora

    model = build_causal_lm(profile.teacher, FP16, ctx.device)
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    policy = add_lora(model, settings.lora_rank)
    if settings.gradient_checkpointing:
        _enable_checkpointing(policy)
    params = _trainable(policy)
    optimizer = torch.optim.AdamW(params, lr=profile.rl_lr, weight_decay=0.0, fused=True)
    _warm_optimizer(optimizer, params)
    scaler = ctx.scaler()
    vocab, batch, completion = model.config.vocab_size, settings.batch, total - prompt
    beta, eps = profile.kl_beta, 0.2
    ctx.meter.reset()

    def logps(ids, mask, labels):
        out = policy(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        return out.log_probs[:, -completion:], out.entropy[:, -completion:]

    def step() -> int:
        policy.eval()
        _prefill_and_last_decode(ctx, policy, batch, prompt, total)
        ids = ctx.ints(vocab, batch, total)
        mask = torch.ones_like(ids)
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :-completion] = -100
        completion_mask = torch.ones(batch, completion, device=ctx.device)
        advantages = torch.randn(batch, device=ctx.device)
        with torch.no_grad(), ctx.autocast():
            old, _ = logps(ids, mask, labels)          # num_iterations > 1
            with policy.disable_adapter():
                ref, _ = logps(ids, mask, labels)      # beta > 0
        policy.train()
        with ctx.autocast():
            logp, entropy = logps(ids, mask, labels)
            kl = torch.exp(ref - logp) - (ref - logp) - 1
            ratio = torch.exp(logp - old)
            per_token = -torch.min(ratio * advantages[:, None], torch.clamp(ratio, 1 - eps, 1 + eps) * advantages[:, None])
            per_token = per_token + beta * kl
            loss = ((per_token * completion_mask).sum(-1) / completion_mask.sum(-1).clamp(min=1)).mean()
            _ = (entropy.detach() * completion_mask).sum().item()
        _optimizer_step(ctx, loss, optimizer, scaler, params)
        return batch * total

    return _timed(ctx, step)


# ---------------------------------------------------------------------------------------
# The colab stages
# ---------------------------------------------------------------------------------------

def _run(label: str, profile, ctx: _Ctx, prompt_tokens: int) -> tuple[tuple[int, float], int, str]:
    """Run one stage's step; returns ((tokens, seconds), kv_cache_bytes, note)."""
    from .config import stage_settings

    rollout = prompt_tokens + profile.max_new_tokens
    if label == "02 teacher SFT":
        return _sft_step(ctx, profile.teacher, stage_settings(profile, "teacher_sft"), profile.sft_max_length,
                         profile.sft_lr), 0, "TRL fused LM head (log_probs, entropy, is_top1)"
    if label == "02 reward model":
        return _reward_step(ctx, profile.reward_model, stage_settings(profile, "reward_model"),
                            profile.rm_max_length, profile.rm_lr), 0, "chosen + rejected in one forward"
    if label == "02 PPO":
        s = stage_settings(profile, "ppo")
        note = "utils.ppo: rollout + ppo_update (log-probs in checkpointed row chunks)"
        return (_ppo_step(ctx, profile, s, prompt_tokens, rollout),
                kv_cache_bytes(hub_shape(profile.teacher), s.batch, rollout, 2), note)
    if label == "02 GRPO":
        s = stage_settings(profile, "grpo")
        return (_grpo_step(ctx, profile, s, prompt_tokens, rollout),
                kv_cache_bytes(hub_shape(profile.teacher), s.batch, rollout, 2), "TRL fused LM head")
    if label == "03 sampling":
        s = stage_settings(profile, "sampling")
        return (_generate_step(ctx, profile.teacher, s, prompt_tokens, rollout),
                kv_cache_bytes(hub_shape(profile.teacher), s.batch, rollout, 2), "prefill + last decode step")
    if label == "04 student SFT":
        return _sft_step(ctx, profile.student, stage_settings(profile, "student_sft"), profile.sft_max_length,
                         profile.student_lr), 0, "TRL fused LM head (log_probs, entropy, is_top1)"
    if label == "05 serving":
        s = stage_settings(profile, "serving")
        total = prompt_tokens + profile.serve_max_new_tokens
        return (_generate_step(ctx, profile.serve_model, s, prompt_tokens, total),
                kv_cache_bytes(hub_shape(profile.serve_model), s.batch, total, 2), "prefill + last decode step")
    raise ValueError(f"unknown stage {label!r}; choose one of {COLAB_STAGES}")


COLAB_STAGES = ("02 teacher SFT", "02 reward model", "02 PPO", "02 GRPO", "03 sampling", "04 student SFT",
                "05 serving")


def trace_stage(label: str, profile, *, device: str = "cpu", fake: bool = True, prompt_tokens: int = 256,
                repeats: int = 1) -> StageResult:
    """Peak memory of one step of stage ``label`` (one of :data:`COLAB_STAGES`) of ``profile``.

    ``fake=True``: traced with fake tensors (nothing allocated; any machine). ``fake=False``: run
    for real on ``device`` (a CUDA device: ``torch.cuda.max_memory_allocated`` after a reset once
    the models are built) and timed over ``repeats`` steps after a warm-up step.
    """
    import gc

    gc.collect()
    if fake:
        with fake_mode() as live:
            ctx = _Ctx(device, True, _Meter(device, live), repeats)
            (tokens, seconds), kv, note = _run(label, profile, ctx, prompt_tokens)
            peak, resident = live.peak, ctx.meter.resident
            gc.collect()   # free the fake models while their mode is still active
        method = "traced"
    else:
        ctx = _Ctx(device, False, _Meter(device, None), repeats)
        (tokens, seconds), kv, note = _run(label, profile, ctx, prompt_tokens)
        peak, resident = ctx.meter.peak(), ctx.meter.resident
        method = "measured"
    gc.collect()
    if not fake and device.startswith("cuda"):
        torch.cuda.empty_cache()
    return StageResult(label, peak, tokens, seconds, method, device, kv, note, resident)


def trace_profile(profile, *, stages=COLAB_STAGES, **kwargs) -> list[StageResult]:
    """:func:`trace_stage` for every stage in ``stages`` (by default all of the colab profile's)."""
    return [trace_stage(label, profile, **kwargs) for label in stages]
