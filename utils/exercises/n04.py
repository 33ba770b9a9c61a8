"""Checkers for notebook 04's exercises (the student: SFT on the distilled data)."""

from __future__ import annotations

import math

from . import verdict


def check_epochs(answer: float | None, rows: int, steps: int, batch: int) -> bool:
    """Exercise 1: how many times an arm reads its ``rows`` in ``steps`` optimiser steps of
    ``batch`` rows each – ``steps × batch / rows`` epochs (within 5 %)."""
    if answer is None:
        return verdict(False, "", "set your_answer to a number of epochs, then rerun the cell")
    right = steps * batch / rows
    ok = math.isfinite(float(answer)) and abs(float(answer) - right) <= 0.05 * right
    return verdict(ok, f"{right:.1f} epochs: {steps} steps × {batch} rows per step = {steps * batch} rows read, "
                       f"over a dataset of {rows} rows",
                   "each step reads one batch of rows; how many rows is that over all the steps, "
                   "and how many datasets' worth is it?")
