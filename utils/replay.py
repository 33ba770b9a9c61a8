"""Classroom replay: the long cells load a saved run instead of training (``R1LAB_REPLAY=1``).

A 90-minute class cannot wait 13 minutes for notebook 04's ablation. With ``R1LAB_REPLAY=1`` every
cell that trains for more than about 20 s on two cores – the warm-up, the reward model, PPO, GRPO,
R1-Zero, the teacher's sampling, the student arms and the distil-or-RL comparison – loads what the
same stage saved when it last ran with this profile and seed, and says so in its output. Without the
switch the same cells train for real (and save what a replay needs).

The saved runs are the per-stage store of notebook 02 (model artifacts with their histories, see
:func:`utils.models.saved_stage`) plus one *record* per stage that saves no model (``replay_<stage>``:
the figures and curves its cells show, as JSON). ``make class`` makes them all: it runs every notebook
once. A record is only loaded when its fingerprint matches this run (the profile, the seed, the
functions a notebook passed in); a missing or mismatched one stops the cell with :class:`ReplayMissing`
– a classroom never silently trains for minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .config import Run

ENV = "R1LAB_REPLAY"
#: Stages saved as a replay record (the others are model artifacts of the stage store).
RECORDS = ("r1_zero", "samples", "student_arms", "distil_vs_rl")


class ReplayMissing(RuntimeError):
    """Replay mode, and the saved run a cell needs is missing or belongs to another run."""


def replaying() -> bool:
    """Whether ``R1LAB_REPLAY`` asks for classroom replay ("1", "true", "yes"; "0", "", unset: train)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"{ENV}={value!r}: set it to 1 (replay saved runs) or 0 (train), or unset it")


def missing(run: Run, stage: str, why: str) -> ReplayMissing:
    """The error a replaying cell stops with when the saved run of ``stage`` cannot serve this run."""
    return ReplayMissing(
        f"Classroom replay ({ENV}=1): the saved run of stage '{stage}' is {why} (profile {run.name!r}, "
        f"seed {run.seed}) – run `make class` first (PROFILE={run.name} SEED={run.seed}: it trains every stage "
        f"once and saves it), or unset {ENV} to train this cell here.")


def announce(stage: str, seconds: float | None = None) -> None:
    """The line a replayed cell prints: what was loaded and what training it would have taken."""
    from .messages import msg, say

    took = msg(" (training took {seconds:.0f} s when it was saved)", seconds=seconds) if seconds else ""
    say(msg("▶ classroom replay: stage '{stage}' loaded from the saved run, not trained{took}. Unset {env} to train it "
            "live.", stage=stage, took=took, env=ENV))


def record_fingerprint(run: Run, stage: str) -> str:
    """What a record was made from: the stage, every profile field, the seed and the hashes of the
    functions a notebook passed in (:attr:`utils.config.Run.functions`)."""
    parts = {"stage": stage, "profile": run.profile.to_dict(), "seed": run.seed, "functions": run.functions}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _name(stage: str) -> str:
    if stage not in RECORDS:
        raise ValueError(f"unknown replay record {stage!r}; choose one of {RECORDS}")
    return f"replay_{stage}"


def save_record(run: Run, stage: str, record: dict[str, Any], seconds: float | None = None) -> Path:
    """Save what stage ``stage``'s cells show (JSON-able: lists, numbers, strings) for a replay."""
    from .artifacts import artifact_path, atomic_artifact

    with atomic_artifact(run.name, _name(stage), seed=run.seed, fingerprint=record_fingerprint(run, stage),
                         metrics={"seconds": seconds}) as tmp:
        (tmp / "record.json").write_text(json.dumps(record, default=float))
    return artifact_path(run.name, _name(stage))


def load_record(run: Run, stage: str) -> dict[str, Any] | None:
    """In replay mode, the saved record of ``stage`` (and the line saying so); ``None`` when not
    replaying. Raises :class:`ReplayMissing` when it is missing or made by another run."""
    from .artifacts import artifact_path, mismatch, read_manifest

    if not replaying():
        return None
    why = mismatch(run.name, _name(stage), seed=run.seed, fingerprint=record_fingerprint(run, stage))
    if why is not None:
        raise missing(run, stage, why)
    announce(stage, read_manifest(run.name, _name(stage))["metrics"].get("seconds"))
    return json.loads((artifact_path(run.name, _name(stage)) / "record.json").read_text())


def pack_size(profile: str) -> dict[str, int]:
    """Bytes on disk per artifact of ``profile``: what a replay pack to copy to a room holds."""
    from .artifacts import profile_dir

    root = profile_dir(profile)
    sizes = {}
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []:
        sizes[path.name] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return sizes


def pack_needs(run: Run) -> list[str]:
    """What classroom replay of the main notebooks loads for ``run``: the stages of the store and the
    records (those the profile turns on)."""
    prof = run.profile
    stages = ["teacher_sft", "reward_model", "teacher_ppo_rm", "teacher_ppo", "teacher_grpo", "teacher",
              "distill_data", "distill_data_unfiltered", "student"]
    if not isinstance(prof.teacher, str):   # a model from config reads notebook 01's tokenizer
        stages.insert(0, "tokenizer")
    records = ["samples", "student_arms"]
    records += ["r1_zero"] if prof.r1_zero else []
    records += ["distil_vs_rl"] if prof.distil_vs_rl_steps and not isinstance(prof.student, str) else []
    return stages + [f"replay_{r}" for r in records]


def pack_missing(run: Run) -> list[str]:
    """The parts of the replay pack that are missing or made by another run ([] when it is complete)."""
    from .artifacts import mismatch

    out = []
    for name in pack_needs(run):
        expected = (record_fingerprint(run, name.removeprefix("replay_")) if name.startswith("replay_")
                    else run.fingerprint(name))
        if mismatch(run.name, name, seed=run.seed, fingerprint=expected) is not None:
            out.append(name)
    return out


def pack_bytes(run: Run) -> int:
    """The size on disk of the replay pack of ``run`` (what to copy to a room's laptops)."""
    sizes = pack_size(run.name)
    return sum(sizes.get(name, 0) for name in pack_needs(run))
