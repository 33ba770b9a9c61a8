"""Model factories: teacher, student, reward model and value model – all Qwen2.

Taught in notebook 01 ("Tokenizer and models"); used by 02–05.

In the ``tiny`` profile every model is a ``Qwen2`` built from a config (the article's student
family), saved with ``save_pretrained`` and reloaded with ``from_pretrained`` exactly as a
hub checkpoint would be. In the ``colab`` profile the same functions receive hub ids.

* teacher / student: ``Qwen2ForCausalLM``
* reward model: ``Qwen2ForSequenceClassification`` with one output (a scalar score)
* value model (PPO's critic): also a one-output sequence classifier; PPO reads its score at
  every position (see :mod:`utils.ppo`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, GenerationConfig,
                          PreTrainedModel, PreTrainedTokenizerBase, Qwen2Config)

from .config import ModelSize


def qwen2_config(size: ModelSize, tokenizer: PreTrainedTokenizerBase, **overrides) -> Qwen2Config:
    """A ``Qwen2Config`` for ``size`` with the tokenizer's ids set (pitfall 3 of the field notes:
    Qwen2Config leaves bos/eos/pad unset and embeddings untied by default)."""
    heads = size.num_attention_heads
    cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=heads,
        num_key_value_heads=size.num_key_value_heads or heads,
        intermediate_size=size.intermediate_size,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        use_cache=True,
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


# The course's own decoding defaults: greedy, and no logits processor or warper at all. A hub
# checkpoint's generation_config.json carries its authors' sampling recipe (Qwen2.5-Instruct:
# do_sample, temperature 0.7, top_p 0.8, top_k 20, repetition_penalty 1.05), and model.generate()
# applies whatever a call leaves unset: "greedy" evaluation would run with a repetition penalty,
# and PPO's rollout (temperature 1, top_p 1) would sample a top-k-truncated distribution – not
# the policy π that utils.ppo.token_logprobs scores. Every field that selects a decoding strategy
# or adds a processor is reset to the value that disables it (as transformers'
# GenerationMixin._get_logits_processor reads them); the calls then ask for what they want.
NEUTRAL_GENERATION: dict = {
    "do_sample": False, "num_beams": 1, "num_beam_groups": 1, "diversity_penalty": 0.0,
    "penalty_alpha": None, "dola_layers": None, "constraints": None, "force_words_ids": None,
    "length_penalty": 1.0, "early_stopping": False, "num_return_sequences": 1,
    "prompt_lookup_num_tokens": None, "assistant_early_exit": None, "use_mtp": None,
    "temperature": 1.0, "top_k": None, "top_p": 1.0, "min_p": None, "top_h": None, "typical_p": 1.0,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
    "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "sequence_bias": None,
    "min_length": 0, "min_new_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "remove_invalid_values": False, "exponential_decay_length_penalty": None, "suppress_tokens": None,
    "begin_suppress_tokens": None, "guidance_scale": None, "watermarking_config": None,
    "renormalize_logits": False, "token_healing": False, "stop_strings": None,
}


class CourseGenerationConfig(GenerationConfig):
    """A ``GenerationConfig`` whose unset ``top_k`` means *no* top-k filtering.

    ``generate()`` fills every field left ``None`` from ``_get_default_generation_params()`` of
    the model's generation config, and transformers' default is ``top_k = 50``: a call with
    ``do_sample=True`` would sample from the 50 likeliest tokens only. ``top_k = 0`` (what
    disables it) cannot be stored instead: a greedy config with ``top_k`` other than 50 fails
    ``save_pretrained``'s strict validation. Saved, it is an ordinary ``generation_config.json``.
    """

    @staticmethod
    def _get_default_generation_params() -> dict:
        return {**GenerationConfig._get_default_generation_params(), "top_k": None}


def neutral_generation_config(model: PreTrainedModel) -> PreTrainedModel:
    """Reset ``model.generation_config``'s decoding fields to :data:`NEUTRAL_GENERATION`
    (greedy, no processors, no top-k default; see :class:`CourseGenerationConfig`); token ids and
    lengths are kept. Returns ``model``. Every course loader applies it."""
    gc = model.generation_config
    if not isinstance(gc, CourseGenerationConfig):
        gc = model.generation_config = CourseGenerationConfig.from_dict(gc.to_dict())
    for key, value in NEUTRAL_GENERATION.items():
        setattr(gc, key, value)
    return model


def _fix_generation_config(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    neutral_generation_config(model)
    gc = model.generation_config
    gc.pad_token_id = tokenizer.pad_token_id
    gc.eos_token_id = tokenizer.eos_token_id
    gc.bos_token_id = getattr(tokenizer, "bos_token_id", None) or tokenizer.eos_token_id


def build_causal_lm(size: ModelSize | str, tokenizer: PreTrainedTokenizerBase,
                    seed: int = 0, dtype=None) -> PreTrainedModel:
    """A causal LM: from config when ``size`` is a :class:`ModelSize`, else ``from_pretrained``.

    Used for the teacher and the student. Initialisation is seeded, so a build is repeatable.
    """
    if isinstance(size, str):
        model = AutoModelForCausalLM.from_pretrained(size, dtype=dtype or "auto")
    else:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(qwen2_config(size, tokenizer))
    _fix_generation_config(model, tokenizer)
    return model


def build_scalar_head(size: ModelSize | str, tokenizer: PreTrainedTokenizerBase,
                      seed: int = 0, dtype=None) -> PreTrainedModel:
    """A Qwen2 sequence classifier with one output: the reward model or PPO's value model."""
    if isinstance(size, str):
        model = AutoModelForSequenceClassification.from_pretrained(size, num_labels=1,
                                                                   dtype=dtype or torch.float32)
    else:
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(
            qwen2_config(size, tokenizer, num_labels=1))
    model.config.pad_token_id = tokenizer.pad_token_id
    return fp32_score_head(model)


def fp32_score_head(model: PreTrainedModel) -> PreTrainedModel:
    """Keep a reward or value model's 1-output ``score`` head in fp32, whatever the backbone's
    dtype: the hidden states are cast to it, so the scalar is computed at full precision (a
    half-precision backbone on a GPU; on a CPU everything is fp32 already). Returns ``model``."""
    head = model.score
    head.float()
    if not getattr(head, "_casts_its_input", False):
        head.register_forward_pre_hook(lambda m, args: (args[0].to(m.weight.dtype), *args[1:]))
        head._casts_its_input = True
    return model


# LoRA (the colab profile's ``lora_rank``): train small adapters instead of every weight.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def add_lora(model: PreTrainedModel, rank: int | None, task_type: str = "CAUSAL_LM") -> PreTrainedModel:
    """Wrap ``model`` in rank-``rank`` LoRA adapters on every linear layer (peft); ``None``: as is.

    Only the adapters train (``alpha = 2·rank``); :func:`merge_lora` folds them back in. PEFT keeps
    the adapters in fp32 on a half-precision base (``autocast_adapter_dtype``): fp32 master weights.
    ``task_type="SEQ_CLS"`` (PPO's critic) also trains the ``score`` head.
    The memory planner's ``lora_params(shape, rank, "all-linear")`` counts exactly these.
    """
    if not rank:
        return model
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                            target_modules=LORA_TARGETS, task_type=task_type))


def merge_lora(model: PreTrainedModel) -> PreTrainedModel:
    """A plain model with any LoRA adapters merged into its weights (saved like any checkpoint).

    The update ``(α/r)·B·A`` is added to each weight in fp32, one layer at a time, and the sum is
    rounded to the base's dtype once (PEFT's own merge first rounds the update itself to half
    precision). The merged model keeps the base's dtype, so a saved teacher is as large as the
    checkpoint it came from – which means a change smaller than the spacing of half-precision numbers
    near a weight (fp16: 2⁻¹¹ relative, bf16: 2⁻⁸) still rounds away. The colab profile's LoRA
    learning rates move the weights by far more than that: ``tests/test_lora_merge.py`` checks that
    a merged model reproduces the adapter model's outputs for updates of that size.
    """
    if not hasattr(model, "merge_and_unload"):
        return model
    from peft.tuners.lora import LoraLayer

    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, LoraLayer):
                weight = layer.get_base_layer().weight
                delta = sum(layer.get_delta_weight(name).float() for name in layer.active_adapters)
                weight.data = (weight.data.float() + delta).to(weight.dtype)   # one rounding, layer by layer
    return model.unload()      # drop the adapters (already folded in)


def release(*models) -> None:
    """Free what ``models`` hold on the GPU before the next stage: move them to the CPU and empty
    CUDA's cache (a no-op on a CPU). The caller drops its own references afterwards."""
    on_gpu = False
    for model in models:
        if model is not None and any(p.is_cuda for p in model.parameters()):
            model.to("cpu")
            on_gpu = True
    if on_gpu:
        import gc

        gc.collect()
        torch.cuda.empty_cache()


def copy_model(model: PreTrainedModel) -> PreTrainedModel:
    """An independent copy of ``model``: same class, config and weights, its own ``forward``.

    Not ``copy.deepcopy``: TRL's trainers patch ``model.forward`` in place with a fused LM head
    whose closure holds the *original* model, and a deep copy keeps that closure – the copy
    would train its own weights but answer with the original's (measured: its outputs did not
    move when its weights did). Rebuilding from the config and loading the state dict avoids it.
    """
    import copy

    param = next(model.parameters())
    clone = type(model)(copy.deepcopy(model.config))
    clone.load_state_dict(model.state_dict())
    clone.generation_config = copy.deepcopy(model.generation_config)
    return clone.to(device=param.device, dtype=param.dtype).train(model.training)


def count_params(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def weights_bytes(model: torch.nn.Module) -> int:
    """Bytes the parameters occupy in memory (tied weights counted once)."""
    return sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())


def load_causal_lm(path: str | Path, device: str = "cpu", dtype=None) -> PreTrainedModel:
    """Reload a causal LM saved with ``save_pretrained`` (safetensors only, no remote code),
    with the course's neutral decoding defaults (:func:`neutral_generation_config`).

    An artifact saved as LoRA adapters (its manifest names the artifact they sit on,
    ``adapter_of``, a sibling folder) loads that model, then the adapters on it, unmerged."""
    base = _adapter_base(path)
    if base is not None:
        from peft import PeftModel

        return PeftModel.from_pretrained(load_causal_lm(base, device, dtype), str(path)).to(device).eval()
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32,
                                                 use_safetensors=True, trust_remote_code=False)
    return neutral_generation_config(model).to(device).eval()


def _adapter_base(path: str | Path) -> Path | None:
    """The folder of the model an adapter artifact at ``path`` sits on (None: a whole model)."""
    import json

    manifest = Path(path) / "manifest.json"
    if not (Path(path) / "adapter_config.json").is_file() or not manifest.is_file():
        return None
    base = json.loads(manifest.read_text()).get("config", {}).get("adapter_of")
    return Path(path).parent / base if base else None


def load_scalar_head(path: str | Path, device: str = "cpu", dtype=None) -> PreTrainedModel:
    """Reload a reward/value model saved with ``save_pretrained``."""
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), dtype=dtype or torch.float32, use_safetensors=True, trust_remote_code=False)
    return fp32_score_head(model).to(device).eval()


# ---------------------------------------------------------------------------------------
# Models as artifacts: weights + tokenizer + manifest in artifacts/<profile>/<name>/
# ---------------------------------------------------------------------------------------

def save_model_artifact(profile: str, name: str, model: PreTrainedModel,
                        tokenizer: PreTrainedTokenizerBase, *, seed: int,
                        config: dict | None = None, metrics: dict | None = None,
                        fingerprint: str | None = None, adapter_of: str | None = None,
                        history: dict | None = None, prompt_format: str = "raw") -> Path:
    """Save ``model`` and its tokenizer atomically as the artifact ``name`` (safetensors);
    ``fingerprint`` is ``run.fingerprint(name)`` (see :func:`utils.artifacts.mismatch`).

    ``adapter_of`` (a LoRA model): only the adapters are saved – a few MB – on top of that
    artifact, and :func:`load_model_artifact` puts them back on it, unmerged: the loaded model is the
    one that was trained, with no rounding of a merge into half precision. ``history``: the stage's
    curves and figures (``history.json``), what a re-run shows without training again.
    ``prompt_format`` goes into the manifest's config: "raw" – the course trains on raw ``Q:…``
    prompts, so :mod:`utils.serve` serves the artifact that way, never through a chat template –
    or "chat" (a model that reads its tokenizer's chat template)."""
    import json

    from .artifacts import artifact_path, atomic_artifact
    from .tokenizer import save_tokenizer

    metrics = dict(metrics or {})
    metrics.setdefault("params", count_params(model))
    if prompt_format not in ("raw", "chat"):
        raise ValueError(f"prompt_format must be 'raw' or 'chat', not {prompt_format!r}")
    config = dict(config or {}, **({"adapter_of": adapter_of} if adapter_of else {}))
    config["prompt_format"] = prompt_format
    with atomic_artifact(profile, name, seed=seed, config=config, metrics=metrics,
                         fingerprint=fingerprint) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tokenizer, tmp)
        if history is not None:
            (Path(tmp) / "history.json").write_text(json.dumps(history, default=float))
    return artifact_path(profile, name)


def load_history(profile: str, name: str) -> dict:
    """The ``history.json`` saved with artifact ``name`` ({} when it has none)."""
    import json

    from .artifacts import artifact_path

    path = artifact_path(profile, name) / "history.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def saved_stage(run, name: str) -> dict | None:
    """The history of stage ``name`` when this run has finished it before, else ``None``.

    Notebook 02 saves each stage as it finishes (warm-up, reward model, each RL run); a re-run –
    or a Colab session after a disconnect – loads a finished stage instead of training it again,
    and says so. A saved stage made for another seed or configuration is trained again.

    In classroom replay (``R1LAB_REPLAY=1``, :mod:`utils.replay`) a stage that is not saved for this
    run stops the cell with :class:`utils.replay.ReplayMissing` instead of training.
    """
    from .artifacts import artifact_path, mismatch
    from .replay import announce, missing, replaying

    why = mismatch(run.name, name, seed=run.seed, fingerprint=run.fingerprint(name))
    if why is not None and replaying():
        raise missing(run, name, why)
    if why == "missing":
        return None
    from .messages import msg, say

    if why is not None:
        say(msg("ℹ saved stage '{name}' is {why}: training it again.", name=name, why=why))
        return None
    history = load_history(run.name, name)
    if replaying():
        announce(name, history.get("seconds"))
    else:
        say(msg("✓ stage '{name}' finished earlier with this seed and configuration: loaded from {path}, not trained "
                "again (delete that folder to retrain).", name=name, path=str(artifact_path(run.name, name))))
    return history


def load_model_artifact(profile: str, name: str, *, kind: str = "causal", device: str = "cpu",
                        dtype=None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the artifact ``name`` as ``(model, tokenizer)``; ``kind`` is "causal" or "scalar"."""
    from .artifacts import artifact_path, read_manifest
    from .tokenizer import load_tokenizer

    manifest = read_manifest(profile, name)  # a clear error if it is missing
    path = artifact_path(profile, name)
    if manifest.get("config", {}).get("adapter_of"):
        read_manifest(profile, manifest["config"]["adapter_of"])  # the model the adapters sit on
    loader = load_causal_lm if kind == "causal" else load_scalar_head
    return loader(path, device=device, dtype=dtype), load_tokenizer(path)
