"""Notebook 05: serve the distilled student (and its teacher) with Gradio, safely.

Taught in notebook 05 ("Serving the student"). One function builds the app,
:func:`build_app`; ``python -m utils.serve`` runs it from a terminal (see ``docs/serving.md``).

What the app does, and where each piece lives in this file:

1. **Streams tokens as they are generated** – ``model.generate`` runs in a thread and hands
   text over through a :class:`EveryTokenStreamer` (a ``transformers.TextIteratorStreamer``
   that flushes after *every* token: the stock one holds back symbols until the next space,
   and a chain of thought such as ``7+8=15;15-3=12`` has none).
2. **Shows the thinking apart from the answer** – :func:`split_thinking` cuts the text at
   ``</think>``; the chat shows the chain of thought as a collapsible "thinking" message.
3. **Checks the answer for real** – :func:`solve` parses a task-world prompt, recomputes the
   reference chain of thought and answer, and the course's verifier grades the model's text.
4. **Validates every input** (:func:`validate_request`) with a message a learner can act on:
   empty or over-long prompts, characters the tokenizer cannot read, ``max_new_tokens <= 0``,
   a bad ``top_p``, a ``temperature`` outside [0, 2]; ``temperature = 0`` means greedy decoding.
   The API is checked in the function behind it, not only by the UI's sliders: a client can
   send any number.
5. **Is safe by default** – binds ``127.0.0.1`` unless told otherwise, ``share=False``,
   loads safetensors only and never ``trust_remote_code``; a bounded queue; an exception
   during generation becomes an error message and the app keeps serving.
6. **Serves each model in the format it was trained on** (:func:`model_input`) – an artifact the
   course trained reads the raw training prompt (``Q:…``, its manifest says ``prompt_format:
   "raw"``), never a chat template; a hub checkpoint (DeepSeek-R1-Distill) reads its chat template.

The reference article's app (section 3.4) binds ``0.0.0.0`` and loads its tokenizer with
``trust_remote_code=True``; notebook 05 explains why we do neither by default.
"""

from __future__ import annotations

import argparse
import html
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import torch
from transformers import (PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria,
                          StoppingCriteriaList, TextIteratorStreamer)

from .app_text import LANGUAGES, language, say
from .config import Profile, get_profile, pick_device, set_offline_env
from .tasks import (FAMILIES, THINK_CLOSE, THINK_OPEN, Problem, check_format, check_steps, column_addition,
                    extract_final_answer, make_problems, verify)
from .tokenizer import MARKER

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
DEFAULT_PORT = 7860
STREAM_TIMEOUT_S = 120.0      # a generation that produces nothing for this long is an error
MAX_TEMPERATURE = 2.0         # the API refuses hotter sampling: beyond it a reply is noise
THINKING_TITLE = say("en", "thinking")


# =======================================================================================
# 1. Reference answers for task-world prompts: the "check answer" button is real
# =======================================================================================

_ADD_RE = re.compile(r"^Q:(0|[1-9]\d*)\+(0|[1-9]\d*)=$")
_ARITH_RE = re.compile(r"^Q:(\d+)((?:[+-]\d+)+)=$")
_TRACE_RE = re.compile(r"^Q:((?:[abc]=[^;]+;)+)([abc])\?$")
_TRACE_EXPR_RE = re.compile(r"^(\d+|[abc])(?:([+-])(\d+|[abc]))?$")
_ORDER_RE = re.compile(r"^Q:([A-E]=\d+(?:,[A-E]=\d+)*);(max|min)\?$")


def solve(prompt: str, families: tuple[str, ...] = FAMILIES) -> Problem | None:
    """Recompute a task-world problem from its prompt alone, or ``None`` if it is not one.

    ``Q:7+8=`` reads as column addition (``add``) or as one-step ``arith``: the family that
    comes first in ``families`` wins (``add`` by default: the family the tiny profile trains).

    Returns the full :class:`~utils.tasks.Problem` – the canonical chain of thought and the
    answer – for the families of :mod:`utils.tasks` (``Q:4759+86=``, ``Q:7+8-3=``,
    ``Q:a=3;b=a+4;a=b-1;a?``, ``Q:A=5,B=3,C=8;max?``). The chains are written exactly as
    the generators write them, so ``solve(p.prompt) == p`` for every generated problem
    (tests check it), and :func:`~utils.tasks.check_steps` can grade every step.
    """
    prompt = prompt.strip()
    m = _ADD_RE.match(prompt)
    if m and "add" in families and ("arith" not in families
                                    or families.index("add") < families.index("arith")):
        return column_addition(int(m.group(1)), int(m.group(2)))
    if m := _ARITH_RE.match(prompt):
        total, steps = int(m.group(1)), []
        for op, num in re.findall(r"([+-])(\d+)", m.group(2)):
            new = total + int(num) if op == "+" else total - int(num)
            steps.append(f"{total}{op}{num}={new}")
            total = new
        return Problem("arith", len(steps), prompt,
                       f"{THINK_OPEN}{';'.join(steps)}{THINK_CLOSE}A:{total}", str(total))
    if m := _TRACE_RE.match(prompt):
        values: dict[str, int] = {}
        steps = []
        for statement in m.group(1).rstrip(";").split(";"):
            target, _, expr = statement.partition("=")
            e = _TRACE_EXPR_RE.match(expr)
            if e is None:
                return None
            terms = [e.group(1)] + ([e.group(3)] if e.group(2) else [])
            if any(t.isalpha() and t not in values for t in terms):
                return None  # reads a variable before it is assigned
            nums = [values[t] if t.isalpha() else int(t) for t in terms]
            value = nums[0] + (nums[1] if e.group(2) == "+" else -nums[1] if e.group(2) else 0)
            values[target] = value
            steps.append(f"{target}={value}")
        asked = m.group(2)
        if asked not in values:
            return None
        return Problem("trace", max(1, len(steps) - 2), prompt,
                       f"{THINK_OPEN}{';'.join(steps)}{THINK_CLOSE}A:{values[asked]}", str(values[asked]))
    if m := _ORDER_RE.match(prompt):
        items = [(name, int(val)) for name, val in (pair.split("=") for pair in m.group(1).split(","))]
        if len({name for name, _ in items}) != len(items):
            return None
        goal = m.group(2)
        best_name, best_val = items[0]
        steps = [f"{best_name}={best_val}"]
        for name, val in items[1:]:
            if (val > best_val) if goal == "max" else (val < best_val):
                best_name, best_val = name, val
            steps.append(f"{name}={val}:{best_name}={best_val}")
        return Problem("order", max(1, len(items) - 2), prompt,
                       f"{THINK_OPEN}{';'.join(steps)}{THINK_CLOSE}A:{best_name}", best_name)
    return None


def check_answer(prompt: str, completion: str) -> dict[str, Any] | None:
    """Grade ``completion`` against the reference recomputed from ``prompt`` (``None``: not a
    task-world prompt, nothing to check). The same verifier graded notebooks 02–04."""
    ref = solve(prompt)
    if ref is None:
        return None
    return {
        "family": ref.family,
        "reference": ref.answer,
        "model_answer": extract_final_answer(completion),
        "well_formed": check_format(completion),
        "correct": verify(completion, ref.answer),
        "steps_correct": check_steps(ref, completion),
    }


def describe_check(check: dict[str, Any] | None, short: bool = False, lang: str = "en") -> str:
    """One line for the chat: ✅ / ❌ / ⚠ and why (``short``: just the verdict, for tables), in ``lang``."""
    if check is None:
        return "–" if short else say(lang, "not_task")
    if short:
        if check["correct"]:
            return say(lang, "short_correct" if check["steps_correct"] else "short_correct_step")
        return say(lang, "short_wrong" if check["well_formed"] else "short_malformed")
    if check["correct"]:
        steps = say(lang, "steps_right" if check["steps_correct"] else "steps_differ")
        return say(lang, "correct", reference=check["reference"], steps=steps)
    if not check["well_formed"]:
        return say(lang, "malformed", reference=check["reference"])
    return say(lang, "wrong", answer=check["model_answer"], reference=check["reference"])


def example_prompts(profile: Profile, difficulty: int = 2) -> list[str]:
    """One held-out (eval-split) task-world prompt per family: the student never trained on them.

    A GSM8K profile gets its first three test questions instead.
    """
    if profile.data_source == "gsm8k":
        from .gsm8k import load_problems

        return [p.prompt.strip() for p in load_problems(profile.data_path, "test")[:3]]
    families = [f for f in profile.families if f in FAMILIES] or list(FAMILIES)
    problems = make_problems(len(families), "test", seed=profile.eval_seed, families=families,
                             difficulties=(difficulty,))
    return [p.prompt for p in problems]


# =======================================================================================
# 2. Models, prompts, validation
# =======================================================================================

PROMPT_FORMATS = ("raw", "chat")


def _manifest(source: str | Path) -> dict[str, Any] | None:
    """The course manifest in the model folder ``source``, or ``None`` (a hub id, a hub-style folder)."""
    import json

    if not source:
        return None
    path = Path(source) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def prompt_format_of(source: str | Path) -> str:
    """How the model in ``source`` reads a prompt: "raw" or "chat".

    A course artifact (a folder with a manifest) says so in its manifest (``config.prompt_format``,
    written by :func:`utils.models.save_model_artifact`); one saved before the field existed was
    trained by the course, on raw prompts: "raw". Anything else – a hub id such as the colab
    profile's ``serve_model``, a hub-style folder – is a published checkpoint: "chat".
    """
    manifest = _manifest(source)
    if manifest is None:
        return "chat"
    return manifest.get("config", {}).get("prompt_format", "raw")


def _data_source_of(source: str | Path) -> str | None:
    """The data a course artifact was trained on ("synthetic" or "gsm8k"), from its manifest's profile."""
    from .config import PROFILES

    manifest = _manifest(source)
    profile = PROFILES.get(manifest.get("profile", "")) if manifest else None
    return profile.data_source if profile else None


@dataclass
class ServedModel:
    """A loaded model and its tokenizer, under the name the UI shows ("student", "teacher").

    ``prompt_format`` ("raw" or "chat", see :func:`model_input`) and ``data_source`` ("synthetic"
    or "gsm8k": which training prompts "raw" means) default to what ``source`` says – a course
    artifact's manifest – see :func:`prompt_format_of`.
    """

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str = ""
    prompt_format: str | None = None
    data_source: str | None = None

    def __post_init__(self) -> None:
        if self.prompt_format is None:
            self.prompt_format = prompt_format_of(self.source)
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, not {self.prompt_format!r}")
        if self.data_source is None:
            # the character tokenizer reads the task world only (it has no newline, GSM8K needs one)
            self.data_source = _data_source_of(self.source) or ("synthetic" if self.char_level else "gsm8k")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_tokens(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    @property
    def char_level(self) -> bool:
        """True for the course's character tokenizer (tiny profile)."""
        return bool(self.tokenizer.init_kwargs.get(MARKER))

    @property
    def think_prefix(self) -> str:
        """What the model's reply is forced to start with (DeepSeek-R1 README: ``<think>\\n``).
        Our character tokenizer has no newline, and its completions start with ``<think>``."""
        return THINK_OPEN if self.char_level else THINK_OPEN + "\n"


def load_served_model(name: str, path: str | Path, device: str | None = None,
                      dtype: torch.dtype | None = None) -> ServedModel:
    """Load a causal LM folder (or hub id) for serving: safetensors only, no remote code.

    Pickle-based weights (``pytorch_model.bin``) can execute code when loaded, so a local
    folder without ``*.safetensors`` is refused with a message rather than loaded.
    """
    from .models import load_causal_lm
    from .tokenizer import load_tokenizer

    local = Path(path)
    if local.exists():
        if not local.is_dir():
            raise ValueError(f"{local} is not a model folder.")
        if not any(local.glob("*.safetensors")):
            raise ValueError(f"{local} holds no *.safetensors weights. This app loads safetensors only: "
                             "pickle-based .bin/.pt files can run code when they are loaded.")
    elif str(path).startswith((".", "/")):
        raise FileNotFoundError(f"No model folder at {path}.")
    if device is None:
        device, auto_dtype = pick_device()
        dtype = dtype or auto_dtype
    model = load_causal_lm(path, device=device, dtype=dtype)  # use_safetensors, no remote code
    return ServedModel(name, model, load_tokenizer(path), source=str(path))


def training_prompt(served: ServedModel, prompt: str) -> str:
    """``prompt`` written exactly as the course's training prompts are.

    Task world (:mod:`utils.tasks`): ``Q:7+8=`` – as typed, with ``Q:`` added if it is missing.
    GSM8K (:func:`utils.gsm8k.from_gsm8k`): ``Q:<question>\n`` – the newline the app's text box
    strips is put back.
    """
    body = prompt.strip()
    body = body[2:].lstrip() if body.startswith("Q:") else body
    return f"Q:{body}\n" if served.data_source == "gsm8k" else f"Q:{body}"


def model_input(served: ServedModel, prompt: str) -> str:
    """The text the model reads, ending with the think opener (:attr:`ServedModel.think_prefix`).

    * ``prompt_format == "raw"`` (a model the course trained): the prompt in its training format
      (:func:`training_prompt`), no chat template – a template's role markers and default system
      prompt (SmolLM2's, Qwen's) were never in its training data, and a model fed them may never stop.
    * ``"chat"`` (a hub checkpoint such as DeepSeek-R1-Distill): the prompt through the chat
      template if the tokenizer has one (no system prompt, as DeepSeek recommends for R1).
    """
    tok = served.tokenizer
    if served.prompt_format == "raw":
        return training_prompt(served, prompt) + served.think_prefix
    text = prompt
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                       add_generation_prompt=True)
    # R1's own template already ends with "<think>\n"; otherwise force it.
    if text.endswith(served.think_prefix):
        return text
    return text + served.think_prefix


class InputError(ValueError):
    """A request the app refuses, with a message meant for the person who sent it."""


class UnreadablePrompt(InputError):
    """A prompt with characters the model's tokenizer cannot read (Chinese, for the tiny models).
    The chat answers it with its message, in the chosen language, instead of an error."""


@dataclass
class Request:
    """A validated request: what :func:`stream_generate` needs, plus notes for the user."""

    prompt: str
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    notes: list[str] = field(default_factory=list)


def unknown_characters(served: ServedModel, text: str) -> list[str]:
    """Characters of ``text`` the model's tokenizer cannot represent (they would become <unk>)."""
    tok = served.tokenizer
    unk = tok.unk_token_id
    bad = []
    for ch in dict.fromkeys(text):  # unique, in order
        if ch in "\n\t":
            ok = not served.char_level or tok.convert_tokens_to_ids(ch) != unk
        elif not ch.isprintable():
            ok = False  # control characters: never meaningful in a prompt
        elif served.char_level:
            ok = tok.convert_tokens_to_ids(ch) not in (None, unk)
        else:
            ok = unk is None or unk not in tok(ch, add_special_tokens=False)["input_ids"]
        if not ok:
            bad.append(ch)
    return bad


def _readable(chars: list[str], limit: int = 8, lang: str = "en") -> str:
    shown = ", ".join(f"'{c}' (U+{ord(c):04X})" if c.isprintable() else f"U+{ord(c):04X}"
                      for c in chars[:limit])
    return shown + (say(lang, "and_more", n=len(chars) - limit) if len(chars) > limit else "")


def _number(value: Any, field: str, lang: str = "en") -> float:
    """``value`` as a finite float, or an :class:`InputError` naming the field (``app_text``'s ``field_<field>``)
    in ``lang``."""
    what = say(lang, f"field_{field}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(say(lang, "not_number", what=what, value=repr(value))) from None
    if math.isnan(number) or math.isinf(number):
        raise InputError(say(lang, "not_finite", what=what, value=repr(value)))
    return number


def validate_request(served: ServedModel, prompt: Any, temperature: Any, top_p: Any,
                     max_new_tokens: Any, *, max_tokens_cap: int, max_prompt_chars: int,
                     lang: str = "en") -> Request:
    """Check one request; raise :class:`InputError` with a clear message in ``lang`` ("en" or
    "zh"), or return it cleaned.

    * empty prompt → error; longer than ``max_prompt_chars`` → error;
    * characters the tokenizer does not know (non-ASCII for the tiny models) →
      :class:`UnreadablePrompt` naming them and, for the tiny models, the characters they do read;
    * ``max_new_tokens <= 0`` → error; above ``max_tokens_cap`` → capped, with a note;
    * ``temperature`` outside [0, ``MAX_TEMPERATURE``] (or NaN/inf) → error; ``= 0`` → greedy
      decoding (``top_p`` unused), with a note;
    * ``top_p`` outside (0, 1] → error;
    * prompt + new tokens beyond the model's context → error.
    """
    lang = language(lang)
    example = "Q:4759+86=" if served.char_level else "How many primes are below 20?"
    if prompt is None or not isinstance(prompt, str) or not prompt.strip():
        raise InputError(say(lang, "empty", example=example))
    prompt = prompt.strip()
    if len(prompt) > max_prompt_chars:
        raise InputError(say(lang, "too_long", length=len(prompt), limit=max_prompt_chars))
    bad = unknown_characters(served, prompt)
    if bad:
        if served.char_level:
            vocab = "".join(sorted(t for t in served.tokenizer.get_vocab() if len(t) == 1 and t != " "))
            raise UnreadablePrompt(say(lang, "tiny_reads", vocab=vocab, chars=_readable(bad, lang=lang),
                                       example=example))
        raise UnreadablePrompt(say(lang, "unknown_chars", chars=_readable(bad, lang=lang)))
    notes: list[str] = []
    tokens = _number(max_new_tokens, "max_new_tokens", lang)
    if tokens != int(tokens):
        raise InputError(say(lang, "not_whole", value=repr(max_new_tokens)))
    tokens = int(tokens)
    if tokens <= 0:
        raise InputError(say(lang, "at_least_1", value=tokens))
    if tokens > max_tokens_cap:
        notes.append(say(lang, "capped", cap=max_tokens_cap))
        tokens = max_tokens_cap
    temp = _number(temperature, "temperature", lang)
    if not 0 <= temp <= MAX_TEMPERATURE:
        raise InputError(say(lang, "temperature_range", high=MAX_TEMPERATURE, value=temp))
    p = _number(top_p, "top_p", lang)
    if not 0 < p <= 1:
        raise InputError(say(lang, "top_p_range", value=p))
    do_sample = temp > 0
    if not do_sample:
        notes.append(say(lang, "greedy_note"))
    n_prompt = len(served.tokenizer(model_input(served, prompt), add_special_tokens=False)["input_ids"])
    ctx = served.context_tokens
    if ctx is not None and n_prompt + tokens > ctx:
        raise InputError(say(lang, "context", prompt_tokens=n_prompt, new_tokens=tokens, context=ctx))
    return Request(prompt, tokens, do_sample, temp, p, notes)


# =======================================================================================
# 3. Streaming generation
# =======================================================================================

class EveryTokenStreamer(TextIteratorStreamer):
    """A ``TextIteratorStreamer`` that hands over new text after *every* token.

    The stock streamer releases symbols only at the next space (they might begin a longer
    piece of markup); a chain of thought such as ``<think>7+8=15;15-3=12`` has no space, so
    it would arrive all at once at the end. Here only a half-decoded multi-byte character
    (which decodes to U+FFFD) is held back. It also counts the tokens it has seen.
    """

    def __init__(self, tokenizer, skip_prompt: bool = True, timeout: float | None = None, **decode_kwargs):
        super().__init__(tokenizer, skip_prompt=skip_prompt, timeout=timeout, **decode_kwargs)
        self.n_tokens = 0

    def put(self, value: torch.Tensor) -> None:
        if value.dim() > 1:
            if value.shape[0] > 1:
                raise ValueError("EveryTokenStreamer streams one sequence at a time")
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.n_tokens += value.numel()
        self.token_cache.extend(value.tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if text.endswith("\ufffd"):
            return
        self.on_finalized_text(text[self.print_len:])
        self.print_len = len(text)


class _StopWhenSet(StoppingCriteria):
    """Stops ``generate`` when the event is set (the reader went away: client disconnected)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool,
                          device=input_ids.device)


class GenerationError(RuntimeError):
    """Generation failed (an exception in ``model.generate`` or a stalled stream)."""


def split_thinking(text: str) -> tuple[str, str, bool]:
    """``"<think>7+8=15</think>A:15"`` → ``("7+8=15", "A:15", True)``.

    Returns ``(thinking, answer, thinking_closed)``. While ``</think>`` has not arrived yet,
    everything after ``<think>`` is thinking in progress. Text without ``<think>`` is all answer.
    """
    body = text.lstrip()
    if not body.startswith(THINK_OPEN):
        return "", body.strip(), False
    body = body[len(THINK_OPEN):]
    if THINK_CLOSE in body:
        thinking, answer = body.split(THINK_CLOSE, 1)
        return thinking.strip(), answer.strip(), True
    return body.strip(), "", False


def stream_generate(served: ServedModel, request: Request) -> Iterator[dict[str, Any]]:
    """Generate for one validated request and yield the growing result after every token.

    Each yielded dict (also what the ``/generate`` API streams) has ``text`` (the reply,
    starting with the forced ``<think>``), ``thinking``, ``answer``, ``done``, ``new_tokens``,
    ``first_token_ms`` (request → first generated text), ``total_ms``, ``tokens_per_s``
    (generated tokens ÷ ``total_ms``), ``greedy`` and ``notes``; the last one (``done=True``)
    adds ``check`` (see :func:`check_answer`). Raises :class:`GenerationError` on failure.
    """
    start = time.perf_counter()
    tok, model = served.tokenizer, served.model
    enc = tok(model_input(served, request.prompt), return_tensors="pt",
              add_special_tokens=False).to(served.device)
    streamer = EveryTokenStreamer(tok, skip_prompt=True, timeout=STREAM_TIMEOUT_S, skip_special_tokens=True)
    stop = threading.Event()
    kwargs: dict[str, Any] = dict(**enc, max_new_tokens=request.max_new_tokens, do_sample=request.do_sample,
                                  streamer=streamer, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id,
                                  stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]))
    if request.do_sample:
        kwargs.update(temperature=request.temperature, top_p=request.top_p)
    else:  # a hub checkpoint's generation_config may ask for sampling: say greedy explicitly
        kwargs.update(temperature=None, top_p=None, top_k=None)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(**kwargs)
        except BaseException as exc:  # noqa: BLE001 – handed to the reading thread
            failure.append(exc)
            streamer.end()  # wake the reader up

    thread = threading.Thread(target=work, name=f"generate-{served.name}", daemon=True)
    thread.start()
    generated, first = "", None

    def state(done: bool) -> dict[str, Any]:
        now = time.perf_counter()
        text = served.think_prefix + generated
        thinking, answer, closed = split_thinking(text)
        out = {"model": served.name, "prompt": request.prompt, "text": text, "thinking": thinking,
               "answer": answer, "thinking_done": closed, "done": done, "new_tokens": streamer.n_tokens,
               "first_token_ms": None if first is None else round((first - start) * 1000, 1),
               "total_ms": round((now - start) * 1000, 1),
               "tokens_per_s": round(streamer.n_tokens / (now - start), 1) if streamer.n_tokens else 0.0,
               "greedy": not request.do_sample, "notes": list(request.notes)}
        if done:
            out["check"] = check_answer(request.prompt, text)
        return out

    try:
        for piece in streamer:
            if not piece:
                continue
            if first is None:
                first = time.perf_counter()
            generated += piece
            yield state(done=False)
        thread.join()
    except Empty:
        raise GenerationError(f"{served.name} produced nothing for {STREAM_TIMEOUT_S:.0f} s.") from None
    finally:
        stop.set()  # a reader that stops early (closed browser tab) stops the generation too
    if failure:
        exc = failure[0]
        raise GenerationError(f"{served.name} failed while generating: {type(exc).__name__}: {exc}") from exc
    yield state(done=True)


# =======================================================================================
# 4. The Gradio app
# =======================================================================================

def _messages(prompt: str, result: dict[str, Any] | None, lang: str = "en") -> list[dict[str, Any]]:
    """Chat messages for one model: the question, a collapsible thinking block, the answer."""
    # The prompt is escaped like the model's text: the chat must show "<b>" or "<script>", not run it.
    msgs: list[dict[str, Any]] = [{"role": "user", "content": html.escape(prompt)}]
    if result is None:
        return msgs
    finished = result["thinking_done"] or result["done"]
    # Model text is escaped: a model can write "<script>" as easily as "<think>".
    msgs.append({"role": "assistant", "content": html.escape(result["thinking"]) or "…",
                 "metadata": {"title": say(lang, "thinking"), "status": "done" if finished else "pending"}})
    if result["answer"] or result["done"]:
        content = f"**{html.escape(result['answer']) or say(lang, 'no_answer')}**"
        if result["done"]:
            content += "\n\n" + describe_check(result.get("check"), lang=lang)
        msgs.append({"role": "assistant", "content": content})
    return msgs


def _stats_table(results: dict[str, dict[str, Any]], notes: list[str], lang: str = "en") -> str:
    if not results:
        return ""
    rows = [say(lang, "stats_header"), "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        first = "…" if r["first_token_ms"] is None else f"{r['first_token_ms']:.0f} ms"
        check = describe_check(r.get("check"), short=True, lang=lang) if r["done"] else "…"
        decoding = say(lang, "greedy" if r["greedy"] else "sampling_short")
        rows.append(f"| {name} | {first} | {r['total_ms']:.0f} ms | {r['new_tokens']} | {r['tokens_per_s']:.0f} "
                    f"| {decoding} | {check} |")
    return "\n".join(rows + [""] + [f"*{n}*" for n in dict.fromkeys(notes)])


def build_app(student_path: str | Path | None = None, teacher_path: str | Path | None = None,
              profile: Profile | str | None = None, *, models: dict[str, ServedModel] | None = None,
              device: str | None = None, title: str | None = None, lang: str | None = None):
    """Build the Gradio app (a ``gr.Blocks``, queued, not launched) serving the student.

    ``student_path`` / ``teacher_path`` are model folders (artifacts) or hub ids; with a
    teacher the UI offers "student", "teacher" or "both" side by side, with latency shown.
    ``models`` passes already loaded :class:`ServedModel` objects instead (notebook 05 and
    the tests). Sizes come from ``profile``: ``serve_max_new_tokens`` caps the reply,
    ``serve_concurrency`` generations run at once, ``serve_queue_size`` more may wait.

    Two endpoints: the UI's ``/chat``, and ``/generate`` for ``gradio_client`` –
    ``client.submit(prompt, model, temperature, top_p, max_new_tokens, language, api_name="/generate")``
    streams the dicts of :func:`stream_generate`. Invalid input raises ``gr.Error`` with a
    clear message (shown in the UI; an ``AppError`` in the client); the app keeps serving.
    A prompt the model cannot read (Chinese, for the tiny models) is answered in the chat with
    what the model can read, instead of an error.

    A language switch (English / 中文) relabels the UI; messages come in the chosen language
    (``language`` = "English" or "中文", or "en"/"zh", on both endpoints; English by default). The app
    opens in ``lang``, by default the course's language (:func:`utils.messages.language`): notebook 05's
    Chinese twin opens it in Chinese.
    The loaded models are available as ``demo.served_models``.
    """
    import gradio as gr

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    if models is None:
        if student_path is None:
            raise ValueError("build_app needs student_path (a model folder) or models=")
        models = {"student": load_served_model("student", student_path, device=device)}
        if teacher_path is not None:
            models["teacher"] = load_served_model("teacher", teacher_path, device=device)
    if "student" not in models:
        raise ValueError("models must contain a 'student'")
    names = list(models)
    choices = names + (["both"] if len(names) > 1 else [])
    cap = prof.serve_max_new_tokens
    limits = dict(max_tokens_cap=cap, max_prompt_chars=prof.serve_max_prompt_chars)

    def validated(name: str, prompt, temperature, top_p, max_new_tokens, lang: str, *,
                  in_chat: bool = False) -> Request:
        """The request, or a ``gr.Error`` in ``lang``; ``in_chat`` lets an :class:`UnreadablePrompt`
        through, for the chat to answer."""
        if name not in models:
            raise gr.Error(say(lang, "unknown_model", name=name, names=", ".join(names)))
        try:
            return validate_request(models[name], prompt, temperature, top_p, max_new_tokens, lang=lang, **limits)
        except InputError as exc:
            if in_chat and isinstance(exc, UnreadablePrompt):
                raise
            raise gr.Error(str(exc), title=say(lang, "invalid_title"), print_exception=False) from None

    def guarded(name: str, request: Request, lang: str) -> Iterator[dict[str, Any]]:
        try:
            yield from stream_generate(models[name], request)
        except GenerationError as exc:
            log.exception("generation failed")
            raise gr.Error(say(lang, "failed", error=exc), title=say(lang, "failed_title"),
                           print_exception=False) from None

    def checked_language(choice) -> str:
        try:
            return language(choice)
        except ValueError as exc:
            raise gr.Error(str(exc), title=say("en", "invalid_title"), print_exception=False) from None

    def generate(prompt: str, model: str = "student", temperature: float = prof.temperature,
                 top_p: float = prof.top_p, max_new_tokens: int = cap, language: str = "English") -> dict:
        """Stream one model's reply: dicts with text, thinking, answer, timings and, at the end, the check."""
        lang = checked_language(language)
        request = validated(model, prompt, temperature, top_p, max_new_tokens, lang)
        yield from guarded(model, request, lang)

    def chat(prompt, choice, temperature, top_p, max_new_tokens, language_choice="English"):
        lang = checked_language(language_choice)
        chosen = names if choice == "both" else [choice]
        conversations: dict[str, list] = {n: [] for n in names}
        try:
            requests = {n: validated(n, prompt, temperature, top_p, max_new_tokens, lang, in_chat=True)
                        for n in chosen}
        except UnreadablePrompt as exc:  # answered in the chat: what this model can read
            for n in chosen:
                conversations[n] = _messages(str(prompt), None) + [
                    {"role": "assistant", "content": f"ℹ️ {html.escape(str(exc), quote=False)}"}]
            yield (*[conversations[n] for n in names], "")
            return
        notes = [note for r in requests.values() for note in r.notes]
        results: dict[str, dict[str, Any]] = {}
        question = requests[chosen[0]].prompt
        for name in chosen:  # one after the other: each gets the CPU to itself, so latencies compare
            for result in guarded(name, requests[name], lang):
                results[name] = result
                conversations[name] = _messages(question, result, lang)
                yield (*[conversations[n] for n in names], _stats_table(results, notes, lang))

    def header(lang: str) -> str:  # ``title`` (when given) in every language
        return f"## {title or say(lang, 'title')}\n{say(lang, 'intro', thinking=say(lang, 'thinking'))}"

    def shown(name: str, lang: str) -> str:  # "student", "teacher", "both" in ``lang``; other models by name
        return say(lang, name) if name in ("student", "teacher", "both") else name

    def model_choices(lang: str) -> list[tuple[str, str]]:
        return [(shown(n, lang), n) for n in choices]

    from .messages import check_language, language as course_language

    start = check_language(lang or course_language())   # the notebook's language (notebooks/zh/ → 中文)
    with gr.Blocks(title=title or say(start, "title"), analytics_enabled=False) as demo:
        with gr.Row():
            intro = gr.Markdown(header(start))
            switch = gr.Radio(list(LANGUAGES), value=next(k for k, v in LANGUAGES.items() if v == start), label="Language · 语言", scale=0,
                              min_width=200, elem_id="language")
        with gr.Row():
            prompt = gr.Textbox(label=say(start, "problem"), placeholder="Q:4759+86=", scale=4, elem_id="prompt")
            choice = gr.Radio(model_choices(start), value="student", label=say(start, "model"), scale=1,
                              elem_id="model-choice")
        with gr.Accordion(say(start, "sampling"), open=False) as sampling:
            temperature = gr.Slider(0.0, 1.5, value=prof.temperature, step=0.05, label=say(start, "temperature"))
            top_p = gr.Slider(0.05, 1.0, value=prof.top_p, step=0.05, label=say(start, "top_p"))
            max_new = gr.Slider(1, cap, value=cap, step=1, label=say(start, "max_new_tokens"))
        run_btn = gr.Button(say(start, "generate"), variant="primary", elem_id="generate")
        examples = gr.Examples(example_prompts(prof), inputs=[prompt], label=say(start, "examples"))
        with gr.Row():
            panes = [gr.Chatbot(label=shown(n, start), height=320,
                                elem_id=f"chat-{n}", allow_tags=False, feedback_options=None) for n in names]
        stats = gr.Markdown(elem_id="stats")

        def relabel(choice_label: str):
            lang = checked_language(choice_label)
            return (gr.Markdown(header(lang)), gr.Textbox(label=say(lang, "problem")),
                    gr.Radio(choices=model_choices(lang), label=say(lang, "model")),
                    gr.Accordion(label=say(lang, "sampling")), gr.Slider(label=say(lang, "temperature")),
                    gr.Slider(label=say(lang, "top_p")), gr.Slider(label=say(lang, "max_new_tokens")),
                    gr.Button(value=say(lang, "generate")), gr.Dataset(label=say(lang, "examples")),
                    *[gr.Chatbot(label=shown(n, lang)) for n in names])

        switch.change(relabel, switch, [intro, prompt, choice, sampling, temperature, top_p, max_new, run_btn,
                                        examples.dataset, *panes], api_visibility="private")
        inputs = [prompt, choice, temperature, top_p, max_new, switch]
        run_btn.click(chat, inputs, [*panes, stats], api_name="chat")
        prompt.submit(chat, inputs, [*panes, stats], api_visibility="private")
        gr.api(generate, api_name="generate")
    demo.queue(default_concurrency_limit=prof.serve_concurrency, max_size=prof.serve_queue_size)
    demo.served_models = models
    return demo


def launch(demo, *, host: str = LOCALHOST, port: int | None = None, share: bool = False,
           block: bool = False, quiet: bool = True) -> str:
    """Start ``demo`` and return its local URL; safe defaults: loopback only, no share link.

    ``host="0.0.0.0"`` makes the app reachable from every network the machine is on – do it
    only on purpose (inside a container, behind a firewall). ``block=False`` returns at once
    (notebooks, tests); close the app with ``demo.close()``.
    """
    if host not in (LOCALHOST, "localhost", "::1"):
        print(f"⚠ Binding {host}: anyone who can reach this machine on port {port} can use the app.")
    if share:
        print("⚠ share=True: Gradio opens a public tunnel (needs internet) – anyone with the link can use it.")
    demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                quiet=quiet, show_error=False, inbrowser=False)
    return demo.local_url


# =======================================================================================
# 5. Command line: python -m utils.serve
# =======================================================================================

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m utils.serve",
                                     description="Serve the distilled student (and teacher) with Gradio.")
    parser.add_argument("--model", help="an existing model folder (default: the profile's student artifact); "
                                        "a hub id only together with --hub")
    parser.add_argument("--teacher", help="a second model to compare with, side by side (a folder, or a hub "
                                          "id with --hub)")
    parser.add_argument("--hub", action="store_true",
                        help="let --model/--teacher name a Hugging Face hub id (e.g. org/name) when no folder of "
                             "that name exists. Without it a path that does not exist is an error, so a typo "
                             "never downloads somebody else's repository")
    parser.add_argument("--profile", default=None, help="course profile (default: $R1LAB_PROFILE or tiny)")
    parser.add_argument("--host", default=LOCALHOST,
                        help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes the app to the network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .artifacts import artifact_path

    prof = get_profile(args.profile)
    set_offline_env(prof.hub_offline)
    model = args.model or artifact_path(prof.name, "student")
    if args.model is None and not (Path(model) / "manifest.json").exists():
        print(f"No student artifact at {model}: run notebooks 01–04 (`make run`) or pass --model.",
              file=sys.stderr)
        return 2
    if not args.hub:
        for option, value in (("--model", args.model), ("--teacher", args.teacher)):
            if value is not None and not Path(value).is_dir():
                print(f"{option} {value}: no model folder at {Path(value).resolve()}. Check the path, or pass "
                      f"--hub if {value!r} is a Hugging Face hub id to download.", file=sys.stderr)
                return 2
    demo = build_app(model, args.teacher, profile=prof)
    print(f"Serving {model} on http://{args.host}:{args.port} (Ctrl+C to stop)")
    launch(demo, host=args.host, port=args.port, share=args.share, block=True, quiet=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
