"""Notebook 04: the student – a ~5× smaller Qwen2 fine-tuned on the teacher's filtered data.

R1's distilled students were trained with SFT only (no RL) on the ~800k samples curated with R1
(DeepSeek-R1 paper, §2.4). A tiny model from scratch wants a high LR (the profile's ``student_lr``).
The ablation trains the *same* student, with the *same* step budget, on four datasets;
:func:`distil_or_rl` asks the paper's §4.1 question – distil into the small model, or run RL on it?
"""

from __future__ import annotations

from .config import Run, stage_settings
from .generation import EvalResult, evaluate
from .messages import msg, say
from .models import build_causal_lm, save_model_artifact
from .progress import calm_trainer_progress
from .sft import (SFTResult, TokenBudget, curriculum_final_stage_step, curriculum_schedule, to_sft_dataset,
                  train_sft)

ABLATIONS = {   # arm -> what it trains on (a message: utils.messages)
    "filtered": msg("teacher data after the full filter funnel (notebook 03)"),
    "unfiltered": msg("every teacher sample, right or wrong"),
    "groundtruth": msg("the task world's ground-truth chains of thought (an upper bound no real pipeline has)"),
    "curriculum": msg("filtered data, paced: easy first, harder levels mixed in stage by stage"),
}


def ablation_rows(run: Run) -> dict[str, list[dict]]:
    """The training rows of each ablation arm (prompt/completion/family/difficulty dicts)."""
    from .distill_data import load_distill_data
    from .splits import train_problems

    filtered = list(load_distill_data(run, "distill_data"))
    unfiltered = list(load_distill_data(run, "distill_data_unfiltered"))
    groundtruth = [p.to_dict() for p in train_problems(run)]
    return {"filtered": filtered, "unfiltered": unfiltered, "groundtruth": groundtruth,
            "curriculum": filtered}


def train_student(run: Run, rows: list[dict], *, curriculum: bool = False, packing: bool = False,
                  architecture: str = "student", progress: bool = True) -> tuple[object, SFTResult, EvalResult]:
    """Build the student, fine-tune it on ``rows``, evaluate it on the test split.

    Every arm gets the same budget, ``student_sft_steps``, long enough to converge: validation
    accuracy is measured every ``student_eval_every`` steps (the learning curve in
    ``result.evals``), an arm stops early once ``student_patience`` evaluations in a row bring
    no improvement (it has converged), and the best checkpoint *on validation* is kept – so an
    arm that overfits its few rows is not punished for it. :func:`best_val` reads that
    checkpoint's validation accuracy off the curve; the returned evaluation is on test.
    The student reads the teacher's *text* with its own tokenizer (:func:`student_tokenizer`).

    ``architecture="teacher"`` trains the *teacher's* architecture, from scratch, exactly so – same
    rows, steps, batch and checkpoint choice – at the teacher's learning rate ``sft_lr`` and with its
    tokenizer: the budget-matched teacher of ``make study`` (:mod:`utils.controls`).
    """
    from .splits import test_problems, val_problems
    from .teacher import accuracy_on
    from .tokenizer import load_tokenizer, tokenizer_source

    prof = run.profile
    if architecture not in ("student", "teacher"):
        raise ValueError(f"architecture must be 'student' or 'teacher', not {architecture!r}")
    as_teacher = architecture == "teacher"
    tokenizer = load_tokenizer(tokenizer_source(run)) if as_teacher else student_tokenizer(run)
    stage = stage_settings(prof, "student_sft")
    size, lr = (prof.teacher, prof.sft_lr) if as_teacher else (prof.student, prof.student_lr)
    model = build_causal_lm(size, tokenizer, seed=run.seed, dtype=run.weights_dtype("student_sft")).to(run.device)
    if curriculum:   # the rows in training order, stage by stage (a pacing schedule), read once
        dataset = to_sft_dataset(curriculum_schedule(rows, steps=prof.student_sft_steps, batch_size=stage.batch,
                                                     seed=run.seed), shuffle=False)
        patience_from = curriculum_final_stage_step(rows, prof.student_sft_steps)
    else:
        dataset, patience_from = to_sft_dataset(rows, seed=run.seed), 0
    result = train_sft(model, tokenizer, dataset,
                       steps=prof.student_sft_steps, lr=lr, batch_size=stage.batch,
                       gradient_checkpointing=stage.gradient_checkpointing,
                       seed=run.seed, curriculum=curriculum, packing=packing, max_length=prof.sft_max_length,
                       eval_fn=accuracy_on(val_problems(run), tokenizer, prof.max_new_tokens, prof.gen_batch_size),
                       eval_every=prof.student_eval_every, keep_best=True, patience=prof.student_patience,
                       patience_from=patience_from,
                       **run.mixed_precision(),
                       progress=progress)
    ev = evaluate(model, tokenizer, test_problems(run), max_new_tokens=prof.max_new_tokens, batch_size=prof.gen_batch_size)
    return model, result, ev


def student_tokenizer(run: Run):
    """The student's own tokenizer: the character tokenizer (tiny), its checkpoint's (colab)."""
    from .tokenizer import load_tokenizer, tokenizer_source

    return load_tokenizer(tokenizer_source(run, "student"))


def save_student(run: Run, model, tokenizer, ev: EvalResult, arm: str) -> None:
    """Save the chosen student as the ``student`` artifact."""
    save_model_artifact(run.name, "student", model, tokenizer, seed=run.seed,
                        fingerprint=run.fingerprint("student"),
                        config={"arm": arm, "steps": run.profile.student_sft_steps, "lr": run.profile.student_lr},
                        metrics={"acc": ev.accuracy, "acc_per_family": ev.per_family})


def shares_vocabulary(tokenizer_a, tokenizer_b) -> bool:
    """True when both tokenizers give every token the same id.

    Logit (knowledge) distillation compares two next-token distributions position by position,
    so it needs this; data distillation only passes *text* and needs nothing in common.
    """
    return tokenizer_a.get_vocab() == tokenizer_b.get_vocab()


def onpolicy_distill(run: Run, student_model, teacher_model, tokenizer, prompts: list[str], *,
                     steps: int, lr: float, batch_size: int, beta: float = 1.0,
                     token_budget: float | None = None, progress: bool = True) -> dict:
    """On-policy distillation with TRL's ``DistillationTrainer``; trains ``student_model`` in place.

    Each step the *student* samples a completion for ``batch_size`` prompts, and the teacher
    scores every token of it with its logits. The loss is the generalised Jensen-Shannon
    divergence between the two next-token distributions on the student's own tokens; with
    ``beta = 1`` it is the reverse KL, KL(student ‖ teacher), summed over the vocabulary:

        L = Σ_t Σ_v π_s(v | y_<t) · (log π_s(v | y_<t) − log π_t(v | y_<t)),  y ~ π_s

    It needs prompts only – no chains of thought, no verifier – but a shared vocabulary
    (``DistillationTrainer`` raises a ``ValueError`` when the vocabulary sizes differ).
    ``token_budget``: stop once the student's samples add up to that many prompt + completion
    tokens (``steps`` stays the upper bound). Returns ``{"seconds", "log", "steps", "tokens"}``.
    """
    import tempfile
    import time

    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    if steps <= 0:
        raise ValueError("steps must be positive")
    dataset = Dataset.from_list([{"prompt": p} for p in prompts])
    calm_trainer_progress()
    with tempfile.TemporaryDirectory() as out:
        args = DistillationConfig(
            output_dir=out, max_steps=steps, learning_rate=lr, lr_scheduler_type="constant",
            per_device_train_batch_size=batch_size, max_completion_length=run.profile.max_new_tokens,
            temperature=1.0, beta=beta, logging_steps=1, save_strategy="no", report_to="none",
            seed=run.seed, use_cpu=run.device == "cpu", bf16=False, activation_checkpointing=False,
            disable_tqdm=not progress)
        callbacks = [TokenBudget(token_budget)] if token_budget is not None else []
        trainer = DistillationTrainer(model=student_model, teacher_model=teacher_model, args=args,
                                      train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    student_model.eval()
    return {"seconds": seconds, "log": trainer.state.log_history, "steps": trainer.state.global_step,
            "tokens": float(trainer.state.num_input_tokens_seen)}


def distil_or_rl(run: Run, teacher_model, teacher_tokenizer, rows: list[dict], *, progress: bool = True) -> dict:
    """The DeepSeek-R1 paper's §4.1 in miniature: distil into the small model, or run RL on it?

    1. **One shared warm-up.** A fresh student is fine-tuned for ``distil_vs_rl_warmup`` SFT
       steps on ``rows`` (the teacher's filtered data) at ``student_lr`` (constant after a short
       warm-up) – enough to answer some validation problems, so that RL gets a reward at all.
    2. **Three arms from copies of it, matched on tokens.** (a) ``sft``: more SFT on ``rows`` for
       ``distil_vs_rl_steps`` steps of ``student_batch_size`` rows; the tokens it
       read (TRL's count: prompt + completion, no padding) set the budget ``T`` of the others.
       (b) ``grpo``: GRPO on the student itself with the verifier's reward, ``student_batch_size``
       sampled sequences per step (``student_batch_size / num_generations`` prompts × the group),
       each batch used once, until its samples add up to ``T`` tokens.
       (c) ``onpolicy``: on-policy distillation from ``teacher_model`` (reverse KL on the
       student's own samples), the same batch as (b), until ``T`` tokens.
       All three run at one constant learning rate, ``rl_lr``, each with a fresh optimiser (chosen
       on validation while the course was built: a fresh optimiser at the warm-up's ``student_lr``
       undid the warm-up in the SFT arm). No arm chooses a checkpoint: each keeps its weights
       when its budget is spent.

    Returns ``{"warmup_steps", "budget_tokens", "arms": {name: {"val_acc", "accuracy", "correct",
    "tokens", "steps", "seconds"}}}`` for ``warm-up``, ``sft``, ``grpo`` and ``onpolicy``
    (``correct``: per test problem, for paired comparisons; ``seconds``: training wall time).
    Saved as the replay record ``distil_vs_rl``, which classroom replay loads instead (:mod:`utils.replay`).
    """
    import dataclasses

    from .grpo import reloaded_policy, train_grpo
    from .models import copy_model, release
    from .splits import test_problems, train_problems, val_problems

    from .replay import load_record, save_record

    prof = run.profile
    if (saved := load_record(run, "distil_vs_rl")) is not None:
        return saved
    if prof.distil_vs_rl_warmup <= 0 or prof.distil_vs_rl_steps <= 0:
        raise ValueError("distil_vs_rl_warmup and distil_vs_rl_steps must be positive (0 skips the section)")
    tokenizer = student_tokenizer(run)
    if not shares_vocabulary(tokenizer, teacher_tokenizer):
        raise ValueError("on-policy distillation compares logits token by token: teacher and student need a "
                         "shared vocabulary (the colab profile's student has its own tokenizer)")
    batch = stage_settings(prof, "student_sft").batch
    if batch % prof.num_generations:
        raise ValueError(f"student_batch_size ({batch}) must divide by num_generations ({prof.num_generations}): "
                         "GRPO samples whole groups")
    sft_kw = dict(lr=prof.student_lr, batch_size=batch, seed=run.seed, max_length=prof.sft_max_length,
                  **run.mixed_precision(), progress=progress)

    def outcome(model, seconds: float, tokens: float, steps: int) -> dict:
        val = evaluate(model, tokenizer, val_problems(run), max_new_tokens=prof.max_new_tokens,
                       batch_size=prof.gen_batch_size)
        test = evaluate(model, tokenizer, test_problems(run), max_new_tokens=prof.max_new_tokens,
                        batch_size=prof.gen_batch_size)
        return {"val_acc": val.accuracy, "accuracy": test.accuracy, "correct": test.correct,
                "tokens": tokens, "steps": steps, "seconds": seconds}

    warm = build_causal_lm(prof.student, tokenizer, seed=run.seed, dtype=run.weights_dtype("student_sft")).to(run.device)
    w = train_sft(warm, tokenizer, to_sft_dataset(rows, seed=run.seed), steps=prof.distil_vs_rl_warmup,
                  scheduler="constant_with_warmup", warmup_ratio=0.05, **sft_kw)   # no decay: the arms go on at this LR
    arms = {"warm-up": outcome(warm, w.seconds, w.tokens, prof.distil_vs_rl_warmup)}

    sft_model = copy_model(warm)
    sft = train_sft(sft_model, tokenizer, to_sft_dataset(rows, seed=run.seed + 1), steps=prof.distil_vs_rl_steps,
                    scheduler="constant", warmup_ratio=0.0, **{**sft_kw, "lr": prof.rl_lr})
    arms["sft"] = outcome(sft_model, sft.seconds, sft.tokens, prof.distil_vs_rl_steps)
    release(sft_model)
    budget = sft.tokens
    cap = 4 * prof.distil_vs_rl_steps   # an upper bound on steps: the token budget stops each RL arm first

    rl_run = dataclasses.replace(run, profile=prof.replace(grpo_steps=cap, rl_batch_prompts=batch // prof.num_generations,
                                                           grpo_iterations=1, rl_warmup_steps=0, lora_rank=None))
    with reloaded_policy(warm, device=run.device, dtype=run.weights_dtype("student_sft")) as policy:
        grpo = train_grpo(rl_run, policy, tokenizer, train_problems(run), eval_fn=None, eval_every=0,
                          reward="verifier", format_bonus=False, token_budget=budget, progress=progress)
    arms["grpo"] = outcome(policy, grpo["seconds"], grpo["tokens"], grpo["steps"])
    arms["grpo"]["zero_variance"] = sum(grpo["zero_variance"]) / max(1, len(grpo["zero_variance"]))
    release(policy)

    op_model = copy_model(warm)
    op = onpolicy_distill(run, op_model, teacher_model, tokenizer, [p.prompt for p in train_problems(run)],
                          steps=cap, lr=prof.rl_lr, batch_size=batch, token_budget=budget, progress=progress)
    arms["onpolicy"] = outcome(op_model, op["seconds"], op["tokens"], op["steps"])
    release(op_model, warm)
    result = {"warmup_steps": prof.distil_vs_rl_warmup, "budget_tokens": budget, "arms": arms}
    save_record(run, "distil_vs_rl", result, seconds=sum(a["seconds"] for a in arms.values()))
    return result


def run_ablation(run: Run, rows: dict[str, list[dict]], *, progress: bool = True) -> dict[str, tuple]:
    """Train one student per arm of :data:`ABLATIONS` on ``rows[arm]``; ``{arm: (model, sft, test_eval)}``.
    Each arm leaves the GPU when it is done (a no-op on a CPU): one student trains at a time.

    Saved as the replay record ``student_arms`` (curves and test evaluations, no weights): in classroom
    replay it is loaded instead; the arm that was shipped gets the saved ``student``'s weights, the
    others ``None`` (nothing after the choice needs them)."""
    import dataclasses

    from .models import release
    from .replay import load_record, save_record
    from .time_plan import check_stage

    if (saved := load_record(run, "student_arms")) is not None:
        shipped, model = _saved_student(run)
        trained = {arm: (model if arm == shipped else None, _sft_result(r["sft"]), EvalResult(**r["eval"]))
                   for arm, r in saved.items()}
        for arm, (_, sft, ev) in trained.items():
            say(_arm_line(arm, sft, ev))
        return trained
    check_stage(run, "student_sft")   # before loading: a plan over the GPU's memory stops here
    trained = {}
    for arm in ABLATIONS:
        model, sft, ev = train_student(run, rows[arm], curriculum=arm == "curriculum", progress=progress)
        release(model)
        trained[arm] = (model, sft, ev)
        say(_arm_line(arm, sft, ev))
    save_record(run, "student_arms", {arm: {"sft": dataclasses.asdict(sft), "eval": dataclasses.asdict(ev)}
                                      for arm, (_, sft, ev) in trained.items()},
                seconds=sum(t[1].seconds for t in trained.values()))
    return trained


def _saved_student(run: Run) -> tuple[str, object]:
    """Classroom replay: the arm the saved ``student`` was chosen from, and its weights."""
    from .artifacts import mismatch, read_manifest
    from .models import load_model_artifact
    from .replay import missing

    if (why := mismatch(run.name, "student", seed=run.seed, fingerprint=run.fingerprint("student"))) is not None:
        raise missing(run, "student", why)
    model, _ = load_model_artifact(run.name, "student", device=run.device, dtype=run.weights_dtype("student_sft"))
    return read_manifest(run.name, "student")["config"]["arm"], model


def _sft_result(saved: dict) -> SFTResult:
    """An :class:`SFTResult` from its JSON form (the curves' pairs come back as tuples)."""
    return SFTResult(**{**saved, "losses": [tuple(x) for x in saved["losses"]],
                        "evals": [tuple(x) for x in saved["evals"]]})


def choose_arm(trained: dict[str, tuple]) -> str:
    """The arm to ship, chosen on *validation* among those a real pipeline can have (ground
    truth and unfiltered data are the ablation's references, not candidates)."""
    return max(["filtered", "curriculum"], key=lambda a: best_val(trained[a][1]))


def publish_student(run: Run, trained: dict[str, tuple], arm: str) -> dict:
    """Save the ``arm`` student as the ``student`` artifact and write every arm's figures
    (test accuracy, best validation accuracy) to ``results.json``; returns the ``student`` section.
    In classroom replay nothing is saved: the saved ``student`` must be the one chosen from ``arm``."""
    from .artifacts import read_manifest, update_results
    from .models import count_params
    from .replay import missing, replaying

    model, _, ev = trained[arm]
    if replaying():   # classroom replay: the saved student is this run's – if it was chosen from this arm
        shipped = read_manifest(run.name, "student")["config"].get("arm")
        if model is None or shipped != arm:
            raise missing(run, "student", f"the {shipped} arm's, not the {arm} arm's")
    else:
        save_student(run, model, student_tokenizer(run), ev, arm)
    params = count_params(model)
    section = {"params": params, "arm": arm,
               **{f"acc_{a}": round(t[2].accuracy, 4) for a, t in trained.items()},
               **{f"val_acc_{a}": round(best_val(t[1]), 4) for a, t in trained.items()}}
    update_results(run.name, {"student": section})
    return section


def build_student(run: Run) -> str:
    """Notebook 04's section 1 without the notebook: train every arm, choose on validation,
    save the ``student`` and its figures. Needs ``distill_data``. Returns the chosen arm."""
    trained = run_ablation(run, ablation_rows(run))
    arm = choose_arm(trained)
    publish_student(run, trained, arm)
    return arm


def _arm_line(arm: str, sft: SFTResult, ev: EvalResult):
    """One trained arm, as the ablation cell prints it."""
    return msg("{arm:12} best validation {val:.1%} – test {test:.1%}  ({seconds:.0f} s)", arm=arm, val=best_val(sft),
               test=ev.accuracy, seconds=sft.seconds)


def best_val(result: SFTResult) -> float:
    """The best validation accuracy on an arm's learning curve (the checkpoint that was kept)."""
    return max(acc for _, acc in result.evals)
