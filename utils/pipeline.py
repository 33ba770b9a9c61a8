"""Every notebook runs on its own: ``ensure_*`` loads an artifact, or rebuilds it first.

Each function returns the artifact's path. When the artifact is missing (a fresh clone,
or a notebook opened out of order) it is rebuilt through the *same* ``utils`` function the
earlier notebook uses, with a message saying so – never a shortcut or a stand-in.
"""

from __future__ import annotations

from pathlib import Path

from . import artifacts
from .config import Run


def _say(name: str, notebook: str) -> None:
    print(f"ℹ artifact '{name}' is missing: building it now with the code of notebook {notebook} "
          f"(run that notebook to see how it is made).", flush=True)


def ensure_tokenizer(run: Run, role: str = "teacher") -> Path | str:
    """Where the tokenizer of ``role`` ("teacher", "student" or "reward_model") loads from.

    A model built from config (tiny profile) reads the course's character tokenizer, the
    ``tokenizer`` artifact of notebook 01. A checkpoint (a hub id or a folder: colab) brings its
    own tokenizer, and that id or folder is returned – the student's differs from the teacher's,
    which data distillation allows: the teacher hands over text, not token ids.
    """
    if role not in ("teacher", "student", "reward_model"):
        raise ValueError(f"role must be 'teacher', 'student' or 'reward_model', not {role!r}")
    model = getattr(run.profile, role)
    if isinstance(model, str):
        return model
    if not artifacts.exists(run.name, "tokenizer"):
        from .tokenizer import build_char_tokenizer, save_tokenizer

        _say("tokenizer", "01")
        with artifacts.atomic_artifact(run.name, "tokenizer", seed=run.seed) as tmp:
            save_tokenizer(build_char_tokenizer(), tmp)
    return artifacts.artifact_path(run.name, "tokenizer")


def ensure_teacher_sft(run: Run) -> Path:
    """The warm-up SFT teacher (notebook 02, section 1)."""
    if not artifacts.exists(run.name, "teacher_sft"):
        from .teacher import train_teacher_sft

        _say("teacher_sft", "02")
        train_teacher_sft(run)
    return artifacts.artifact_path(run.name, "teacher_sft")


def ensure_reward_model(run: Run) -> Path:
    """The reward model trained on verifier-labelled preference pairs (notebook 02)."""
    if not artifacts.exists(run.name, "reward_model"):
        from .reward import train_reward_model

        _say("reward_model", "02")
        train_reward_model(run)
    return artifacts.artifact_path(run.name, "reward_model")


def ensure_teacher(run: Run) -> Path:
    """The RL-improved teacher that writes the distillation data (notebook 02)."""
    if not artifacts.exists(run.name, "teacher"):
        from .teacher import build_teacher

        _say("teacher", "02")
        build_teacher(run)
    return artifacts.artifact_path(run.name, "teacher")


def ensure_distill_data(run: Run) -> Path:
    """The filtered distillation dataset and its unfiltered twin (notebook 03)."""
    if not (artifacts.exists(run.name, "distill_data")
            and artifacts.exists(run.name, "distill_data_unfiltered")):
        from .distill_data import build_distill_data

        _say("distill_data", "03")
        build_distill_data(run)
    return artifacts.artifact_path(run.name, "distill_data")


def ensure_student(run: Run) -> Path:
    """The distilled student (notebook 04)."""
    if not artifacts.exists(run.name, "student"):
        from .student import build_student

        _say("student", "04")
        build_student(run)
    return artifacts.artifact_path(run.name, "student")
