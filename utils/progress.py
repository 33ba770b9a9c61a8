"""Progress bars that a long notebook cell can afford.

Every progress-bar redraw in Jupyter is one message on the kernel's IOPub channel. A front
end that reads IOPub only after a cell finishes (``nbval`` does) lets them pile up, and
ZeroMQ silently drops messages beyond its high-water mark (1000 per socket) – including,
eventually, the "kernel idle" message that says the cell is done, so a healthy cell is
reported as a timeout. Transformers' notebook bar redraws every 0.2 s, i.e. on every step of
a 0.25 s-per-step CPU training run: four 800-step student runs in one cell are > 3000 redraws.

So every bar in this package redraws at most once every ``PROGRESS_UPDATE_S`` seconds:
:func:`bar` for our own loops and :func:`calm_trainer_progress` for the Trainer-based ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds between two redraws of any progress bar (a 200 s run → about 100 redraws).
PROGRESS_UPDATE_S = 2.0


def bar(iterable: Iterable[T], *, desc: str | None = None, disable: bool = False, **kwargs: Any) -> Iterable[T]:
    """``tqdm.auto.tqdm`` over ``iterable``, redrawn at most every :data:`PROGRESS_UPDATE_S` s."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=disable, mininterval=PROGRESS_UPDATE_S, **kwargs)


def calm_trainer_progress(every_s: float = PROGRESS_UPDATE_S) -> None:
    """Make Transformers' notebook progress bar (used by every TRL trainer) redraw at most every ``every_s`` s.

    ``NotebookProgressBar.update_every`` is the library's own knob (a class attribute); the
    terminal bar is tqdm's and already redraws sparingly.
    """
    from transformers.utils.notebook import NotebookProgressBar

    NotebookProgressBar.update_every = every_s
