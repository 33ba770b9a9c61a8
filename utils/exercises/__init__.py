"""Checkers for the notebooks' exercises: ``check_...(answer)`` prints right or wrong, with a hint.

One module per notebook (``n01`` … ``n05``); each checker returns ``True``/``False`` as well, so a
solution notebook (``notebooks/solutions/``) and the unit tests can assert on it.
"""


def verdict(ok: bool, right: str, hint: str) -> bool:
    """Print a checker's verdict – ✓ and what it means, or ✗ and a hint – and return ``ok``."""
    print(f"✓ {right}" if ok else f"✗ not yet – hint: {hint}")
    return ok
