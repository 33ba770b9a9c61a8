"""Artifacts are written atomically; results.json merges; a crash leaves the old artifact intact."""

import json

import pytest

from utils import artifacts


def _write(profile, name, text, seed=0):
    with artifacts.atomic_artifact(profile, name, seed=seed, config={"k": 1},
                                   metrics={"acc": 0.5}) as tmp:
        (tmp / "data.txt").write_text(text)


def test_write_and_manifest(artifacts_tmp):
    _write("tiny", "thing", "v1")
    assert artifacts.exists("tiny", "thing")
    man = artifacts.read_manifest("tiny", "thing")
    assert man["profile"] == "tiny" and man["seed"] == 0 and man["config"] == {"k": 1}
    assert man["metrics"] == {"acc": 0.5} and "torch" in man["versions"]
    assert (artifacts_tmp / "tiny" / "thing" / "data.txt").read_text() == "v1"


def test_crash_mid_write_keeps_previous(artifacts_tmp):
    _write("tiny", "thing", "v1")
    with pytest.raises(RuntimeError):
        with artifacts.atomic_artifact("tiny", "thing", seed=0) as tmp:
            (tmp / "data.txt").write_text("half-writ")
            raise RuntimeError("power cut")
    assert (artifacts_tmp / "tiny" / "thing" / "data.txt").read_text() == "v1"
    leftovers = [p.name for p in (artifacts_tmp / "tiny").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_overwrite_replaces(artifacts_tmp):
    _write("tiny", "thing", "v1")
    _write("tiny", "thing", "v2", seed=5)
    assert (artifacts_tmp / "tiny" / "thing" / "data.txt").read_text() == "v2"
    assert artifacts.read_manifest("tiny", "thing")["seed"] == 5


def test_crash_between_renames_is_recovered(artifacts_tmp):
    _write("tiny", "thing", "v1")
    final = artifacts_tmp / "tiny" / "thing"
    final.rename(final.with_name("thing.old"))  # the state right after the first rename
    assert artifacts.exists("tiny", "thing")
    assert (final / "data.txt").read_text() == "v1"


def test_missing_artifact_has_a_clear_error(artifacts_tmp):
    with pytest.raises(FileNotFoundError, match="Run the notebook"):
        artifacts.read_manifest("tiny", "nothing")


def test_results_deep_merge(artifacts_tmp):
    artifacts.update_results("tiny", {"teacher": {"acc_sft": 0.5}, "wall_s": {"01": 3.0}})
    artifacts.update_results("tiny", {"teacher": {"acc_ppo": 0.7}, "wall_s": {"02": 9.0}})
    res = json.loads((artifacts_tmp / "tiny" / "results.json").read_text())
    assert res == {"teacher": {"acc_sft": 0.5, "acc_ppo": 0.7}, "wall_s": {"01": 3.0, "02": 9.0}}
    table = artifacts.format_results(res)
    assert "teacher.acc_ppo" in table and "wall_s.02" in table


def test_teacher_vs_student_table():
    from utils.artifacts import format_teacher_vs_student

    assert format_teacher_vs_student({}) is None
    assert format_teacher_vs_student({"teacher": {"params": 100}}) is None  # before notebook 04
    results = {"teacher": {"params": 1000, "acc": 0.5}, "student": {"params": 200, "arm": "filtered",
                                                                     "acc_filtered": 0.4, "acc_unfiltered": 0.1},
               "latency_ms": {"teacher": 100.0, "student": 40.0}}
    lines = format_teacher_vs_student(results).splitlines()
    assert len(lines) == 4  # header + the three quantities both models have
    assert lines[1].split()[-3:] == ["1,000", "200", "20.0%"]
    assert lines[2].split()[-3:] == ["50.0%", "40.0%", "80.0%"]  # the saved arm's accuracy
    assert lines[3].split()[-3:] == ["100.0", "40.0", "40.0%"]
