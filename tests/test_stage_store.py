"""Issue row 9 / item 5: notebook 02 saves each stage as it finishes – warm-up, reward model, PPO,
GRPO – and a re-run loads a finished stage instead of training it again (a Colab disconnect loses
at most the stage it interrupted). A saved stage made for another configuration is trained again,
with a message. Under LoRA an RL stage is saved as its adapters on the warm-up teacher and loaded
unmerged: the loaded policy is exactly the one that was validated and tested."""

import dataclasses

import pytest
import torch

from utils import artifacts, pipeline, reward, teacher
from utils.config import make_run

SMALL = dict(n_train=64, n_val=4, n_test=4, max_new_tokens=24, teacher_sft_steps=2, sft_batch_size=8,
             rm_prompts=8, rm_steps=2, rm_batch_size=4, ppo_steps=3, ppo_batch=4, grpo_steps=2,
             rl_batch_prompts=2, rl_eval_every=1, gen_batch_size=64)


def _run(**changes):
    run = make_run("tiny", 0, quiet=True)
    return dataclasses.replace(run, profile=run.profile.replace(**SMALL, **changes))


def _logits(model, tok):
    ids = tok(["Q:12+7="], return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture
def warm(artifacts_tmp):
    """A run with its warm-up teacher and reward model saved."""
    def make(**changes):
        run = _run(**changes)
        pipeline.ensure_tokenizer(run)
        teacher.train_teacher_sft(run, progress=False)
        reward.train_reward_model(run, progress=False)
        return run
    return make


def test_a_rerun_loads_each_finished_stage_instead_of_training_it(warm, capsys, monkeypatch):
    run = warm()
    ppo = teacher.run_ppo(run, use_verifier=True, progress=False)
    assert artifacts.exists(run.name, "teacher_ppo")
    capsys.readouterr()
    # Nothing may train on the re-run: every trainer is replaced by one that fails.
    import transformers

    import utils.ppo

    def no_training(*a, **k):
        raise AssertionError("a finished stage was trained again")
    monkeypatch.setattr(utils.ppo, "train_ppo", no_training)
    monkeypatch.setattr(transformers.Trainer, "train", no_training)   # SFTTrainer, RewardTrainer
    again = teacher.run_ppo(run, use_verifier=True, progress=False)
    _, sft_result, sft_eval = teacher.train_teacher_sft(run, progress=False)
    rm = reward.train_reward_model(run, progress=False)
    out = capsys.readouterr().out
    for stage in ("teacher_ppo", "teacher_sft", "reward_model"):
        assert f"stage '{stage}' finished earlier" in out
    assert again["evals"] == ppo["evals"] and again["best"] == ppo["best"]
    assert again["test_acc"] == ppo["test_acc"] and again["history"] == ppo["history"]
    assert torch.allclose(_logits(again["policy"], again["tokenizer"]), _logits(ppo["policy"], ppo["tokenizer"]))
    assert sft_eval.accuracy == artifacts.read_manifest(run.name, "teacher_sft")["metrics"]["acc"]
    assert sft_result.losses and rm["n_train_pairs"] > 0


def test_a_saved_stage_of_another_configuration_is_trained_again(warm, capsys):
    run = warm()
    teacher.run_ppo(run, use_verifier=True, progress=False)
    other = dataclasses.replace(run, profile=run.profile.replace(ppo_lr=3e-4))
    capsys.readouterr()
    result = teacher.run_ppo(other, use_verifier=True, progress=False)
    out = capsys.readouterr().out
    assert "saved stage 'teacher_ppo' is made with another configuration" in out and "training it again" in out
    assert "loaded" not in result


def test_lora_stages_are_saved_as_adapters_and_load_unmerged(warm):
    run = warm(lora_rank=4)
    grpo = teacher.run_grpo(run, progress=False)
    path = artifacts.artifact_path(run.name, "teacher_grpo")
    assert (path / "adapter_config.json").is_file() and not (path / "model.safetensors").exists()
    assert artifacts.read_manifest(run.name, "teacher_grpo")["config"]["adapter_of"] == "teacher_sft"
    loaded = teacher.run_grpo(run, progress=False)
    assert loaded.get("loaded")
    assert torch.equal(_logits(loaded["policy"], loaded["tokenizer"]), _logits(grpo["policy"], grpo["tokenizer"]))
