"""The colab code path's routing, piece by piece: GSM8K problems, a tokenizer per role, LoRA,
the stand-ins of ``colab-dryrun`` and that profile differing from ``colab`` only in names and budgets."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from utils import standins
from utils.config import PROFILES, ModelSize, Run, get_profile, set_offline_env
from utils.tasks import verify

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "gsm8k_sample.jsonl"


def make_run(profile, seed: int = 0) -> Run:
    return Run(profile=profile, seed=seed, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def gsm8k_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gsm8k")
    standins.write_gsm8k(folder)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The stand-ins, built once for this module (a few seconds)."""
    root = tmp_path_factory.mktemp("standins") / "standins"
    standins.build_standins(root, quiet=True)
    return root


# ---------------------------------------------------------------------------------------
# Problems: GSM8K from local JSONL (or the hub), in the course's format
# ---------------------------------------------------------------------------------------

def test_gsm8k_sample_is_split_into_disjoint_files(gsm8k_dir):
    train = (gsm8k_dir / "train.jsonl").read_text().splitlines()
    test = (gsm8k_dir / "test.jsonl").read_text().splitlines()
    assert (len(train), len(test)) == (32, 8)
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(line for line in FIXTURE.read_text().splitlines() if line)


def test_train_and_test_problems_come_from_gsm8k(gsm8k_dir):
    from utils.splits import test_problems, train_problems

    prof = PROFILES["colab"].replace(data_path=str(gsm8k_dir), n_train=20, n_val=8, n_test=5)
    train, evals = train_problems(make_run(prof)), test_problems(make_run(prof))
    assert (len(train), len(evals)) == (20, 5)
    assert {p.family for p in train + evals} == {"gsm8k"}
    assert not {p.prompt for p in train} & {p.prompt for p in evals}
    assert all(verify(p.completion, p.answer) for p in train + evals)  # ground truth passes the verifier
    assert evals[0].answer == "18"  # the test file starts with Janet's ducks


def test_gsm8k_validation_is_carved_from_train_and_fixed_across_seeds(gsm8k_dir):
    from utils.splits import train_problems, val_problems

    prof = PROFILES["colab"].replace(data_path=str(gsm8k_dir), n_val=8)
    val0, val1 = val_problems(make_run(prof, 0)), val_problems(make_run(prof, 1))
    assert len(val0) == 8 and val0 == val1
    for seed in (0, 1):
        train = train_problems(make_run(prof, seed))
        assert len(train) == 24 and not {p.prompt for p in train} & {p.prompt for p in val0}


def test_train_order_depends_on_the_seed_eval_does_not(gsm8k_dir):
    from utils.splits import test_problems, train_problems

    prof = PROFILES["colab"].replace(data_path=str(gsm8k_dir), n_val=8)
    a, b = train_problems(make_run(prof, 0)), train_problems(make_run(prof, 1))
    assert [p.prompt for p in a] != [p.prompt for p in b]
    assert sorted(p.prompt for p in a) == sorted(p.prompt for p in b)
    assert train_problems(make_run(prof, 0)) == a
    assert test_problems(make_run(prof, 0)) == test_problems(make_run(prof, 1))


def test_tiny_profile_still_draws_the_task_world():
    from utils.tasks import make_problems
    from utils.splits import test_problems, train_problems

    prof = PROFILES["tiny"].replace(n_train=30, n_test=12)
    assert train_problems(make_run(prof, 3)) == make_problems(30, "train", seed=3, families=prof.families,
                                                              difficulties=prof.difficulties)
    assert test_problems(make_run(prof)) == make_problems(12, "test", seed=prof.eval_seed,
                                                          families=prof.families, difficulties=prof.difficulties)


def test_unreachable_hub_says_what_to_do(monkeypatch):
    from utils.splits import train_problems

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="data_path") as info:
        train_problems(make_run(PROFILES["colab"]))
    assert "colab-dryrun" in str(info.value) and "load_gsm8k" in str(info.value)


def test_serve_examples_are_gsm8k_questions_for_a_gsm8k_profile(gsm8k_dir):
    from utils.serve import example_prompts

    examples = example_prompts(PROFILES["colab"].replace(data_path=str(gsm8k_dir)))
    assert len(examples) == 3 and examples[0].startswith("Q:Janet")


def test_decontamination_by_words_for_prose():
    from utils.distill_data import decontaminate
    from utils.tasks import Problem

    evals = [Problem("gsm8k", 1, "Q:How many more apples does Tom have than Ann if he has ten and she has four?\n",
                     "", "6")]
    near_copy = {"prompt": "Q:how many more apples does Tom have than Ann if he has twelve?\n"}
    other = {"prompt": "Q:How many more pears does Sue need to buy for the picnic tomorrow?\n"}
    # Character 13-grams call two unrelated questions contaminated ("Q:How many mo")...
    assert decontaminate([other], evals, unit="char") == []
    # ...word 13-grams keep them apart and still catch the near-copy.
    assert decontaminate([near_copy, other], evals, unit="word") == [other]
    with pytest.raises(ValueError):
        decontaminate([other], evals, unit="token")


# ---------------------------------------------------------------------------------------
# Tokenizers: one per role
# ---------------------------------------------------------------------------------------

def test_tiny_roles_share_the_character_tokenizer(artifacts_tmp):
    from utils.pipeline import ensure_tokenizer

    run = make_run(PROFILES["tiny"])
    paths = {role: ensure_tokenizer(run, role) for role in ("teacher", "student", "reward_model")}
    assert len(set(paths.values())) == 1 and Path(paths["teacher"]).name == "tokenizer"
    with pytest.raises(ValueError, match="role"):
        ensure_tokenizer(run, "critic")


def test_checkpoints_bring_their_own_tokenizers(artifacts_tmp, built):
    from utils.pipeline import ensure_tokenizer
    from utils.tokenizer import load_tokenizer

    prof = PROFILES["colab"].replace(teacher=str(built / "teacher"), student=str(built / "student"),
                                     reward_model=str(built / "reward_model"))
    run = make_run(prof)
    assert ensure_tokenizer(run) == prof.teacher
    assert ensure_tokenizer(run, "student") == prof.student
    assert ensure_tokenizer(run, "reward_model") == prof.reward_model
    assert not (artifacts_tmp / "colab" / "tokenizer").exists()  # no character tokenizer was built
    teacher, student = load_tokenizer(prof.teacher), load_tokenizer(prof.student)
    assert len(teacher) != len(student)


def test_model_tokenizer(built):
    from utils.tokenizer import MARKER, model_tokenizer

    assert model_tokenizer(ModelSize(8, 1, 1, 8)).init_kwargs.get(MARKER)
    assert type(model_tokenizer(str(built / "student"))).__name__ == "GPT2Tokenizer"


def test_student_trains_with_its_own_tokenizer(artifacts_tmp, built, gsm8k_dir, monkeypatch):
    """The student trains and is graded with its own tokenizer, on GSM8K's test split.

    Generation runs for real; on the test prompts its completions are then swapped for known
    ones (Janet's ducks answered right, the second question wrong), so the accuracy must be exactly 1/2.
    """
    import utils.generation as generation
    from utils.student import student_tokenizer, train_student
    from utils.splits import test_problems
    from utils.tokenizer import load_tokenizer

    prof = get_profile("colab-dryrun").replace(student=str(built / "student"), data_path=str(gsm8k_dir),
                                               student_sft_steps=1, n_test=2)
    run = make_run(prof)
    tests = test_problems(run)
    assert len(tests) == 2 and tests[0].answer == "18" and tests[1].answer != "4"  # Janet's ducks first
    known = {tests[0].prompt: tests[0].completion, tests[1].prompt: "<think>\n2+2=4\n</think>A:4"}
    real_generate, test_calls = generation.generate, []

    def spy(model, tokenizer, prompts, **kw):
        texts, n = real_generate(model, tokenizer, prompts, **kw)
        if list(prompts) == list(known):
            test_calls.append((model, tokenizer))
            texts = [known[q] for q in prompts]
        return texts, n

    monkeypatch.setattr(generation, "generate", spy)
    rows = [{"prompt": "Q:Tom has 3 apples and buys 4. How many now?\n",
             "completion": "<think>\n3+4=7\n</think>A:7", "difficulty": 1}] * 4
    model, _, ev = train_student(run, rows)
    assert model.config.vocab_size == len(student_tokenizer(run))
    assert model.config.vocab_size != len(load_tokenizer(built / "teacher"))
    assert len(test_calls) == 1
    graded_by, tokenizer = test_calls[0]
    assert graded_by is model and len(tokenizer) == model.config.vocab_size  # the student's tokenizer
    assert ev.correct == [True, False] and ev.accuracy == 0.5 and ev.per_family == {"gsm8k": 0.5}


# ---------------------------------------------------------------------------------------
# The stand-ins
# ---------------------------------------------------------------------------------------

def test_standins_are_checkpoint_folders(built):
    paths = standins.standin_paths(built)
    for name in ("teacher", "reward_model", "student"):
        assert (paths[name] / "model.safetensors").exists()
        assert (paths[name] / "tokenizer.json").exists()
    assert json.loads((paths["teacher"] / "config.json").read_text())["model_type"] == "qwen2"
    assert json.loads((paths["student"] / "config.json").read_text())["model_type"] == "llama"  # like SmolLM2


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_standin_tokenizers_load_like_hub_ones(built, name):
    from transformers import AutoTokenizer

    from utils.tokenizer import load_tokenizer

    tok, auto = load_tokenizer(built / name), AutoTokenizer.from_pretrained(built / name)
    text = "Q:Natalia sold 48 clips.\n<think>\n48/2=24 é\n</think>A:72"
    assert type(tok) is type(auto) and tok(text)["input_ids"] == auto(text)["input_ids"]
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: nothing is unknown
    ids = tok("<think></think>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 2 and tok.decode(ids, skip_special_tokens=True) == "<think></think>"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    assert tok.padding_side == "left" and tok.chat_template


def test_student_is_under_a_fifth_of_the_teacher(built):
    from utils.models import count_params, load_causal_lm

    teacher, student = load_causal_lm(built / "teacher"), load_causal_lm(built / "student")
    assert count_params(student) <= 0.2 * count_params(teacher)
    assert 100_000 < count_params(teacher) < 2_000_000


def test_standins_are_cached(built):
    stamp = built / standins.STAMP
    before = stamp.stat().st_mtime_ns
    start = time.perf_counter()
    standins.build_standins(built, quiet=True)
    assert time.perf_counter() - start < 1.0 and stamp.stat().st_mtime_ns == before


def test_tokenizers_are_deterministic(gsm8k_dir):
    texts = standins._corpus(gsm8k_dir)
    for build in (standins.build_teacher_tokenizer, standins.build_student_tokenizer):
        assert build(texts).backend_tokenizer.to_str() == build(texts).backend_tokenizer.to_str()


# ---------------------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------------------

NAMES = {"name", "data_path", "teacher", "student", "reward_model", "serve_model", "extra", "hub_offline",
         "require_cuda"}  # the stand-ins run on a CPU; colab stops without a GPU
BUDGETS = {"n_train", "n_val", "n_test", "max_new_tokens", "teacher_sft_steps", "rm_prompts", "rm_steps", "rl_eval_every",
           "ppo_steps", "grpo_steps", "n_distill_prompts", "student_sft_steps", "student_eval_every", "serve_max_new_tokens",
           "torch_threads", "reward_threshold"}


def test_dryrun_differs_from_colab_only_in_names_and_budgets():
    colab, dry = PROFILES["colab"].to_dict(), PROFILES["colab-dryrun"].to_dict()
    changed = {k for k in colab if colab[k] != dry[k]}
    assert changed <= NAMES | BUDGETS, changed - NAMES - BUDGETS
    assert dry["lora_rank"] == colab["lora_rank"] and dry["data_source"] == "gsm8k"


def test_dryrun_names_resolve_inside_the_standins_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("R1LAB_STANDINS", str(tmp_path / "here"))
    prof = get_profile("colab-dryrun")
    for field in ("teacher", "student", "reward_model", "serve_model", "data_path"):
        assert Path(getattr(prof, field)).parent == tmp_path / "here"
    assert get_profile("colab").teacher == "Qwen/Qwen2.5-1.5B-Instruct"


def test_standins_default_under_the_artifacts_root(monkeypatch, tmp_path):
    from utils.config import standins_root

    monkeypatch.delenv("R1LAB_STANDINS", raising=False)
    monkeypatch.setenv("R1LAB_ARTIFACTS", str(tmp_path))
    assert standins_root() == tmp_path / "standins"


def test_only_offline_profiles_switch_the_hub_off(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_DISABLE_TELEMETRY", raising=False)  # earlier tests' libraries may set it
    set_offline_env(hub_offline=False)  # colab downloads its checkpoints
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    set_offline_env()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert PROFILES["tiny"].hub_offline and PROFILES["colab-dryrun"].hub_offline
    assert not PROFILES["colab"].hub_offline


# ---------------------------------------------------------------------------------------
# LoRA (the colab profile's lora_rank)
# ---------------------------------------------------------------------------------------

def test_lora_trains_what_the_planner_counts_and_merges_back(char_tokenizer):
    from utils.memory_planner import lora_params, shape_from_config
    from utils.models import add_lora, build_causal_lm, merge_lora

    model = build_causal_lm(ModelSize(32, 2, 2, 64), char_tokenizer)
    assert add_lora(model, None) is model
    shape = shape_from_config(model.config)
    wrapped = add_lora(model, 4)
    assert sum(p.numel() for p in wrapped.parameters() if p.requires_grad) == lora_params(shape, 4, "all-linear")
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        for p in wrapped.parameters():
            if p.requires_grad:
                p.add_(0.01)  # make the adapters do something
        expected = wrapped(ids).logits
    merged = merge_lora(wrapped)
    assert type(merged).__name__ == "Qwen2ForCausalLM" and not any("lora" in k for k in merged.state_dict())
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, expected, atol=1e-5)
