"""Issue row 3: a LoRA teacher merged into half-precision weights keeps what it learned.

The adapters train in fp32 on an fp16 base. The warm-up teacher (``teacher_sft``) is saved as the
merged model in the base's dtype: an update is kept only if it is larger than the spacing of fp16
numbers near a weight, so its LoRA learning rate must move the weights by far more than that. Here
the adapters are set to the size an Adam run at that rate reaches (each step moves an adapter entry
by at most about ``lr``; a quarter of that, in one direction), and the merged model must reproduce
the adapter model. The RL stages move the weights far less (a tenth of the rate, fewer steps): the
same check shows a merge would lose much of what they learned, which is why they are saved as their
adapters and loaded unmerged (``tests/test_stage_store.py``)."""

import pytest
import torch

from utils.config import PROFILES, ModelSize, stage_settings
from utils.models import add_lora, build_causal_lm, merge_lora

COLAB = PROFILES["colab"]
# (learning rate, optimiser steps) of each LoRA stage of the colab profile
MERGED = {"teacher SFT": (COLAB.sft_lr, COLAB.teacher_sft_steps)}
UNMERGED = {"PPO": (COLAB.ppo_lr, COLAB.ppo_steps), "GRPO": (COLAB.rl_lr, COLAB.grpo_steps * COLAB.grpo_iterations)}


def _trained_adapter(tok, lr: float, steps: int, seed: int = 0):
    """A small Qwen2 in fp16 with rank-16 adapters whose B matrices moved ``lr`` per step for a
    quarter of ``steps`` in one direction (a conservative fraction of Adam's largest move)."""
    base = build_causal_lm(ModelSize(64, 2, 4, 128), tok, seed=seed)
    with torch.no_grad():                       # weights of a trained model's size, not init's
        for p in base.parameters():
            p.normal_(0, 0.02)
    model = add_lora(base.half(), stage_settings(COLAB, "ppo").lora_rank)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                signs = torch.randint(0, 2, p.shape, generator=g).float() * 2 - 1
                p.copy_(signs * lr * steps / 4)
    return model


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _merge_loss(tok, lr, steps):
    """(what the adapters changed, what the merge lost) in the logits of one prompt."""
    model = _trained_adapter(tok, lr, steps)
    ids = tok(["Q:12+34=<think>2+4=6;1+3=4</think>A:46"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    adapted = _logits(model, ids)
    with model.disable_adapter():
        base = _logits(model, ids)
    merged_model = merge_lora(model)
    assert not hasattr(merged_model, "peft_config")
    assert next(merged_model.parameters()).dtype == torch.float16      # saved at the checkpoint's size
    return (adapted - base).norm(), (_logits(merged_model, ids) - adapted).norm()


@pytest.mark.parametrize("stage", MERGED)
def test_merged_model_reproduces_the_adapter_model_at_the_colab_learning_rate(char_tokenizer, stage):
    lr, steps = MERGED[stage]
    learned, lost = _merge_loss(char_tokenizer, lr, steps)
    assert learned > 0
    assert lost < 0.1 * learned, (f"{stage}: lr {lr} x {steps} steps – the merge lost "
                                  f"{lost / learned:.0%} of what the adapters changed")


@pytest.mark.parametrize("stage", UNMERGED)
def test_rl_updates_are_too_small_to_survive_a_half_precision_merge(char_tokenizer, stage):
    """Why the RL stages keep their adapters: merged into fp16, a sizeable share would round away."""
    lr, steps = UNMERGED[stage]
    learned, lost = _merge_loss(char_tokenizer, lr, steps)
    assert lost > 0.1 * learned


def test_colab_learning_rates_suit_lora():
    """LoRA's best rate is about 10x full fine-tuning's (config.py cites the sources)."""
    assert COLAB.lora_rank
    assert 1e-4 <= COLAB.sft_lr <= 3e-4
    assert COLAB.rl_lr >= 1e-5 and COLAB.ppo_lr >= 1e-5
