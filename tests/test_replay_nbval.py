"""Classroom replay under nbval: notebook 04 (13 minutes of training on two cores) executed with
R1LAB_REPLAY=1 against the replay pack that `make test`'s own notebook run saved – it must pass, and it
must not train or save anything again. Runs last (see conftest.py); without a pack it is skipped,
except in CI, where the notebooks always run before it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils import replay
from utils.artifacts import artifact_path
from utils.config import make_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.after_notebooks
def test_notebook_04_passes_nbval_in_replay_without_training():
    run = make_run(os.environ.get("R1LAB_PROFILE", "tiny"), int(os.environ.get("R1LAB_SEED", 0)), quiet=True)
    if missing := replay.pack_missing(run):
        if os.environ.get("CI"):
            pytest.fail(f"no replay pack after the notebooks ran: {missing}")
        pytest.skip(f"no replay pack yet ({', '.join(missing)}): `make test` makes it by running the notebooks first")
    manifests = {name: (artifact_path(run.name, name) / "manifest.json").read_text() for name in replay.pack_needs(run)}
    env = {**os.environ, replay.ENV: "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-cell-timeout=600",
                           str(ROOT / "notebooks" / "04_student_sft.ipynb")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    after = {name: (artifact_path(run.name, name) / "manifest.json").read_text() for name in manifests}
    assert after == manifests, "replay re-saved a stage: something was trained again"
