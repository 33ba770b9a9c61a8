"""Tests for utils/memory_planner.py, with the reference arithmetic written out."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from utils.memory_planner import (
    GB,
    MemoryPlanWarning,
    ModelShape,
    activation_bytes,
    check_fits,
    format_plan,
    gradient_bytes,
    kv_cache_bytes,
    logits_bytes,
    lora_params,
    optimizer_bytes,
    plan_stage,
    shape_from_config,
    weights_bytes,
)

KIB, MIB = 2**10, 2**20

# Qwen2.5-1.5B (and DeepSeek-R1-Distill-Qwen-1.5B) architecture, tied embeddings.
QWEN_1_5B_CONFIG = dict(
    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True,
)
# Qwen2.5-7B architecture, untied embeddings.
QWEN_7B_CONFIG = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False,
)

# Parameter count of the 1.5B model by hand (head_dim = 1536 / 12 = 128):
#   embeddings      151936 * 1536                  =   233,373,696
#   per layer: q    1536 * 1536 + 1536             =     2,360,832
#              k, v 2 * (1536 * 256 + 256)         =       786,944   (2 KV heads * 128 = 256)
#              o    1536 * 1536                    =     2,359,296
#              MLP  3 * 1536 * 8960                =    41,287,680
#              norm 2 * 1536                       =         3,072
#              sum                                 =    46,797,824
#   28 layers       28 * 46,797,824                = 1,310,339,072
#   final norm                                     =         1,536
#   total (tied, so no lm_head)                    = 1,543,714,304
QWEN_1_5B_PARAMS = 233_373_696 + 28 * (2_360_832 + 786_944 + 2_359_296 + 41_287_680 + 3_072) + 1_536
assert QWEN_1_5B_PARAMS == 1_543_714_304

# The 7B model the same way (head_dim 128, 4 KV heads * 128 = 512):
#   per layer = (3584*3584 + 3584) + 2*(3584*512 + 512) + 3584*3584 + 3*3584*18944 + 2*3584
#             = 12,848,640 + 3,671,040 + 12,845,056 + 203,685,888 + 7,168 = 233,057,792
#   total     = 2 * 152064*3584 (embeddings + lm_head) + 28 * 233,057,792 + 3584
QWEN_7B_PARAMS = 2 * 544_997_376 + 28 * 233_057_792 + 3_584
assert QWEN_7B_PARAMS == 7_615_616_512


@pytest.fixture(scope="module")
def qwen_1_5b() -> ModelShape:
    return shape_from_config(Qwen2Config(**QWEN_1_5B_CONFIG))


@pytest.fixture(scope="module")
def qwen_7b() -> ModelShape:
    return shape_from_config(Qwen2Config(**QWEN_7B_CONFIG))


# --------------------------------------------------------------------------
# shape_from_config
# --------------------------------------------------------------------------


def test_shape_from_config_reads_the_1_5b_architecture(qwen_1_5b):
    assert qwen_1_5b == ModelShape(
        params=1_543_714_304, n_layers=28, hidden=1536, n_kv_heads=2, head_dim=128,
        vocab=151936, intermediate=8960,
    )


def test_shape_from_config_counts_the_7b_lm_head(qwen_7b):
    assert qwen_7b.params == QWEN_7B_PARAMS


TINY = dict(
    vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4
)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize(
    "extra",
    [
        {"num_key_value_heads": 4},  # plain multi-head attention
        {"num_key_value_heads": 2},  # grouped-query attention, like Qwen2.5
        {"num_key_value_heads": 2, "head_dim": 32},  # head_dim * heads != hidden
    ],
)
def test_shape_from_config_matches_a_real_model(tied, extra):
    # Qwen2Config defaults num_key_value_heads to 32 whatever the head count, so always pass it.
    config = Qwen2Config(**TINY, **extra, tie_word_embeddings=tied)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    shape = shape_from_config(config)
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert shape.n_kv_heads == extra["num_key_value_heads"]
    assert shape.head_dim == extra.get("head_dim", 64 // 4)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # raised inside peft/transformers, not by us
def test_lora_params_match_peft():
    peft = pytest.importorskip("peft")
    config = Qwen2Config(**TINY, num_key_value_heads=2, tie_word_embeddings=True)
    shape = shape_from_config(config)
    for targets, modules in [
        ("attention", ["q_proj", "k_proj", "v_proj", "o_proj"]),
        ("all-linear", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    ]:
        model = peft.get_peft_model(Qwen2ForCausalLM(config), peft.LoraConfig(r=8, target_modules=modules))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert lora_params(shape, 8, targets) == trainable


def test_lora_params_by_hand(qwen_1_5b):
    # rank 16, r * (d_in + d_out) per projection, per layer:
    #   q 1536+1536, k 1536+256, v 1536+256, o 1536+1536       -> 9,728
    #   gate 1536+8960, up 1536+8960, down 8960+1536           -> 31,488
    attention = 16 * 9_728 * 28
    assert lora_params(qwen_1_5b, 16, "attention") == attention == 4_358_144
    assert lora_params(qwen_1_5b, 16, "all-linear") == 16 * (9_728 + 31_488) * 28 == 18_464_768
    assert lora_params(qwen_1_5b, 16) == 18_464_768  # "auto": MLP width is known
    no_mlp = ModelShape(1, 28, 1536, 2, 128, 151936)
    assert lora_params(no_mlp, 16) == attention
    with pytest.raises(ValueError):
        lora_params(no_mlp, 16, "all-linear")


# --------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------


def test_kv_cache_of_a_32k_token_generation(qwen_1_5b):
    # 2 (K and V) * 28 layers * 2 KV heads * 128 dims * 32768 tokens * 1 sequence * 2 bytes (fp16)
    expected = 2 * 28 * 2 * 128 * 32768 * 1 * 2
    assert expected == 939_524_096 == 917_504 * KIB == 896 * MIB
    assert kv_cache_bytes(qwen_1_5b, batch=1, seq_len=32768, dtype_bytes=2) == expected
    assert kv_cache_bytes(qwen_1_5b, batch=4, seq_len=32768, dtype_bytes=2) == 4 * expected


def test_weights_of_the_1_5b_model(qwen_1_5b):
    assert weights_bytes(qwen_1_5b, 2) == 2 * 1_543_714_304 == 3_087_428_608  # ~3.09 GB
    assert round(weights_bytes(qwen_1_5b, 2) / GB, 2) == 3.09
    assert weights_bytes(qwen_1_5b, 4) == 2 * weights_bytes(qwen_1_5b, 2)
    assert weights_bytes(qwen_1_5b, 0.5) == 771_857_152  # 4-bit


def test_optimizer_and_gradients_are_16_bytes_per_parameter_in_fp16():
    # fp16 weights (2) + fp16 gradients (2) + fp32 master, m and v (4 + 4 + 4)
    assert optimizer_bytes(1_000) == 12_000
    assert gradient_bytes(1_000, 2) == 2_000
    assert 2 * 1_000 + gradient_bytes(1_000, 2) + optimizer_bytes(1_000) == 16 * 1_000


def test_activations_follow_the_documented_formula(qwen_1_5b):
    tokens_x_hidden = 4 * 512 * 1536  # batch * seq * hidden = 3,145,728
    # without checkpointing: 28 layers * 17 numbers * 2 bytes (34 bytes) per token and hidden unit
    assert activation_bytes(qwen_1_5b, 4, 512, 2, False) == 28 * 34 * tokens_x_hidden == 2_994_733_056
    # with checkpointing: 28 layer inputs * 2 bytes + one layer recomputed (34 bytes)
    assert activation_bytes(qwen_1_5b, 4, 512, 2, True) == (28 * 2 + 34) * tokens_x_hidden == 283_115_520


def test_logits_use_the_dtype_plus_an_fp32_copy(qwen_1_5b):
    # 4 * 512 tokens * 151936 vocab * (2 + 4) bytes
    assert logits_bytes(qwen_1_5b, 4, 512, 2) == 4 * 512 * 151936 * 6 == 1_866_989_568


# --------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------


def test_generate_plan_adds_up(qwen_1_5b):
    plan = plan_stage("generate", qwen_1_5b, batch=1, seq_len=32768, dtype_bytes=2, overhead_bytes=0)
    assert plan["stage"] == "generate"
    assert plan["weights"] == 3_087_428_608
    assert plan["kv_cache"] == 939_524_096
    assert plan["logits"] == 151936 * 6  # only the newest token's logits
    assert plan["total"] == 3_087_428_608 + 939_524_096 + 911_616
    assert check_fits(plan)


def test_a_1_5b_lora_sft_at_batch_4_by_512_fits(qwen_1_5b):
    plan = plan_stage("sft_lora", qwen_1_5b, batch=4, seq_len=512, dtype_bytes=2, lora_rank=16)
    adapters = 18_464_768
    expected = {
        "stage": "sft_lora",
        "weights": (1_543_714_304 + adapters) * 2,
        "gradients": adapters * 2,
        "optimizer": adapters * 12,
        "activations": 2_994_733_056,
        "logits": 1_866_989_568,
        "overhead": 500_000_000,
    }
    expected["total"] = sum(v for k, v in expected.items() if k != "stage")
    assert plan == expected
    assert 8.7 * GB < plan["total"] < 8.8 * GB
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may be raised
        assert check_fits(plan, gpu_gb=15.0)


def test_a_7b_full_fine_tune_does_not_fit_a_t4(qwen_7b):
    plan = plan_stage("sft_full", qwen_7b, batch=1, seq_len=512, dtype_bytes=2)
    # at least 16 bytes per parameter before any activation: > 121 GB
    assert plan["weights"] + plan["gradients"] + plan["optimizer"] == 16 * QWEN_7B_PARAMS
    message = r"Stage 'sft_full' needs 1\d\d\.\d GB but the GPU has 15\.0 GB"
    with pytest.warns(MemoryPlanWarning, match=message):
        assert not check_fits(plan, gpu_gb=15.0)


def test_sft_full_ignores_lora_rank_and_sft_lora_defaults_to_rank_16(qwen_1_5b):
    assert plan_stage("sft_full", qwen_1_5b, 1, 64, lora_rank=8) == plan_stage("sft_full", qwen_1_5b, 1, 64)
    assert plan_stage("sft_lora", qwen_1_5b, 1, 64) == plan_stage("sft_lora", qwen_1_5b, 1, 64, lora_rank=16)


def test_reward_training_sees_chosen_and_rejected(qwen_1_5b):
    plan = plan_stage("reward", qwen_1_5b, batch=2, seq_len=512, lora_rank=16)
    assert plan["activations"] == activation_bytes(qwen_1_5b, 4, 512, 2)
    assert "logits" not in plan  # a scalar head, not a vocabulary


def test_grpo_is_policy_plus_reference(qwen_1_5b):
    full = plan_stage("grpo", qwen_1_5b, batch=2, seq_len=256, overhead_bytes=0)
    sft = plan_stage("sft_full", qwen_1_5b, batch=2, seq_len=256, overhead_bytes=0)
    assert full["ref_weights"] == weights_bytes(qwen_1_5b, 2)
    assert full["kv_cache"] == kv_cache_bytes(qwen_1_5b, 2, 256, 2)
    assert full["total"] == sft["total"] + full["ref_weights"] + full["kv_cache"]
    lora = plan_stage("grpo", qwen_1_5b, batch=2, seq_len=256, lora_rank=16)
    assert lora["ref_weights"] == 0  # adapters switched off give the reference


def test_ppo_adds_a_reward_and_a_value_model(qwen_1_5b):
    grpo = plan_stage("grpo", qwen_1_5b, batch=2, seq_len=256, overhead_bytes=0)
    ppo = plan_stage("ppo", qwen_1_5b, batch=2, seq_len=256, overhead_bytes=0)
    weights = weights_bytes(qwen_1_5b, 2)
    assert ppo["reward_weights"] == ppo["value_weights"] == weights
    assert ppo["optimizer"] == 2 * grpo["optimizer"]
    assert ppo["activations"] == 2 * grpo["activations"]
    trained_again = grpo["gradients"] + grpo["optimizer"] + grpo["activations"]  # the value model
    assert ppo["total"] == grpo["total"] + 2 * weights + trained_again


def test_cheaper_settings_need_less_memory(qwen_1_5b):
    def total(stage, **kwargs):
        return plan_stage(stage, qwen_1_5b, batch=4, seq_len=512, **kwargs)["total"]

    assert total("sft_lora") < total("sft_full")
    assert total("sft_lora", gradient_checkpointing=True) < total("sft_lora")
    assert total("grpo", lora_rank=16) < total("grpo") < total("ppo")
    assert total("generate") < total("sft_lora")


def test_plan_stage_rejects_bad_input(qwen_1_5b):
    with pytest.raises(ValueError, match="dpo.*generate"):
        plan_stage("dpo", qwen_1_5b, 1, 1)
    with pytest.raises(ValueError):
        plan_stage("generate", qwen_1_5b, 0, 1)


def test_check_fits_boundary():
    plan = {"stage": "generate", "weights": 15 * GB, "total": 15 * GB}
    assert check_fits(plan, gpu_gb=15.0)
    plan = {"stage": "generate", "weights": 15 * GB + 1, "total": 15 * GB + 1}
    with pytest.warns(MemoryPlanWarning, match="biggest part: weights"):
        assert not check_fits(plan, gpu_gb=15.0)


def test_format_plan_is_a_short_gb_table(qwen_1_5b):
    plan = plan_stage("generate", qwen_1_5b, batch=1, seq_len=32768, overhead_bytes=0)
    lines = format_plan(plan).splitlines()
    assert lines[0] == "generate (GB)"
    assert lines[1].split() == ["weights", "3.09"]
    assert lines[2].split() == ["kv_cache", "0.94"]
    assert lines[-1].split() == ["total", "4.03"]


def test_colab_profile_fits_a_t4_in_every_stage():
    """Target of the Colab issue: the planner's own numbers fit 15 GB for every stage."""
    from utils.config import get_profile
    from utils.memory_planner import check_fits, plan_profile

    prof = get_profile("colab")
    plans = plan_profile(prof)
    assert len(plans) == 7
    for plan in plans:
        assert check_fits(plan, prof.gpu_gb), format_plan(plan)


def test_smollm2_is_a_llama_without_attention_biases():
    from transformers import LlamaConfig, LlamaForCausalLM

    from utils.memory_planner import HUB_CONFIGS, hub_shape

    numbers = {k: v for k, v in HUB_CONFIGS["HuggingFaceTB/SmolLM2-360M-Instruct"].items() if k != "model_type"}
    assert numbers == dict(hidden_size=960, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5,
                           intermediate_size=2560, vocab_size=49152, tie_word_embeddings=True)
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**numbers))
    assert hub_shape("HuggingFaceTB/SmolLM2-360M-Instruct").params == sum(p.numel() for p in model.parameters())


def test_hub_shapes_match_published_sizes():
    from utils.memory_planner import hub_shape

    # Published parameter counts: Qwen2.5-1.5B 1.54B, Qwen2.5-0.5B 0.49B, SmolLM2-360M 0.36B,
    # DeepSeek-R1-Distill-Qwen-1.5B 1.78B (untied lm_head).
    assert round(hub_shape("Qwen/Qwen2.5-1.5B-Instruct").params / 1e9, 2) == 1.54
    assert round(hub_shape("Qwen/Qwen2.5-0.5B-Instruct").params / 1e9, 2) == 0.49
    assert round(hub_shape("HuggingFaceTB/SmolLM2-360M-Instruct").params / 1e9, 2) == 0.36
    assert round(hub_shape("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B").params / 1e9, 2) == 1.78


def test_colab_plan_uses_the_settings_the_trainers_read():
    """Each stage's plan is computed from utils.config.stage_settings – the batch, precision,
    LoRA rank and checkpointing the trainers are given – so changing a profile field moves both."""
    from utils.config import get_profile, stage_settings
    from utils.memory_planner import code_plan, hub_shape, plan_profile

    prof = get_profile("colab")
    plans = {p["stage"]: p for p in plan_profile(prof)}
    s = stage_settings(prof, "student_sft")
    expected = code_plan("04 student SFT", "sft", hub_shape(prof.student), s, prof.sft_max_length)
    assert plans["04 student SFT"] == expected
    # the reward model trains with its own batch (not the SFT batch) and its own truncation length
    bigger = plan_profile(prof.replace(rm_batch_size=prof.rm_batch_size * 2))
    assert bigger[1]["activations"] > plans["02 reward model"]["activations"]
    assert plan_profile(prof.replace(sft_batch_size=64))[1]["total"] == plans["02 reward model"]["total"]
    # switching checkpointing off in the profile switches it off in the plan (more activations)
    no_gc = {p["stage"]: p for p in plan_profile(prof.replace(gradient_checkpointing=False))}
    assert no_gc["02 teacher SFT"]["activations"] > plans["02 teacher SFT"]["activations"]
    assert no_gc["02 teacher SFT"]["total"] > prof.gpu_gb * GB   # the T4 needs checkpointing (traced: 20.4 GB)
    # sampling plans gen_batch_size sequences, as generate() chunks them
    assert plan_profile(prof.replace(gen_batch_size=64))[4]["kv_cache"] == 2 * plans["03 sampling"]["kv_cache"]


def test_colab_plan_counts_each_model_as_the_code_holds_it():
    """LoRA: the reference costs nothing (adapters off), adapters are fp32 with 8 bytes of AdamW
    state each and no master copy; the critic is the 0.5B base in fp16 + LoRA + an fp32 head;
    the frozen reward model is half precision; full fine-tuning is fp32 weights + 4 + 8 bytes."""
    from utils.config import get_profile
    from utils.memory_planner import hub_shape, lora_params, plan_profile

    prof = get_profile("colab")
    plans = {p["stage"]: p for p in plan_profile(prof)}
    teacher, rm, student = hub_shape(prof.teacher), hub_shape(prof.reward_model), hub_shape(prof.student)
    lt, lr = lora_params(teacher, 16), lora_params(rm, 16)
    ppo = plans["02 PPO"]
    assert "ref_weights" not in ppo
    assert ppo["policy_weights"] == weights_bytes(teacher, 2) + 4 * lt
    assert ppo["policy_optimizer"] == 8 * lt and ppo["policy_gradients"] == 4 * lt
    assert ppo["critic_weights"] == weights_bytes(rm, 2) + 4 * lr + 2 * 4 * rm.hidden
    assert ppo["reward_weights"] == weights_bytes(rm, 2)
    student_sft = plans["04 student SFT"]
    assert student_sft["weights"] == 4 * student.params
    assert student_sft["optimizer"] == 8 * student.params and student_sft["gradients"] == 4 * student.params
    # TRL's fused LM head: fp16 tiles of 4096 tokens x 32768 vocabulary entries, never the full logits
    assert plans["02 teacher SFT"]["logits"] < 0.4 * GB < logits_bytes(teacher, 8, 640, 2)
    # the largest phase, not the sum of the phases: a rollout's KV cache is gone in the update
    assert ppo["total"] < sum(v for k, v in ppo.items() if k not in ("stage", "total"))


def test_trainers_receive_the_stage_settings(monkeypatch):
    """The student's trainer is called with the batch and checkpointing of stage_settings."""
    from utils import student
    from utils.config import make_run, stage_settings

    seen = {}

    def fake_train_sft(model, tokenizer, dataset, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop after the call")

    monkeypatch.setattr(student, "train_sft", fake_train_sft)
    monkeypatch.setattr(student, "student_tokenizer", lambda run: __import__("utils.tokenizer", fromlist=["x"]).build_char_tokenizer())
    run = make_run("tiny", 0, quiet=True)
    run.profile = run.profile.replace(student_batch_size=7, gradient_checkpointing=True)
    with pytest.raises(RuntimeError, match="stop after the call"):
        student.train_student(run, [{"prompt": "Q:1+1=", "completion": "<think>1+1+0=2</think>A:2"}])
    s = stage_settings(run.profile, "student_sft")
    assert seen["batch_size"] == s.batch == 7 and seen["gradient_checkpointing"] is True


def test_generate_counts_sequences_per_call(monkeypatch, char_tokenizer):
    """gen_batch_size counts sequences: 4 samples per prompt at batch 8 means 2 prompts a call."""
    import torch

    from utils import generation
    from utils.config import ModelSize
    from utils.models import build_causal_lm

    model = build_causal_lm(ModelSize(16, 1, 2, 32), char_tokenizer)
    calls = []
    real = model.generate
    monkeypatch.setattr(model, "generate", lambda **kw: calls.append(kw["input_ids"].shape[0] * kw["num_return_sequences"]) or real(**kw))
    torch.manual_seed(0)
    generation.generate(model, char_tokenizer, ["Q:1+1="] * 5, max_new_tokens=2, do_sample=True,
                        num_return_sequences=4, batch_size=8)
    assert calls == [8, 8, 4]
