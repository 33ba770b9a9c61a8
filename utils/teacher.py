"""Notebook 02: the teacher – warm-up SFT on ground-truth chains of thought, then RL.

The warm-up is stopped early on purpose (a fixed step budget from the profile), so the
teacher is good but imperfect and reinforcement learning has room to improve it.
"""

from __future__ import annotations

import random

from .artifacts import artifact_path
from .config import Run
from .generation import EvalResult, evaluate
from .models import add_lora, build_causal_lm, merge_lora, save_model_artifact
from .sft import SFTResult, to_sft_dataset, train_sft
from .tasks import Problem, make_problems


def train_problems(run: Run) -> list[Problem]:
    """The training problems of this run (they depend on ``run.seed``).

    Task world: ``n_train`` problems drawn with the seed. GSM8K (``data_source="gsm8k"``): its
    train split – from ``data_path``, or the hub – shuffled with the seed, the first ``n_train``.
    """
    p = run.profile
    if p.data_source == "gsm8k":
        from .gsm8k import load_problems

        problems = load_problems(p.data_path, "train")
        random.Random(run.seed).shuffle(problems)
        return problems[: p.n_train]
    return make_problems(p.n_train, "train", seed=run.seed, families=p.families,
                         difficulties=p.difficulties)


def eval_problems(run: Run) -> list[Problem]:
    """The held-out problems every notebook evaluates on (the same for every seed).

    GSM8K: the first ``n_eval`` problems of its test split.
    """
    p = run.profile
    if p.data_source == "gsm8k":
        from .gsm8k import load_problems

        return load_problems(p.data_path, "test")[: p.n_eval]
    return make_problems(p.n_eval, "eval", seed=p.eval_seed, families=p.families,
                         difficulties=p.difficulties)


def train_teacher_sft(run: Run, *, eval_every: int = 0,
                      progress: bool = True) -> tuple[object, SFTResult, EvalResult]:
    """Build the teacher (from config, or a checkpoint), fine-tune it on ground-truth CoT,
    evaluate, save. With ``profile.lora_rank`` only LoRA adapters train; they are merged
    into the weights before the evaluation and the save.

    Saves the ``teacher_sft`` artifact (with its eval accuracy in the manifest) and returns
    ``(model, sft_result, eval_result)``. ``eval_every`` > 0 adds an accuracy curve.
    """
    from .pipeline import ensure_tokenizer
    from .tokenizer import load_tokenizer

    prof = run.profile
    tokenizer = load_tokenizer(ensure_tokenizer(run))
    model = add_lora(build_causal_lm(prof.teacher, tokenizer, seed=run.seed), prof.lora_rank).to(run.device)
    evals = eval_problems(run)

    def accuracy(m) -> float:
        return evaluate(m, tokenizer, evals, max_new_tokens=prof.max_new_tokens).accuracy

    result = train_sft(model, tokenizer, to_sft_dataset(train_problems(run), seed=run.seed),
                       steps=prof.teacher_sft_steps, lr=prof.sft_lr, batch_size=prof.sft_batch_size,
                       scheduler=prof.sft_scheduler,
                       seed=run.seed, max_length=prof.sft_max_length,
                       eval_fn=accuracy if eval_every else None, eval_every=eval_every, progress=progress)
    model = merge_lora(model)
    final = evaluate(model, tokenizer, evals, max_new_tokens=prof.max_new_tokens)
    save_model_artifact(run.name, "teacher_sft", model, tokenizer, seed=run.seed,
                        config={"steps": prof.teacher_sft_steps, "lr": prof.sft_lr,
                                "batch_size": prof.sft_batch_size, "lora_rank": prof.lora_rank},
                        metrics={"acc": final.accuracy, "acc_per_family": final.per_family,
                                 "sft_seconds": result.seconds})
    print(f"teacher_sft: {final.summary()} – saved to {artifact_path(run.name, 'teacher_sft')}")
    return model, result, final


# ---------------------------------------------------------------------------------------
# Reinforcement learning on top of the warm-up teacher
# ---------------------------------------------------------------------------------------

def ppo_reward_fn(reward_model, rm_tokenizer, answers: dict[str, str], use_verifier: bool):
    """Sequence reward for PPO: the reward model's score, plus 1 when the verifier accepts
    (``use_verifier``) – the switch notebook 02 uses to show what each signal does."""
    from .reward import score
    from .tasks import verify

    def reward_fn(prompts, completions):
        scores = score(reward_model, rm_tokenizer, prompts, completions)
        if use_verifier:
            scores = [s + float(verify(c, answers[p])) for s, p, c in zip(scores, prompts, completions)]
        return scores
    return reward_fn


def run_ppo(run: Run, *, use_verifier: bool = False, steps: int | None = None,
            progress: bool = True) -> dict:
    """PPO from ``teacher_sft`` against the reward model (utils.ppo); returns the result dict
    with the trained ``policy`` and the RM-score / accuracy history.

    The reward model reads text with its own tokenizer; the value model (critic) scores the
    policy's tokens, so it is built from the reward model's base *with the policy's tokenizer*
    (in the colab profile both are Qwen2.5 models, which share one). With ``lora_rank`` the
    policy trains LoRA adapters, merged into its weights at the end.
    """
    from .models import build_scalar_head, load_model_artifact
    from .pipeline import ensure_reward_model, ensure_teacher_sft
    from .ppo import PPOConfig, train_ppo

    prof = run.profile
    ensure_teacher_sft(run)
    ensure_reward_model(run)
    policy, tokenizer = load_model_artifact(run.name, "teacher_sft", device=run.device)
    policy = add_lora(policy, prof.lora_rank)
    ref, _ = load_model_artifact(run.name, "teacher_sft", device=run.device)
    ref.requires_grad_(False)
    reward_model, rm_tok = load_model_artifact(run.name, "reward_model", kind="scalar", device=run.device)
    reward_model.requires_grad_(False)
    value_model = build_scalar_head(prof.reward_model, tokenizer, seed=run.seed + 1).to(run.device)
    problems = train_problems(run)
    answers = {p.prompt: p.answer for p in problems}
    evals = eval_problems(run)

    def accuracy(m):
        return evaluate(m, tokenizer, evals, max_new_tokens=prof.max_new_tokens).accuracy

    result = train_ppo(policy, ref, value_model, tokenizer, [p.prompt for p in problems],
                       steps=steps or prof.ppo_steps,
                       batch_prompts=prof.rl_batch_prompts * prof.num_generations,
                       lr=prof.rl_lr, max_new_tokens=prof.max_new_tokens,
                       reward_fn=ppo_reward_fn(reward_model, rm_tok, answers, use_verifier),
                       cfg=PPOConfig(beta=prof.kl_beta), eval_fn=accuracy,
                       eval_every=prof.rl_eval_every, seed=run.seed, progress=progress)
    result.update(policy=merge_lora(policy), tokenizer=tokenizer, models_in_memory=4)
    return result


def run_grpo(run: Run, *, progress: bool = True) -> dict:
    """GRPO from ``teacher_sft`` with rule-based rewards (utils.grpo); returns the result dict.

    With ``lora_rank`` the policy trains LoRA adapters (TRL then uses the policy with its
    adapters switched off as the KL reference: no second copy), merged at the end.
    """
    from .grpo import train_grpo
    from .models import load_model_artifact
    from .pipeline import ensure_teacher_sft

    prof = run.profile
    ensure_teacher_sft(run)
    policy, tokenizer = load_model_artifact(run.name, "teacher_sft", device=run.device)
    policy = add_lora(policy, prof.lora_rank)
    evals = eval_problems(run)

    def accuracy(m):
        return evaluate(m, tokenizer, evals, max_new_tokens=prof.max_new_tokens).accuracy

    result = train_grpo(run, policy, tokenizer, train_problems(run), eval_fn=accuracy,
                        eval_every=prof.rl_eval_every, progress=progress)
    result.update(policy=merge_lora(policy), tokenizer=tokenizer, models_in_memory=2)
    return result


def save_teacher(run: Run, ppo: dict, grpo: dict) -> str:
    """Save the better RL teacher (by best eval accuracy; PPO on a tie) as ``teacher``."""
    method, chosen = ("ppo", ppo) if ppo["best"][1] >= grpo["best"][1] else ("grpo", grpo)
    save_model_artifact(run.name, "teacher", chosen["policy"], chosen["tokenizer"], seed=run.seed,
                        config={"method": method}, metrics={"acc": chosen["best"][1],
                                                            "acc_ppo": ppo["best"][1],
                                                            "acc_grpo": grpo["best"][1]})
    return method


def build_teacher(run: Run) -> str:
    """Notebook 02 without the notebook: warm-up SFT, reward model, PPO and GRPO, save the better."""
    return save_teacher(run, run_ppo(run, use_verifier=True), run_grpo(run))
