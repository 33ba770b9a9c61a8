"""Build-it cells of notebooks 01, 03 and 04 (the algorithm written in the notebook, checked against the
package) and the fingerprint of functions a notebook passes in (reward functions, filter stages)."""

from __future__ import annotations

import linecache
from pathlib import Path

import nbformat
import pytest
import torch

from utils import distill_data as dd
from utils import theory
from utils.config import ARTIFACTS, functions_hash, function_source, make_run
from utils.tasks import column_addition

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def cell(notebook: str, cell_id: str) -> str:
    nb = nbformat.read(next(NOTEBOOKS.glob(f"{notebook}_*.ipynb")), as_version=4)
    return next(c.source for c in nb.cells if c.get("id") == cell_id)


def run_cell(source: str, namespace: dict, name: str = "<cell>") -> dict:
    """Execute a cell's source as IPython does: registered in linecache, so inspect finds its functions' sources."""
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    exec(compile(source, name, "exec"), namespace)
    return namespace


# --- 01: the KD loss ------------------------------------------------------------------

def test_kd_loss_cell_matches_the_package_and_can_fail(capsys):
    src = cell("01", "c1a0b002")
    run_cell(src, {"torch": torch, "theory": theory})
    assert "✓ kd_loss equals theory.kd_loss" in capsys.readouterr().out
    without_t2 = src.replace("soft = temperature**2 * kl_per_row.mean()", "soft = kl_per_row.mean()")
    assert without_t2 != src
    with pytest.raises(AssertionError):
        run_cell(without_t2, {"torch": torch, "theory": theory})


# --- 03: the filter stages --------------------------------------------------------------

def toy_rows() -> list[dict]:
    p, q = column_addition(12, 30), column_addition(47, 5)
    row = lambda prob, completion, reward: {"prompt": prob.prompt, "completion": completion, "answer": prob.answer,  # noqa: E731
                                           "family": prob.family, "difficulty": prob.difficulty, "reward": reward,
                                           "correct": True}
    return [row(p, p.completion, 1.0), row(p, p.completion, 1.0), row(p, "<think>1</think>A:43", 0.5),
            row(q, "52", 0.2), row(q, q.completion, 0.8), row(q, q.completion + " ", -1.0)]


def funnel_namespace(**extra) -> dict:
    run = make_run("tiny", 0, quiet=True)
    return {"dd": dd, "run": run, "prof": run.profile, "rows": toy_rows(), "threshold": 0.0,
            "val_problems": lambda r: [column_addition(61, 7)], "test_problems": lambda r: [], **extra}


def test_filter_stages_cell_is_the_package_funnel(capsys):
    ns = run_cell(cell("03", "d3b0c002"), funnel_namespace(), "<nb03-funnel>")
    assert "✓ the package's stages" in capsys.readouterr().out
    assert functions_hash([f for _, f in ns["FILTER_STAGES"]]) == functions_hash([f for _, f in dd.FILTER_STAGES])
    assert [n for n, _ in ns["FILTER_STAGES"]] == [n for n, _ in dd.FILTER_STAGES]
    kept, stages = dd.run_filters(toy_rows(), [column_addition(61, 7)], max_per_prompt=2, reward_threshold=0.0)
    assert ns["kept"] == kept and [n for n, _ in ns["stages"]] == [n for n, _ in stages]


def test_reordered_stages_are_reported_not_asserted(capsys):
    src = cell("03", "d3b0c002").replace('("verifier (≤ m per prompt)", verifier_stage), ("reward threshold", reward_stage)',
                                         '("reward threshold", reward_stage), ("verifier (≤ m per prompt)", verifier_stage)')
    ns = run_cell(src, funnel_namespace(), "<nb03-reordered>")
    assert "distill_data will carry their own fingerprint" in capsys.readouterr().out
    assert functions_hash([f for _, f in ns["FILTER_STAGES"]]) != functions_hash([f for _, f in dd.FILTER_STAGES])


def test_apply_filters_rejects_malformed_stages():
    settings = dd.FilterSettings([], 2, 0.0)
    with pytest.raises(TypeError, match="list of \\(name, function\\) pairs"):
        dd.apply_filters(toy_rows(), [dd.format_stage], settings)
    with pytest.raises(TypeError, match="returned int"):
        dd.apply_filters(toy_rows(), [("count", lambda rows, s: len(rows))], settings)


# --- the fingerprint of functions passed in ----------------------------------------------

def test_functions_hash_reads_sources_and_order():
    def a(rows, s):
        return rows

    def b(rows, s):
        return rows[:1]

    assert functions_hash([a, b]) != functions_hash([b, a])
    assert functions_hash([a]) != functions_hash([b])
    assert functions_hash([a]) == functions_hash([a])
    made = {}
    exec("def c(rows, s):\n    return rows\n", made)   # no source anywhere: its bytecode stands in
    assert "co_code" not in function_source(made["c"]) and function_source(made["c"])
    with pytest.raises(TypeError, match="not a Python function"):
        function_source(len)


def test_an_ipython_cells_function_hashes_by_its_source():
    IPython = pytest.importorskip("IPython")
    shell = IPython.core.interactiveshell.InteractiveShell.instance()
    shell.run_cell("def format_stage(rows, s):\n"
                   '    """Well-formed completions only (and not over-long, with a length cap)."""\n'
                   "    return filter_format(rows, s.max_length)\n")
    assert functions_hash([shell.user_ns["format_stage"]]) == functions_hash([dd.format_stage])


def test_edited_stages_change_exactly_the_artifacts_made_from_them():
    run = make_run("tiny", 0, quiet=True)
    before = {name: run.fingerprint(name) for name in ARTIFACTS}
    default = [f for _, f in dd.FILTER_STAGES]
    run.using("filter_stages", default, default)
    assert {name: run.fingerprint(name) for name in ARTIFACTS} == before     # the package's own: no change

    def stricter(rows, s):
        return [r for r in rows if len(r["completion"]) < 40]

    run.using("filter_stages", default + [stricter], default)
    changed = {name for name in ARTIFACTS if run.fingerprint(name) != before[name]}
    assert changed == {"distill_data", "distill_data_unfiltered", "student"}
    run.using("filter_stages", default, default)                                # back to the package's
    assert {name: run.fingerprint(name) for name in ARTIFACTS} == before
    with pytest.raises(TypeError, match="non-empty list of functions"):
        run.using("filter_stages", [], default)


def test_publish_with_edited_stages_saves_another_fingerprint(artifacts_tmp, monkeypatch):
    from utils import artifacts

    read = artifacts.read_manifest    # no teacher in this folder: its card line reads an empty manifest
    monkeypatch.setattr(artifacts, "read_manifest", lambda p, n: {} if n == "teacher" else read(p, n))
    monkeypatch.setattr(dd, "dataset_card", lambda *a: "# distill_data\n")
    run = make_run("tiny", 0, quiet=True)
    rows = toy_rows()
    stats = {"tokens_per_s": 1.0}
    kept, funnel = dd.apply_filters(rows, dd.FILTER_STAGES, dd.FilterSettings([], 2, 0.0))
    dd.publish(run, [column_addition(12, 30)], rows, kept, funnel, stats, 0.0)
    default_print = artifacts.read_manifest("tiny", "distill_data")["fingerprint"]
    assert default_print == make_run("tiny", 0, quiet=True).fingerprint("distill_data")

    def only_short(rows, s):
        return [r for r in rows if len(r["completion"]) < 40]

    edited = dd.FILTER_STAGES + [("short", only_short)]
    kept, funnel = dd.apply_filters(rows, edited, dd.FilterSettings([], 2, 0.0))
    dd.publish(run, [column_addition(12, 30)], rows, kept, funnel, stats, 0.0, filter_stages=edited)
    fresh = make_run("tiny", 0, quiet=True)       # what notebook 04's ensure_distill_data compares with
    assert artifacts.mismatch("tiny", "distill_data", seed=0, fingerprint=fresh.fingerprint("distill_data"))
    assert artifacts.mismatch("tiny", "distill_data", seed=0, fingerprint=run.fingerprint("distill_data")) is None


# --- 04: the curriculum arm's sampler ----------------------------------------------------

def test_pacing_schedule_cell_equals_curriculum_schedule(capsys):
    from utils.exercises.n04 import curriculum_rows

    rows = {"curriculum": curriculum_rows()}
    for steps, batch, seed in ((6, 4, 0), (10, 3, 1), (3, 8, 2)):
        run_cell(cell("04", "e4c0d002"), {"rows": rows, "steps": steps, "batch": batch,
                                          "run": type("R", (), {"seed": seed})()})
        out = capsys.readouterr().out
        assert f"✓ the same {steps * batch} rows" in out and "✓ a pacing schedule" in out
