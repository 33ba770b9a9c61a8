"""Every notebook runs on its own: the top of the package, where artifacts are resolved.

Dependencies point one way: ``config`` ← ``artifacts`` ← the stages (``teacher``, ``reward``,
``distill_data``, ``student``, …) ← ``pipeline``. A stage reads its inputs from the artifacts
folder and never builds them; this module alone knows how each artifact is made:

* :data:`utils.config.ARTIFACTS` – what each artifact is made from (inputs, profile fields);
* :data:`BUILDERS` – the stage function that makes it, the *same* one its notebook calls;
* :func:`ensure` – make sure an artifact of *this run* exists: inputs first, then the artifact,
  rebuilt (with a message) when it is missing or was made for another seed or configuration.

:func:`setup` is every notebook's first call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import artifacts
from .config import ARTIFACTS, Run, make_run, standins_root


def _build_tokenizer(run: Run) -> None:
    from .tokenizer import build_char_tokenizer, save_tokenizer

    with artifacts.atomic_artifact(run.name, "tokenizer", seed=run.seed,
                                   fingerprint=run.fingerprint("tokenizer")) as tmp:
        save_tokenizer(build_char_tokenizer(), tmp)


def _build_teacher_sft(run: Run) -> None:
    from .teacher import train_teacher_sft

    train_teacher_sft(run)


def _build_reward_model(run: Run) -> None:
    from .reward import train_reward_model

    train_reward_model(run)


def _build_teacher(run: Run) -> None:
    from .teacher import build_teacher

    build_teacher(run)


def _build_rl_stage(name: str) -> Callable[[Run], None]:
    def build(run: Run) -> None:
        from . import teacher

        {"teacher_ppo_rm": lambda: teacher.run_ppo(run, use_verifier=False),
         "teacher_ppo": lambda: teacher.run_ppo(run, use_verifier=True),
         "teacher_grpo": lambda: teacher.run_grpo(run)}[name]()
    return build


def _build_distill_data(run: Run) -> None:
    from .distill_data import build_distill_data

    build_distill_data(run)


def _build_student(run: Run) -> None:
    from .student import build_student

    build_student(run)


#: artifact → the function that makes it (its inputs and fields: utils.config.ARTIFACTS)
BUILDERS: dict[str, Callable[[Run], None]] = {
    "tokenizer": _build_tokenizer,
    "teacher_sft": _build_teacher_sft,
    "reward_model": _build_reward_model,
    "teacher": _build_teacher,
    "teacher_ppo_rm": _build_rl_stage("teacher_ppo_rm"),
    "teacher_ppo": _build_rl_stage("teacher_ppo"),
    "teacher_grpo": _build_rl_stage("teacher_grpo"),
    "distill_data": _build_distill_data,
    "distill_data_unfiltered": _build_distill_data,
    "student": _build_student,
}


def ensure(run: Run, name: str) -> Path:
    """The path of artifact ``name`` made for this run (its seed and configuration), building
    it – and first whatever it is made from – when it is missing or belongs to another run (in
    classroom replay, ``R1LAB_REPLAY=1``, it stops with :class:`utils.replay.ReplayMissing` instead)."""
    if name not in ARTIFACTS:
        raise ValueError(f"unknown artifact {name!r}; choose one of {sorted(ARTIFACTS)}")
    from .replay import missing, replaying

    why = artifacts.mismatch(run.name, name, seed=run.seed, fingerprint=run.fingerprint(name))
    if why is not None and replaying():   # a classroom never trains silently for minutes
        raise missing(run, name, why)
    if why is not None:
        for upstream in ARTIFACTS[name].inputs:
            ensure(run, upstream)
        print(f"ℹ artifact '{name}' is {why}: building it now with the code of notebook "
              f"{ARTIFACTS[name].notebook} (run that notebook to see how it is made).", flush=True)
        BUILDERS[name](run)
    return artifacts.artifact_path(run.name, name)


def ensure_tokenizer(run: Run, role: str = "teacher") -> Path | str:
    """Where the tokenizer of ``role`` loads from, after making notebook 01's tokenizer if this
    profile uses it (see :func:`utils.tokenizer.tokenizer_source`)."""
    from .tokenizer import tokenizer_source

    if not isinstance(getattr(run.profile, role, None), str):
        ensure(run, "tokenizer")
    return tokenizer_source(run, role)


def ensure_teacher_sft(run: Run) -> Path:
    """The warm-up SFT teacher (notebook 02, section 1)."""
    return ensure(run, "teacher_sft")


def ensure_reward_model(run: Run) -> Path:
    """The reward model trained on verifier-labelled preference pairs (notebook 02)."""
    return ensure(run, "reward_model")


def ensure_teacher(run: Run) -> Path:
    """The RL-improved teacher that writes the distillation data (notebook 02)."""
    return ensure(run, "teacher")


def ensure_distill_data(run: Run) -> Path:
    """The filtered distillation dataset and its unfiltered twin (notebook 03)."""
    ensure(run, "distill_data_unfiltered")
    return ensure(run, "distill_data")


def ensure_student(run: Run) -> Path:
    """The distilled student (notebook 04)."""
    return ensure(run, "student")


def setup(profile: str | None = None, seed: int | None = None, *, notebook: str | None = None,
          quiet: bool = False, lang: str | None = None) -> Run:
    """Every notebook's first call: offline env, threads, seeds, device (:func:`utils.config.make_run`);
    the colab-dryrun stand-ins when the profile uses them; and, with ``notebook`` ("01" … "05"),
    a fresh section of ``results.json`` for this notebook (:func:`utils.artifacts.begin_results`).

    ``profile``/``seed``/``lang`` come from the notebook's ``parameters`` cell; ``None`` means
    "use ``$R1LAB_PROFILE`` / ``$R1LAB_SEED``, else the defaults" (``lang``: the notebook's folder, else
    ``$R1LAB_LANG``, else English – :func:`utils.messages.language`).
    """
    from .messages import set_language

    set_language(lang)   # the course's language: lang, else the notebook's folder, else $R1LAB_LANG
    run = make_run(profile, seed, quiet=quiet)
    if run.profile.extra.get("standins"):
        from .standins import build_standins

        build_standins(standins_root(), quiet=quiet)  # once: cached in the folder
    if notebook is not None:
        artifacts.begin_results(run.name, notebook, seed=run.seed)
    return run
