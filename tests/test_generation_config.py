"""Sampling is what the code says: a checkpoint's generation_config.json does not leak into decoding.

Qwen2.5-Instruct ships a sampling recipe (do_sample, temperature 0.7, top_p 0.8, top_k 20,
repetition_penalty 1.05), and ``model.generate`` applies whatever a call leaves unset – plus
transformers' own default ``top_k = 50``. Every course loader resets all of it
(:func:`utils.models.neutral_generation_config`): greedy evaluation is plain argmax decoding, and
PPO's rollout samples exactly the distribution :func:`utils.ppo.token_logprobs` scores.
"""

import json

import pytest
import torch

from utils import standins
from utils.config import ModelSize
from utils.generation import generate
from utils.models import (NEUTRAL_GENERATION, build_causal_lm, load_causal_lm, load_model_artifact,
                          qwen2_config, save_model_artifact)
from utils.ppo import token_logprobs
from utils.tasks import make_problems
from utils.tokenizer import save_tokenizer

# Qwen2.5-Instruct's generation_config.json (its sampling fields)
QWEN_GENERATION = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
SIZE = ModelSize(32, 2, 2, 64)
LOADERS = ["load_causal_lm", "build_causal_lm", "load_model_artifact"]
MAX_NEW = 24


def _checkpoint_model(tokenizer, seed: int, generation: dict, **overrides):
    """A small Qwen2 as a hub checkpoint would be: its generation config as published."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(qwen2_config(SIZE, tokenizer, **overrides))
    gc = model.generation_config
    gc.pad_token_id, gc.eos_token_id, gc.bos_token_id = (tokenizer.pad_token_id, tokenizer.eos_token_id,
                                                         tokenizer.eos_token_id)
    for key, value in generation.items():
        setattr(gc, key, value)
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, char_tokenizer):
    """``qwen``: a folder (and an artifact) with Qwen2.5-Instruct's sampling recipe;
    ``plain``: a folder with no sampling fields at all and a vocabulary of 96 (> 50) tokens."""
    root = tmp_path_factory.mktemp("checkpoints")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("R1LAB_ARTIFACTS", str(root / "artifacts"))
        # initializer_range 0.3: logits peaked enough that a repetition penalty of 1.05 changes the
        # argmax (at the default 0.02 a random model's logits are too flat for it to show)
        qwen = _checkpoint_model(char_tokenizer, 0, QWEN_GENERATION, initializer_range=0.3)
        qwen.save_pretrained(root / "qwen")
        save_tokenizer(char_tokenizer, root / "qwen")
        save_model_artifact("tiny", "qwen", qwen, char_tokenizer, seed=0)
        _checkpoint_model(char_tokenizer, 1, {}, vocab_size=96).save_pretrained(root / "plain")
        yield root


def _load(how: str, root, tokenizer, name: str = "qwen"):
    if how == "load_causal_lm":
        return load_causal_lm(root / name)
    if how == "build_causal_lm":
        return build_causal_lm(str(root / name), tokenizer).eval()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("R1LAB_ARTIFACTS", str(root / "artifacts"))
        return load_model_artifact("tiny", name)[0]


def test_the_fixture_checkpoint_carries_qwens_recipe(checkpoints):
    for folder in (checkpoints / "qwen", checkpoints / "artifacts" / "tiny" / "qwen"):
        saved = json.loads((folder / "generation_config.json").read_text())
        assert {k: saved[k] for k in QWEN_GENERATION} == QWEN_GENERATION


@pytest.mark.parametrize("how", LOADERS)
def test_every_loader_resets_the_recipe(checkpoints, char_tokenizer, how, tmp_path):
    model = _load(how, checkpoints, char_tokenizer)
    gc = model.generation_config
    assert {k: getattr(gc, k) for k in NEUTRAL_GENERATION} == NEUTRAL_GENERATION
    assert gc.do_sample is False and gc.repetition_penalty == 1.0 and gc.top_k is None
    assert gc.eos_token_id == char_tokenizer.eos_token_id and gc.pad_token_id == char_tokenizer.pad_token_id
    # what generate() fills in for a sampling call that names only temperature and top_p: no top-k 50
    prepared, _ = model._prepare_generation_config(None, do_sample=True, temperature=1.0, top_p=1.0)
    assert prepared.top_k is None and prepared.repetition_penalty == 1.0
    # a neutral model saves (strict validation) and reloads neutral
    model.save_pretrained(tmp_path)
    again = load_causal_lm(tmp_path).generation_config
    assert {k: getattr(again, k) for k in NEUTRAL_GENERATION} == NEUTRAL_GENERATION


def _argmax_decode(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    start = ids.shape[1]
    with torch.no_grad():
        for _ in range(max_new_tokens):
            nxt = model(ids).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
            if nxt.item() == tokenizer.eos_token_id:
                break
    return tokenizer.decode(ids[0, start:], skip_special_tokens=True)


@pytest.mark.parametrize("how", LOADERS)
def test_greedy_generate_is_argmax_decoding(checkpoints, char_tokenizer, how):
    """utils.generation.generate's greedy path (evaluation's) is plain argmax: no repetition penalty."""
    model = _load(how, checkpoints, char_tokenizer)
    prompts = [p.prompt for p in make_problems(12, "test", seed=5)]
    texts, _ = generate(model, char_tokenizer, prompts, max_new_tokens=MAX_NEW, batch_size=1)
    assert texts == [_argmax_decode(model, char_tokenizer, p, MAX_NEW) for p in prompts]


def _sample_like_rollout(model, tokenizer, prompt: str, seed: int):
    """model.generate exactly as utils.ppo.rollout calls it, with the scores and raw logits kept."""
    enc = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=MAX_NEW,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             output_scores=True, output_logits=True, return_dict_in_generate=True)
    return enc["input_ids"].shape[1], out


@pytest.mark.parametrize("how, name", [(how, "qwen") for how in LOADERS] + [("load_causal_lm", "plain")])
def test_rollout_samples_the_distribution_token_logprobs_scores(checkpoints, char_tokenizer, how, name):
    """No warper between the policy's logits and the sample (no top-k 20 or 50, no repetition
    penalty): the log-probs PPO records with token_logprobs are those of the distribution sampled."""
    model = _load(how, checkpoints, char_tokenizer, name)
    for seed, prompt in enumerate(p.prompt for p in make_problems(3, "train", seed=2)):
        start, out = _sample_like_rollout(model, char_tokenizer, prompt, seed)
        scores, logits = torch.stack(out.scores, 1), torch.stack(out.logits, 1)  # (1, new, vocab)
        assert torch.isfinite(scores).all(), "a warper masked tokens out"
        torch.testing.assert_close(scores.log_softmax(-1), logits.log_softmax(-1))
        new = out.sequences[:, start:]
        sampled = scores.log_softmax(-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            scored = token_logprobs(model, out.sequences, torch.ones_like(out.sequences))[:, start - 1:]
        is_eos = new == char_tokenizer.eos_token_id
        live = (is_eos.cumsum(1) - is_eos.int()) == 0  # up to and including the first EOS
        torch.testing.assert_close(sampled[live], scored[live], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
def test_standin_models_carry_qwens_recipe_and_load_neutral(tmp_path, char_tokenizer, architecture):
    """The colab-dryrun stand-ins are saved with Qwen2.5-Instruct's recipe, so the dry run
    exercises the reset; loaded by the course they decode neutrally."""
    assert standins.HUB_GENERATION == QWEN_GENERATION
    model = standins.build_model(standins.STUDENT, char_tokenizer, seed=0, architecture=architecture)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert {k: saved[k] for k in QWEN_GENERATION} == QWEN_GENERATION
    for loaded in (load_causal_lm(tmp_path), build_causal_lm(str(tmp_path), char_tokenizer).eval()):
        assert {k: getattr(loaded.generation_config, k) for k in NEUTRAL_GENERATION} == NEUTRAL_GENERATION
        start, out = _sample_like_rollout(loaded, char_tokenizer, "Q:12+5=", seed=0)
        scores, logits = torch.stack(out.scores, 1), torch.stack(out.logits, 1)
        torch.testing.assert_close(scores.log_softmax(-1), logits.log_softmax(-1))
