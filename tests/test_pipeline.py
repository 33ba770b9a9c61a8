"""Artifacts belong to the run that made them; results.json belongs to the notebooks' latest
runs; the package's imports point one way."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from utils import artifacts, pipeline
from utils.config import ARTIFACTS, NOT_IN_ARTIFACTS, Profile, make_run

UTILS = Path(__file__).resolve().parents[1] / "utils"


@pytest.fixture
def fake_teacher_sft(monkeypatch):
    """A teacher_sft builder that writes a marker instead of training (counts its calls)."""
    calls = []

    def build(run):
        calls.append(run.seed)
        with artifacts.atomic_artifact(run.name, "teacher_sft", seed=run.seed,
                                       fingerprint=run.fingerprint("teacher_sft")) as tmp:
            (tmp / "seed.txt").write_text(str(run.seed))

    monkeypatch.setitem(pipeline.BUILDERS, "teacher_sft", build)
    return calls


def test_ensure_rebuilds_an_artifact_made_for_another_seed(artifacts_tmp, fake_teacher_sft, capsys):
    run0, run1 = make_run("tiny", 0, quiet=True), make_run("tiny", 1, quiet=True)
    pipeline.ensure(run0, "teacher_sft")
    pipeline.ensure(run0, "teacher_sft")          # same run: reused
    assert fake_teacher_sft == [0]
    path = pipeline.ensure(run1, "teacher_sft")   # notebook 04 with SEED=1 must not read seed 0's
    assert fake_teacher_sft == [0, 1] and (path / "seed.txt").read_text() == "1"
    assert "made with seed 0 (this run: seed 1)" in capsys.readouterr().out


def test_ensure_rebuilds_after_a_configuration_change(artifacts_tmp, fake_teacher_sft, capsys):
    run = make_run("tiny", 0, quiet=True)
    pipeline.ensure(run, "teacher_sft")
    longer = dataclasses.replace(run, profile=run.profile.replace(teacher_sft_steps=999))
    pipeline.ensure(longer, "teacher_sft")
    assert fake_teacher_sft == [0, 0] and "another configuration" in capsys.readouterr().out
    # a field the artifact does not depend on changes nothing
    pipeline.ensure(dataclasses.replace(longer, profile=longer.profile.replace(student_lr=1.0)), "teacher_sft")
    assert fake_teacher_sft == [0, 0]


def test_fingerprints_chain_through_inputs():
    run = make_run("tiny", 0, quiet=True)
    other_rm = dataclasses.replace(run, profile=run.profile.replace(rm_steps=1))
    assert run.fingerprint("teacher_sft") == other_rm.fingerprint("teacher_sft")
    for downstream in ("reward_model", "teacher", "distill_data", "student"):  # all read the reward model
        assert run.fingerprint(downstream) != other_rm.fingerprint(downstream), downstream
    assert run.fingerprint("tokenizer") == make_run("tiny", 7, quiet=True).fingerprint("tokenizer")


def test_every_profile_field_is_accounted_for():
    """A new field must say which artifacts depend on it (or that none does)."""
    claimed = {f for spec in ARTIFACTS.values() for f in spec.fields} | set(NOT_IN_ARTIFACTS)
    fields = {f.name for f in dataclasses.fields(Profile)}
    assert fields - claimed == set() and claimed - fields == set()


def test_every_artifact_has_a_builder_and_known_inputs():
    assert set(pipeline.BUILDERS) == set(ARTIFACTS)
    for name, spec in ARTIFACTS.items():
        assert set(spec.inputs) <= set(ARTIFACTS), name


def test_a_rerun_notebook_replaces_its_own_results_only(artifacts_tmp):
    artifacts.begin_results("tiny", "02", seed=0, commit="abc")
    artifacts.update_results("tiny", {"teacher": {"acc": 0.8}})
    artifacts.begin_results("tiny", "04", seed=0, commit="abc")
    artifacts.update_results("tiny", {"student": {"acc_filtered": 0.7, "onpolicy": {"acc_sft": 0.6}}})
    artifacts.begin_results("tiny", "04", seed=1, commit="def")   # notebook 04 reruns, no on-policy cell
    results = artifacts.update_results("tiny", {"student": {"acc_filtered": 0.75}})
    assert results["student"] == {"acc_filtered": 0.75}             # the stale key is gone
    assert results["teacher"] == {"acc": 0.8}                       # notebook 02's figures stay
    runs = results[artifacts.PROVENANCE]
    assert runs["04"]["seed"] == 1 and runs["04"]["commit"] == "def" and runs["04"]["keys"] == ["student.acc_filtered"]
    assert runs["02"]["seed"] == 0
    assert "_runs" not in artifacts.format_results(results)


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
    return out & {p.stem for p in UTILS.glob("*.py")}


def test_imports_point_one_way():
    graph = {p.stem: _imports(p) for p in UTILS.glob("*.py")}
    assert graph["config"] == set(), "config is the bottom: it imports nothing from the package"
    users_of_pipeline = {m for m, deps in graph.items() if "pipeline" in deps}
    assert users_of_pipeline <= {"cli", "runner", "study", "bench", "__init__"}, users_of_pipeline

    def reaches(start, target, seen=()):
        return any(d == target or (d not in seen and reaches(d, target, (*seen, d))) for d in graph[start])
    cycles = [m for m in graph if reaches(m, m)]
    assert cycles == [], f"import cycles through {cycles}"


def test_make_test_uses_its_own_artifacts_root():
    import subprocess

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "-W", "pyproject.toml", "test"], cwd=root, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if "pytest" in l and "nbval" in l)
    assert "R1LAB_ARTIFACTS=" in line and "artifacts/test-run" in line
