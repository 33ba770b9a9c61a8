"""Notebook 02: the teacher – warm-up SFT on ground-truth chains of thought, then RL.

The warm-up is stopped early on purpose (a fixed step budget from the profile), so the
teacher is good but imperfect and reinforcement learning has room to improve it.
"""

from __future__ import annotations

from .artifacts import artifact_path
from .config import Run
from .generation import EvalResult, evaluate
from .models import build_causal_lm, save_model_artifact
from .sft import SFTResult, to_sft_dataset, train_sft
from .tasks import Problem, make_problems


def train_problems(run: Run) -> list[Problem]:
    """The training problems of this run (they depend on ``run.seed``)."""
    p = run.profile
    return make_problems(p.n_train, "train", seed=run.seed, families=p.families,
                         difficulties=p.difficulties)


def eval_problems(run: Run) -> list[Problem]:
    """The held-out problems every notebook evaluates on (the same for every seed)."""
    p = run.profile
    return make_problems(p.n_eval, "eval", seed=p.eval_seed, families=p.families,
                         difficulties=p.difficulties)


def train_teacher_sft(run: Run, *, eval_every: int = 0,
                      progress: bool = True) -> tuple[object, SFTResult, EvalResult]:
    """Build the teacher from config, fine-tune it on ground-truth CoT, evaluate, save.

    Saves the ``teacher_sft`` artifact (with its eval accuracy in the manifest) and returns
    ``(model, sft_result, eval_result)``. ``eval_every`` > 0 adds an accuracy curve.
    """
    from .pipeline import ensure_tokenizer
    from .tokenizer import load_tokenizer

    prof = run.profile
    tokenizer = load_tokenizer(ensure_tokenizer(run))
    model = build_causal_lm(prof.teacher, tokenizer, seed=run.seed).to(run.device)
    evals = eval_problems(run)

    def accuracy(m) -> float:
        return evaluate(m, tokenizer, evals, max_new_tokens=prof.max_new_tokens).accuracy

    result = train_sft(model, tokenizer, to_sft_dataset(train_problems(run), seed=run.seed),
                       steps=prof.teacher_sft_steps, lr=prof.sft_lr, batch_size=prof.sft_batch_size,
                       seed=run.seed, eval_fn=accuracy if eval_every else None,
                       eval_every=eval_every, progress=progress)
    final = evaluate(model, tokenizer, evals, max_new_tokens=prof.max_new_tokens)
    save_model_artifact(run.name, "teacher_sft", model, tokenizer, seed=run.seed,
                        config={"steps": prof.teacher_sft_steps, "lr": prof.sft_lr,
                                "batch_size": prof.sft_batch_size},
                        metrics={"acc": final.accuracy, "acc_per_family": final.per_family,
                                 "sft_seconds": result.seconds})
    print(f"teacher_sft: {final.summary()} – saved to {artifact_path(run.name, 'teacher_sft')}")
    return model, result, final
