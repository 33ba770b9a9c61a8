"""Progress bars must not flood a notebook's IOPub channel (see utils/progress.py)."""

from __future__ import annotations

import io

import transformers.utils.notebook as nb

from utils.progress import PROGRESS_UPDATE_S, bar, calm_trainer_progress


def _redraws(monkeypatch, steps: int, seconds_per_step: float) -> int:
    """Drive Transformers' notebook bar with a fake clock; count its redraws."""
    clock = {"t": 0.0}
    monkeypatch.setattr(nb.time, "time", lambda: clock["t"])
    drawn = []
    monkeypatch.setattr(nb.NotebookProgressBar, "update_bar", lambda self, value, comment=None: drawn.append(value))
    pbar = nb.NotebookProgressBar(steps)
    for step in range(steps + 1):
        pbar.update(step)
        clock["t"] += seconds_per_step
    return len(drawn)


def test_trainer_bar_redraws_rarely(monkeypatch):
    monkeypatch.setattr(nb.NotebookProgressBar, "update_every", 0.2)  # the library's default
    flooded = _redraws(monkeypatch, 800, 0.25)
    calm_trainer_progress()
    calm = _redraws(monkeypatch, 800, 0.25)
    assert flooded > 700  # the failure this guards against: one message per step
    # 200 s of training at one redraw every PROGRESS_UPDATE_S s, plus the bar's 5 warm-up calls
    assert calm <= 200 / PROGRESS_UPDATE_S + 10


def test_bar_passes_interval_and_iterates():
    b = bar(range(5), desc="x", file=io.StringIO())
    assert list(b) == list(range(5))
    assert b.mininterval == PROGRESS_UPDATE_S
