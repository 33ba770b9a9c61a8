"""Notebook 02: the teacher – warm-up SFT on ground-truth chains of thought, then RL.

The warm-up is stopped early on purpose (a fixed step budget from the profile), so the
teacher is good but imperfect and reinforcement learning has room to improve it.
"""

from __future__ import annotations

import torch

from .artifacts import artifact_path
from .config import Run, stage_settings
from .generation import EvalResult, evaluate
from .models import add_lora, build_causal_lm, merge_lora, release, save_model_artifact, saved_stage, weights_bytes
from .sft import SFTResult, to_sft_dataset, train_sft
from .splits import test_problems, train_problems, val_problems
from .tasks import Problem
from .time_plan import check_stage


def accuracy_on(problems: list[Problem], tokenizer, max_new_tokens: int, batch_size: int = 1024, *,
                judge=None):
    """``model -> greedy exact match on problems``: the function RL and SFT evaluate with
    (``batch_size``: sequences per generate() call, the profile's ``gen_batch_size``).

    ``judge(completion, answer) -> bool`` replaces the verifier – R1-Zero's accuracy reward
    (:func:`utils.tasks.answer_correct`) counts an answer with or without a think block."""
    def accuracy(model) -> float:
        ev = evaluate(model, tokenizer, problems, max_new_tokens=max_new_tokens, batch_size=batch_size)
        if judge is None:
            return ev.accuracy
        return sum(judge(c, p.answer) for c, p in zip(ev.completions, problems)) / len(problems)
    return accuracy


def saved_test_correct(run: Run, saved: dict, model, tokenizer) -> list[int]:
    """A saved stage's outcome per test problem (for paired comparisons). A stage saved by an older
    version of the course has none: they are measured again, with ``model``."""
    if saved.get("test_correct") is not None:
        return saved["test_correct"]
    return [int(c) for c in evaluate(model.to(run.device), tokenizer, test_problems(run),
                                     max_new_tokens=run.profile.max_new_tokens,
                                     batch_size=run.profile.gen_batch_size).correct]


def train_teacher_sft(run: Run, *, eval_every: int = 0,
                      progress: bool = True) -> tuple[object, SFTResult, EvalResult]:
    """Build the teacher (from config, or a checkpoint), fine-tune it on ground-truth CoT,
    evaluate, save. With ``profile.lora_rank`` only LoRA adapters train; they are merged
    into the weights before the evaluation and the save.

    Saves the ``teacher_sft`` artifact (with its validation and test accuracy in the manifest)
    and returns ``(model, sft_result, test_result)``. ``eval_every`` > 0 adds a validation curve.
    A warm-up this run finished before is loaded instead (:func:`saved_stage`).
    """
    from .artifacts import read_manifest
    from .models import load_model_artifact
    from .tokenizer import load_tokenizer, tokenizer_source

    prof = run.profile
    saved = saved_stage(run, "teacher_sft")
    if saved is not None:
        model, saved_tok = load_model_artifact(run.name, "teacher_sft", device=run.device, dtype=run.weights_dtype("sampling"))
        m = read_manifest(run.name, "teacher_sft")["metrics"]
        result = SFTResult(losses=[tuple(x) for x in saved.get("losses", [])],
                           evals=[tuple(x) for x in saved.get("evals", [])],
                           seconds=m["sft_seconds"], tokens_per_s=saved.get("tokens_per_s", 0.0))
        correct = saved_test_correct(run, saved, model, saved_tok)
        return model, result, EvalResult(m["acc"], m["acc_per_family"], completions=[], correct=[bool(c) for c in correct])
    check_stage(run, "teacher_sft")   # a plan over the GPU's memory stops here, before loading
    tokenizer = load_tokenizer(tokenizer_source(run))
    stage = stage_settings(prof, "teacher_sft")
    model = build_causal_lm(prof.teacher, tokenizer, seed=run.seed, dtype=run.weights_dtype("teacher_sft"))
    model = add_lora(model, stage.lora_rank).to(run.device)
    accuracy = accuracy_on(val_problems(run), tokenizer, prof.max_new_tokens, prof.gen_batch_size)
    result = train_sft(model, tokenizer, to_sft_dataset(train_problems(run), seed=run.seed),
                       steps=prof.teacher_sft_steps, lr=prof.sft_lr, batch_size=stage.batch,
                       gradient_checkpointing=stage.gradient_checkpointing, **run.mixed_precision(),
                       scheduler=prof.sft_scheduler,
                       seed=run.seed, max_length=prof.sft_max_length,
                       eval_fn=accuracy if eval_every else None, eval_every=eval_every, progress=progress)
    model = merge_lora(model)
    final = evaluate(model, tokenizer, test_problems(run), max_new_tokens=prof.max_new_tokens,
                     batch_size=prof.gen_batch_size)
    save_model_artifact(run.name, "teacher_sft", model, tokenizer, seed=run.seed,
                        fingerprint=run.fingerprint("teacher_sft"),
                        config={"steps": prof.teacher_sft_steps, "lr": prof.sft_lr,
                                "batch_size": prof.sft_batch_size, "lora_rank": prof.lora_rank},
                        metrics={"acc": final.accuracy, "val_acc": accuracy(model),
                                 "acc_per_family": final.per_family, "sft_seconds": result.seconds},
                        history={"losses": result.losses, "evals": result.evals, "tokens_per_s": result.tokens_per_s,
                                 "test_correct": [int(c) for c in final.correct]})
    from .messages import msg, say

    say(msg("teacher_sft: accuracy {acc:.1%} ({families}) – saved to {path}", acc=final.accuracy,
            families=", ".join(f"{k} {v:.0%}" for k, v in sorted(final.per_family.items())),
            path=str(artifact_path(run.name, "teacher_sft"))))
    return model, result, final


# ---------------------------------------------------------------------------------------
# Reinforcement learning on top of the warm-up teacher
# ---------------------------------------------------------------------------------------

def ppo_reward_fn(reward_model, rm_tokenizer, answers: dict[str, str], use_verifier: bool,
                  rm_weight: float = 0.1, batch_size: int = 256):
    """Sequence reward for PPO – the switch notebook 02 uses to show what each signal does.

    * ``use_verifier=False`` – the article's recipe: the reward model's score alone.
    * ``use_verifier=True`` – what a practitioner runs on a checkable task: 1 when the verifier
      accepts the answer, else 0, plus ``rm_weight`` × the reward model's score *standardised
      over the batch* (zero mean, unit variance): a shaping term a tenth the size of the
      verifier's step for a typical sample (|z| ≤ 2), so it orders samples the verifier ties
      without overruling it. ``rm_weight=0`` drops the reward model altogether.
    """
    import torch

    from .reward import score
    from .tasks import verify

    def reward_fn(prompts, completions):
        if not use_verifier:
            return score(reward_model, rm_tokenizer, prompts, completions, batch_size=batch_size)
        rewards = torch.tensor([float(verify(c, answers[p])) for p, c in zip(prompts, completions)])
        if rm_weight:
            s = torch.tensor(score(reward_model, rm_tokenizer, prompts, completions, batch_size=batch_size))
            rewards = rewards + rm_weight * (s - s.mean()) / (s.std() + 1e-6)
        return rewards.tolist()
    return reward_fn


def _finish_rl(run: Run, result: dict, policy, tokenizer, models_in_memory: int, stage: str | None) -> dict:
    """Measure the checkpoint chosen on validation once on test, and save the finished ``stage``
    (under LoRA its adapters, unmerged: the policy that was validated is the one tested and saved).
    ``models_in_memory``: the distinct models the method held while training (counted by the caller)."""
    test = evaluate(policy, tokenizer, test_problems(run), max_new_tokens=run.profile.max_new_tokens,
                    batch_size=run.profile.gen_batch_size)
    result.update(models_in_memory=models_in_memory, val_acc=result["best"][1], test_acc=test.accuracy,
                  test_correct=[int(c) for c in test.correct])   # per test problem: for paired comparisons
    if stage is not None:
        history = {k: v for k, v in result.items() if k not in ("policy", "tokenizer", "test")}
        save_model_artifact(run.name, stage, policy, tokenizer, seed=run.seed, fingerprint=run.fingerprint(stage),
                            adapter_of="teacher_sft" if hasattr(policy, "peft_config") else None,
                            config=functions_config(run, stage),
                            metrics={"acc": test.accuracy, "val_acc": result["val_acc"]}, history=history)
    release(policy)   # off the GPU until a cell needs it (a no-op on a CPU)
    result.update(policy=policy, tokenizer=tokenizer, test=test)
    return result


def _load_rl(run: Run, stage: str) -> dict | None:
    """A finished RL stage of this run, as :func:`run_ppo` / :func:`run_grpo` return it, or None."""
    from .models import load_model_artifact

    saved = saved_stage(run, stage)
    if saved is None:
        return None
    policy, tokenizer = load_model_artifact(run.name, stage, device="cpu", dtype=run.weights_dtype("sampling"))
    if "test_correct" not in saved:   # saved by an older version of the course
        saved["test_correct"] = saved_test_correct(run, saved, policy, tokenizer)
        release(policy)
    return {**saved, "best": tuple(saved["best"]), "evals": [tuple(e) for e in saved["evals"]],
            "policy": policy, "tokenizer": tokenizer, "loaded": True}


def run_ppo(run: Run, *, use_verifier: bool = False, steps: int | None = None,
            progress: bool = True) -> dict:
    """PPO from ``teacher_sft`` (utils.ppo); returns the result dict with the trained ``policy``,
    the RM-score / validation-accuracy history, ``val_acc`` (the best checkpoint's, which is
    kept) and ``test_acc`` (that checkpoint on test).

    The reward model reads text with its own tokenizer; the value model (critic) scores the
    policy's tokens, so it is built from the reward model's base *with the policy's tokenizer*
    (in the colab profile both are Qwen2.5 models, which share one). With ``lora_rank`` the
    policy trains LoRA adapters (the reference is the policy with them off).

    The run is a stage of notebook 02: ``use_verifier=True`` is ``teacher_ppo`` (``ppo_steps``
    steps), ``False`` is ``teacher_ppo_rm`` (the article's recipe, a third of the steps: enough to
    watch it drift). Each is saved when it finishes and loaded on a re-run; an explicit ``steps``
    (an experiment) is neither loaded nor saved.
    """
    from .models import load_model_artifact
    from .ppo import PPOConfig, train_ppo

    prof = run.profile
    stage_name = None if steps is not None else ("teacher_ppo" if use_verifier else "teacher_ppo_rm")
    steps = steps or (prof.ppo_steps if use_verifier else max(1, prof.ppo_steps // 3))
    if stage_name and (done := _load_rl(run, stage_name)) is not None:
        return done
    check_stage(run, "ppo")
    stage = stage_settings(prof, "ppo")
    policy, tokenizer = load_model_artifact(run.name, "teacher_sft", device=run.device, dtype=run.weights_dtype("ppo"))
    policy = add_lora(policy, stage.lora_rank)
    frozen = run.weights_dtype("sampling")  # the reference and the reward model only run forward
    if stage.lora_rank:   # the reference is the policy with its adapters off: no second copy
        ref = None
    else:
        ref, _ = load_model_artifact(run.name, "teacher_sft", device=run.device, dtype=frozen)
        ref.requires_grad_(False)
    reward_model, rm_tok = load_model_artifact(run.name, "reward_model", kind="scalar", device=run.device, dtype=frozen)
    reward_model.requires_grad_(False)
    value_model = build_critic(run, tokenizer)
    if stage.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
        value_model.gradient_checkpointing_enable()
    problems = train_problems(run)
    answers = {p.prompt: p.answer for p in problems}
    precision = next((k for k, on in run.mixed_precision().items() if on), None)
    result = train_ppo(policy, ref, value_model, tokenizer, [p.prompt for p in problems],
                       steps=steps, batch_prompts=stage.batch,
                       lr=prof.ppo_lr, max_new_tokens=prof.max_new_tokens,
                       reward_fn=ppo_reward_fn(reward_model, rm_tok, answers, use_verifier, prof.ppo_rm_weight,
                                               batch_size=prof.gen_batch_size),
                       cfg=PPOConfig(beta=prof.kl_beta, lam=prof.ppo_lambda), warmup_steps=prof.rl_warmup_steps,
                       eval_fn=accuracy_on(val_problems(run), tokenizer, prof.max_new_tokens, prof.gen_batch_size),
                       eval_every=prof.rl_eval_every, seed=run.seed, mixed_precision=precision, progress=progress)
    models = {"policy": policy, "reference": ref, "reward model": reward_model, "critic": value_model}
    held = len({id(m) for m in models.values() if m is not None})
    result["weights_held_mb"] = {name: round(weights_bytes(m) / 2**20, 2) for name, m in models.items() if m is not None}
    release(value_model, reward_model, ref)
    return _finish_rl(run, result, policy, tokenizer, models_in_memory=held, stage=stage_name)


def build_critic(run: Run, tokenizer):
    """PPO's value model: the reward model's architecture reading the policy's tokens, with a
    1-output head. Under LoRA (colab): a half-precision base with trained adapters and an fp32
    head; otherwise every weight trains, in fp32."""
    from .models import build_scalar_head

    lora = stage_settings(run.profile, "ppo").lora_rank
    critic = build_scalar_head(run.profile.reward_model, tokenizer, seed=run.seed + 1,
                               dtype=run.weights_dtype("ppo") if lora else torch.float32)
    critic.score.float()                  # the value head computes in fp32 (token_values casts its input)
    return add_lora(critic, lora, task_type="SEQ_CLS").to(run.device)


def run_grpo(run: Run, *, reward_funcs: list | None = None, progress: bool = True) -> dict:
    """GRPO from ``teacher_sft`` with rule-based rewards (utils.grpo); returns the result dict
    (as :func:`run_ppo`'s, plus the share of zero-variance groups per step).

    ``reward_funcs``: the reward functions (notebook 02 defines them in a cell; the first is the
    accuracy reward, see :func:`utils.grpo.train_grpo`); None: the package's own,
    :func:`utils.grpo.default_rewards`. Functions whose sources differ from the package's change
    the stage's fingerprint (:meth:`utils.config.Run.using`), so a stage saved with other rewards is
    not loaded. With ``lora_rank`` the policy trains LoRA adapters (TRL then uses the policy with its
    adapters switched off as the KL reference: no second copy). Saved as the stage
    ``teacher_grpo`` when it finishes, loaded on a re-run.
    """
    from .grpo import default_rewards, train_grpo
    from .models import load_model_artifact

    prof = run.profile
    run.using("grpo_rewards", default_rewards(prof) if reward_funcs is None else reward_funcs, default_rewards(prof))
    if (done := _load_rl(run, "teacher_grpo")) is not None:
        return done
    check_stage(run, "grpo")
    policy, tokenizer = load_model_artifact(run.name, "teacher_sft", device=run.device, dtype=run.weights_dtype("grpo"))
    policy = add_lora(policy, stage_settings(prof, "grpo").lora_rank)
    result = train_grpo(run, policy, tokenizer, train_problems(run),
                        eval_fn=accuracy_on(val_problems(run), tokenizer, prof.max_new_tokens, prof.gen_batch_size),
                        eval_every=prof.rl_eval_every, reward_funcs=reward_funcs, progress=progress)
    return _finish_rl(run, result, policy, tokenizer, models_in_memory=result.pop("models_in_memory"),
                      stage="teacher_grpo")


def functions_config(run: Run, artifact: str) -> dict:
    """``{"functions": {role: hash}}`` for the functions a notebook passed in that made ``artifact``
    and differ from the package's own (:meth:`utils.config.Run.using`), for its manifest's config;
    ``{}`` when it was made with the package's functions."""
    from .config import ARTIFACTS

    used = {role: run.functions[role] for role in ARTIFACTS[artifact].functions if role in run.functions}
    return {"functions": used} if used else {}


def samples_per_step(profile, method: str) -> float:
    """Completions generated per optimiser step: PPO samples ``ppo_batch`` prompts once each per step;
    GRPO samples ``rl_batch_prompts`` × ``num_generations`` and reuses them for ``grpo_iterations``
    steps. "RL step" means different amounts of work, so notebook 02 plots against samples."""
    if method == "ppo":
        return float(stage_settings(profile, "ppo").batch)
    if method == "grpo":
        return stage_settings(profile, "grpo").batch / profile.grpo_iterations
    raise ValueError(f"method must be 'ppo' or 'grpo', not {method!r}")


def run_r1_zero(run: Run, *, progress: bool = True) -> dict:
    """R1-Zero vs cold start, in miniature: the R1-Zero arm.

    A fresh teacher (same architecture, seed, steps, learning rate and batch as the chain-of-thought
    warm-up) is fine-tuned on ``Q:…A:<answer>`` only – it never sees a chain of thought – then
    trained with GRPO for ``grpo_steps`` steps with R1-Zero's rewards: the answer's correctness
    (think block or not) plus a 0.1 format bonus for ``<think>…</think>A:…``. The cold-start arm is
    notebook 02's GRPO run from the chain-of-thought warm-up. No model is saved (an experiment); the
    figures are, as the replay record ``r1_zero`` that classroom replay loads instead (:mod:`utils.replay`).

    Returns :func:`utils.grpo.train_grpo`'s dict (``evals`` in answer accuracy on validation,
    ``think_share`` and ``mean_length`` per generation batch) plus ``warmup_seconds``,
    ``warmup_val_acc``, and the kept checkpoint on test: ``test_correct`` (answer correct, per
    problem), ``test_think_share`` and ``test_completions``.
    """
    from .grpo import reloaded_policy, train_grpo
    from .tasks import answer_correct, answer_only, check_format
    from .tokenizer import load_tokenizer, tokenizer_source

    from .replay import load_record, save_record

    if (saved := load_record(run, "r1_zero")) is not None:   # classroom replay
        return {**saved, "evals": [tuple(e) for e in saved["evals"]],
                "best": tuple(saved["best"]) if saved["best"] else None}
    prof = run.profile
    tokenizer = load_tokenizer(tokenizer_source(run))
    stage = stage_settings(prof, "teacher_sft")
    model = build_causal_lm(prof.teacher, tokenizer, seed=run.seed, dtype=run.weights_dtype("teacher_sft"))
    model = add_lora(model, stage.lora_rank).to(run.device)
    answer_acc = accuracy_on(val_problems(run), tokenizer, prof.max_new_tokens, prof.gen_batch_size, judge=answer_correct)
    warm = train_sft(model, tokenizer, to_sft_dataset([answer_only(p) for p in train_problems(run)], seed=run.seed),
                     steps=prof.teacher_sft_steps, lr=prof.sft_lr, batch_size=stage.batch,
                     gradient_checkpointing=stage.gradient_checkpointing, **run.mixed_precision(),
                     scheduler=prof.sft_scheduler, seed=run.seed, max_length=prof.sft_max_length, progress=progress)
    model = merge_lora(model)
    warm_val = answer_acc(model)
    with reloaded_policy(model, device=run.device, dtype=run.weights_dtype("grpo"), release_source=True) as policy:
        policy = add_lora(policy, stage_settings(prof, "grpo").lora_rank)
        result = train_grpo(run, policy, tokenizer, train_problems(run), eval_fn=answer_acc,
                            eval_every=prof.rl_eval_every, reward="answer", format_bonus=True, progress=progress)
    problems = test_problems(run)
    test = evaluate(policy, tokenizer, problems, max_new_tokens=prof.max_new_tokens, batch_size=prof.gen_batch_size)
    release(policy)
    result.update(warmup_seconds=warm.seconds, warmup_val_acc=warm_val, test_completions=test.completions,
                  test_correct=[answer_correct(c, p.answer) for c, p in zip(test.completions, problems)],
                  test_think_share=sum(check_format(c) for c in test.completions) / len(problems))
    save_record(run, "r1_zero", result, seconds=warm.seconds + result["seconds"])
    return result


def save_teacher(run: Run, ppo: dict, grpo: dict) -> str:
    """Save the better RL teacher *on validation* (PPO on a tie) as ``teacher``; its test
    accuracy goes into the manifest as the reported figure."""
    method, chosen = ("ppo", ppo) if ppo["val_acc"] >= grpo["val_acc"] else ("grpo", grpo)
    save_model_artifact(run.name, "teacher", chosen["policy"], chosen["tokenizer"], seed=run.seed,
                        fingerprint=run.fingerprint("teacher"),
                        adapter_of="teacher_sft" if hasattr(chosen["policy"], "peft_config") else None,
                        config={"method": method, **functions_config(run, "teacher")},
                        metrics={"acc": chosen["test_acc"], "val_acc": chosen["val_acc"],
                                 "acc_ppo": ppo["test_acc"], "acc_grpo": grpo["test_acc"],
                                 "val_acc_ppo": ppo["val_acc"], "val_acc_grpo": grpo["val_acc"]})
    return method


def build_teacher(run: Run) -> str:
    """Notebook 02's RL without the notebook: PPO (verifier + RM shaping) and GRPO from the saved
    warm-up teacher, save the better on validation. Needs ``teacher_sft`` and ``reward_model``."""
    return save_teacher(run, run_ppo(run, use_verifier=True), run_grpo(run))
