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
    assert "| figure | mean ± sd | 95 % interval of the mean | per seed |" in table
    # t(0.975, 2 df) = 4.303: 44.0 ± 4.303 × 4.0 / √3 = 44.0 ± 9.9
    assert "| teacher after SFT | 44.0 ± 4.0 % | [34.1, 53.9] | 40.0 %, 44.0 %, 48.0 % |" in table
    assert "| PPO − SFT (teacher) | +4.0 ± 2.0 pts | [-1.0, +9.0] | +2.0 pts, +6.0 pts, +4.0 pts |" in table
    assert "| whole series, wall time | 3.3 ± 0.6 min |" in table
    one = study.markdown_table(study.summarize({7: THREE_SEEDS[0]}))
    assert one.startswith("1 seed (7)") and "| teacher after SFT | 40.0 % | – | 40.0 % |" in one


def test_controls_figures_and_commits_enter_the_summary():
    controls = {"seconds": {"models": 60.0, "filter_grid": 540.0},
                "paired": {"teacher_grpo_minus_teacher_sft": {"diff": 0.12, "low": 0.08, "high": 0.16}},
                "filter_grid": {"warmup": {"error_rate": 0.35, "filtered_minus_unfiltered": {"diff": 0.05}}},
                "budget_matched": {"acc_ratio": 1.02, "teacher": {"acc": 0.83}}}
    seeds = {s: {**THREE_SEEDS[s], "controls": controls, "_study_run": {"commit": "abc1234"}} for s in (0, 1)}
    summary = study.summarize(seeds)
    figures = summary["figures"]
    assert figures["controls.paired.teacher_grpo_minus_teacher_sft.diff"]["mean"] == pytest.approx(0.12)
    assert figures["derived.controls_min"]["mean"] == pytest.approx(10.0)
    assert figures["controls.budget_matched.acc_ratio"]["mean"] == pytest.approx(1.02)
    table = study.markdown_table(summary)
    assert "| 1,000 test: GRPO − warm-up (teacher) | +12.0 ± 0.0 pts |" in table
    assert "| grid: filtered − unfiltered, warm-up teacher | +5.0 ± 0.0 pts |" in table
    assert summary["commits"] == ["abc1234"] and "Code: commit abc1234." in table
    seeds[1]["_study_run"] = {"commit": "def5678"}
    assert "ran on different code (commits abc1234, def5678)" in study.markdown_table(study.summarize(seeds))


def test_mean_interval():
    assert study.mean_interval([0.5]) is None
    low, high = study.mean_interval([0.40, 0.44, 0.48])
    assert (low + high) / 2 == pytest.approx(0.44) and high - low == pytest.approx(2 * 4.303 * 0.04 / 3 ** 0.5)


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

    def done(code, stdout=""):
        return type("Done", (), {"returncode": code, "stdout": stdout})()

    def fake_run(cmd, env=None, cwd=None, **_):
        if cmd[0] == "git":
            return done(0, "abc1234\n" if "rev-parse" in cmd else "")
        seed = int(cmd[cmd.index("--seed") + 1])
        calls.append((cmd, env["R1LAB_ARTIFACTS"]))
        if seed == 1:
            return done(1)
        folder = tmp_path / f"seed{seed}" / "tiny"
        if "utils.controls" in cmd:
            (folder / "controls.json").write_text(json.dumps({"seconds": {"models": 30.0}}))
            return done(0)
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(THREE_SEEDS[seed]))
        return done(0)

    monkeypatch.setattr(study.subprocess, "run", fake_run)
    tmp_path = tmp_path.resolve()  # run_study resolves its root
    summary = study.run_study([0, 1, 2], "tiny", tmp_path)
    # seed 0: notebooks then controls; seed 1: notebooks fail, no controls; seed 2: both
    assert [artifacts for _, artifacts in calls] == [str(tmp_path / f"seed{s}") for s in (0, 0, 1, 2, 2)]
    assert calls[0][0][1:3] == ["-m", "utils.runner"] and str(tmp_path / "seed0" / "notebooks") in calls[0][0]
    assert calls[1][0][1:3] == ["-m", "utils.controls"]
    assert summary["seeds"] == [0, 2] and summary["failed_seeds"] == [1] and summary["commits"] == ["abc1234"]
    assert summary["figures"]["derived.controls_min"]["per_seed"] == {0: 0.5, 2: 0.5}
    assert json.loads((tmp_path / "seed1" / "study_run.json").read_text())["commit"] == "abc1234"
    assert (tmp_path / "summary.md").read_text().count("Failed, left out: seed 1.") == 1


def test_publish_copies_the_summary_seed0_and_its_notebooks(tmp_path):
    root, docs, notebooks = tmp_path / "study", tmp_path / "docs", tmp_path / "notebooks"
    (root / "seed0" / "tiny").mkdir(parents=True)
    (root / "seed0" / "notebooks").mkdir()
    notebooks.mkdir()
    (root / "summary.json").write_text('{"figures": {}}')
    (root / "summary.md").write_text("table")
    (root / "seed0" / "tiny" / "results.json").write_text('{"a": 1}')
    (root / "seed0" / "tiny" / "controls.json").write_text('{"b": 2}')
    (root / "seed0" / "study_run.json").write_text('{"commit": "abc"}')
    import nbformat

    executed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('show_study("teacher")'),
                                               nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(executed, root / "seed0" / "notebooks" / "01_x.ipynb")
    (notebooks / "01_x.ipynb").write_text("old")
    written = study.publish(root, "tiny", docs, notebooks)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {
        "docs/summary.json", "docs/summary.md", "docs/seed0/results.json", "docs/seed0/controls.json",
        "docs/seed0/study_run.json", "notebooks/01_x.ipynb"}
    published = nbformat.read(notebooks / "01_x.ipynb", as_version=4)
    # the study cell shows the summary just published ("{}": no controls measured), the other cell is untouched
    assert "have not been run on this code yet" in published.cells[0].outputs[0]["data"]["text/markdown"]
    assert published.cells[1].outputs == []


def test_teaching_times_come_from_the_summary(tmp_path):
    notes = tmp_path / "teaching.md"
    notes.write_text("**Time.** <!-- time:01 -->About 10 s (typed)<!-- /time --> of wall time.\n"
                     "runs in <!-- time:02 -->about 5 s<!-- /time -->; <!-- time:09 -->kept<!-- /time -->\n")
    summary = study.summarize(THREE_SEEDS)
    summary["machine"]["cpus"], summary["commits"] = 2, ["abc1234"]
    assert study.update_teaching(summary, notes) == 2
    text = notes.read_text()
    assert "<!-- time:01 -->About 60–90 s on a 2-core CPU (the README's study: 3 seeds, commit abc1234)<!-- /time -->" in text
    assert "<!-- time:02 -->about 120–150 s on a 2-core CPU" in text and "<!-- time:09 -->kept<!-- /time -->" in text
    assert study.update_teaching(summary, notes) == 2 and notes.read_text() == text   # idempotent


def test_the_instructor_notes_mark_every_notebook_time():
    from utils.artifacts import REPO_ROOT

    marks = study.TIME_MARK.findall((REPO_ROOT / "docs" / "teaching.md").read_text())
    assert sorted(nb for nb, _ in marks) == ["01", "02", "03", "04", "05"]


def controls_of(gain, vs_steps, warm_gain, rl_gain, ratio):
    """A controls.json with chosen numbers (fractions)."""
    return {"seconds": {"models": 60.0},
            "models": {"student": {"acc": 0.85}},
            "paired": {"teacher_grpo_minus_teacher_sft": {"diff": gain}},
            "rl_vs_more_sft": {"more_sft": {"tokens": {"acc": 0.70}, "steps": {"acc": 0.79}},
                               "grpo_minus_more_sft_tokens": {"diff": 0.09},
                               "grpo_minus_more_sft_steps": {"diff": vs_steps}},
            "filter_grid": {t: {"error_rate": e, "filtered": {"acc": 0.8}, "unfiltered": {"acc": 0.8 - g},
                                "filtered_minus_unfiltered": {"diff": g}}
                            for t, e, g in (("warmup", 0.4, warm_gain), ("rl", 0.2, rl_gain))},
            "budget_matched": {"acc_ratio": ratio, "teacher": {"acc": 0.85 / ratio},
                               "student_minus_teacher": {"diff": 0.85 - 0.85 / ratio}}}


def test_render_study_sections_say_what_the_seeds_show():
    seeds = {s: {**THREE_SEEDS[s], "controls": controls_of(0.12 + 0.01 * s, -0.01 + 0.01 * s, 0.08 + 0.01 * s,
                                                           0.02 + 0.005 * s, 1.1 + 0.01 * s)} for s in range(3)}
    summary = study.summarize(seeds)
    teacher = study.render_study("teacher", summary)
    assert "GRPO − warm-up teacher: +13.0 pts [" in teacher and "the mean over the seeds" in teacher
    assert "RL and more SFT cannot be told apart" in teacher           # -1, 0, +1: the interval holds 0
    grid = study.render_study("filter_grid", summary)
    assert "Filtering is worth more with the weaker teacher" in grid   # gaps 6, 6.5, 7 points
    student = study.render_study("student", summary)
    assert "Student / budget-matched teacher: 111.0 %" in student
    assert "the student is better" in student
    lone = study.summarize({0: seeds[0]})
    assert "Nothing was measured that could say which way this goes." in study.render_study("teacher", lone)
    # one seed with its own paired interval over the test problems: the verdict follows that interval
    paired = {**seeds[0]["controls"]["rl_vs_more_sft"]["grpo_minus_more_sft_steps"], "low": -0.04, "high": -0.01}
    one = {**seeds[0], "controls": {**seeds[0]["controls"], "rl_vs_more_sft": {
        **seeds[0]["controls"]["rl_vs_more_sft"], "grpo_minus_more_sft_steps": paired}}}
    text = study.render_study("teacher", study.summarize({0: one}))
    assert "(1 seed," in text and "training the warm-up longer beat RL" in text and "-1.0 pts [-4.0, -1.0]" in text
    old = study.summarize(THREE_SEEDS)   # a summary from before the controls existed
    assert all("have not been run on this code yet" in study.render_study(s, old) for s in study.STUDY_SECTIONS)
    with pytest.raises(ValueError, match="section must be one of"):
        study.render_study("nope", summary)


def test_the_module_runs_main_after_every_definition():
    """`python -m utils.study` runs main() when the guard is reached: everything main() uses must be above it."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(study))
    last = tree.body[-1]
    assert isinstance(last, ast.If) and "__main__" in ast.unparse(last.test)


def test_seeds_on_two_commits_with_the_same_measuring_code(monkeypatch):
    seeds = {s: {**THREE_SEEDS[s], "_study_run": {"commit": c}} for s, c in ((0, "aaa1111"), (1, "bbb2222"))}
    monkeypatch.setattr(study, "measuring_code", lambda commit: "same hash")
    table = study.markdown_table(study.summarize(seeds))
    assert "Code: commits aaa1111, bbb2222, with the same measuring code" in table and "⚠" not in table
    monkeypatch.setattr(study, "measuring_code", lambda commit: commit)   # every commit measures differently
    assert "⚠ The seeds ran on different code" in study.markdown_table(study.summarize(seeds))


def test_measuring_code_of_a_commit():
    assert study.measuring_code("abc1234+changes") is None and study.measuring_code("no-such-commit") is None
    head = study.measuring_code("HEAD")
    assert head is not None and len(head) == 16 and study.measuring_code("HEAD") == head


def test_mean_interval_is_cut_to_the_values_a_figure_can_take():
    wide = study.mean_interval([0.003, 0.007, 0.013])              # three seeds near 0 %: t reaches below it
    assert wide[0] < 0
    cut = study.mean_interval([0.003, 0.007, 0.013], study.figure_bounds("r1_zero.acc", "pct"))
    assert cut[0] == 0.0 and cut[1] == wide[1]
    assert study.mean_interval([0.95, 0.99, 0.999], (0.0, 1.0))[1] == 1.0
    assert study.figure_bounds("controls.filter_grid.rl.error_rate", "pct") == (0.0, 1.0)
    assert study.figure_bounds("derived.acc_ratio", "pct") == (0.0, None)           # a ratio may pass 100 %
    assert study.figure_bounds("derived.latency_reduction", "pct") == (None, 1.0)   # a slower student: below 0
    assert study.figure_bounds("controls.paired.teacher_ppo_minus_teacher_sft.diff", "diff") == (-1.0, 1.0)
    assert study.figure_bounds("derived.wall_min", "min") == (0.0, None)
