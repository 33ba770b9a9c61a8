"""PPO as it must run on a 15 GB T4 (issue rows 5 and 7): one copy of the policy, log-probabilities
without full-vocabulary fp32 copies, best checkpoints of the trained weights only, on the CPU, and
half-precision updates under autocast with a loss scaler. Everything here runs on a CPU."""

import pytest
import torch
import torch.nn.functional as F

import utils.ppo as ppo
from utils.config import ModelSize
from utils.models import add_lora, build_causal_lm, build_scalar_head

SIZE = ModelSize(32, 2, 2, 64)


def _batch(tok):
    texts = ["Q:1+2=<think>1+2=3</think>A:3", "Q:15-1=<think>5-1=4</think>A:4"]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"]


def _plain_logprobs(model, ids, attn):
    """The textbook formulation: full logits, fp32 log-softmax, gather."""
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    return F.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


@pytest.mark.parametrize("chunk", [ppo.LOGIT_CHUNK_NUMBERS, 1])
def test_chunked_logprobs_and_gradients_equal_the_plain_formula(char_tokenizer, monkeypatch, chunk):
    monkeypatch.setattr(ppo, "LOGIT_CHUNK_NUMBERS", chunk)   # 1: one row at a time
    model = build_causal_lm(SIZE, char_tokenizer, seed=0)
    ids, attn = _batch(char_tokenizer)
    plain = _plain_logprobs(model, ids, attn)
    plain.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    mine, entropy = ppo.token_logprobs(model, ids, attn, with_entropy=True)
    assert torch.allclose(mine, plain, atol=1e-5)
    mine.sum().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n], atol=1e-5), n
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    expected = torch.distributions.Categorical(logits=logits).entropy()
    assert torch.allclose(entropy, expected, atol=1e-5)


def test_no_full_vocabulary_fp32_logits_are_kept_for_backward(char_tokenizer, monkeypatch):
    """With one row per chunk, what autograd saves is the hidden states, not fp32 logits."""
    monkeypatch.setattr(ppo, "LOGIT_CHUNK_NUMBERS", 1)
    model = build_causal_lm(SIZE, char_tokenizer, seed=0)
    ids, attn = _batch(char_tokenizer)
    vocab = model.get_output_embeddings().weight.shape[0]
    saved = []

    def pack(t):
        saved.append((t.dtype, tuple(t.shape)))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        ppo.token_logprobs(model, ids, attn)
    full = (ids.shape[0], ids.shape[1] - 1, vocab)
    assert not [s for s in saved if s == (torch.float32, full)], "a full fp32 logit tensor is kept for backward"


def test_lora_reference_is_the_policy_with_its_adapters_off(char_tokenizer):
    base = build_causal_lm(SIZE, char_tokenizer, seed=0)
    ids, attn = _batch(char_tokenizer)
    with torch.no_grad():
        expected = ppo.token_logprobs(base, ids, attn)
    policy = add_lora(base, 4)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)              # a trained adapter: the policy now differs from the base
        moved = ppo.token_logprobs(policy, ids, attn)
        ref = ppo.reference_logprobs(policy, None, ids, attn)
    assert not torch.allclose(moved, expected, atol=1e-3)
    assert torch.allclose(ref, expected, atol=1e-6)
    assert any(p.requires_grad for p in policy.parameters())   # the adapters are back on afterwards
    with torch.no_grad():
        assert torch.allclose(ppo.token_logprobs(policy, ids, attn), moved)


def test_best_checkpoint_holds_only_the_trained_weights_on_the_cpu(char_tokenizer):
    policy = add_lora(build_causal_lm(SIZE, char_tokenizer, seed=0), 4)
    state = ppo.trainable_state(policy)
    assert state and all("lora_" in k for k in state)
    assert all(v.device.type == "cpu" for v in state.values())
    n_lora = sum(v.numel() for v in state.values())
    assert n_lora < sum(p.numel() for p in policy.parameters()) / 2
    with torch.no_grad():
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(1.0)
    ppo.load_trainable_state(policy, state)
    assert all(torch.equal(dict(policy.named_parameters())[k], v) for k, v in state.items())


def _rollout(policy, value, tok):
    ids, attn = _batch(tok)
    resp = attn.clone().float()
    resp[:, :6] = 0
    with torch.no_grad():
        old = ppo.token_logprobs(policy, ids, attn)
        vals = ppo.token_values(value, ids, attn)
    return ppo.Rollout(ids, attn, resp[:, 1:], old, old.clone(), vals, torch.tensor([1.0, -1.0]))


def test_entropy_is_computed_only_when_it_is_in_the_loss(char_tokenizer, monkeypatch):
    policy = build_causal_lm(SIZE, char_tokenizer, seed=0)
    value = build_scalar_head(SIZE, char_tokenizer, seed=1)
    r = _rollout(policy, value, char_tokenizer)
    calls = []
    real = ppo._chunk_logprobs
    monkeypatch.setattr(ppo, "_chunk_logprobs", lambda *a: calls.append(a[-1]) or real(*a))
    opt = torch.optim.SGD(list(policy.parameters()) + list(value.parameters()), lr=0.0)
    stats = ppo.ppo_update(policy, value, opt, r, ppo.PPOConfig(ppo_epochs=1, entropy_coef=0.0))
    assert calls and not any(calls) and "entropy" not in stats
    calls.clear()
    stats = ppo.ppo_update(policy, value, opt, r, ppo.PPOConfig(ppo_epochs=1, entropy_coef=0.01))
    assert any(calls) and stats["entropy"] > 0


def test_half_precision_update_trains_fp32_adapters_under_autocast_with_a_loss_scaler(char_tokenizer):
    """The colab path in miniature on the CPU: an fp16 base, fp32 LoRA adapters and critic head,
    the forward under fp16 autocast, a GradScaler. Gradients are finite, the adapters move, the
    frozen fp16 base does not, and the scaler really scaled the loss."""
    policy = add_lora(build_causal_lm(SIZE, char_tokenizer, seed=0).half(), 4)
    critic = build_scalar_head(SIZE, char_tokenizer, seed=1).half()
    critic.score.float()
    critic = add_lora(critic, 4, task_type="SEQ_CLS")
    trained = [p for p in list(policy.parameters()) + list(critic.parameters()) if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)
    r = _rollout(policy, critic, char_tokenizer)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    seen = []
    real_scale = scaler.scale
    scaler.scale = lambda loss: seen.append(float(loss.detach())) or real_scale(loss)
    opt = torch.optim.AdamW(trained, lr=1e-2)
    stats = ppo.ppo_update(policy, critic, opt, r, ppo.PPOConfig(ppo_epochs=1, target_kl=None),
                           scaler=scaler, autocast_dtype=torch.float16)
    assert seen and all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    after = dict(policy.named_parameters())
    assert any(not torch.equal(after[n], before[n]) for n in before if "lora_" in n)
    assert all(torch.equal(after[n], before[n]) for n in before if "lora_" not in n)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in trained)


def test_reward_and_value_heads_compute_in_fp32_on_a_half_precision_backbone(char_tokenizer, tmp_path):
    from utils.models import fp32_score_head, load_scalar_head

    model = build_scalar_head(SIZE, char_tokenizer, seed=1)
    model.save_pretrained(tmp_path)
    loaded = load_scalar_head(tmp_path, dtype=torch.float16)      # as PPO loads the frozen reward model
    assert loaded.score.weight.dtype == torch.float32
    assert next(loaded.model.parameters()).dtype == torch.float16
    ids, attn = _batch(char_tokenizer)
    with torch.no_grad():
        scores = loaded(input_ids=ids, attention_mask=attn).logits
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    assert fp32_score_head(loaded) is loaded                      # applying it twice adds no second hook
    assert len(loaded.score._forward_pre_hooks) == 1
