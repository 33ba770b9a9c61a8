"""Notebook 04: the student – a ~5× smaller Qwen2 fine-tuned on the teacher's filtered data.

R1's distilled students were trained with SFT only (no RL), 2–3 epochs, LR 1e-4 for the
1.5B model. A tiny model from scratch wants a higher LR (the profile's ``student_lr``). The
ablation trains the *same* student, with the *same* step budget, on four datasets.
"""

from __future__ import annotations

from .config import Run, stage_settings
from .generation import EvalResult, evaluate
from .models import build_causal_lm, save_model_artifact
from .progress import calm_trainer_progress
from .sft import SFTResult, to_sft_dataset, train_sft

ABLATIONS = {
    "filtered": "teacher data after the full filter funnel (notebook 03)",
    "unfiltered": "every teacher sample, right or wrong",
    "groundtruth": "the task world's ground-truth chains of thought (an upper bound no real pipeline has)",
    "curriculum": "filtered data, read easy → hard by difficulty",
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
                  progress: bool = True) -> tuple[object, SFTResult, EvalResult]:
    """Build the student, fine-tune it on ``rows``, evaluate it on the test split.

    Every arm gets the same budget, ``student_sft_steps``, long enough to converge: validation
    accuracy is measured every ``student_eval_every`` steps (the learning curve in
    ``result.evals``), an arm stops early once ``student_patience`` evaluations in a row bring
    no improvement (it has converged), and the best checkpoint *on validation* is kept – so an
    arm that overfits its few rows is not punished for it. :func:`best_val` reads that
    checkpoint's validation accuracy off the curve; the returned evaluation is on test.
    The student reads the teacher's *text* with its own tokenizer (:func:`student_tokenizer`).
    """
    from .splits import test_problems, val_problems
    from .teacher import accuracy_on

    prof = run.profile
    tokenizer = student_tokenizer(run)
    stage = stage_settings(prof, "student_sft")
    model = build_causal_lm(prof.student, tokenizer, seed=run.seed, dtype=run.weights_dtype("student_sft")).to(run.device)
    result = train_sft(model, tokenizer, to_sft_dataset(rows, curriculum=curriculum, seed=run.seed),
                       steps=prof.student_sft_steps, lr=prof.student_lr, batch_size=stage.batch,
                       gradient_checkpointing=stage.gradient_checkpointing,
                       seed=run.seed, curriculum=curriculum, packing=packing, max_length=prof.sft_max_length,
                       eval_fn=accuracy_on(val_problems(run), tokenizer, prof.max_new_tokens, prof.gen_batch_size),
                       eval_every=prof.student_eval_every, keep_best=True, patience=prof.student_patience,
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
                     progress: bool = True) -> dict:
    """On-policy distillation with TRL's ``DistillationTrainer``; trains ``student_model`` in place.

    Each step the *student* samples a completion for ``batch_size`` prompts, and the teacher
    scores every token of it with its logits. The loss is the generalised Jensen-Shannon
    divergence between the two next-token distributions on the student's own tokens; with
    ``beta = 1`` it is the reverse KL, KL(student ‖ teacher), summed over the vocabulary:

        L = Σ_t Σ_v π_s(v | y_<t) · (log π_s(v | y_<t) − log π_t(v | y_<t)),  y ~ π_s

    It needs prompts only – no chains of thought, no verifier – but a shared vocabulary
    (``DistillationTrainer`` raises a ``ValueError`` when the vocabulary sizes differ).
    Returns ``{"seconds", "log"}``.
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
        trainer = DistillationTrainer(model=student_model, teacher_model=teacher_model, args=args,
                                      train_dataset=dataset, processing_class=tokenizer)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    student_model.eval()
    return {"seconds": seconds, "log": trainer.state.log_history}


def compare_onpolicy(run: Run, base_student, teacher_model, tokenizer, sft_rows: list[dict],
                     prompts: list[str], *, steps: int, lr: float, batch_size: int,
                     progress: bool = True) -> dict:
    """Same start, same budget: more SFT on the distilled data vs on-policy distillation.

    Both arms start from a copy of ``base_student`` and take ``steps`` optimiser steps of
    ``batch_size`` sequences at a constant ``lr``: SFT reads the teacher's filtered chains of
    thought, on-policy distillation samples its own and is graded by the teacher's logits.
    Returns ``{arm: {"accuracy", "seconds"}}`` for ``start``, ``sft`` and ``onpolicy``.
    """
    from .models import copy_model
    from .splits import test_problems
    from .teacher import accuracy_on

    accuracy = accuracy_on(test_problems(run), tokenizer, run.profile.max_new_tokens, run.profile.gen_batch_size)

    out = {"start": {"accuracy": accuracy(base_student), "seconds": 0.0}}
    sft_student = copy_model(base_student)
    sft = train_sft(sft_student, tokenizer, to_sft_dataset(sft_rows, seed=run.seed), steps=steps, lr=lr,
                    batch_size=batch_size, seed=run.seed, scheduler="constant", warmup_ratio=0.0,
                    max_length=run.profile.sft_max_length, progress=progress)
    out["sft"] = {"accuracy": accuracy(sft_student), "seconds": sft.seconds}
    op_student = copy_model(base_student)
    op = onpolicy_distill(run, op_student, teacher_model, tokenizer, prompts, steps=steps, lr=lr,
                          batch_size=batch_size, progress=progress)
    out["onpolicy"] = {"accuracy": accuracy(op_student), "seconds": op["seconds"]}
    return out


def run_ablation(run: Run, rows: dict[str, list[dict]], *, progress: bool = True) -> dict[str, tuple]:
    """Train one student per arm of :data:`ABLATIONS` on ``rows[arm]``; ``{arm: (model, sft, test_eval)}``.
    Each arm leaves the GPU when it is done (a no-op on a CPU): one student trains at a time."""
    from .models import release
    from .time_plan import check_stage

    check_stage(run, "student_sft")   # before loading: a plan over the GPU's memory stops here
    trained = {}
    for arm in ABLATIONS:
        model, sft, ev = train_student(run, rows[arm], curriculum=arm == "curriculum", progress=progress)
        release(model)
        trained[arm] = (model, sft, ev)
        print(f"{arm:12} best validation {best_val(sft):.1%} – test {ev.accuracy:.1%}  ({sft.seconds:.0f} s)",
              flush=True)
    return trained


def choose_arm(trained: dict[str, tuple]) -> str:
    """The arm to ship, chosen on *validation* among those a real pipeline can have (ground
    truth and unfiltered data are the ablation's references, not candidates)."""
    return max(["filtered", "curriculum"], key=lambda a: best_val(trained[a][1]))


def publish_student(run: Run, trained: dict[str, tuple], arm: str) -> dict:
    """Save the ``arm`` student as the ``student`` artifact and write every arm's figures
    (test accuracy, best validation accuracy) to ``results.json``; returns the ``student`` section."""
    from .artifacts import update_results
    from .models import count_params

    model, _, ev = trained[arm]
    save_student(run, model, student_tokenizer(run), ev, arm)
    section = {"params": count_params(model), "arm": arm,
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


def best_val(result: SFTResult) -> float:
    """The best validation accuracy on an arm's learning curve (the checkpoint that was kept)."""
    return max(acc for _, acc in result.evals)
