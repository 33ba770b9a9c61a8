"""Notebook 03: the teacher writes chains of thought; score them, filter them, publish a dataset.

Two filtering traditions meet here:

* the reference article: drop samples under a **reward threshold**, remove duplicates and
  malformed answers;
* the DeepSeek-R1 paper: **rejection sampling** – several samples per prompt, keep the
  correct ones (by rules), drop malformed or over-long chains of thought.

Each stage is a small function ``rows -> rows`` with a unit test; :func:`run_filters` applies
them in order and records a count after each, for the funnel chart.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import Run
from .generation import generate
from .tasks import Problem, check_format, verify

# ---------------------------------------------------------------------------------------
# 1. Sampling
# ---------------------------------------------------------------------------------------


def sample_stage(run: Run, model, tokenizer, problems: Sequence[Problem], *, progress: bool = True) -> tuple[list[dict], dict]:
    """Notebook 03's sampling: :func:`sample_candidates` with the profile's k, temperature, top-p,
    length and batch. Saved as the replay record ``samples``, which classroom replay
    (``R1LAB_REPLAY=1``, :mod:`utils.replay`) loads instead of sampling."""
    from .replay import load_record, save_record

    if (saved := load_record(run, "samples")) is not None:
        return saved["rows"], saved["stats"]
    prof = run.profile
    rows, stats = sample_candidates(model, tokenizer, problems, k=prof.samples_per_prompt, temperature=prof.temperature,
                                    top_p=prof.top_p, max_new_tokens=prof.max_new_tokens,
                                    batch_size=prof.gen_batch_size, progress=progress)
    save_record(run, "samples", {"rows": rows, "stats": stats}, seconds=stats.get("seconds"))
    return rows, stats


def sample_candidates(model, tokenizer, problems: Sequence[Problem], *, k: int, temperature: float,
                      top_p: float, max_new_tokens: int, backend: str = "transformers",
                      model_path: str | None = None, batch_size: int = 1024,
                      progress: bool = True) -> tuple[list[dict], dict]:
    """``k`` samples per problem; returns ``(rows, stats)`` with tokens/s in ``stats``.

    ``backend="transformers"`` uses :func:`utils.generation.generate` (left padding, EOS stop);
    ``backend="vllm"`` is the scale-out path on a CUDA GPU (``pip install vllm``): the same
    sampling parameters through ``vllm.LLM(model_path).generate``.
    """
    prompts = [p.prompt for p in problems]
    start = time.perf_counter()
    if backend == "transformers":
        texts, n_tokens = generate(model, tokenizer, prompts, do_sample=True, temperature=temperature,
                                   top_p=top_p, num_return_sequences=k, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, progress=progress, desc="teacher sampling")
    elif backend == "vllm":
        texts, n_tokens = _sample_vllm(model_path, prompts, k, temperature, top_p, max_new_tokens)
    else:
        raise ValueError(f"backend must be 'transformers' or 'vllm', got {backend!r}")
    seconds = time.perf_counter() - start
    rows = []
    for i, p in enumerate(problems):
        for j in range(k):
            rows.append({"prompt": p.prompt, "completion": texts[i * k + j], "answer": p.answer,
                         "family": p.family, "difficulty": p.difficulty, "sample": j})
    return rows, {"seconds": seconds, "tokens": n_tokens, "tokens_per_s": n_tokens / seconds}


def _sample_vllm(model_path, prompts, k, temperature, top_p, max_new_tokens):
    """vLLM backend (GPU only): one ``generate`` call, ``n=k`` samples per prompt."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("The vLLM backend needs a CUDA GPU; use backend='transformers' on a CPU.")
    try:
        from vllm import LLM, SamplingParams
    except ImportError as exc:
        raise RuntimeError("vLLM is not installed: `pip install vllm` on a GPU machine.") from exc
    if model_path is None:
        raise ValueError("the vLLM backend needs model_path (a folder saved with save_pretrained)")
    if (Path(model_path) / "adapter_config.json").is_file():
        raise ValueError(f"{model_path} holds LoRA adapters (on the artifact its manifest names as "
                         "'adapter_of'), not a whole model: vLLM needs the merged weights "
                         "(utils.models.merge_lora, then save_pretrained) or LLM(..., enable_lora=True).")
    llm = LLM(model=str(model_path), trust_remote_code=False)
    params = SamplingParams(n=k, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens)
    texts, n_tokens = [], 0
    for out in llm.generate(prompts, params):
        for o in out.outputs:
            texts.append(o.text)
            n_tokens += len(o.token_ids)
    return texts, n_tokens


# ---------------------------------------------------------------------------------------
# 2. Scoring
# ---------------------------------------------------------------------------------------

def score_rows(rows: list[dict], reward_fn: Callable[[list[str], list[str]], list[float]]) -> list[dict]:
    """Add ``reward`` (reward model), ``correct`` (verifier), ``well_formed`` and ``length``."""
    rewards = reward_fn([r["prompt"] for r in rows], [r["completion"] for r in rows])
    for r, reward in zip(rows, rewards):
        r.update(reward=float(reward), correct=verify(r["completion"], r["answer"]),
                 well_formed=check_format(r["completion"]), length=len(r["completion"]))
    return rows


# ---------------------------------------------------------------------------------------
# 3. Filter stages: each takes rows and returns the rows it keeps
# ---------------------------------------------------------------------------------------

def filter_format(rows: list[dict], max_length: int | None = None) -> list[dict]:
    """Keep well-formed completions (``<think>…</think>A:…``), optionally not over-long."""
    return [r for r in rows if check_format(r["completion"])
            and (max_length is None or len(r["completion"]) <= max_length)]


def filter_verifier(rows: list[dict], max_per_prompt: int) -> list[dict]:
    """Rejection sampling: keep verified samples, at most ``max_per_prompt`` per prompt."""
    kept, per_prompt = [], Counter()
    for r in rows:
        if verify(r["completion"], r["answer"]) and per_prompt[r["prompt"]] < max_per_prompt:
            per_prompt[r["prompt"]] += 1
            kept.append(r)
    return kept


def filter_reward(rows: list[dict], reward_threshold: float) -> list[dict]:
    """The article's filter: keep samples whose reward-model score is ≥ ``reward_threshold``."""
    return [r for r in rows if r["reward"] >= reward_threshold]


def dedup_exact(rows: list[dict]) -> list[dict]:
    """Drop rows whose (prompt, completion) already appeared."""
    seen, kept = set(), []
    for r in rows:
        key = (r["prompt"], r["completion"])
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept


def _shingles(text: str, n: int) -> set[str]:
    return {text[i:i + n] for i in range(max(1, len(text) - n + 1))}


def _word_ngrams(text: str, n: int) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def dedup_near(rows: list[dict], threshold: float = 0.9, ngram: int = 5, num_perm: int = 64,
               seed: int = 1) -> list[dict]:
    """Drop near-duplicates: MinHash over character ``ngram`` shingles of prompt+completion,
    LSH at Jaccard ``threshold`` (datasketch); the first of each near-duplicate group stays."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept = []
    for i, r in enumerate(rows):
        m = MinHash(num_perm=num_perm, seed=seed)
        for s in _shingles(r["prompt"] + r["completion"], ngram):
            m.update(s.encode())
        if not lsh.query(m):
            lsh.insert(str(i), m)
            kept.append(r)
    return kept


def decontaminate(rows: list[dict], eval_problems: Sequence[Problem], n: int = 13,
                  unit: str = "char") -> list[dict]:
    """Drop rows whose prompt shares an ``n``-gram with any eval prompt.

    Prompts are split by a hash (never identical), but a near-copy of an eval problem
    should not be trained on either; ``n`` sets how long a shared span must be. ``unit``:
    n-grams of characters (the task world's formula-like prompts) or of words (prose such as
    GSM8K, where any two questions share 13-character spans like "how many more").
    """
    if unit not in ("char", "word"):
        raise ValueError(f"unit must be 'char' or 'word', not {unit!r}")
    ngrams = _shingles if unit == "char" else _word_ngrams
    grams = set()
    for p in eval_problems:
        grams |= ngrams(p.prompt, n)
    return [r for r in rows if not (ngrams(r["prompt"], n) & grams)]


@dataclass(frozen=True)
class FilterSettings:
    """What the filter stages need besides the rows: the eval prompts (decontamination), m (the
    verifier's cap per prompt), the reward threshold, an optional length cap, the n-gram unit."""

    eval_problems: Sequence[Problem]
    max_per_prompt: int
    reward_threshold: float
    max_length: int | None = None
    decontam_unit: str = "char"


# The stages of the funnel, each ``stage(rows, settings) -> rows kept``. Notebook 03 defines the same
# functions in a cell (a learner may reorder, edit or replace them) and passes its list to
# :func:`apply_filters` and :func:`publish`; a list whose sources differ from these gives
# ``distill_data`` another fingerprint (:meth:`utils.config.Run.using`).

def format_stage(rows, s):
    """Well-formed completions only (and not over-long, with a length cap)."""
    return filter_format(rows, s.max_length)


def exact_dedup_stage(rows, s):
    """Exact copies out first, so that they do not use up a prompt's quota of m correct samples."""
    return dedup_exact(rows)


def verifier_stage(rows, s):
    """Rejection sampling: verified samples only, at most m per prompt."""
    return filter_verifier(rows, s.max_per_prompt)


def reward_stage(rows, s):
    """The article's filter: a reward-model score of at least the threshold."""
    return filter_reward(rows, s.reward_threshold)


def near_dup_stage(rows, s):
    """Near-duplicates out (MinHash, Jaccard >= 0.9)."""
    return dedup_near(rows)


def decontam_stage(rows, s):
    """No n-gram shared with a validation or test prompt."""
    return decontaminate(rows, s.eval_problems, unit=s.decontam_unit)


FILTER_STAGES = [("format", format_stage), ("exact dedup", exact_dedup_stage),
                 ("verifier (≤ m per prompt)", verifier_stage), ("reward threshold", reward_stage),
                 ("near-dup (MinHash)", near_dup_stage), ("decontamination", decontam_stage)]


def stage_functions(stages) -> list:
    """The functions of a list of ``(name, stage)`` pairs, checked: the part of the fingerprint."""
    if not isinstance(stages, (list, tuple)) or not stages or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and callable(p[1]) for p in stages):
        raise TypeError("filter stages: a non-empty list of (name, function) pairs, each function(rows, settings) -> rows")
    return [fn for _, fn in stages]


def apply_filters(rows: list[dict], stages, settings: FilterSettings) -> tuple[list[dict], list[tuple[str, list[dict]]]]:
    """Run ``stages`` – ``[(name, stage(rows, settings) -> rows), …]`` – in order; returns
    ``(kept, [("generated", rows), (name, rows after it), …])`` for the funnel."""
    stage_functions(stages)
    funnel = [("generated", rows)]
    for name, stage in stages:
        after = stage(funnel[-1][1], settings)
        if not isinstance(after, list):
            raise TypeError(f"filter stage {name!r} returned {type(after).__name__}: return the list of rows it keeps")
        funnel.append((name, after))
    return funnel[-1][1], funnel


def run_filters(rows: list[dict], eval_problems: Sequence[Problem], *, max_per_prompt: int,
                reward_threshold: float, max_length: int | None = None,
                decontam_unit: str = "char") -> tuple[list[dict], list[tuple[str, list[dict]]]]:
    """The package's stages (:data:`FILTER_STAGES`) in order; returns ``(kept, [(stage name, rows
    after it), …])`` for the funnel."""
    settings = FilterSettings(eval_problems, max_per_prompt, reward_threshold, max_length, decontam_unit)
    return apply_filters(rows, FILTER_STAGES, settings)


def funnel_counts(stages: list[tuple[str, list[dict]]]) -> dict[str, dict[str, int]]:
    """``{stage: {family: count, "all": count}}`` for the funnel chart and the dataset card."""
    out = {}
    for name, rows in stages:
        c = Counter(r["family"] for r in rows)
        out[name] = {**dict(sorted(c.items())), "all": len(rows)}
    return out


def funnel_table(stages: list[tuple[str, list[dict]]]) -> list[dict]:
    """One row per stage, with percentages (notebook 03's toy funnel and funnel chart):
    ``{"stage", "kept", "dropped", "of_previous", "of_generated"}`` – the share kept of the
    stage before and of the first stage (fractions; an empty stage before gives ``nan``)."""
    out, first, prev = [], len(stages[0][1]) if stages else 0, None
    for name, rows in stages:
        n = len(rows)
        before = n if prev is None else prev
        out.append({"stage": name, "kept": n, "dropped": before - n,
                    "of_previous": n / before if before else float("nan"),
                    "of_generated": n / first if first else float("nan")})
        prev = n
    return out


def threshold_sweep(rows: list[dict], thresholds: Sequence[float]) -> list[dict]:
    """The reward model as a filter of *correct* samples: kept, precision, recall per threshold."""
    n_correct = sum(r["correct"] for r in rows)
    out = []
    for t in thresholds:
        kept = [r for r in rows if r["reward"] >= t]
        tp = sum(r["correct"] for r in kept)
        out.append({"threshold": t, "kept": len(kept), "precision": tp / len(kept) if kept else float("nan"),
                    "recall": tp / n_correct if n_correct else float("nan")})
    return out


def ranking_accuracy(rows: list[dict], *, within_prompt: bool) -> float:
    """How often the reward model scores a correct sample above a wrong one (ties count half).

    ``within_prompt=True`` compares only samples *of the same prompt* – what the Bradley–Terry loss
    trained (each preference pair shares a prompt); ``False`` compares every correct sample with
    every wrong one, across prompts – what a single global threshold relies on. The Bradley–Terry
    loss sees only score *differences* within a prompt, so adding any constant per prompt leaves it
    unchanged: nothing makes one prompt's scores comparable with another's. NaN without pairs.
    """
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["prompt"] if within_prompt else "", []).append(r)
    wins = pairs = 0.0
    for group in groups.values():
        right = sorted(r["reward"] for r in group if r["correct"])
        wrong = sorted(r["reward"] for r in group if not r["correct"])
        if not right or not wrong:
            continue
        # for each correct score: wrong scores below it (+ half of the equal ones), by two pointers
        below = equal_end = 0
        for x in right:
            while below < len(wrong) and wrong[below] < x:
                below += 1
            equal_end = max(equal_end, below)
            while equal_end < len(wrong) and wrong[equal_end] == x:
                equal_end += 1
            wins += below + 0.5 * (equal_end - below)
        pairs += len(right) * len(wrong)
    return wins / pairs if pairs else float("nan")


def best_of_n_by_reward(rows: list[dict]) -> list[dict]:
    """Per-prompt selection: for every prompt, its sample with the highest reward-model score (the
    first one on a tie). Uses the reward model only where its scores are comparable – within a
    prompt – instead of one threshold across prompts."""
    best: dict[str, dict] = {}
    for r in rows:
        if r["prompt"] not in best or r["reward"] > best[r["prompt"]]["reward"]:
            best[r["prompt"]] = r
    return list(best.values())


def choose_reward_threshold(rows: list[dict], n_candidates: int = 20) -> dict:
    """The article's reward threshold, *chosen on validation*: ``rows`` are scored samples of
    validation prompts (with ``reward`` and ``correct``).

    Candidates: −∞ (keep everything) and the ``n_candidates`` quantiles of the scores. The
    criterion is F1 of "reward ≥ t" against the verifier – how well the threshold alone picks
    the correct samples. A reward model with no skill keeps everything (−∞): any cut then drops
    correct samples as often as wrong ones. Returns ``{"threshold", "f1", "sweep"}``.
    """
    if not rows:
        raise ValueError("choose_reward_threshold needs scored validation samples")
    scores = sorted(r["reward"] for r in rows)
    candidates = [float("-inf")] + sorted({scores[i * (len(scores) - 1) // n_candidates]
                                           for i in range(1, n_candidates)})
    sweep = threshold_sweep(rows, candidates)
    for s in sweep:
        p, r = s["precision"], s["recall"]
        s["f1"] = 2 * p * r / (p + r) if s["kept"] and p + r > 0 else 0.0
    best = max(sweep, key=lambda s: s["f1"])  # ties: the lowest threshold, the first one
    return {"threshold": best["threshold"], "f1": best["f1"], "sweep": sweep}


def reward_threshold_on_validation(run: Run, model, tokenizer, reward_fn) -> dict:
    """Sample the teacher on the validation prompts as notebook 03 samples the training prompts,
    score the samples, and choose the threshold there (:func:`choose_reward_threshold`).

    A profile with a fixed ``reward_threshold`` keeps it (``"chosen": False``).
    """
    from .splits import val_problems

    prof = run.profile
    if prof.reward_threshold is not None:
        return {"threshold": prof.reward_threshold, "chosen": False, "sweep": []}
    rows, _ = sample_candidates(model, tokenizer, val_problems(run), k=prof.samples_per_prompt,
                                temperature=prof.temperature, top_p=prof.top_p,
                                max_new_tokens=prof.max_new_tokens, batch_size=prof.gen_batch_size, progress=False)
    score_rows(rows, reward_fn)
    return {**choose_reward_threshold(rows), "chosen": True, "rows": rows}


# ---------------------------------------------------------------------------------------
# 4. The dataset
# ---------------------------------------------------------------------------------------

SFT_COLUMNS = ("prompt", "completion", "family", "difficulty", "reward", "correct")


def save_dataset(run: Run, name: str, rows: list[dict], card: str, metrics: dict) -> None:
    """``datasets.save_to_disk`` (+ ``data.jsonl`` and a ``README.md`` card) as artifact ``name``."""
    from datasets import Dataset

    from .artifacts import atomic_artifact

    records = [{k: r[k] for k in SFT_COLUMNS} for r in rows]
    with atomic_artifact(run.name, name, seed=run.seed, metrics=metrics, fingerprint=run.fingerprint(name),
                         config={"columns": list(SFT_COLUMNS)}) as tmp:
        Dataset.from_list(records).save_to_disk(str(tmp / "dataset"))
        with open(tmp / "data.jsonl", "w") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
        (tmp / "README.md").write_text(card)


def load_distill_data(run: Run, name: str = "distill_data"):
    """The dataset saved by notebook 03 (``datasets.Dataset`` with prompt/completion columns)."""
    from datasets import load_from_disk

    from .artifacts import artifact_path, read_manifest

    read_manifest(run.name, name)
    return load_from_disk(str(artifact_path(run.name, name) / "dataset"))


def dataset_card(run: Run, counts: dict, teacher_manifest: dict, stats: dict) -> str:
    """A short markdown card: provenance, sampling parameters, counts per stage and family."""
    prof = run.profile
    fams = sorted({f for c in counts.values() for f in c if f != "all"})
    lines = ["# distill_data", "",
             f"Chains of thought written by the `teacher` artifact ({teacher_manifest.get('config', {}).get('method', '?')}, "
             f"eval accuracy {teacher_manifest.get('metrics', {}).get('acc', float('nan')):.1%}), profile `{run.name}`, seed {run.seed}.",
             f"Sampling: {prof.samples_per_prompt} per prompt, temperature {prof.temperature}, top_p {prof.top_p}, "
             f"max {prof.max_new_tokens} new tokens; {stats['tokens_per_s']:.0f} tokens/s.",
             "Format: TRL prompt/completion (+ family, difficulty, reward, correct).", "",
             "| stage | " + " | ".join(fams) + " | all |", "|---" * (len(fams) + 2) + "|"]
    for stage, c in counts.items():
        lines.append(f"| {stage} | " + " | ".join(str(c.get(f, 0)) for f in fams) + f" | {c['all']} |")
    return "\n".join(lines) + "\n"


def build_distill_data(run: Run, *, progress: bool = True) -> dict:
    """Notebook 03 without the notebook: sample, score, filter, :func:`publish`. Needs the
    ``teacher`` and ``reward_model`` artifacts. Returns ``{"rows", "kept", "stages", "stats", "summary"}``.
    """
    from .models import load_model_artifact
    from .reward import score
    from .splits import test_problems, train_problems, val_problems

    prof = run.profile
    from .time_plan import check_stage

    check_stage(run, "sampling")   # before loading: a plan over the GPU's memory stops here
    model, tokenizer = load_model_artifact(run.name, "teacher", device=run.device, dtype=run.weights_dtype("sampling"))
    rm, rm_tok = load_model_artifact(run.name, "reward_model", kind="scalar", device=run.device,
                                     dtype=run.weights_dtype("sampling"))
    problems = train_problems(run)[: prof.n_distill_prompts]
    rows, stats = sample_stage(run, model, tokenizer, problems, progress=progress)
    reward_fn = lambda p, c: score(rm, rm_tok, p, c, batch_size=prof.gen_batch_size)  # noqa: E731
    score_rows(rows, reward_fn)
    threshold = reward_threshold_on_validation(run, model, tokenizer, reward_fn)["threshold"]
    kept, stages = run_filters(rows, val_problems(run) + test_problems(run), max_per_prompt=prof.max_correct_per_prompt,
                               reward_threshold=threshold, decontam_unit=prof.decontam_unit)
    summary = publish(run, problems, rows, kept, stages, stats, threshold)
    return {"rows": rows, "kept": kept, "stages": stages, "stats": stats, "summary": summary}


def independently_correct(rows: list[dict]) -> float:
    """Share of ``rows`` right by a check that shares no code with :func:`verify`: the task
    world's solver and step arithmetic (:func:`utils.tasks.independent_check`), or GSM8K's own
    answer checker (:func:`utils.gsm8k.is_correct`) for prompts the solver does not know."""
    from .gsm8k import is_correct
    from .tasks import independent_check

    def ok(r: dict) -> bool:
        verdict = independent_check(r["prompt"], r["completion"])
        return is_correct(r["completion"], r["answer"]) if verdict is None else verdict
    return sum(ok(r) for r in rows) / max(1, len(rows))


def publish(run: Run, problems: Sequence[Problem], rows: list[dict], kept: list[dict],
            stages: list[tuple[str, list[dict]]], stats: dict, reward_threshold: float,
            filter_stages=None) -> dict:
    """Save ``distill_data`` (the kept rows) and ``distill_data_unfiltered`` (every sample), each
    with its card, and write the ``data`` section of ``results.json``; returns that section.

    ``stages`` is the funnel (:func:`apply_filters`' second value); ``filter_stages`` the
    ``(name, function)`` list that made it (default :data:`FILTER_STAGES`): functions whose sources
    differ from the package's give both datasets, and everything trained on them, another fingerprint.
    Notebook 03 and the rebuild path (:func:`build_distill_data`) both end here.
    """
    from .artifacts import read_manifest, update_results

    run.using("filter_stages", stage_functions(filter_stages or FILTER_STAGES), stage_functions(FILTER_STAGES))

    card = dataset_card(run, funnel_counts(stages), read_manifest(run.name, "teacher"), stats)
    summary = {"prompts": len(problems), "generated": len(rows), "kept": len(kept),
               "kept_correct_frac": round(sum(verify(r["completion"], r["answer"]) for r in kept) / max(1, len(kept)), 4),
               "kept_independent_frac": round(independently_correct(kept), 4),
               "unfiltered_correct_frac": round(sum(r["correct"] for r in rows) / max(1, len(rows)), 4),
               "tokens_per_s": round(stats["tokens_per_s"], 1),
               "reward_threshold": None if reward_threshold == float("-inf") else round(reward_threshold, 4)}
    save_dataset(run, "distill_data", kept, card, summary)
    save_dataset(run, "distill_data_unfiltered", rows,
                 card.replace("# distill_data", "# distill_data_unfiltered (all samples)"), summary)
    update_results(run.name, {"data": summary})
    return summary
