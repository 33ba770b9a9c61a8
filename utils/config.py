"""Profiles, seeds, devices: the knobs every notebook reads first.

Taught in notebook 01 (the "Profile" section); every notebook calls ``utils.pipeline.setup``
(built on :func:`make_run`) in its first code cell. A *profile* is one frozen dataclass holding
every size and budget of the course, so that nothing in a notebook branches on the profile except through these values.

* ``tiny`` (the default): CPU, offline, the synthetic task world of :mod:`utils.tasks`,
  Qwen2 models built from config and trained here. Sized for a 2-core laptop.
* ``colab``: a Colab GPU session with hub models and GSM8K. Same code paths, other names.
* ``colab-dryrun``: the ``colab`` code path, offline, with local stand-ins and a few steps
  (:mod:`utils.standins` builds them under ``$R1LAB_STANDINS``; ``make colab-dryrun``, and CI).

Choose one with the notebook's ``parameters`` cell (papermill style), the environment
variables ``R1LAB_PROFILE`` / ``R1LAB_SEED``, or ``make run PROFILE=... SEED=...``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass(frozen=True)
class ModelSize:
    """Shape of a Qwen2 model built from config (tiny profile) – see :mod:`utils.models`."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    num_key_value_heads: int | None = None


@dataclass(frozen=True)
class Profile:
    """Every size and budget of one way of running the course.

    Field names follow the paper's vocabulary where one exists; budgets are counted in
    optimisation steps (never seconds) so that a run is deterministic for a seed.
    """

    name: str
    # --- the task world (notebook 01) -------------------------------------------------
    data_source: str = "synthetic"           # "synthetic" (utils.tasks) or "gsm8k"
    data_path: str | None = None             # gsm8k: a folder with train.jsonl/test.jsonl; None = the hub
    # The tiny profile trains on column addition only: the one family a 2M-parameter model learns
    # within a CPU budget (measured: ~43 % exact match after 250 warm-up steps, where the mixed
    # arith/trace/order world sat at ~15 % after 200 and ~35 % after 600 steps).
    families: tuple[str, ...] = ("add",)
    difficulties: tuple[int, ...] = (1, 2, 3)
    n_train: int = 6000                      # training problems (per run, from `seed`)
    n_val: int = 200                         # validation problems: every choice is made on these
    n_test: int = 300                        # test problems: every reported figure, no choice
    eval_seed: int = 20250122                # validation and test never depend on `seed`
    max_new_tokens: int = 64
    # --- models (notebook 01) ---------------------------------------------------------
    teacher: ModelSize | str = ModelSize(192, 4, 4, 576)
    student: ModelSize | str = ModelSize(96, 3, 2, 288)
    reward_model: ModelSize | str = ModelSize(96, 2, 2, 288)
    # --- notebook 02: teacher warm-up SFT, reward model, PPO, GRPO ---------------------
    teacher_sft_steps: int = 300             # chosen on validation: pass@8 well above pass@1 at every difficulty
    sft_batch_size: int = 64
    sft_lr: float = 1e-3
    sft_scheduler: str = "constant_with_warmup"  # the warm-up is stopped early: no decay to 0
    sft_max_length: int = 128                # tokens of prompt + completion kept in SFT (teacher and student)
    rm_max_length: int = 160                 # tokens of prompt + answer the reward model reads in training
    rm_prompts: int = 600                    # prompts sampled (x num_generations) for preference pairs
    rm_steps: int = 150
    rm_lr: float = 5e-4
    ppo_steps: int = 30                      # PPO iterations (rollout + update)
    grpo_steps: int = 60                     # GRPOTrainer steps (about half a PPO step's cost: no critic, no reward model)
    rl_eval_every: int = 5                   # evaluate on validation, keep the best checkpoint
    rl_lr: float = 1e-4                      # 3e-4 collapsed the tiny teacher (validation)
    rl_warmup_steps: int = 3                 # then constant: no decay to 0 within a short run
    rl_batch_prompts: int = 16               # prompts per GRPO step (x num_generations samples)
    num_generations: int = 4                 # GRPO group size / samples per prompt
    kl_beta: float = 0.05
    grpo_scale_rewards: str = "batch"        # TRL's "group" inflates tiny reward gaps (Dr. GRPO)
    grpo_loss_type: str = "grpo"
    grpo_iterations: int = 2                 # updates per generation batch (PPO's epochs)
    grpo_format_reward: bool = False         # the warm-up teacher's format is already right
    ppo_batch: int = 64                      # prompts per PPO rollout (one sample each)
    ppo_lr: float = 1e-4
    ppo_lambda: float = 1.0                  # GAE λ = 1: the final reward reaches every token
    ppo_rm_weight: float = 0.1               # RM as a standardised shaping term beside the verifier
    # --- notebook 03: sampling and filtering -------------------------------------------
    n_distill_prompts: int = 2500            # the article's point is data volume
    samples_per_prompt: int = 4
    temperature: float = 0.6                 # DeepSeek-R1 README's recommendation
    top_p: float = 0.95
    max_correct_per_prompt: int = 2
    reward_threshold: float | None = None    # None: chosen on validation (F1 against the verifier)
    decontam_unit: str = "char"              # 13-grams of characters (task world) or words (prose: GSM8K)
    # --- notebook 04: the student ------------------------------------------------------
    student_sft_steps: int = 800             # every arm, the same budget; the best step on validation is kept
    student_eval_every: int = 100            # validation points on each arm's learning curve
    student_batch_size: int = 128            # 64 left the ground-truth arm still climbing at 800 steps (validation)
    student_patience: int | None = 2         # stop an arm after this many evaluations without improvement
    student_lr: float = 2e-3
    distil_vs_rl_warmup: int = 200           # notebook 04 section 3 (§4.1 in miniature): shared student warm-up, SFT steps
                                             # (seed 0, validation: 6 % at 150 steps, 20 % at 200 – RL needs some reward)
    distil_vs_rl_steps: int = 20             # ... each arm's budget: the tokens of this many SFT steps (0: skip the section)
    r1_zero: bool = True                     # notebook 02's R1-Zero miniature: answer-only warm-up, then GRPO
    # --- notebook 05: serving ----------------------------------------------------------
    serve_max_new_tokens: int = 64
    serve_concurrency: int = 4               # generations running at once (Gradio queue workers)
    serve_queue_size: int = 64               # requests waiting beyond that; more are refused
    serve_max_prompt_chars: int = 2000       # longer prompts are rejected with a message
    # --- GPU profiles (colab): memory planning, LoRA, serving ------------------------------
    lora_rank: int | None = None             # LoRA adapters for the teacher's SFT and RL when set
    gpu_gb: float = 15.0                     # a free Colab T4
    gen_batch_size: int = 1024               # sequences (prompts x samples) per generate() call
    rm_batch_size: int = 32                  # preference pairs per reward-model step
    gradient_checkpointing: bool = False     # recompute activations in backward: less memory, ~30 % slower
    serve_model: str | None = None           # a hub id (or folder) notebook 05 also serves (colab)
    # --- hardware and network ------------------------------------------------------------
    torch_threads: int = 2                   # 0: leave torch's default
    require_cuda: bool = False               # make_run stops unless torch sees a CUDA GPU (colab)
    hub_offline: bool = True                 # set HF_HUB_OFFLINE=1 (False: this profile downloads)
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "Profile":
        """A copy with some fields changed (profiles are frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, written into every artifact's manifest."""
        return dataclasses.asdict(self)


PROFILES: dict[str, Profile] = {
    "tiny": Profile(name="tiny"),
    # Filled in by the Colab issue: hub ids instead of ModelSize, GSM8K instead of tasks.
    "colab": Profile(
        name="colab",
        data_source="gsm8k",
        families=("gsm8k",),
        difficulties=(1,),
        n_train=7473,
        # Budgets: the whole series (notebooks 02-05) plans at <= 90 min on a T4 (utils.time_plan, upper
        # bounds, downloads excluded; tests/test_time_plan.py). Repeated evaluations were cut before training.
        n_val=100,                           # carved from GSM8K's train split; every RL/SFT evaluation reads it
        n_test=200,
        max_new_tokens=384,
        # Teacher: Qwen2.5-1.5B-Instruct. Student: SmolLM2-360M-Instruct – 23 % of the teacher's
        # parameters and a *different tokenizer*: data distillation needs none in common.
        teacher="Qwen/Qwen2.5-1.5B-Instruct",
        student="HuggingFaceTB/SmolLM2-360M-Instruct",
        reward_model="Qwen/Qwen2.5-0.5B-Instruct",
        data_path=None,                      # the hub's openai/gsm8k
        hub_offline=False,
        lora_rank=16,
        gen_batch_size=32,
        rm_batch_size=4,
        ppo_batch=8,                         # rollouts per PPO step: the planner's "02 PPO" stage
        gradient_checkpointing=True,
        serve_model="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        teacher_sft_steps=100,
        sft_batch_size=8,
        # LoRA learning rates (the adapters train, the fp16 base is frozen). LoRA's best rate is about
        # 10x full fine-tuning's (Schulman et al., "LoRA Without Regret", Thinking Machines Lab, 2025);
        # 2e-4 is QLoRA's rate for 7B/13B models (Dettmers et al., 2023, arXiv:2305.14314, appendix).
        sft_lr=2e-4,
        sft_max_length=640,                  # GSM8K: prompt ~ 256 tokens + a 384-token answer
        rm_max_length=640,
        rm_prompts=250,                      # x num_generations samples -> at most 250 preference pairs
        rm_steps=100,
        rm_lr=1e-5,
        ppo_steps=20,                        # notebook 02 also runs ppo_steps // 3 against the RM alone
        grpo_steps=40,                       # 20 generation batches (grpo_iterations=2 updates each)
        rl_eval_every=10,                    # validation at step 0, every 10 steps and the last
        num_generations=4,
        grpo_iterations=2,
        rl_lr=1e-5,                          # TRL GRPOConfig's full-fine-tuning default 1e-6, x10 for LoRA (as above)
        ppo_lr=1e-5,                         # the same policy, the same adapters
        rl_batch_prompts=2,
        n_distill_prompts=200,               # x samples_per_prompt = 800 teacher samples
        samples_per_prompt=4,
        decontam_unit="word",                # character 13-grams would drop 97 % of GSM8K's train prompts
        student_sft_steps=150,               # x 4 arms; 1200 rows read per arm (~3-4 epochs of the filtered data)
        student_eval_every=50,
        student_batch_size=8,
        student_lr=1e-4,
        r1_zero=False,                       # not in the T4 time plan: 0 on colab (the Colab issue's rule)
        distil_vs_rl_steps=0,                # idem; and the colab student's tokenizer is not the teacher's
        serve_max_new_tokens=2048,
        torch_threads=0,
        require_cuda=True,                   # planned for a T4 (memory_planner): on a CPU, stop at once
    ),
}

# The colab code path, offline on a CPU in a few minutes (CI runs it: tests/test_colab_dryrun.py).
# Only names and budgets differ from "colab": the checkpoints and GSM8K are the local stand-ins of
# utils.standins (the names below are folders inside $R1LAB_STANDINS, filled in by get_profile).
PROFILES["colab-dryrun"] = PROFILES["colab"].replace(
    name="colab-dryrun",
    data_path="gsm8k",
    teacher="teacher",
    student="student",
    reward_model="reward_model",
    serve_model="teacher",
    hub_offline=True,                        # everything is local
    n_train=32,
    n_val=8,
    n_test=8,
    max_new_tokens=64,                       # room for the stand-in teacher's shortest answers
    teacher_sft_steps=2,
    rm_prompts=16,
    rm_steps=2,
    rl_eval_every=5,                         # colab's former value (a step-0 and a last evaluation either way)
    ppo_steps=2,
    grpo_steps=2,
    n_distill_prompts=32,
    reward_threshold=-10.0,                  # a reward model trained for 2 steps scores at random
    student_sft_steps=4,
    student_eval_every=2,
    serve_max_new_tokens=16,                 # short replies: notebook 05 times a whole one
    torch_threads=1,                         # tiny models gain nothing from more; CI runners are shared
    require_cuda=False,                      # the colab code path on a CPU
    extra={"standins": True},
)
STANDIN_FIELDS = ("data_path", "teacher", "student", "reward_model", "serve_model")

DEFAULT_PROFILE = "tiny"
DEFAULT_SEED = 0


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called ``name`` (default: ``$R1LAB_PROFILE`` or ``tiny``).

    A profile made of stand-ins (``extra["standins"]``) gets its names resolved to folders in
    :func:`standins_root` (they may not be built yet: ``utils.pipeline.setup`` builds them).
    """
    name = name or os.environ.get("R1LAB_PROFILE") or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; choose one of {sorted(PROFILES)}.")
    prof = PROFILES[name]
    return with_standins(prof, standins_root()) if prof.extra.get("standins") else prof


REPO_ROOT = Path(__file__).resolve().parents[1]


def artifacts_root() -> Path:
    """``$R1LAB_ARTIFACTS`` if set, else ``<repo>/artifacts`` (``make test`` uses its own root)."""
    return Path(os.environ.get("R1LAB_ARTIFACTS", REPO_ROOT / "artifacts"))


def standins_root() -> Path:
    """Where the colab-dryrun stand-ins live: ``$R1LAB_STANDINS``, else ``<artifacts>/standins``."""
    return Path(os.environ.get("R1LAB_STANDINS") or artifacts_root() / "standins")


def with_standins(prof: Profile, root: str | Path) -> Profile:
    """``prof`` with each stand-in name (``"teacher"``, ``"gsm8k"``, ...) made a folder in ``root``."""
    names = {f: getattr(prof, f) for f in STANDIN_FIELDS if isinstance(getattr(prof, f), str)}
    return prof.replace(**{f: str(Path(root) / name) for f, name in names.items()})


def set_offline_env(hub_offline: bool = True) -> None:
    """Make the hub and analytics libraries never wait on the network (our CI has none).

    ``hub_offline=False`` (a profile that downloads checkpoints) leaves ``HF_HUB_OFFLINE`` alone.
    """
    for key, value in OFFLINE_ENV.items():
        if key != "HF_HUB_OFFLINE" or hub_offline:
            os.environ.setdefault(key, value)


HF_DEFAULT_ENDPOINT = "https://huggingface.co"


def apply_hub_endpoint(endpoint: str | None = None) -> str:
    """Send every hub request to ``endpoint`` – default ``$HF_ENDPOINT``, else huggingface.co –
    for example a mirror (``https://hf-mirror.com``) where huggingface.co is blocked or slow.

    ``huggingface_hub`` (which ``transformers`` downloads through) and ``datasets`` read
    ``HF_ENDPOINT`` once, when they are first imported. A notebook that sets it in a cell after
    ``import transformers`` would still download from huggingface.co; this applies it to the
    modules already imported as well. Returns the endpoint in use.
    """
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")
    os.environ["HF_ENDPOINT"] = endpoint
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.ENDPOINT = endpoint
        hub.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_ENDPOINT = endpoint
        datasets_config.HUB_DATASETS_URL = endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
    return endpoint


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; make torch deterministic on the CPU."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # cuBLAS is deterministic only with a fixed workspace; set before its first use (CUDA docs,
    # "Reproducibility"; torch.use_deterministic_algorithms's documentation).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Filling every new tensor with NaN (the deterministic default) costs more than it buys here.
    torch.utils.deterministic.fill_uninitialized_memory = False


def pick_device() -> tuple[str, "Any"]:
    """The best available device and the dtype to compute in there.

    CUDA: bf16 where the GPU computes it natively (compute capability 8.0 and newer: Ampere), else
    fp16 (a Colab T4, 7.5). Not ``torch.cuda.is_bf16_supported()``: it is True on a T4 too, where
    bf16 is emulated and several times slower than fp16.
    Apple MPS: fp16 for inference-sized work. CPU: fp32.
    """
    import torch

    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.get_device_capability() >= (8, 0) else torch.float16
        return "cuda", dtype
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps", torch.float16
    return "cpu", torch.float32


# ---------------------------------------------------------------------------------------
# How each stage runs on the hardware: the one place both the trainers and the GPU memory
# planner (utils.memory_planner.plan_profile) read, so the plan is the code's plan.
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageSettings:
    """Batch, precision and memory savers of one stage.

    ``batch`` counts sequences (a generate() call's prompts x samples, an optimiser step's
    examples; the reward model's pairs). ``half_weights``: on a GPU the weights are loaded in the
    run's half dtype (frozen models, a LoRA base, inference); otherwise fp32 master weights with
    mixed precision (full fine-tuning). On a CPU everything is fp32.
    """

    batch: int
    gradient_checkpointing: bool
    half_weights: bool
    lora_rank: int | None = None


STAGES = ("teacher_sft", "reward_model", "ppo", "grpo", "sampling", "student_sft", "serving")


def stage_settings(profile: Profile, stage: str) -> StageSettings:
    """The :class:`StageSettings` of ``stage`` (one of :data:`STAGES`) in ``profile``."""
    p, gc, lora = profile, profile.gradient_checkpointing, profile.lora_rank
    table = {
        "teacher_sft": StageSettings(p.sft_batch_size, gc, half_weights=bool(lora), lora_rank=lora),
        "reward_model": StageSettings(p.rm_batch_size, gc, half_weights=False),
        "ppo": StageSettings(p.ppo_batch, gc, half_weights=bool(lora), lora_rank=lora),
        "grpo": StageSettings(p.rl_batch_prompts * p.num_generations, gc, half_weights=bool(lora), lora_rank=lora),
        "sampling": StageSettings(p.gen_batch_size, False, half_weights=True),
        "student_sft": StageSettings(p.student_batch_size, gc, half_weights=False),
        "serving": StageSettings(1, False, half_weights=True),
    }
    if stage not in table:
        raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
    return table[stage]


# ---------------------------------------------------------------------------------------
# What each artifact is made from. utils.pipeline builds them in this order; a manifest
# records the fingerprint below, and an artifact whose fingerprint differs from the run's
# (another seed, another configuration) is rebuilt, never silently reused.
# ---------------------------------------------------------------------------------------

_EVAL = ("data_source", "data_path", "families", "difficulties", "n_val", "n_test", "eval_seed",
         "max_new_tokens")   # the splits a model artifact's recorded accuracy is measured on


@dataclass(frozen=True)
class ArtifactSpec:
    """One artifact: the artifacts it is made from, the profile fields it depends on, the
    notebook that makes it, and whether it depends on the run's seed."""

    inputs: tuple[str, ...]
    fields: tuple[str, ...]
    notebook: str
    seeded: bool = True
    functions: tuple[str, ...] = ()   # roles of functions a notebook may pass in (see Run.using)


ARTIFACTS: dict[str, ArtifactSpec] = {
    "tokenizer": ArtifactSpec((), (), "01", seeded=False),
    "teacher_sft": ArtifactSpec(("tokenizer",), _EVAL + (
        "n_train", "teacher", "teacher_sft_steps", "sft_batch_size", "sft_lr", "sft_scheduler",
        "sft_max_length", "lora_rank", "gradient_checkpointing"), "02"),
    "reward_model": ArtifactSpec(("teacher_sft",), _EVAL + (
        "reward_model", "rm_max_length", "rm_prompts", "rm_steps", "rm_lr", "rm_batch_size",
        "num_generations", "gen_batch_size"), "02"),
    "teacher": ArtifactSpec(("teacher_sft", "reward_model"), _EVAL + (
        "ppo_steps", "grpo_steps", "rl_eval_every", "rl_lr", "rl_warmup_steps", "rl_batch_prompts",
        "num_generations", "kl_beta", "grpo_scale_rewards", "grpo_loss_type", "grpo_iterations",
        "grpo_format_reward", "ppo_batch", "ppo_lr", "ppo_lambda", "ppo_rm_weight"), "02",
        functions=("grpo_rewards",)),
    "distill_data": ArtifactSpec(("teacher", "reward_model"), _EVAL + (
        "n_distill_prompts", "samples_per_prompt", "temperature", "top_p", "max_correct_per_prompt",
        "reward_threshold", "decontam_unit", "gen_batch_size"), "03", functions=("filter_stages",)),
    "student": ArtifactSpec(("distill_data", "tokenizer"), _EVAL + (
        "n_train", "student", "student_sft_steps", "student_eval_every", "student_batch_size",
        "student_patience", "student_lr", "sft_max_length", "gradient_checkpointing"), "04"),
}
ARTIFACTS["distill_data_unfiltered"] = ARTIFACTS["distill_data"]  # written together, one fingerprint
# Notebook 02's RL stages, each saved when it finishes (LoRA adapters only under LoRA, with its
# histories): a re-run, or a Colab session after a disconnect, loads them instead of training again.
_PPO = ("ppo_steps", "rl_eval_every", "rl_warmup_steps", "kl_beta", "ppo_batch", "ppo_lr", "ppo_lambda",
        "ppo_rm_weight", "gen_batch_size")
_GRPO = ("grpo_steps", "rl_eval_every", "rl_lr", "rl_warmup_steps", "rl_batch_prompts", "num_generations",
         "kl_beta", "grpo_scale_rewards", "grpo_loss_type", "grpo_iterations", "grpo_format_reward",
         "gen_batch_size")
ARTIFACTS["teacher_ppo_rm"] = ArtifactSpec(("teacher_sft", "reward_model"), _EVAL + _PPO, "02")
ARTIFACTS["teacher_ppo"] = ArtifactSpec(("teacher_sft", "reward_model"), _EVAL + _PPO, "02")
ARTIFACTS["teacher_grpo"] = ArtifactSpec(("teacher_sft",), _EVAL + _GRPO, "02", functions=("grpo_rewards",))
#: Profile fields no artifact depends on (a test checks every field is in one list or the other).
NOT_IN_ARTIFACTS = ("name", "distil_vs_rl_warmup", "distil_vs_rl_steps", "r1_zero", "serve_max_new_tokens", "serve_concurrency",
                    "serve_queue_size", "serve_max_prompt_chars", "gpu_gb", "serve_model", "torch_threads",
                    "hub_offline", "require_cuda", "extra")


def function_source(fn: Callable) -> str:
    """The source of ``fn`` (a notebook cell's function included: IPython keeps cells' sources
    where :mod:`inspect` finds them), dedented; for a function without source, its bytecode and
    constants, so that two different functions never read the same."""
    import inspect
    import textwrap

    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if code is None:
            raise TypeError(f"{fn!r} is not a Python function: pass a function defined with def") from None
        return f"{fn.__qualname__}\n{code.co_code.hex()}\n{code.co_consts!r}\n{code.co_names!r}"


def functions_hash(fns: Sequence[Callable]) -> str:
    """A short hash of the sources of ``fns``, in order: the part of an artifact's fingerprint
    that says which functions (reward functions, filter stages) made it."""
    import hashlib

    return hashlib.sha256("\n\0".join(function_source(f) for f in fns).encode()).hexdigest()[:16]


def fingerprint(profile: Profile, seed: int, name: str, functions: Mapping[str, str] | None = None) -> str:
    """A short hash of everything artifact ``name`` is made from: its profile fields, the seed
    (if it depends on it), the hashes of the functions passed in for its roles (only those that
    differ from the package's own, see :meth:`Run.using`) and, recursively, its inputs' fingerprints."""
    import hashlib

    functions = functions or {}
    spec = ARTIFACTS[name]
    parts = [name, *(f"{f}={getattr(profile, f)!r}" for f in spec.fields)]
    parts += [f"seed={seed}"] if spec.seeded else []
    parts += [f"{role}={functions[role]}" for role in spec.functions if role in functions]
    parts += [fingerprint(profile, seed, i, functions) for i in spec.inputs]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass
class Run:
    """What :func:`utils.pipeline.setup` returns: the profile, the seed and where to compute."""

    profile: Profile
    seed: int
    device: str
    dtype: Any
    functions: dict[str, str] = field(default_factory=dict)  # role -> hash, for functions a notebook passed in

    @property
    def name(self) -> str:
        return self.profile.name

    def using(self, role: str, fns: Sequence[Callable], default: Sequence[Callable]) -> list[Callable]:
        """Record that this run makes ``role``'s artifacts with ``fns`` (a notebook's reward functions
        or filter stages) and return them. Functions whose sources equal the package's ``default``
        leave every fingerprint as it was; edited ones change the fingerprint of every artifact made
        with them and of everything made from those, so nothing saved with other functions is reused."""
        fns = list(fns)
        if not fns or not all(callable(f) for f in fns):
            raise TypeError(f"{role}: pass a non-empty list of functions, not {fns!r}")
        digest = functions_hash(fns)
        if digest == functions_hash(list(default)):
            self.functions.pop(role, None)
        else:
            self.functions[role] = digest
        return fns

    def weights_dtype(self, stage: str):
        """The torch dtype ``stage``'s weights are loaded in (see :class:`StageSettings`)."""
        import torch

        half = stage_settings(self.profile, stage).half_weights and self.device == "cuda"
        return self.dtype if half else torch.float32

    def mixed_precision(self) -> dict[str, bool]:
        """``bf16``/``fp16`` flags for a Trainer: mixed precision in the run's half dtype on a GPU."""
        import torch

        on_gpu = self.device == "cuda"
        return {"bf16": on_gpu and self.dtype == torch.bfloat16, "fp16": on_gpu and self.dtype == torch.float16}

    def fingerprint(self, artifact: str) -> str:
        """The fingerprint artifact ``artifact`` of this run must carry (see :func:`fingerprint`)."""
        return fingerprint(self.profile, self.seed, artifact, self.functions)


def make_run(profile: str | None = None, seed: int | None = None, *, quiet: bool = False) -> Run:
    """Offline env, threads, seeds, device – the part of :func:`utils.pipeline.setup` (every
    notebook's first call) that needs nothing but this module.

    ``profile``/``seed`` come from the notebook's ``parameters`` cell; ``None`` means
    "use ``$R1LAB_PROFILE`` / ``$R1LAB_SEED``, else the defaults".
    """
    import torch

    prof = get_profile(profile)
    device, dtype = pick_device()
    if prof.require_cuda and device != "cuda":
        raise RuntimeError(
            f"The {prof.name!r} profile needs a CUDA GPU and torch sees none (device: {device}). "
            "On Colab: Runtime -> Change runtime type -> T4 GPU, then run the notebook again. "
            "On a CPU, use the tiny profile (R1LAB_PROFILE=tiny), or colab-dryrun for the colab code path.")
    set_offline_env(prof.hub_offline)
    endpoint = None if prof.hub_offline else apply_hub_endpoint()  # a profile that downloads: honour HF_ENDPOINT
    if seed is None:
        seed = int(os.environ.get("R1LAB_SEED", DEFAULT_SEED))
    if prof.torch_threads:
        torch.set_num_threads(prof.torch_threads)
    seed_everything(seed)
    run = Run(profile=prof, seed=seed, device=device, dtype=dtype)
    if not quiet:
        print(f"profile={prof.name} seed={seed} device={device} dtype={str(dtype).replace('torch.', '')}")
        if endpoint not in (None, HF_DEFAULT_ENDPOINT):
            print(f"hub downloads from {endpoint} (HF_ENDPOINT)")
    return run


def package_versions() -> dict[str, str]:
    """Versions of the libraries the course depends on (the notebooks' first cell prints them)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["torch", "transformers", "trl", "datasets", "accelerate", "gradio", "ipywidgets"]
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    import platform

    out["python"] = platform.python_version()
    return out
