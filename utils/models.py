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
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
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


def _fix_generation_config(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
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
                                                                   dtype=dtype or "auto")
    else:
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(
            qwen2_config(size, tokenizer, num_labels=1))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


# LoRA (the colab profile's ``lora_rank``): train small adapters instead of every weight.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def add_lora(model: PreTrainedModel, rank: int | None) -> PreTrainedModel:
    """Wrap ``model`` in rank-``rank`` LoRA adapters on every linear layer (peft); ``None``: as is.

    Only the adapters train (``alpha = 2·rank``); :func:`merge_lora` folds them back in.
    The memory planner's ``lora_params(shape, rank, "all-linear")`` counts exactly these.
    """
    if not rank:
        return model
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                            target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))


def merge_lora(model: PreTrainedModel) -> PreTrainedModel:
    """A plain model with any LoRA adapters merged into its weights (saved like any checkpoint)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


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
    """Reload a causal LM saved with ``save_pretrained`` (safetensors only, no remote code)."""
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32,
                                                 use_safetensors=True, trust_remote_code=False)
    return model.to(device).eval()


def load_scalar_head(path: str | Path, device: str = "cpu", dtype=None) -> PreTrainedModel:
    """Reload a reward/value model saved with ``save_pretrained``."""
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), dtype=dtype or torch.float32, use_safetensors=True, trust_remote_code=False)
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------
# Models as artifacts: weights + tokenizer + manifest in artifacts/<profile>/<name>/
# ---------------------------------------------------------------------------------------

def save_model_artifact(profile: str, name: str, model: PreTrainedModel,
                        tokenizer: PreTrainedTokenizerBase, *, seed: int,
                        config: dict | None = None, metrics: dict | None = None,
                        fingerprint: str | None = None) -> Path:
    """Save ``model`` and its tokenizer atomically as the artifact ``name`` (safetensors);
    ``fingerprint`` is ``run.fingerprint(name)`` (see :func:`utils.artifacts.mismatch`)."""
    from .artifacts import artifact_path, atomic_artifact
    from .tokenizer import save_tokenizer

    metrics = dict(metrics or {})
    metrics.setdefault("params", count_params(model))
    with atomic_artifact(profile, name, seed=seed, config=config, metrics=metrics,
                         fingerprint=fingerprint) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tokenizer, tmp)
    return artifact_path(profile, name)


def load_model_artifact(profile: str, name: str, *, kind: str = "causal", device: str = "cpu",
                        dtype=None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the artifact ``name`` as ``(model, tokenizer)``; ``kind`` is "causal" or "scalar"."""
    from .artifacts import artifact_path, read_manifest
    from .tokenizer import load_tokenizer

    read_manifest(profile, name)  # a clear error if it is missing
    path = artifact_path(profile, name)
    loader = load_causal_lm if kind == "causal" else load_scalar_head
    return loader(path, device=device, dtype=dtype), load_tokenizer(path)
