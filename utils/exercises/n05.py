"""Checkers for notebook 05's exercises (serving the student with Gradio).

Each ``check_...`` prints ✓ or ✗ with a hint and returns ``True``/``False``. Solutions:
``notebooks/solutions/05_deploy_gradio.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..messages import msg
from . import accepted, as_number, choose, verdict
from .grading import and_list

MODELS = ("student", "teacher")
LONG_PROMPT_OUTCOMES = ("accepted", "characters", "context")
#: The words each answer may be written with, in English and in Chinese.
MODEL_CHOICES = {"student": ("学生", "学生模型"), "teacher": ("教师", "教师模型", "老师"),
                 "tie": ("same", "持平", "一样", "相同", "平局")}
LONG_PROMPT_CHOICES = {"accepted": ("accept", "接受", "被接受", "通过"),
                       "characters": ("character", "字符", "字符数", "字符数超限", "字符太多"),
                       "context": ("上下文", "上下文超限", "超出上下文")}


def _lookup(values: Mapping, key: float) -> float | None:
    """``values[key]`` for a float key written as 0, 0.0 or "0"; ``None`` when absent."""
    for k, v in values.items():
        try:
            if math.isclose(float(k), key):
                return float(v)
        except (TypeError, ValueError):
            continue
    return None


def _winner(values: Mapping[str, float], tied: bool, higher_is_better: bool) -> set[str]:
    """The answers that agree with a measurement: the model ahead, and "tie" when within noise."""
    a, b = (float(values[m]) for m in MODELS)
    ahead = {MODELS[0]} if (a > b) == higher_is_better else {MODELS[1]}
    if a == b:
        ahead = set(MODELS)
    return ahead | {"tie"} if tied else ahead


def check_student_vs_teacher(prediction: Mapping[str, str], latency_ms: Mapping[str, float],
                             accuracy: Mapping[str, float], n: int, latency_tie: float = 0.10) -> bool:
    """Exercise 1: did you predict which model answers faster and which is more accurate?

    ``prediction`` is ``{"faster": …, "more_accurate": …}``, each "student", "teacher" or "tie" (or the
    Chinese words of :data:`MODEL_CHOICES`: 学生, 教师, 持平);
    ``latency_ms`` and ``accuracy`` are what you measured for both models on ``n`` prompts.
    Latencies within ``latency_tie`` (10 %) of each other count as a tie; accuracies as a tie
    when they differ by at most two standard errors of a ``n``-problem sample – then "tie" and
    the model that is ahead are both accepted.
    """
    hint = msg("count the multiply-adds per token (parameters), and remember what the student learnt from: "
               "only the teacher's *verified* answers (notebook 03). Then compare with your measurement.")
    if not isinstance(prediction, Mapping) or {"faster", "more_accurate"} - set(prediction):
        return verdict(False, "", msg('write prediction = {{"faster": "student"|"teacher"|"tie", '
                                      '"more_accurate": "student"|"teacher"|"tie"}}.'))
    guesses = {k: choose(prediction[k], MODEL_CHOICES) for k in ("faster", "more_accurate")}
    if any(g is None for g in guesses.values()):
        return verdict(False, "", msg("each prediction is one of {choices} – got {answer}. {hint}",
                                      choices=accepted(MODEL_CHOICES),
                                      answer=str({k: prediction[k] for k in guesses}), hint=hint))
    if n <= 0:
        raise ValueError("n, the number of prompts measured, must be positive")
    lat = {m: float(latency_ms[m]) for m in MODELS}
    acc = {m: float(accuracy[m]) for m in MODELS}
    lat_tied = max(lat.values()) <= (1 + latency_tie) * min(lat.values())
    p = sum(acc.values()) / 2
    se = max(math.sqrt(p * (1 - p) / n), 1 / n)
    acc_tied = abs(acc["student"] - acc["teacher"]) <= 2 * se
    faster_ok = guesses["faster"] in _winner(lat, lat_tied, higher_is_better=False)
    accurate_ok = guesses["more_accurate"] in _winner(acc, acc_tied, higher_is_better=True)
    numbers = dict(student_ms=lat["student"], teacher_ms=lat["teacher"], student_acc=acc["student"],
                   teacher_acc=acc["teacher"], n=n, two_se=2 * se)
    measured = (msg("measured: {student_ms:.0f} ms vs {teacher_ms:.0f} ms per answer (student vs teacher), "
                    "accuracy {student_acc:.0%} vs {teacher_acc:.0%} on {n} prompts "
                    "(within two standard errors, ±{two_se:.0%})", **numbers) if acc_tied else
                msg("measured: {student_ms:.0f} ms vs {teacher_ms:.0f} ms per answer (student vs teacher), "
                    "accuracy {student_acc:.0%} vs {teacher_acc:.0%} on {n} prompts "
                    "(beyond two standard errors, ±{two_se:.0%})", **numbers))
    wrong = [k for k, ok in (("faster", faster_ok), ("more_accurate", accurate_ok)) if not ok]
    return verdict(not wrong, measured, msg("{names} disagree with the measurement – {measured}. {hint}",
                                            names=and_list(wrong), measured=measured, hint=hint))


def check_temperature_effect(acc_by_temp: Mapping, tol: float = 0.05) -> bool:
    """Exercise 2: exact match at temperature 0 vs 1.5.

    ``acc_by_temp`` maps a temperature to an accuracy in [0, 1] (your prediction, or a measured
    ``by_temp.accuracy``); it must hold 0 and 1.5. Right: accuracy at 0 is at least the accuracy
    at 1.5, up to ``tol`` of sampling noise.
    """
    hint = msg("every token of a chain of thought is sampled; a hotter temperature gives the unlikely tokens more "
               "probability, and one slipped digit anywhere in the chain breaks the final answer. "
               "Greedy (T = 0) always takes the model's best guess.")
    if not isinstance(acc_by_temp, Mapping) and hasattr(acc_by_temp, "to_dict"):
        acc_by_temp = acc_by_temp.to_dict()  # a pandas Series indexed by temperature
    if not isinstance(acc_by_temp, Mapping):
        return verdict(False, "", msg("pass a dict {{temperature: accuracy}}, e.g. {{0: 0.8, 0.6: 0.75, 1.5: 0.5}}."))
    cold, hot = _lookup(acc_by_temp, 0.0), _lookup(acc_by_temp, 1.5)
    if cold is None or hot is None:
        return verdict(False, "", msg("give an accuracy for temperature 0 and for 1.5 (e.g. {{0: …, 1.5: …}})."))
    if not (0 <= cold <= 1 and 0 <= hot <= 1):
        return verdict(False, "", msg("accuracies are fractions in [0, 1] (0.8, not 80)."))
    ok = cold + tol >= hot
    return verdict(ok, msg("greedy {cold:.0%} ≥ T=1.5 {hot:.0%} (within {tol:.0%} of noise): sampling hotter does "
                           "not make a small model more accurate, it adds slips", cold=cold, hot=hot, tol=tol), hint)


def long_prompt_outcome(message: str | None) -> str:
    """What happened to a request: "accepted" (no message), "characters" (over the app's limit of
    characters) or "context" (over the model's context), read from ``validate_request``'s message."""
    if not message:
        return "accepted"
    if "context" in message:
        return "context"
    if "too long" in message:
        return "characters"
    return "other"


def check_long_prompt(prediction: str, message: str | None) -> bool:
    """Exercise 3: did you predict what the app does with a very long prompt?

    ``prediction`` is "accepted", "characters" (or the Chinese of :data:`LONG_PROMPT_CHOICES`; refused: more characters than
    ``serve_max_prompt_chars``) or "context" (refused: prompt + new tokens exceed the model's
    context); ``message`` is what ``serve.validate_request`` raised (``""`` if it accepted).
    """
    hint = msg("validate_request first counts characters (the profile's serve_max_prompt_chars), then tokenises "
               "the prompt and checks that prompt + max_new_tokens fit in the model's context "
               "(config.max_position_embeddings). Which limit is smaller for this model – in tokens?")
    guess = choose(prediction, LONG_PROMPT_CHOICES)
    if guess is None:
        return verdict(False, "", msg("predict one of {choices} – got {answer}. {hint}",
                                      choices=accepted(LONG_PROMPT_CHOICES), answer=repr(prediction), hint=hint))
    actual = long_prompt_outcome(message)
    return verdict(guess == actual, msg("{outcome}: {message}", outcome=actual,
                                        message=message or msg("the app accepted the prompt")), hint)


def check_stop_button(app: Any) -> bool:
    """Exercise 4: does the app have a button whose click cancels a streaming (generator) event?

    ``app`` is a ``gr.Blocks`` (or its ``.config`` dict). Checks the event graph Gradio sends to the
    browser: some event lists in ``cancels`` the id of an event whose function is a generator.
    """
    hint = msg("keep the event of the Generate button, `event = go.click(fn, inputs, outputs)` with a generator fn "
               "(one that yields), and wire a second button: `stop.click(None, None, None, cancels=[event])`.")
    config = app if isinstance(app, Mapping) else getattr(app, "config", None)
    deps = (config or {}).get("dependencies", [])
    streaming = {d.get("id", i) for i, d in enumerate(deps) if (d.get("types") or {}).get("generator")}
    cancelled = {c for d in deps for c in (d.get("cancels") or [])}
    ok = bool(streaming & cancelled)
    return verdict(ok, msg("a click cancels the streaming event: Gradio closes its generator, and stream_generate's "
                           "`finally` stops model.generate"), hint)
