"""The multi-seed study's arithmetic and files, on hand-made results (no training)."""

import json
import math

import pytest

from utils import study


def fake_results(acc_sft, acc_ppo, acc_grpo, acc_filtered, *, wall=(60.0, 120.0)):
    """A results.json as the notebooks write it, with chosen numbers."""
    return {
        "teacher": {"params": 2_000_000, "acc_sft": acc_sft, "acc_ppo": acc_ppo, "acc_grpo": acc_grpo,
                    "acc": acc_grpo, "method": "grpo"},
        "student": {"params": 380_000, "arm": "filtered", "acc_filtered": acc_filtered,
                    "acc_unfiltered": 0.25, "acc_groundtruth": 0.5, "acc_curriculum": 0.3},
        "latency_ms": {"teacher": 100.0, "student": 40.0},
        "peak_memory_mb": {"teacher": 8.0, "student": 1.6},
        "wall_s": {f"{i + 1:02d}": s for i, s in enumerate(wall)},
    }


THREE_SEEDS = {
    0: fake_results(0.40, 0.42, 0.50, 0.30),
    1: fake_results(0.44, 0.50, 0.60, 0.36),
    2: fake_results(0.48, 0.52, 0.55, 0.33, wall=(90.0, 150.0)),
}


def test_mean_and_sample_sd_per_figure():
    figures = study.summarize(THREE_SEEDS)["figures"]
    sft = figures["teacher.acc_sft"]
    assert sft["per_seed"] == {0: 0.40, 1: 0.44, 2: 0.48}
    assert sft["n"] == 3 and sft["min"] == pytest.approx(0.40)
    assert sft["mean"] == pytest.approx(0.44)
    assert sft["sd"] == pytest.approx(0.04)  # sample sd; the population sd would be 0.0327
    ppo = figures["teacher.acc_ppo"]  # 0.42, 0.50, 0.52: another key, other numbers
    assert ppo["mean"] == pytest.approx(0.48)
    assert ppo["sd"] == pytest.approx(math.sqrt((0.06**2 + 0.02**2 + 0.04**2) / 2))
    assert figures["teacher.acc"]["mean"] == pytest.approx(0.55)  # the saved (GRPO) teacher
    assert figures["derived.ppo_gain_pts"]["per_seed"] == pytest.approx({0: 2.0, 1: 6.0, 2: 4.0})
    assert figures["derived.grpo_gain_pts"]["mean"] == pytest.approx(11.0)  # 10, 16, 7
    assert figures["derived.wall_min"]["per_seed"] == pytest.approx({0: 3.0, 1: 3.0, 2: 4.0})


def test_ratios():
    values = study.headline_values(THREE_SEEDS[1])
    assert values["derived.params_ratio"] == pytest.approx(0.19)
    assert values["derived.acc_ratio"] == pytest.approx(0.36 / 0.60)  # student's arm / saved teacher
    assert values["derived.latency_reduction"] == pytest.approx(0.6)
    assert values["derived.memory_ratio"] == pytest.approx(0.2)
    assert values["derived.filter_gain_pts"] == pytest.approx(11.0)
    # an explicit student.acc wins over the arm's accuracy
    explicit = {**THREE_SEEDS[1], "student": {**THREE_SEEDS[1]["student"], "acc": 0.30}}
    assert study.headline_values(explicit)["derived.acc_ratio"] == pytest.approx(0.5)


def test_missing_keys_are_skipped():
    partial = {"teacher": {"acc_sft": 0.4, "acc_ppo": 0.5, "params": 0}, "student": {"params": 10},
               "latency_ms": {"teacher": 100.0}, "wall_s": {}}
    summary = study.summarize({0: partial, 1: {"teacher": {"acc_sft": 0.6}}})
    figures = summary["figures"]
    assert list(figures) == ["teacher.acc_sft", "teacher.acc_ppo", "derived.ppo_gain_pts"]
    assert figures["teacher.acc_sft"]["n"] == 2 and figures["teacher.acc_ppo"]["n"] == 1
    assert figures["teacher.acc_ppo"]["sd"] is None  # one value: no sample sd
    assert study.summarize({})["figures"] == {}


def test_markdown_table_cells():
    summary = study.summarize(THREE_SEEDS)
    summary["machine"]["description"] = "test machine"
    table = study.markdown_table(summary)
    assert table.splitlines()[0].startswith("3 seeds (0, 1, 2), profile `tiny`, on test machine")
    assert "| figure | mean ± sd | per seed |" in table
    assert "| teacher after SFT | 44.0 ± 4.0 % | 40.0 %, 44.0 %, 48.0 % |" in table
    assert "| PPO − SFT (teacher) | +4.0 ± 2.0 pts | +2.0 pts, +6.0 pts, +4.0 pts |" in table
    assert "| whole series, wall time | 3.3 ± 0.6 min | 3.0 min, 3.0 min, 4.0 min |" in table
    one = study.markdown_table(study.summarize({7: THREE_SEEDS[0]}))
    assert one.startswith("1 seed (7)") and "| teacher after SFT | 40.0 % | 40.0 % |" in one


def test_update_readme_replaces_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro\n", "\n## Next\n\nkept\n"
    readme.write_text(f"{before}{study.README_BEGIN}\n(not yet run)\n{study.README_END}\n{after}")
    summary = study.summarize(THREE_SEEDS)
    study.update_readme(summary, readme)
    study.update_readme(summary, readme)  # twice: still one table
    text = readme.read_text()
    assert text.startswith(before + study.README_BEGIN + "\n") and text.endswith(study.README_END + "\n" + after)
    assert "(not yet run)" not in text and text.count("| teacher after SFT |") == 1

    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="study:begin"):
        study.update_readme(summary, readme)


def test_summarize_only_writes_the_summary(tmp_path):
    for seed in (3, 5):
        folder = tmp_path / f"seed{seed}" / "tiny"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(THREE_SEEDS[seed % 3]))
    (tmp_path / "seed9" / "notebooks").mkdir(parents=True)  # a seed without results is ignored
    assert study.main(["--summarize-only", "--root", str(tmp_path), "--no-readme"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seeds"] == [3, 5] and summary["profile"] == "tiny"
    assert summary["figures"]["teacher.acc_sft"]["per_seed"] == {"3": 0.40, "5": 0.48}
    assert summary["figures"]["teacher.acc_sft"]["sd"] == pytest.approx(math.sqrt(2) * 0.04)
    assert "| teacher after SFT | 44.0 ± 5.7 % |" in (tmp_path / "summary.md").read_text()
    assert study.main(["--summarize-only", "--root", str(tmp_path / "empty"), "--no-readme"]) == 1


def test_run_study_isolates_seeds_and_goes_on_after_a_failure(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, env, cwd):
        seed = int(cmd[cmd.index("--seed") + 1])
        calls.append((cmd, env["R1LAB_ARTIFACTS"]))
        if seed == 1:
            return type("Done", (), {"returncode": 1})()
        folder = tmp_path / f"seed{seed}" / "tiny"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(THREE_SEEDS[seed]))
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(study.subprocess, "run", fake_run)
    tmp_path = tmp_path.resolve()  # run_study resolves its root
    summary = study.run_study([0, 1, 2], "tiny", tmp_path)
    assert [artifacts for _, artifacts in calls] == [str(tmp_path / f"seed{s}") for s in (0, 1, 2)]
    assert calls[0][0][1:3] == ["-m", "utils.runner"] and str(tmp_path / "seed0" / "notebooks") in calls[0][0]
    assert summary["seeds"] == [0, 2] and summary["failed_seeds"] == [1]
    assert (tmp_path / "summary.md").read_text().count("Failed, left out: seed 1.") == 1
