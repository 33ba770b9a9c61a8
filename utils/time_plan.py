"""Time plan: how long each stage of the colab series (notebooks 02-05) takes on a free Colab T4.

The companion of :mod:`utils.memory_planner` (same stage labels): where the memory planner asks
"will it fit?", this asks "will it finish within a free Colab session?" (3-4 hours at best, with
disconnects). It is a *reading estimate*, made without a GPU::

    from utils.config import PROFILES
    from utils.time_plan import format_time_plan, plan_times
    print(format_time_plan(PROFILES["colab"]))

Every count comes from the code's own calls (the notebooks' cells and the ``utils`` functions they
call), read with the profile's budgets: each generate() call (validation and test evaluations,
pass@k, reward-model preference sampling, PPO and GRPO rollouts, notebook 03's sampling, notebook
04's latency and throughput measurements, notebook 05's generations and app requests), each
training step (SFT, the reward model, PPO's policy *and* critic for ``ppo_epochs``, GRPO with its
``num_iterations``) and each forward pass without a backward (reference and old log-probabilities,
the critic's values, reward-model scores, prompt prefill). They are **upper bounds**: every
generation runs to its ``max_new_tokens`` (no early EOS), every training row is ``max_length``
tokens long, no early stopping, no early KL stop in PPO.

Tokens become seconds through :data:`ASSUMPTIONS` (each value with its source): training and
prefill at an assumed share of the T4's peak FLOPs (``6·N`` FLOPs per trained token, Kaplan et al.
2020), decoding at an assumed share of its memory bandwidth (one decode step reads every weight
once, plus the KV cache), never faster than PyTorch's per-layer dispatch overhead. **Excluded**:
downloads (checkpoints, GSM8K, pip), loading and saving artifacts (Drive can be slow), tokenization,
CPU-side filtering (notebook 03's dedup and decontamination), plotting, and the time a person spends
reading. Sequence lengths: prompts are counted at :func:`utils.memory_planner.plan_profile`'s
``prompt_tokens`` (256), as the memory planner counts them.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

__all__ = ["ASSUMPTIONS", "Assumption", "Call", "StageTime", "count_calls", "format_time_plan", "plan_times",
           "total_minutes"]


@dataclass(frozen=True)
class Assumption:
    """One number the plan converts with, and where it comes from."""

    value: float
    unit: str
    source: str


ASSUMPTIONS: dict[str, Assumption] = {
    "fp16_tflops": Assumption(
        65.0, "TFLOPS", "NVIDIA T4 datasheet: 65 TFLOPS mixed-precision (FP16/FP32) tensor-core peak"),
    "fp32_tflops": Assumption(
        8.1, "TFLOPS", "NVIDIA T4 datasheet: 8.1 TFLOPS single-precision (FP32) peak"),
    "bandwidth_gbs": Assumption(
        320.0, "GB/s", "NVIDIA T4 datasheet: 320+ GB/s GDDR6 memory bandwidth"),
    "train_mfu": Assumption(
        0.30, "of peak",
        "ASSUMPTION: model-FLOPs utilisation of HF Trainer / TRL mixed-precision training on a T4. Tuned "
        "large-scale training reaches 40-55 % (PaLM: 46 %, Chowdhery et al. 2022, arXiv:2204.02311, Table 3); "
        "small batches, LoRA's extra kernels, gradient checkpointing and the 70 W T4's clock throttling "
        "(T4 datasheet: 70 W max power) put a T4 lower: 30 % is taken as typical, not measured"),
    "forward_mfu": Assumption(
        0.40, "of peak",
        "ASSUMPTION: utilisation of a forward pass without backward (prompt prefill, log-probabilities, "
        "reward scores): one large GEMM per layer, no optimizer; above training's 30 %, below the 40-55 % "
        "of tuned large-scale training (Chowdhery et al. 2022, Table 3); not measured"),
    "bandwidth_efficiency": Assumption(
        0.60, "of peak",
        "ASSUMPTION: share of the T4's 320 GB/s a transformers decode step achieves. Decoding is "
        "memory-bandwidth bound: each step reads every weight once plus the KV cache (Pope et al. 2022, "
        "'Efficiently Scaling Transformer Inference', arXiv:2211.05102, section 2); GEMV-like kernels of "
        "HF's eager decode reach well under a copy benchmark's ~75 %: 60 % is assumed, not measured"),
    "dispatch_ms_per_layer": Assumption(
        0.35, "ms per decoder layer per decode step",
        "ASSUMPTION: PyTorch eager's CPU-side cost of launching one decode step, ~25-35 ops per decoder "
        "layer (norms, q/k/v/o, rotary, cache update, attention, MLP) at ~10 us of Python and dispatch each "
        "(the 'overhead' regime of H. He, 'Making Deep Learning Go Brrrr From First Principles', 2022). A "
        "step is never faster than this; at batch 1 with a small model it is the bound"),
    "train_flops_per_token": Assumption(
        6.0, "x params (FLOPs per trained token)",
        "Kaplan et al. 2020, 'Scaling Laws for Neural Language Models', arXiv:2001.08361, section 2.1: "
        "C ~ 6N per token, 2N forward + 4N backward (2N for the activations' gradients, 2N for the weights')"),
    "lora_backward": Assumption(
        2.0, "x params (backward FLOPs per token, LoRA)",
        "Hu et al. 2021, 'LoRA', arXiv:2106.09685, section 4: frozen base weights get no gradient, so the "
        "weights' 2N of Kaplan's 4N backward is skipped; the activations' 2N remains (adapters: < 1 % of N)"),
    "checkpointing_forward": Assumption(
        2.0, "x params (extra FLOPs per token)",
        "Chen et al. 2016, 'Training Deep Nets with Sublinear Memory Cost', arXiv:1604.06174: gradient "
        "checkpointing re-runs the forward in the backward pass, +2N per token (6N -> 8N: x 4/3)"),
    "forward_flops_per_token": Assumption(
        2.0, "x params (FLOPs per token, forward)",
        "Kaplan et al. 2020, section 2.1: a forward pass costs 2N FLOPs per token (attention's "
        "2 * n_layer * n_ctx * d_model, ~2 % here at 640 tokens, is left out)"),
    "prompt_tokens": Assumption(
        256, "tokens",
        "utils.memory_planner.plan_profile's prompt_tokens: an upper estimate of a GSM8K prompt with its "
        "chat template, so both planners count the same sequences"),
    "latency_n": Assumption(
        30, "answers per model",
        "utils.measure.interleaved_latency_ms's default n (+1 warm-up answer per model), as notebook 04 calls it"),
}

GEN, TRAIN, FORWARD = "generate", "train", "forward"


def _a(name: str) -> float:
    return ASSUMPTIONS[name].value


# ---------------------------------------------------------------------------------------
# Calls: what the code runs, counted
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """One kind of work a stage does, counted from the code.

    ``generate``: ``sequences`` completions of ``new_tokens`` after ``prompt`` tokens, in generate()
    calls of at most ``batch`` sequences. ``train``: ``sequences`` rows of ``seq_len`` tokens, forward
    and backward. ``forward``: ``sequences`` rows of ``seq_len`` tokens, forward only. ``model`` names a
    hub id of the profile; ``dtype`` is what the weights are held in there ("fp16", or "fp32": fp32
    weights outside autocast compute at the fp32 rate and read 4 bytes a weight).
    """

    what: str
    kind: str
    model: str
    sequences: int
    dtype: str = "fp16"
    batch: int = 1
    prompt: int = 0
    new_tokens: int = 0
    seq_len: int = 0
    lora: bool = False
    checkpointing: bool = False

    @property
    def tokens_generated(self) -> int:
        return self.sequences * self.new_tokens if self.kind == GEN else 0

    @property
    def tokens_trained(self) -> int:
        return self.sequences * self.seq_len if self.kind == TRAIN else 0

    @property
    def tokens_forward(self) -> int:
        """Tokens through a forward pass without backward: scoring passes, and generation's prefill."""
        if self.kind == FORWARD:
            return self.sequences * self.seq_len
        return self.sequences * self.prompt if self.kind == GEN else 0


@dataclass(frozen=True)
class StageTime:
    """One stage of the plan: tokens generated / trained / forward-only, and the estimated seconds."""

    stage: str
    tokens_generated: int
    tokens_trained: int
    tokens_forward: int
    seconds: float
    assumption: str
    calls: tuple[tuple[Call, float], ...] = field(default=(), repr=False)

    @property
    def minutes(self) -> float:
        return self.seconds / 60


def _eval_points(steps: int, every: int) -> int:
    """Evaluations of a callback that fires when ``step % every == 0`` or at the last step."""
    if steps <= 0:
        return 0
    return steps // every + (1 if steps % every else 0)


def _prompt_tokens() -> int:
    from .memory_planner import plan_profile

    return int(inspect.signature(plan_profile).parameters["prompt_tokens"].default)


def _ppo_epochs() -> int:
    from .ppo import PPOConfig

    return PPOConfig().ppo_epochs


def _shares_vocabulary(profile) -> bool:
    """Notebook 04 runs on-policy distillation only when teacher and student share a vocabulary."""
    from .memory_planner import HUB_CONFIGS

    t, s = HUB_CONFIGS.get(profile.teacher), HUB_CONFIGS.get(profile.student)
    return t is not None and s is not None and t["vocab_size"] == s["vocab_size"]


#: notebooks 03-05 load their models with ``load_model_artifact(..., dtype=run.weights_dtype("sampling"))``:
#: fp16 on a T4.
NOTEBOOK_LOAD_DTYPE = "fp16"


def count_calls(profile) -> dict[str, list[Call]]:
    """Every call of notebooks 02-05 for ``profile`` (hub ids), by memory-planner stage label."""
    from .config import stage_settings
    from .tasks import FAMILIES

    p = profile
    P, T = _prompt_tokens(), p.max_new_tokens
    rollout = P + T
    teacher, rm, student = p.teacher, p.reward_model, p.student

    def half(stage: str) -> str:
        return "fp16" if stage_settings(p, stage).half_weights else "fp32"

    def evals(n: int, split: str, model: str, dtype: str, why: str) -> Call:
        size = p.n_val if split == "validation" else p.n_test
        return Call(f"{why}: {n} x {size} {split} prompts (greedy)", GEN, model, n * size, dtype,
                    batch=p.gen_batch_size, prompt=P, new_tokens=T)

    # --- 02 teacher SFT (cell 5: train_teacher_sft, eval_every = steps // 4; cell 8: pass@8 before RL)
    sft = stage_settings(p, "teacher_sft")
    sft_evals = _eval_points(p.teacher_sft_steps, max(1, p.teacher_sft_steps // 4))
    k = 8  # notebook 02's K
    calls: dict[str, list[Call]] = {}
    calls["02 teacher SFT"] = [
        Call(f"LoRA SFT: {p.teacher_sft_steps} steps x {sft.batch} rows", TRAIN, teacher,
             p.teacher_sft_steps * sft.batch, half("teacher_sft"), seq_len=p.sft_max_length,
             lora=bool(sft.lora_rank), checkpointing=sft.gradient_checkpointing),
        evals(sft_evals + 1, "validation", teacher, half("teacher_sft"),
              f"validation curve ({sft_evals} points) + the manifest's val_acc"),
        evals(1, "test", teacher, half("teacher_sft"), "test accuracy (train_teacher_sft)"),
        evals(1, "validation", teacher, half("teacher_sft"), f"pass@{k} before RL, greedy part"),
        Call(f"pass@{k} before RL: {p.n_val} validation prompts x {k} samples", GEN, teacher, p.n_val * k,
             half("teacher_sft"), batch=p.gen_batch_size, prompt=P, new_tokens=T),
    ]

    # --- 02 reward model (cell 10: train_reward_model)
    rms = stage_settings(p, "reward_model")
    test_pairs = max(1, p.rm_prompts // 5)  # at most: a pair per prompt, a fifth held out
    calls["02 reward model"] = [
        Call(f"preference sampling: {p.rm_prompts} prompts x {p.num_generations} samples", GEN, teacher,
             p.rm_prompts * p.num_generations, half("sampling"), batch=p.gen_batch_size, prompt=P, new_tokens=T),
        Call(f"reward model: {p.rm_steps} steps x {rms.batch} pairs x 2 sequences", TRAIN, rm,
             p.rm_steps * rms.batch * 2, "fp16", seq_len=p.rm_max_length,
             checkpointing=rms.gradient_checkpointing),  # fp32 master weights, fp16 autocast (Trainer)
        Call(f"pair accuracy: <= {test_pairs} held-out pairs x 2 (fp32 weights, no autocast)", FORWARD, rm,
             2 * test_pairs, "fp16" if rms.half_weights else "fp32", seq_len=rollout),
    ]

    # --- 02 PPO (cell 24: RM only, ppo_steps // 3 steps; cell 30: verifier + RM shaping, ppo_steps)
    ppo = stage_settings(p, "ppo")
    epochs = _ppo_epochs()
    # utils.teacher.build_critic: the reward model's architecture; under LoRA a half-precision base with
    # adapters, else fp32 weights (the update runs under autocast either way: utils.ppo.ppo_update)
    critic_dtype = half("ppo") if ppo.lora_rank else "fp32"
    ppo_calls = []
    for name, steps in (("PPO, RM only (cell 24)", max(1, p.ppo_steps // 3)), ("PPO, verifier (cell 30)", p.ppo_steps)):
        n = steps * ppo.batch
        ppo_calls += [
            Call(f"{name}: rollouts, {steps} steps x {ppo.batch} prompts", GEN, teacher, n, half("ppo"),
                 batch=ppo.batch, prompt=P, new_tokens=T),
            Call(f"{name}: old + reference log-probs (2 passes)", FORWARD, teacher, 2 * n, half("ppo"),
                 seq_len=rollout),
            Call(f"{name}: reward-model scores", FORWARD, rm, n, half("sampling"), seq_len=rollout),
            Call(f"{name}: critic values at rollout", FORWARD, rm, n, critic_dtype, seq_len=rollout),
            Call(f"{name}: policy update, {epochs} epochs", TRAIN, teacher, epochs * n, half("ppo"), seq_len=rollout,
                 lora=bool(ppo.lora_rank), checkpointing=ppo.gradient_checkpointing),
            Call(f"{name}: critic update, {epochs} epochs", TRAIN, rm, epochs * n, "fp16",  # under autocast
                 seq_len=rollout, lora=bool(ppo.lora_rank), checkpointing=ppo.gradient_checkpointing),
            evals(1 + _eval_points(steps, p.rl_eval_every), "validation", teacher, half("ppo"),
                  f"{name}: step 0 + every {p.rl_eval_every} steps + the last"),
            evals(1, "test", teacher, half("ppo"), f"{name}: _finish_rl (cell 42's table reuses it)"),
        ]
    calls["02 PPO"] = ppo_calls

    # --- 02 GRPO (cell 37: run_grpo; cell 39: the group exercise; cell 42: table and pass@8 after RL)
    grpo = stage_settings(p, "grpo")
    batches = math.ceil(p.grpo_steps / p.grpo_iterations)  # TRL generates every num_iterations steps
    n = batches * grpo.batch
    calls["02 GRPO"] = [
        Call(f"rollouts: {batches} generation batches x {grpo.batch} sequences", GEN, teacher, n, half("grpo"),
             batch=grpo.batch, prompt=P, new_tokens=T),
        Call("reference log-probs" + (" + old log-probs" if p.grpo_iterations > 1 else ""), FORWARD, teacher,
             n * ((p.kl_beta != 0) + (p.grpo_iterations > 1)), half("grpo"), seq_len=rollout),
        Call(f"policy update: {p.grpo_steps} steps x {grpo.batch} sequences", TRAIN, teacher,
             p.grpo_steps * grpo.batch, half("grpo"), seq_len=rollout, lora=bool(grpo.lora_rank),
             checkpointing=grpo.gradient_checkpointing),
        evals(1 + _eval_points(p.grpo_steps, p.rl_eval_every), "validation", teacher, half("grpo"),
              f"step 0 + every {p.rl_eval_every} steps + the last"),
        evals(1, "test", teacher, half("grpo"), "_finish_rl (cell 42's table reuses it)"),
        Call(f"cell 39: 16 training prompts x {p.num_generations} samples", GEN, teacher, 16 * p.num_generations,
             half("teacher_sft"), batch=16 * p.num_generations, prompt=P, new_tokens=T),
        evals(1, "validation", teacher, half("grpo"), f"pass@{k} after RL, greedy part"),
        Call(f"pass@{k} after RL: {p.n_val} validation prompts x {k} samples", GEN, teacher, p.n_val * k,
             half("grpo"), batch=p.gen_batch_size, prompt=P, new_tokens=T),
    ]

    # --- 03 sampling (cells 7, 9, 11): teacher and reward model loaded without a dtype (fp32)
    n = p.n_distill_prompts * p.samples_per_prompt
    rows_03 = [
        Call(f"teacher sampling: {p.n_distill_prompts} prompts x {p.samples_per_prompt} samples "
             f"(at gen_batch_size={p.gen_batch_size}: the memory planner's batch)", GEN, teacher, n,
             NOTEBOOK_LOAD_DTYPE, batch=p.gen_batch_size, prompt=P, new_tokens=T),
        Call("reward-model scores of every sample", FORWARD, rm, n, NOTEBOOK_LOAD_DTYPE, seq_len=rollout),
    ]
    if p.reward_threshold is None:  # chosen on validation: the same sampling on the validation prompts
        nv = p.n_val * p.samples_per_prompt
        rows_03 += [
            Call(f"threshold on validation: {p.n_val} prompts x {p.samples_per_prompt} samples", GEN, teacher, nv,
                 NOTEBOOK_LOAD_DTYPE, batch=p.gen_batch_size, prompt=P, new_tokens=T),
            Call("threshold on validation: reward-model scores", FORWARD, rm, nv, NOTEBOOK_LOAD_DTYPE, seq_len=rollout),
        ]
    calls["03 sampling"] = rows_03

    # --- 04 student SFT (cell 11: four arms; cell 22: teacher vs student measured; cell 32: on-policy)
    st = stage_settings(p, "student_sft")
    arms = 4  # utils.student.ABLATIONS
    st_evals = _eval_points(p.student_sft_steps, p.student_eval_every)
    st_dtype = half("student_sft")  # evaluated in the trained weights' dtype (outside autocast)
    n_lat = int(_a("latency_n")) + 1
    rows_04 = [
        Call(f"student SFT: {arms} arms x {p.student_sft_steps} steps x {st.batch} rows", TRAIN, student,
             arms * p.student_sft_steps * st.batch, "fp16", seq_len=p.sft_max_length,
             checkpointing=st.gradient_checkpointing),  # fp32 master weights, fp16 autocast (Trainer)
        evals(arms * st_evals, "validation", student, st_dtype,
              f"learning curves: {arms} arms x {st_evals} points (no early stop)"),
        evals(arms, "test", student, st_dtype, f"test accuracy of each of the {arms} arms"),
        evals(1, "test", teacher, NOTEBOOK_LOAD_DTYPE, "cell 22: the teacher on test"),
        Call(f"cell 22: latency, {n_lat} answers at batch 1 (teacher)", GEN, teacher, n_lat, NOTEBOOK_LOAD_DTYPE,
             batch=1, prompt=P, new_tokens=T),
        Call(f"cell 22: latency, {n_lat} answers at batch 1 (student)", GEN, student, n_lat, st_dtype,
             batch=1, prompt=P, new_tokens=T),
        Call(f"cell 22: throughput, {p.n_test} test prompts (teacher)", GEN, teacher, p.n_test, NOTEBOOK_LOAD_DTYPE,
             batch=p.gen_batch_size, prompt=P, new_tokens=T),
        Call(f"cell 22: throughput, {p.n_test} test prompts (student)", GEN, student, p.n_test, st_dtype,
             batch=p.gen_batch_size, prompt=P, new_tokens=T),
        Call("cell 22: peak memory, 1 answer each (teacher)", GEN, teacher, 1, NOTEBOOK_LOAD_DTYPE,
             batch=1, prompt=P, new_tokens=T),
        Call("cell 22: peak memory, 1 answer each (student)", GEN, student, 1, st_dtype,
             batch=1, prompt=P, new_tokens=T),
    ]
    if p.distil_vs_rl_steps and _shares_vocabulary(p):  # section 3, §4.1 in miniature (else: "skipped")
        b, w, s = st.batch, p.distil_vs_rl_warmup, p.distil_vs_rl_steps   # RL arms: about s steps of b samples
        rows_04 += [
            Call(f"§4.1: shared warm-up, {w} SFT steps x {b}", TRAIN, student, w * b, "fp32", seq_len=p.sft_max_length),
            evals(4, "validation", student, st_dtype, "§4.1: warm-up and three arms on validation"),
            evals(4, "test", student, st_dtype, "§4.1: warm-up and three arms on test"),
            Call(f"§4.1 SFT arm: {s} steps x {b}", TRAIN, student, s * b, "fp32", seq_len=p.sft_max_length),
            Call(f"§4.1 GRPO arm: ~{s} steps x {b} samples", GEN, student, s * b, "fp32",
                 batch=b, prompt=P, new_tokens=T),
            Call("§4.1 GRPO arm: update", TRAIN, student, s * b, "fp32", seq_len=rollout),
            Call(f"§4.1 on-policy arm: ~{s} steps x {b} student samples", GEN, student, s * b, "fp32",
                 batch=b, prompt=P, new_tokens=T),
            Call("§4.1 on-policy arm: teacher logits", FORWARD, teacher, s * b, NOTEBOOK_LOAD_DTYPE, seq_len=rollout),
            Call("§4.1 on-policy arm: student update", TRAIN, student, s * b, "fp32", seq_len=rollout),
        ]
    calls["04 student SFT"] = rows_04

    # --- 05 serving: student and teacher loaded in the run's half dtype; batch-1 streams and app requests
    S = p.serve_max_new_tokens
    student_streams = 1 + (1 if [f for f in FAMILIES if f not in p.families] else 0)
    calls["05 serving"] = [
        Call(f"cell 9: 5 temperatures x {p.n_test} test prompts (student)", GEN, student, 5 * p.n_test,
             NOTEBOOK_LOAD_DTYPE, batch=p.gen_batch_size, prompt=P, new_tokens=T),
        Call("cell 15: 3 temperatures x 20 samples of one prompt (student)", GEN, student, 60, NOTEBOOK_LOAD_DTYPE,
             batch=20, prompt=P, new_tokens=T),
        Call(f"cells 18, 23: {student_streams} streamed replies (student, batch 1)", GEN, student, student_streams,
             NOTEBOOK_LOAD_DTYPE, batch=1, prompt=P, new_tokens=T),
        Call(f"cells 29, 33, 35, 38: app requests (student: 1 warm-up + 5 timed + 10 concurrent + 2 chat), "
             f"serve_max_new_tokens={S}", GEN, student, 18, NOTEBOOK_LOAD_DTYPE, batch=1, prompt=P, new_tokens=S),
        Call(f"cell 29: app requests (teacher: 5 timed), serve_max_new_tokens={S}", GEN, teacher, 5,
             NOTEBOOK_LOAD_DTYPE, batch=1, prompt=P, new_tokens=S),
        Call("cell 35: 32-token requests (student: the greedy one, and the two odd inputs a byte-level "
             "tokenizer reads)", GEN, student, 3, NOTEBOOK_LOAD_DTYPE, batch=1, prompt=P, new_tokens=32),
    ]
    return calls


# ---------------------------------------------------------------------------------------
# Seconds
# ---------------------------------------------------------------------------------------

def _shape(model: str):
    from .memory_planner import hub_shape

    return hub_shape(model)


def _flops_rate(dtype: str, mfu: str) -> float:
    peak = _a("fp16_tflops") if dtype == "fp16" else _a("fp32_tflops")
    return peak * 1e12 * _a(mfu)


def _generate_seconds(call: Call, shape) -> float:
    """Prefill at the forward FLOPs rate; then ``new_tokens`` decode steps, each bound by reading the
    weights and the KV cache (bandwidth), by its FLOPs, or by the dispatch overhead, whichever is slowest."""
    nbytes = 2 if call.dtype == "fp16" else 4
    weights = shape.params * nbytes
    kv_per_token = 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * nbytes
    rate = _flops_rate(call.dtype, "forward_mfu")
    bandwidth = _a("bandwidth_gbs") * 1e9 * _a("bandwidth_efficiency")
    dispatch = shape.n_layers * _a("dispatch_ms_per_layer") / 1e3
    fwd = _a("forward_flops_per_token") * shape.params

    def one_call(b: int) -> float:
        prefill = fwd * b * call.prompt / rate
        mean_context = call.prompt + (call.new_tokens - 1) / 2
        step = max((weights + b * mean_context * kv_per_token) / bandwidth, fwd * b / rate, dispatch)
        return prefill + call.new_tokens * step

    full, rest = divmod(call.sequences, max(1, call.batch))
    return full * one_call(call.batch) + (one_call(rest) if rest else 0.0)


def _train_flops_per_token(call: Call, params: int) -> float:
    backward = _a("lora_backward") if call.lora else _a("train_flops_per_token") - _a("forward_flops_per_token")
    recompute = _a("checkpointing_forward") if call.checkpointing else 0.0
    return (_a("forward_flops_per_token") + backward + recompute) * params


def call_seconds(call: Call) -> float:
    """Estimated seconds of one :class:`Call` on a T4 (see :data:`ASSUMPTIONS`)."""
    shape = _shape(call.model)
    if call.kind == GEN:
        return _generate_seconds(call, shape)
    if call.kind == TRAIN:
        return call.tokens_trained * _train_flops_per_token(call, shape.params) / _flops_rate(call.dtype, "train_mfu")
    if call.kind == FORWARD:
        flops = call.tokens_forward * _a("forward_flops_per_token") * shape.params
        return flops / _flops_rate(call.dtype, "forward_mfu")
    raise ValueError(f"unknown call kind {call.kind!r}")


def plan_times(profile) -> list[StageTime]:
    """The time plan of notebooks 02-05 for ``profile`` (models given as hub ids, as in ``colab``),
    one :class:`StageTime` per stage label of :func:`utils.memory_planner.plan_profile`."""
    out = []
    for stage, calls in count_calls(profile).items():
        timed = tuple((c, call_seconds(c)) for c in calls)
        gen = sum(s for c, s in timed if c.kind == GEN)
        work = sum(s for c, s in timed if c.kind != GEN)
        dominant = "decode (bandwidth / dispatch bound)" if gen >= work else "training and forward passes (FLOPs bound)"
        used = (f"mostly {dominant}; decode at {_a('bandwidth_efficiency'):.0%} of {_a('bandwidth_gbs'):.0f} GB/s, "
                f"training at {_a('train_mfu'):.0%} MFU, forward-only at {_a('forward_mfu'):.0%} MFU")
        out.append(StageTime(stage, sum(c.tokens_generated for c in calls), sum(c.tokens_trained for c in calls),
                             sum(c.tokens_forward for c in calls), sum(s for _, s in timed), used, timed))
    return out


def total_minutes(profile) -> float:
    """The whole series (notebooks 02-05) in minutes."""
    return sum(s.seconds for s in plan_times(profile)) / 60


def _m(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def format_time_plan(profile, *, details: bool = False) -> str:
    """A table: one row per stage (tokens generated, trained, forward-only; minutes), the total,
    and under it every assumption with its source. ``details`` adds every counted call."""
    stages = plan_times(profile)
    head = f"{'stage':<18}{'generated':>11}{'trained':>11}{'forward':>11}{'minutes':>9}"
    lines = [f"Time plan of profile {profile.name!r} on a Colab T4 (upper bounds; downloads excluded)", head,
             "-" * len(head)]
    for s in stages:
        lines.append(f"{s.stage:<18}{_m(s.tokens_generated):>11}{_m(s.tokens_trained):>11}"
                     f"{_m(s.tokens_forward):>11}{s.minutes:>9.1f}")
        if details:
            lines += [f"    {c.what}: {s_ / 60:.1f} min" for c, s_ in s.calls]
    lines.append("-" * len(head))
    lines.append(f"{'total':<18}{_m(sum(s.tokens_generated for s in stages)):>11}"
                 f"{_m(sum(s.tokens_trained for s in stages)):>11}{_m(sum(s.tokens_forward for s in stages)):>11}"
                 f"{sum(s.minutes for s in stages):>9.1f}")
    lines.append("")
    lines.append("Excluded: downloads (checkpoints, GSM8K, pip), loading/saving artifacts, tokenization, "
                 "CPU-side filtering, plotting.")
    lines.append("Assumptions:")
    for name, a in ASSUMPTIONS.items():
        lines.append(f"  {name} = {a.value:g} {a.unit} – {a.source}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Before each long stage: its memory and time plan, and a stop before anything loads
# ---------------------------------------------------------------------------------------

#: The course's stages (utils.config.STAGES) under the planners' labels.
STAGE_LABELS = {"teacher_sft": "02 teacher SFT", "reward_model": "02 reward model", "ppo": "02 PPO",
                "grpo": "02 GRPO", "sampling": "03 sampling", "student_sft": "04 student SFT",
                "serving": "05 serving"}


def plannable(profile) -> bool:
    """True when every model of ``profile`` is a hub checkpoint whose shape the planners know
    (the colab profile); models built from config (tiny) or local folders (stand-ins) are not."""
    from .memory_planner import HUB_CONFIGS

    models = (profile.teacher, profile.student, profile.reward_model, profile.serve_model)
    return all(isinstance(m, str) and m in HUB_CONFIGS for m in models)


def check_stage(run, stage: str) -> dict | None:
    """Stop with :class:`utils.memory_planner.StageDoesNotFit` – before anything is loaded – when
    ``stage``'s memory plan exceeds the profile's ``gpu_gb``; returns the plan (None: not plannable)."""
    from .memory_planner import require_fits

    if not plannable(run.profile):
        return None
    return require_fits(run.profile, STAGE_LABELS[stage])


def show_plan(run, stage: str) -> None:
    """Print ``stage``'s GPU memory plan and time plan (what notebooks show before a long stage)."""
    from .memory_planner import GB, format_plan
    from .messages import msg, say

    prof = run.profile
    if not plannable(prof):
        say(msg("{stage}: profile {profile!r} builds or loads its models locally, on {device}: no GPU memory or time "
                "plan (the colab profile has one).", stage=STAGE_LABELS[stage], profile=prof.name, device=run.device))
        return
    plan = check_stage(run, stage)
    timing = next(s for s in plan_times(prof) if s.stage == STAGE_LABELS[stage])
    say(msg("{plan}\n  fits {gpu:.0f} GB: {planned:.1f} GB planned", plan=format_plan(plan), gpu=prof.gpu_gb,
            planned=plan["total"] / GB),
        msg("  time on a T4: about {minutes:.1f} min ({generated} tokens generated, {trained} trained) – {assumption}",
            minutes=timing.minutes, generated=_m(timing.tokens_generated), trained=_m(timing.tokens_trained),
            assumption=timing.assumption))
