"""Notebook 02: a reward model trained on preference pairs (TRL ``RewardTrainer``).

In RLHF a reward model learns human preferences between two answers. Here the *verifier*
plays the human labeller: for each prompt, a correct, well-formed teacher sample is
*chosen* and a wrong or malformed one *rejected* (when the teacher wrote no correct sample
for a prompt, its ground-truth solution stands in as the chosen one). The loss is
Bradley–Terry's ``-log σ(r(chosen) - r(rejected))``. Notebook 03 reuses :func:`score`.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence

import torch
from datasets import Dataset

from .config import Run, stage_settings
from .generation import generate
from .models import build_scalar_head, load_model_artifact, save_model_artifact
from .progress import calm_trainer_progress
from .tasks import Problem, verify


def preference_pairs(problems: Sequence[Problem], samples: Sequence[str], k: int,
                     seed: int = 0) -> list[dict]:
    """Pairs ``{prompt, chosen, rejected}`` from ``k`` samples per problem (prompt-major).

    Chosen: a verified sample, else the ground truth. Rejected: a sample the verifier refuses.
    Problems whose samples are all correct give no pair (nothing to prefer against).
    """
    rng = random.Random(seed)
    pairs = []
    for i, p in enumerate(problems):
        mine = samples[i * k:(i + 1) * k]
        good = [s for s in mine if verify(s, p.answer)]
        bad = [s for s in mine if not verify(s, p.answer)]
        if bad:
            pairs.append({"prompt": p.prompt, "chosen": rng.choice(good) if good else p.completion,
                          "rejected": rng.choice(bad)})
    return pairs


@torch.no_grad()
def score(reward_model, tokenizer, prompts: Sequence[str], completions: Sequence[str],
          batch_size: int = 256) -> list[float]:
    """The reward model's scalar score of each (prompt, completion), batched."""
    reward_model.eval()
    device = next(reward_model.parameters()).device
    out: list[float] = []
    texts = [p + c + tokenizer.eos_token for p, c in zip(prompts, completions)]
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        out.extend(reward_model(**enc).logits[:, 0].float().tolist())
    return out


def pair_accuracy(reward_model, tokenizer, pairs: Sequence[dict], batch_size: int = 256) -> float:
    """Fraction of pairs where the chosen answer scores above the rejected one."""
    prompts = [p["prompt"] for p in pairs]
    chosen = score(reward_model, tokenizer, prompts, [p["chosen"] for p in pairs], batch_size=batch_size)
    rejected = score(reward_model, tokenizer, prompts, [p["rejected"] for p in pairs], batch_size=batch_size)
    return sum(c > r for c, r in zip(chosen, rejected)) / max(1, len(pairs))


def train_reward_model(run: Run, *, progress: bool = True) -> dict:
    """Sample the warm-up teacher, build pairs, train the reward model, save ``reward_model``.

    The reward model reads text with its own tokenizer (the character tokenizer in the tiny
    profile, the checkpoint's own in colab): the pairs are text, so the teacher's is not needed.
    Returns ``{"model", "tokenizer", "pair_acc", "n_train_pairs", "n_test_pairs", "losses"}``.
    """
    from trl import RewardConfig, RewardTrainer

    from .splits import train_problems
    from .tokenizer import load_tokenizer, tokenizer_source

    from .models import release, saved_stage
    from .time_plan import check_stage

    prof = run.profile
    stage = stage_settings(prof, "reward_model")
    if (saved := saved_stage(run, "reward_model")) is not None:   # finished before: load it
        model, rm_tokenizer = load_model_artifact(run.name, "reward_model", kind="scalar", device="cpu",
                                                 dtype=run.weights_dtype("sampling"))
        return {"model": model, "tokenizer": rm_tokenizer, **saved, "loaded": True}
    check_stage(run, "reward_model")
    teacher, tokenizer = load_model_artifact(run.name, "teacher_sft", device=run.device, dtype=run.weights_dtype("sampling"))
    problems = train_problems(run)[: prof.rm_prompts]
    k = prof.num_generations
    samples, _ = generate(teacher, tokenizer, [p.prompt for p in problems], do_sample=True,
                          temperature=1.0, top_p=1.0, num_return_sequences=k,
                          max_new_tokens=prof.max_new_tokens, batch_size=prof.gen_batch_size,
                          progress=progress, desc="sampling pairs")
    release(teacher)     # the sampling teacher leaves the GPU before the reward model trains
    del teacher
    pairs = preference_pairs(problems, samples, k, seed=run.seed)
    n_test = max(1, len(pairs) // 5)
    test, train = pairs[:n_test], pairs[n_test:]
    rm_tokenizer = load_tokenizer(tokenizer_source(run, "reward_model"))
    model = build_scalar_head(prof.reward_model, rm_tokenizer, seed=run.seed, dtype=run.weights_dtype("reward_model"))
    model = model.to(run.device)
    calm_trainer_progress()
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(output_dir=out, max_steps=prof.rm_steps, per_device_train_batch_size=stage.batch,
                            learning_rate=prof.rm_lr, lr_scheduler_type="cosine", warmup_steps=0.05,
                            logging_steps=max(1, prof.rm_steps // 10), save_strategy="no",
                            report_to="none", seed=run.seed, use_cpu=run.device == "cpu",
                            **run.mixed_precision(), max_length=prof.rm_max_length,
                            activation_checkpointing=stage.gradient_checkpointing,  # not its deprecated alias
                            disable_tqdm=not progress)
        trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                                processing_class=rm_tokenizer)
        trainer.train()
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    acc = pair_accuracy(model, rm_tokenizer, test, batch_size=prof.gen_batch_size)
    save_model_artifact(run.name, "reward_model", model, rm_tokenizer, seed=run.seed,
                        fingerprint=run.fingerprint("reward_model"),
                        config={"steps": prof.rm_steps, "lr": prof.rm_lr, "pairs": len(train)},
                        metrics={"pair_acc": acc},
                        history={"pair_acc": acc, "n_train_pairs": len(train), "n_test_pairs": len(test),
                                 "losses": losses})
    from .messages import msg, say

    say(msg("reward model: pairwise accuracy {acc:.1%} on {n} held-out pairs", acc=acc, n=len(test)))
    release(model)       # saved; off the GPU until a later stage loads it (a no-op on a CPU)
    return {"model": model, "tokenizer": rm_tokenizer, "pair_acc": acc, "n_train_pairs": len(train),
            "n_test_pairs": len(test), "losses": losses}
