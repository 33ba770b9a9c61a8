"""Classroom replay (utils/replay.py): records saved by a real run, loaded only in replay mode and only by
the run they belong to; anything missing stops a replaying cell with "run `make class` first"."""

from __future__ import annotations

import pytest
import torch

from utils import replay
from utils.config import make_run
from utils.generation import EvalResult
from utils.sft import SFTResult


@pytest.fixture
def run(artifacts_tmp, monkeypatch):
    monkeypatch.delenv(replay.ENV, raising=False)
    return make_run("tiny", 0, quiet=True)


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_the_switch(value, on, monkeypatch):
    monkeypatch.setenv(replay.ENV, value)
    assert replay.replaying() is on


def test_a_bad_switch_names_the_choices(monkeypatch):
    monkeypatch.setenv(replay.ENV, "maybe")
    with pytest.raises(ValueError, match="set it to 1"):
        replay.replaying()


def test_a_record_is_loaded_only_in_replay_and_only_by_its_run(run, monkeypatch, capsys):
    replay.save_record(run, "samples", {"rows": [{"prompt": "Q:1+1=", "completion": "A:2"}], "stats": {"seconds": 61.0}},
                       seconds=61.0)
    assert replay.load_record(run, "samples") is None            # training mode: the cell trains
    monkeypatch.setenv(replay.ENV, "1")
    assert replay.load_record(run, "samples")["rows"][0]["completion"] == "A:2"
    out = capsys.readouterr().out
    assert "▶ classroom replay: stage 'samples' loaded from the saved run, not trained" in out and "61 s" in out
    other_seed = make_run("tiny", 1, quiet=True)
    with pytest.raises(replay.ReplayMissing, match="made with seed 0 .*run `make class` first"):
        replay.load_record(other_seed, "samples")
    other_profile_field = make_run("tiny", 0, quiet=True)
    other_profile_field.profile = other_profile_field.profile.replace(samples_per_prompt=99)
    with pytest.raises(replay.ReplayMissing, match="another configuration"):
        replay.load_record(other_profile_field, "samples")
    with pytest.raises(replay.ReplayMissing, match="'student_arms' is missing"):
        replay.load_record(run, "student_arms")
    with pytest.raises(ValueError, match="unknown replay record"):
        replay.save_record(run, "warmup", {})


def test_functions_a_notebook_passed_in_are_part_of_a_record(run, monkeypatch):
    replay.save_record(run, "samples", {"rows": [], "stats": {}})
    run.functions["filter_stages"] = "0123456789abcdef"
    monkeypatch.setenv(replay.ENV, "1")
    with pytest.raises(replay.ReplayMissing):
        replay.load_record(run, "samples")


def test_the_stage_store_and_ensure_stop_instead_of_training_in_replay(run, monkeypatch):
    from utils import pipeline
    from utils.models import saved_stage

    assert saved_stage(run, "teacher_sft") is None          # training mode: train it
    monkeypatch.setenv(replay.ENV, "1")
    with pytest.raises(replay.ReplayMissing, match="'teacher_sft' is missing.*make class"):
        saved_stage(run, "teacher_sft")
    monkeypatch.setitem(pipeline.BUILDERS, "tokenizer", lambda r: pytest.fail("replay must not build"))
    with pytest.raises(replay.ReplayMissing, match="'tokenizer'"):
        pipeline.ensure(run, "tokenizer")


def fake_arm(arm):
    sft = SFTResult(losses=[(1, 2.0), (2, 1.5)], evals=[(1, 0.25), (2, 0.5)], seconds=3.0, tokens_per_s=10.0, tokens=64.0)
    return torch.nn.Linear(1, 1), sft, EvalResult(0.5, {"arith": 0.5}, completions=["A:1", "A:2"], correct=[True, False])


def test_the_ablation_is_replayed_from_its_record(run, monkeypatch, capsys):
    from utils import artifacts, student

    monkeypatch.setattr(student, "train_student", lambda r, rows, curriculum=False, progress=True: fake_arm(None))
    trained = student.run_ablation(run, {arm: [] for arm in student.ABLATIONS}, progress=False)
    monkeypatch.setenv(replay.ENV, "1")
    monkeypatch.setattr(student, "train_student", lambda *a, **k: pytest.fail("replay must not train"))
    with pytest.raises(replay.ReplayMissing, match="'student' is missing"):   # the shipped arm's weights
        student.run_ablation(run, {arm: [] for arm in student.ABLATIONS}, progress=False)
    saved = torch.nn.Linear(2, 2)
    monkeypatch.setattr(student, "_saved_student", lambda r: ("curriculum", saved))
    again = student.run_ablation(run, {arm: [] for arm in student.ABLATIONS}, progress=False)
    assert "▶ classroom replay: stage 'student_arms'" in capsys.readouterr().out
    for arm in student.ABLATIONS:
        assert again[arm][0] is (saved if arm == "curriculum" else None)
        assert again[arm][1] == trained[arm][1] and again[arm][2] == trained[arm][2]
    read = artifacts.read_manifest
    monkeypatch.setattr(artifacts, "read_manifest", lambda p, n: {"config": {"arm": "curriculum"}} if n == "student"
                        else read(p, n))
    monkeypatch.setattr(student, "save_student", lambda *a: pytest.fail("replay must not save"))
    assert student.publish_student(run, again, "curriculum")["params"] == 6
    with pytest.raises(replay.ReplayMissing, match="the curriculum arm's, not the filtered arm's"):
        student.publish_student(run, again, "filtered")


def test_sampling_is_replayed_from_its_record(run, monkeypatch):
    from utils import distill_data as dd

    rows = [{"prompt": "Q:1+2=", "completion": "<think>1+2=3</think>A:3", "answer": "3"}]
    monkeypatch.setattr(dd, "sample_candidates", lambda *a, **k: (rows, {"seconds": 1.0, "tokens": 9, "tokens_per_s": 9.0}))
    first = dd.sample_stage(run, None, None, [], progress=False)
    monkeypatch.setenv(replay.ENV, "1")
    monkeypatch.setattr(dd, "sample_candidates", lambda *a, **k: pytest.fail("replay must not sample"))
    assert dd.sample_stage(run, None, None, [], progress=False) == first


def test_the_pack_lists_what_is_missing(run):
    needs = replay.pack_needs(run)
    assert {"teacher_sft", "teacher_grpo", "student", "replay_samples", "replay_student_arms"} <= set(needs)
    assert replay.pack_missing(run) == needs
    replay.save_record(run, "samples", {"rows": [], "stats": {}})
    assert "replay_samples" not in replay.pack_missing(run)
    assert replay.pack_bytes(run) > 0


def test_the_runner_replays_into_its_own_folder(artifacts_tmp, monkeypatch):
    import os

    from utils import runner

    monkeypatch.setenv(replay.ENV, "0")   # restored after the test: the runner sets it to 1 for the kernels
    seen = []
    monkeypatch.setattr(runner, "run_notebook", lambda path, profile, seed, out=None: seen.append(
        (path.name, out, os.environ.get(replay.ENV))) or 1.5)
    assert runner.main(["--profile", "tiny", "--seed", "0", "--only", "03", "--replay"]) == 0
    (name, out, env), = seen
    assert name.startswith("03_") and env == "1" and out.name == "replay-notebooks"
    from utils.artifacts import load_results
    results = load_results("tiny")
    assert results["replay_wall_s"] == {"03": 1.5} and "wall_s" not in results
