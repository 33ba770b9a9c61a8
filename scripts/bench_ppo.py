"""Benchmark (make bench): our PPO iteration vs TRL 1.12's PPOTrainer on the same work.

Same tiny models (teacher-sized policy and reference, reward-model-sized reward and value
models), same batch of prompts, same response length, epochs and minibatches. Each PPO
iteration = one rollout batch (generation + scoring) + the PPO update epochs. TRL 1.12 is the
last release with a PPO trainer (``trl.experimental.ppo``); it lives in its own virtual
environment (``.bench/trl112``, created on first use) so it never touches the course's pins.
Prints both times per rollout batch and the ratio ours / TRL; writes artifacts/bench/ppo.json.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from utils.artifacts import REPO_ROOT
from utils.bench import write_benchmark
from utils.pipeline import setup
from utils.models import build_causal_lm, build_scalar_head
from utils.ppo import PPOConfig, ppo_update, rollout
from utils.tasks import make_problems
from utils.tokenizer import build_char_tokenizer, load_tokenizer, save_tokenizer

BATCH, ITERS, EPOCHS, MINIBATCHES = 64, 3, 2, 2
BENCH = REPO_ROOT / ".bench"
TRL_ENV = BENCH / "trl112"

TRL_SIDE = r'''
import json, sys, tempfile, time, torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedTokenizerFast
from trl.experimental.ppo import PPOConfig, PPOTrainer
models, batch, iters, epochs, minibatches, resp, threads = sys.argv[1], *map(int, sys.argv[2:8])
torch.set_num_threads(threads)
tok = PreTrainedTokenizerFast.from_pretrained(f"{models}/policy"); tok.padding_side = "left"
prompts = json.load(open(f"{models}/prompts.json"))
ds = Dataset.from_dict({"input_ids": [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]})
load = lambda cls, name: cls.from_pretrained(f"{models}/{name}")
with tempfile.TemporaryDirectory() as out:
    args = PPOConfig(output_dir=out, per_device_train_batch_size=batch, num_mini_batches=minibatches,
                     num_ppo_epochs=epochs, response_length=resp, total_episodes=batch * iters,
                     stop_token="eos", kl_coef=0.05, learning_rate=1e-4, temperature=1.0,
                     num_sample_generations=0, report_to="none", save_strategy="no", use_cpu=True,
                     bf16=False, local_rollout_forward_batch_size=batch, seed=0)
    trainer = PPOTrainer(args=args, processing_class=tok, model=load(AutoModelForCausalLM, "policy"),
                         ref_model=load(AutoModelForCausalLM, "policy"),
                         reward_model=load(AutoModelForSequenceClassification, "reward"),
                         value_model=load(AutoModelForSequenceClassification, "reward"),
                         train_dataset=ds)
    start = time.perf_counter(); trainer.train(); seconds = time.perf_counter() - start
print(json.dumps({"seconds_per_batch": seconds / iters}))
'''


def ensure_trl112() -> Path:
    """Create the separate TRL 1.12 environment on first use."""
    python = TRL_ENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TRL_ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", "trl==1.12.0"], check=True)
    return python


def main() -> dict:
    run = setup("tiny", 0, quiet=True)
    prof = run.profile
    tok = build_char_tokenizer()
    models = BENCH / "ppo_models"
    policy = build_causal_lm(prof.teacher, tok, seed=0)
    reward = build_scalar_head(prof.reward_model, tok, seed=1)
    for name, m in (("policy", policy), ("reward", reward)):
        m.save_pretrained(models / name)
        save_tokenizer(tok, models / name)
    prompts = [p.prompt for p in make_problems(BATCH * ITERS, "train", seed=0)]
    (models / "prompts.json").write_text(json.dumps(prompts))

    # Ours: rollout + update per batch, on the same models.
    tok = load_tokenizer(models / "policy")
    ref = build_causal_lm(prof.teacher, tok, seed=0).requires_grad_(False)
    value = build_scalar_head(prof.reward_model, tok, seed=1)
    reward.requires_grad_(False)
    opt = torch.optim.AdamW(list(policy.parameters()) + list(value.parameters()), lr=1e-4)
    cfg = PPOConfig(ppo_epochs=EPOCHS, minibatch_size=BATCH // MINIBATCHES, target_kl=None)

    def reward_fn(ps, cs):
        from utils.reward import score
        return score(reward, tok, ps, cs)

    start = time.perf_counter()
    for i in range(ITERS):
        r = rollout(policy, ref, value, tok, prompts[i * BATCH:(i + 1) * BATCH],
                    max_new_tokens=prof.max_new_tokens, reward_fn=reward_fn)
        ppo_update(policy, value, opt, r, cfg)
    ours = (time.perf_counter() - start) / ITERS

    out = {"batch": BATCH, "iterations": ITERS, "ppo_epochs": EPOCHS, "minibatches": MINIBATCHES,
           "response_length": prof.max_new_tokens, "ours_s_per_batch": round(ours, 3)}
    try:
        python = ensure_trl112()
        proc = subprocess.run([str(python), "-c", TRL_SIDE, str(models), str(BATCH), str(ITERS), str(EPOCHS),
                               str(MINIBATCHES), str(prof.max_new_tokens), str(torch.get_num_threads())],
                              capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        trl = json.loads(proc.stdout.strip().splitlines()[-1])["seconds_per_batch"]
        out.update(trl112_s_per_batch=round(trl, 3), ratio=round(ours / trl, 3), target="<= 1.0")
    except Exception as exc:  # a legitimate finding: say why TRL 1.12 could not run here
        out.update(trl112_s_per_batch=None, ratio=None, trl112_error=str(exc)[-1500:])
    return write_benchmark("ppo", out)


if __name__ == "__main__":
    main()
