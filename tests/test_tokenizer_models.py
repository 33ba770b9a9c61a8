"""Tokenizer round trip, model factories and save/reload as a hub checkpoint would be."""

import torch
from transformers import AutoTokenizer

from utils.config import get_profile
from utils.models import (build_causal_lm, build_scalar_head, count_params, load_causal_lm,
                          load_scalar_head)
from utils.tasks import make_problems
from utils.tokenizer import load_tokenizer, save_tokenizer


def test_round_trip_every_problem(char_tokenizer):
    for p in make_problems(300, "train", seed=1):
        text = p.prompt + p.completion
        ids = char_tokenizer(text)["input_ids"]
        assert char_tokenizer.decode(ids, skip_special_tokens=True) == text
        assert char_tokenizer.unk_token_id not in ids


def test_think_tags_are_single_ordinary_tokens(char_tokenizer):
    ids = char_tokenizer("<think></think>")["input_ids"]
    assert len(ids) == 2
    # skip_special_tokens must keep them (TRL decodes completions that way)
    assert char_tokenizer.decode(ids, skip_special_tokens=True) == "<think></think>"


def test_save_and_reload_in_a_qwen2_model_folder(tmp_path, char_tokenizer):
    model = build_causal_lm(get_profile("tiny").student, char_tokenizer)
    model.save_pretrained(tmp_path)
    save_tokenizer(char_tokenizer, tmp_path)
    text = "Q:a=3;b=a+4;a?<think>a=3;b=7</think>A:3"
    reloaded = load_tokenizer(tmp_path)
    assert reloaded(text)["input_ids"] == char_tokenizer(text)["input_ids"]
    assert reloaded.padding_side == "left"
    assert reloaded.pad_token_id == char_tokenizer.pad_token_id
    spaced = "max a 12 and 7"
    assert reloaded(spaced)["input_ids"] == char_tokenizer(spaced)["input_ids"]
    assert reloaded.decode(reloaded(spaced)["input_ids"]) == spaced


def test_auto_tokenizer_pitfall(tmp_path, char_tokenizer):
    """transformers 5.x: AutoTokenizer on a qwen2 folder rebuilds a Qwen2 tokenizer (Qwen's
    pre-tokenizer), which drops our spaces – the reason load_tokenizer does not use it."""
    build_causal_lm(get_profile("tiny").student, char_tokenizer).save_pretrained(tmp_path)
    save_tokenizer(char_tokenizer, tmp_path)
    spaced = "max a 12 and 7"
    auto = AutoTokenizer.from_pretrained(tmp_path)
    assert auto(spaced)["input_ids"] != char_tokenizer(spaced)["input_ids"]


def test_student_is_about_a_fifth_of_the_teacher(char_tokenizer):
    prof = get_profile("tiny")
    teacher = count_params(build_causal_lm(prof.teacher, char_tokenizer))
    student = count_params(build_causal_lm(prof.student, char_tokenizer))
    assert 0.15 <= student / teacher <= 0.20


def test_models_reload_identically(tmp_path, char_tokenizer):
    prof = get_profile("tiny")
    lm = build_causal_lm(prof.student, char_tokenizer, seed=3)
    rm = build_scalar_head(prof.reward_model, char_tokenizer, seed=3)
    lm.save_pretrained(tmp_path / "lm")
    rm.save_pretrained(tmp_path / "rm")
    assert (tmp_path / "lm" / "model.safetensors").exists()
    ids = torch.tensor([char_tokenizer("Q:1+2=<think>")["input_ids"]])
    lm2, rm2 = load_causal_lm(tmp_path / "lm"), load_scalar_head(tmp_path / "rm")
    lm.eval(), rm.eval()
    with torch.no_grad():
        assert torch.allclose(lm(ids).logits, lm2(ids).logits)
        assert torch.allclose(rm(ids).logits, rm2(ids).logits)
    assert rm2(ids).logits.shape == (1, 1)
    assert lm2.generation_config.eos_token_id == char_tokenizer.eos_token_id
    assert lm2.generation_config.pad_token_id == char_tokenizer.pad_token_id


def test_build_is_seeded(char_tokenizer):
    size = get_profile("tiny").student
    a = build_causal_lm(size, char_tokenizer, seed=1).state_dict()
    b = build_causal_lm(size, char_tokenizer, seed=1).state_dict()
    c = build_causal_lm(size, char_tokenizer, seed=2).state_dict()
    key = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_copy_model_is_independent_even_after_a_trl_trainer(char_tokenizer):
    """TRL patches model.forward during training; a copy must still run its own weights."""
    import torch

    from utils.config import ModelSize
    from utils.models import build_causal_lm, copy_model
    from utils.sft import to_sft_dataset, train_sft
    from utils.tasks import make_problems

    model = build_causal_lm(ModelSize(32, 1, 2, 64), char_tokenizer, seed=0)
    train_sft(model, char_tokenizer, to_sft_dataset(make_problems(16, "train", seed=0)), steps=1, lr=1e-3,
              batch_size=8, seed=0, progress=False)
    clone = copy_model(model)
    x = char_tokenizer(["Q:12+34="], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        before = model(**x).logits
        assert torch.equal(clone(**x).logits, before)
        for p in clone.parameters():
            p.add_(0.1)
        assert not torch.allclose(clone(**x).logits, before)  # the copy answers with its own weights
        assert torch.equal(model(**x).logits, before)          # and the original is untouched
