"""docs/teaching.md's two 90-minute sessions (utils/class_plan.py): each fits, nothing is left out, and the
rendered plan is the current one (machine times from the study and `make class`, never typed)."""

import json
from pathlib import Path

from utils import class_plan as cp

ROOT = Path(__file__).resolve().parents[1]


def test_each_session_fits_90_minutes_and_the_class_fits_180():
    minutes = cp.session_minutes()
    assert all(m <= cp.SESSION_MINUTES for m in minutes.values()), minutes
    assert sum(minutes.values()) <= 2 * cp.SESSION_MINUTES


def test_every_exercise_and_build_it_cell_is_placed_once():
    placed = [cell for a in cp.PLAN for cell in a.cells]
    assert len(placed) == len(set(placed)), "a cell placed twice"
    cells = cp.placed_cells()
    assert len(cells) >= 25
    missing = {cid: heading for cid, heading in cells.items() if cid not in placed}
    assert not missing, f"not in the class plan (in class or homework): {missing}"
    all_ids = {c["id"] for path in (ROOT / "notebooks").glob("0[1-5]_*.ipynb")
               for c in json.loads(path.read_text())["cells"]}
    assert set(placed) <= all_ids, set(placed) - all_ids


def test_the_build_it_cells_and_the_r1_story_are_in_class():
    in_class = {cell for a in cp.PLAN if a.session for cell in a.cells}
    build_it = {cid for cid, heading in cp.placed_cells().items() if "Build it" in heading}
    assert build_it and build_it <= in_class
    whats = " ".join(a.what for a in cp.PLAN if a.session)
    assert "R1-Zero" in whats and "distil or run RL" in whats


def test_teaching_md_holds_the_current_rendering(tmp_path):
    copy = tmp_path / "teaching.md"
    copy.write_text((ROOT / "docs" / "teaching.md").read_text())
    assert cp.update(copy) is False, "docs/teaching.md is stale: python -m utils.class_plan"


def test_the_rendering_reads_measured_times_only(tmp_path):
    summary = {"figures": {"wall_s.02": {"per_seed": {"0": 432.4, "1": 514.0}, "n": 2}}}
    record = {"profile": "tiny", "seed": 0, "pack_bytes": 43_000_000, "replay_s": {"02": 71.6}}
    text = cp.render(summary, record)
    assert "02: live 432–514 s, replay 72 s" in text and "43 MB" in text
    assert "01: live: not measured, replay: not measured" in text
    assert "replay: not measured" in cp.render(summary, None)
