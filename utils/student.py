"""Notebook 04: the student – a ~5× smaller Qwen2 fine-tuned on the teacher's filtered data.

R1's distilled students were trained with SFT only (no RL), 2–3 epochs, LR 1e-4 for the
1.5B model. A tiny model from scratch wants a higher LR (the profile's ``student_lr``). The
ablation trains the *same* student, with the *same* step budget, on four datasets.
"""

from __future__ import annotations

from .config import Run
from .generation import EvalResult, evaluate
from .models import build_causal_lm, save_model_artifact
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
    from .pipeline import ensure_distill_data
    from .teacher import train_problems

    ensure_distill_data(run)
    filtered = list(load_distill_data(run, "distill_data"))
    unfiltered = list(load_distill_data(run, "distill_data_unfiltered"))
    groundtruth = [p.to_dict() for p in train_problems(run)]
    return {"filtered": filtered, "unfiltered": unfiltered, "groundtruth": groundtruth,
            "curriculum": filtered}


def train_student(run: Run, rows: list[dict], *, curriculum: bool = False, packing: bool = False,
                  progress: bool = True) -> tuple[object, SFTResult, EvalResult]:
    """Build the student, fine-tune it on ``rows``, evaluate it on the eval split.

    The student reads the teacher's *text* with its own tokenizer (:func:`student_tokenizer`).
    """
    from .teacher import eval_problems

    prof = run.profile
    tokenizer = student_tokenizer(run)
    model = build_causal_lm(prof.student, tokenizer, seed=run.seed).to(run.device)
    on_gpu = run.device == "cuda"
    import torch

    result = train_sft(model, tokenizer, to_sft_dataset(rows, curriculum=curriculum, seed=run.seed),
                       steps=prof.student_sft_steps, lr=prof.student_lr, batch_size=prof.sft_batch_size,
                       seed=run.seed, curriculum=curriculum, packing=packing, max_length=prof.sft_max_length,
                       bf16=on_gpu and run.dtype == torch.bfloat16, fp16=on_gpu and run.dtype == torch.float16,
                       progress=progress)
    ev = evaluate(model, tokenizer, eval_problems(run), max_new_tokens=prof.max_new_tokens)
    return model, result, ev


def student_tokenizer(run: Run):
    """The student's own tokenizer: the character tokenizer (tiny), its checkpoint's (colab)."""
    from .pipeline import ensure_tokenizer
    from .tokenizer import load_tokenizer

    return load_tokenizer(ensure_tokenizer(run, "student"))


def save_student(run: Run, model, tokenizer, ev: EvalResult, arm: str) -> None:
    """Save the chosen student as the ``student`` artifact."""
    save_model_artifact(run.name, "student", model, tokenizer, seed=run.seed,
                        config={"arm": arm, "steps": run.profile.student_sft_steps, "lr": run.profile.student_lr},
                        metrics={"acc": ev.accuracy, "acc_per_family": ev.per_family})


def build_student(run: Run) -> None:
    """Notebook 04 without the notebook: train on the filtered data and save ``student``."""
    model, _, ev = train_student(run, ablation_rows(run)["filtered"])
    save_student(run, model, student_tokenizer(run), ev, "filtered")
