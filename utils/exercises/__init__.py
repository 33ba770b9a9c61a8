"""Checkers for the notebooks' exercises: ``check_...(answer)`` prints right or wrong, with a hint.

One module per notebook (``n01`` … ``n05``); each checker returns ``True``/``False`` as well, so a
solution notebook (``notebooks/solutions/``) and the unit tests can assert on it.
"""


def verdict(ok: bool, right, hint) -> bool:
    """Show a checker's verdict – ✓ and what it means, or ✗ and a hint – in the course's language, and
    return ``ok``. ``right`` and ``hint`` are messages (:func:`utils.messages.msg`) or plain text."""
    from ..messages import msg, say

    say(msg("✓ {right}", right=right) if ok else msg("✗ not yet – hint: {hint}", hint=hint))
    return ok


# ---------------------------------------------------------------------------------------
# Answers as learners type them: in English or in Chinese, with full-width digits or punctuation
# ---------------------------------------------------------------------------------------

_QUOTES = "\"'“”‘’「」『』`"
_TRAILING = "。．.!！?？,，;；:：、 \t\n"
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}


def normalise(answer) -> str:
    """An answer as the checkers compare it: NFKC (full-width digits and letters become ASCII: ``１６`` → ``16``),
    quotes and trailing punctuation removed (``"更高。"`` → ``更高``), lower case."""
    import unicodedata

    text = unicodedata.normalize("NFKC", str(answer)).strip()
    text = text.strip(_QUOTES).strip().rstrip(_TRAILING).strip().strip(_QUOTES).strip()
    return text.lower()


def chinese_number(text: str) -> int | None:
    """``十六`` → 16, ``二十`` → 20, ``一百零五`` → 105 (whole numbers under 10,000 written in Chinese), else None."""
    if not text or any(ch not in _CN_DIGITS and ch not in _CN_UNITS for ch in text):
        return None
    total, digit = 0, None
    for ch in text:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        else:
            total += (1 if digit is None else digit) * _CN_UNITS[ch]
            digit = None
    return total + (digit or 0)


def as_number(answer) -> float | None:
    """A number from what a learner typed: ``16``, ``16.0``, ``"１６"``, ``"16。"``, ``"1/16"`` (a fraction),
    ``"十六"``; ``None`` when it is none of these."""
    if answer is None or isinstance(answer, bool):
        return None
    if isinstance(answer, (int, float)):
        return float(answer)
    text = normalise(answer).replace(",", "")
    if "/" in text:
        num, _, den = text.partition("/")
        a, b = as_number(num), as_number(den)
        return a / b if a is not None and b else None
    try:
        return float(text)
    except ValueError:
        value = chinese_number(text)
        return None if value is None else float(value)


def choose(answer, choices: dict[str, tuple[str, ...]]) -> str | None:
    """The choice whose accepted forms (English and Chinese words) include ``answer``, normalised; else None."""
    said = normalise(answer)
    for key, forms in choices.items():
        if said in (normalise(f) for f in (key, *forms)):
            return key
    return None


def accepted(choices: dict[str, tuple[str, ...]]):
    """The accepted forms, for a hint, as a message: ``"higher" (更高, 升高, …) / "lower" (…)`` (the forms
    are listed as the learner may type them; in Chinese the list's commas are 、)."""
    from ..messages import msg

    parts: list = []
    for i, (k, forms) in enumerate(choices.items()):
        if i:
            parts.append(" / ")
        if not forms:
            parts.append(f'"{k}"')
            continue
        others: list = []
        for f in (f for f in forms if f != k):
            others += [msg(", "), f] if others else [f]
        parts.append(msg('"{choice}" ({forms})', choice=k, forms=others))
    return msg("{choices}", choices=parts)
