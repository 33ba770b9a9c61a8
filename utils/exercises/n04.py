"""Checkers for notebook 04's exercises (the student: SFT on the distilled data)."""

from __future__ import annotations

import math

from ..messages import Msg, msg
from . import accepted, as_number, choose, verdict


def check_epochs(answer: float | None, rows: int, steps: int, batch: int) -> bool:
    """Exercise 1: how many times an arm reads its ``rows`` in ``steps`` optimiser steps of
    ``batch`` rows each – ``steps × batch / rows`` epochs (within 5 %)."""
    value = as_number(answer)
    if value is None:
        return verdict(False, "", msg("set your_answer to a number of epochs, then rerun the cell"))
    right = steps * batch / rows
    ok = math.isfinite(value) and abs(value - right) <= 0.05 * right
    return verdict(ok, msg("{epochs:.1f} epochs: {steps} steps × {batch} rows per step = {read} rows read, "
                           "over a dataset of {rows} rows", epochs=right, steps=steps, batch=batch,
                           read=steps * batch, rows=rows),
                   msg("each step reads one batch of rows; how many rows is that over all the steps, "
                       "and how many datasets' worth is it?"))


# ---------------------------------------------------------------------------------------
# Implementation exercise: the paced curriculum's sampler
# ---------------------------------------------------------------------------------------

def curriculum_rows() -> list[dict]:
    """A small dataset with three difficulty levels, of unequal sizes (as the filtered data's are)."""
    return [{"prompt": f"Q{d}-{i}", "completion": "c", "difficulty": d} for d, n in ((1, 10), (2, 7), (3, 5))
            for i in range(n)]


def curriculum_problems(order, rows: list[dict], steps: int, batch_size: int) -> Msg | str | None:
    """What is wrong with a pacing schedule ``order`` (None if nothing): its length, the stages' pools,
    mixing within a stage, and whether every row of a stage's pool is read (when the stage is long enough)."""
    levels = sorted({r["difficulty"] for r in rows})
    if order is None:
        return msg("your function returned None: write its body and end it with `return order`")
    if not isinstance(order, list) or not all(isinstance(r, dict) for r in order):
        return msg("return the rows themselves, in training order: a list of the dicts you were given")
    if len(order) != steps * batch_size:
        return msg("a run of {steps} steps × {batch_size} rows reads {read} rows; your schedule has {yours}",
                   steps=steps, batch_size=batch_size, read=steps * batch_size, yours=len(order))
    if any(r not in rows for r in order):
        return msg("every row of the schedule must come from `rows` (unchanged)")
    for k, level in enumerate(levels):
        start = k * steps // len(levels) * batch_size
        end = (k + 1) * steps // len(levels) * batch_size
        stage = order[start:end]
        if any(r["difficulty"] > level for r in stage):
            return msg("stage {stage} holds rows harder than level {level}: stage k draws only from difficulties ≤ "
                       "its level (easy first; harder levels join stage by stage)", stage=k + 1, level=level)
        allowed = [r for r in rows if r["difficulty"] <= level]
        if len(stage) >= len(allowed) and any(r not in stage for r in allowed):
            missing = {r["difficulty"] for r in allowed if r not in stage}
            return msg("stage {stage} never reads some rows of difficulty {levels}: its pool is *every* "
                       "level up to its own, so the earlier levels keep being seen", stage=k + 1,
                       levels=str(sorted(missing)))
        if k > 0 and all(r["difficulty"] == level for r in stage):
            return msg("stage {stage} reads only level {level}: its pool is every level up to its own, so the "
                       "earlier levels keep being seen", stage=k + 1, level=level)
        batches = [stage[i:i + batch_size] for i in range(0, len(stage), batch_size)]
        if k > 0 and all(len({r["difficulty"] for r in b}) == 1 for b in batches):
            return msg("every batch of stage {stage} holds one difficulty: shuffle each stage's pool, so that "
                       "batches mix levels (the sorted order is the anti-pattern the curriculum arm replaced)",
                       stage=k + 1)
    return None


def check_curriculum_sampler(fn) -> bool:
    """Implementation exercise: ``fn(rows, steps, batch_size, seed)`` returns the ``steps × batch_size`` rows a
    paced curriculum reads, in order: the run cut into one equal stage per difficulty level; stage k draws
    shuffled rows of difficulty ≤ its level (reshuffling when the pool is used up). Checked for its length, its
    stages' pools, mixing within a stage and coverage – any shuffle that meets them is right (the course's is
    :func:`utils.sft.curriculum_schedule`)."""
    from .grading import call_learner

    for steps, batch_size, seed in ((6, 4, 0), (9, 5, 1), (3, 8, 2)):
        rows = curriculum_rows()
        order, hint = call_learner(fn, (rows, steps, batch_size, seed),
                                   mutated=msg("your function changed `rows` (sorted or shuffled it in place?): "
                                               "work on a copy – random.sample, or list(rows) before shuffling"))
        if hint:
            return verdict(False, "", hint)
        problem = curriculum_problems(order, rows, steps, batch_size)
        if problem:
            return verdict(False, "", msg("{problem} (steps={steps}, batch_size={batch_size})", problem=problem,
                                          steps=steps, batch_size=batch_size))
    return verdict(True, msg("a pacing schedule: easy rows first, harder levels mixed in stage by stage, every "
                             "batch shuffled within its stage's pool"), "")


# ---------------------------------------------------------------------------------------
# Exercises 2 and 3: predictions checked against the learner's own recorded runs
# ---------------------------------------------------------------------------------------

ARMS = {"filtered": ("过滤", "过滤组", "过滤后", "过滤数据", "过滤后的数据"),
        "unfiltered": ("未过滤", "未过滤组", "未过滤数据", "未过滤的数据"),
        "tie": ("same", "持平", "一样", "相同", "平局")}
YES_NO = {"yes": ("是", "能", "够", "足够", "可以"), "no": ("否", "不能", "不够", "不足以", "不可以")}
SHORT_RUN_ANSWERS = {"lower loss": ARMS, "higher validation accuracy": ARMS, "enough to tell": YES_NO}


def _short_run_truth(final_loss: dict[str, float], val_correct: dict[str, list[bool]]) -> dict[str, str]:
    """What two short runs showed: the arm with the lower final loss, the one with the higher validation
    accuracy ("tie" when equal) and whether the accuracy difference is told apart (a paired 95 % interval
    that excludes 0, with McNemar's test agreeing: :attr:`utils.stats.PairedDifference.distinguishable`)."""
    from ..stats import paired_difference

    lower = ("tie" if final_loss["filtered"] == final_loss["unfiltered"]
             else min(("filtered", "unfiltered"), key=final_loss.get))
    acc = {arm: sum(map(bool, c)) / len(c) for arm, c in val_correct.items()}
    higher = "tie" if acc["filtered"] == acc["unfiltered"] else max(("filtered", "unfiltered"), key=acc.get)
    told = paired_difference(val_correct["filtered"], val_correct["unfiltered"]).distinguishable
    return {"lower loss": lower, "higher validation accuracy": higher, "enough to tell": "yes" if told else "no"}


def check_short_run(your_prediction: dict, final_loss: dict[str, float], val_correct: dict[str, list[bool]]) -> bool:
    """Exercise 2: ``your_prediction`` – {"lower loss": "filtered"/"unfiltered"/"tie", "higher validation
    accuracy": …, "enough to tell": "yes"/"no"} – against what the learner's two 20-step runs recorded:
    ``final_loss[arm]`` and ``val_correct[arm]`` (per validation problem, the same problems for both arms).
    Nothing is timed or trained here."""
    if not isinstance(your_prediction, dict) or any(your_prediction.get(k) is None for k in SHORT_RUN_ANSWERS):
        return verdict(False, "", msg("fill in all three predictions – {answers} – then run the arms", answers="; ".join(
            f"{k!r}: {' / '.join(map(repr, v))}" for k, v in SHORT_RUN_ANSWERS.items())))
    said = {key: choose(your_prediction[key], choices) for key, choices in SHORT_RUN_ANSWERS.items()}
    for key, choices in SHORT_RUN_ANSWERS.items():
        if said[key] is None:
            return verdict(False, "", msg("{key} takes one of {choices}, not {answer}", key=repr(key),
                                          choices=accepted(choices), answer=repr(your_prediction[key])))
    if set(final_loss) != {"filtered", "unfiltered"} or set(val_correct) != {"filtered", "unfiltered"}:
        return verdict(False, "", msg("run both arms first (uncomment the lines): the checker compares your "
                                      "prediction with their recorded loss and validation answers"))
    if len(val_correct["filtered"]) != len(val_correct["unfiltered"]) or not val_correct["filtered"]:
        return verdict(False, "", msg("the two arms must be scored on the same validation problems"))
    truth = _short_run_truth(final_loss, val_correct)
    wrong = [k for k in SHORT_RUN_ANSWERS if said[k] != truth[k]]
    n = len(val_correct["filtered"])
    measured = ", ".join(f"{k}: {v}" for k, v in truth.items())
    if not wrong:
        return verdict(True, msg("as you predicted – {measured} (validation: {n} problems)", measured=measured, n=n),
                       "")
    why = {"lower loss": msg("the loss is measured on each arm's own rows: which rows are easier to fit?"),
           "higher validation accuracy": msg("look at the two accuracies printed above – after 20 steps both may "
                                             "still be near zero, which is a tie"),
           "enough to tell": msg("with {n} validation problems, a paired 95 % interval of the difference is wide: "
                                 "it must exclude 0 before the runs tell the arms apart", n=n)}
    reasons = why[wrong[0]]
    for k in wrong[1:]:
        reasons = msg("{first} {then}", first=reasons, then=why[k])   # sentences, one after the other
    return verdict(False, "", msg("the runs show {measured}; {why}", measured=measured, why=reasons))


SPEEDUP_CHOICES = {"grows": ("grow", "变大", "增大", "增加", "上升", "更大"),
                   "shrinks": ("shrink", "变小", "减小", "下降", "缩小", "更小"),
                   "stays": ("stay", "stays the same", "不变", "基本不变", "持平", "差不多")}


def check_batch_speedup(your_prediction: str | None, tps: dict, stays: float = 0.05) -> bool:
    """Exercise 3: "grows", "shrinks" or "stays" – how the student's speed-up over the teacher (student
    tokens/s ÷ teacher tokens/s) moved from batch 1 to batch 8, read from the learner's recorded ``tps``
    ``{(name, batch): tokens/s}``; within ``stays`` (relative) it "stays". Only arithmetic on the recording."""
    if your_prediction is None:
        return verdict(False, "", msg("set your_prediction to one of {choices}",
                                      choices=", ".join(map(repr, SPEEDUP_CHOICES))))
    said = choose(your_prediction, SPEEDUP_CHOICES)
    if said is None:
        return verdict(False, "", msg("your_prediction takes one of {choices}, not {answer}",
                                      choices=accepted(SPEEDUP_CHOICES), answer=repr(your_prediction)))
    need = [(n, b) for b in (1, 8) for n in ("teacher", "student")]
    if not isinstance(tps, dict) or any(k not in tps for k in need):
        return verdict(False, "", msg("run the measurement first (uncomment the lines): tps needs {keys}",
                                      keys=", ".join(map(str, need))))
    if any(not (isinstance(tps[k], (int, float)) and tps[k] > 0) for k in need):
        return verdict(False, "", msg("every tokens/s in tps must be a positive number"))
    s1, s8 = (tps["student", b] / tps["teacher", b] for b in (1, 8))
    change = s8 / s1 - 1
    truth = "stays" if abs(change) <= stays else ("grows" if change > 0 else "shrinks")
    measured = msg("the speed-up went from {s1:.2f}× at batch 1 to {s8:.2f}× at batch 8 ({change:+.0%}): it {truth}",
                   s1=s1, s8=s8, change=change, truth=truth)
    return verdict(said == truth, msg("{measured}, as you predicted", measured=measured),
                   msg("{measured}. At batch 1 both models wait mostly on fixed per-token overhead; at batch 8 the "
                       "arithmetic per token weighs more – which model does that favour?", measured=measured))


# ---------------------------------------------------------------------------------------
# Implementation exercise: a completion-only training batch, as TRL's collator builds it
# ---------------------------------------------------------------------------------------

IGNORE_INDEX = -100   # the label the loss skips (PyTorch's cross_entropy ignore_index, as TRL and transformers use)


def completion_batch_reference(prompts, completions, eos_id: int, pad_id: int):
    """``(input_ids, attention_mask, labels)``: each row prompt + completion + EOS, right-padded with
    ``pad_id`` to the longest; the mask 1 on real tokens; labels the ids of completion + EOS, -100 elsewhere."""
    import torch

    rows = [list(p) + list(c) + [eos_id] for p, c in zip(prompts, completions)]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (prompt, row) in enumerate(zip(prompts, rows)):
        input_ids[i, :len(row)] = torch.tensor(row)
        attention_mask[i, :len(row)] = 1
        labels[i, len(prompt):len(row)] = torch.tensor(row[len(prompt):])
    return input_ids, attention_mask, labels


def _batch_cases():
    eos, pad = 2, 0
    return [([[5, 6, 7], [8, 9], [10, 11, 12, 13]], [[20, 21], [22, 23, 24, 25], [26]], eos, pad),
            ([[5, 6]], [[30, 31, 32]], eos, pad),                       # one row: no padding at all
            ([[7, 7, 7, 7], [9]], [[3], [4, 4]], 1, 3)]                  # other EOS and pad ids


def _batch_mistakes():
    import torch

    from .grading import Mistake

    def prompt_labelled(p, c, eos, pad):
        ids, mask, _ = completion_batch_reference(p, c, eos, pad)
        return ids, mask, torch.where(mask.bool(), ids, torch.full_like(ids, IGNORE_INDEX))

    def padding_labelled(p, c, eos, pad):
        ids, mask, labels = completion_batch_reference(p, c, eos, pad)
        return ids, mask, torch.where(mask.bool(), labels, ids)

    def no_eos(p, c, eos, pad):
        rows = [list(a) + list(b) for a, b in zip(p, c)]
        width = max(map(len, rows))
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        labels = torch.tensor([[IGNORE_INDEX] * len(a) + list(b) + [IGNORE_INDEX] * (width - len(a) - len(b))
                               for a, b in zip(p, c)])
        return ids, mask, labels

    def left_padded(p, c, eos, pad):
        ids, mask, labels = completion_batch_reference(p, c, eos, pad)
        shift = lambda t, n: torch.roll(t, int(n))   # noqa: E731
        pads = (mask == 0).sum(1)
        return (torch.stack([shift(r, n) for r, n in zip(ids, pads)]), torch.stack([shift(r, n) for r, n in zip(mask, pads)]),
                torch.stack([shift(r, n) for r, n in zip(labels, pads)]))

    def mask_everything(p, c, eos, pad):
        ids, mask, labels = completion_batch_reference(p, c, eos, pad)
        return ids, torch.ones_like(mask), labels

    return [
        Mistake("prompt labelled", prompt_labelled, msg("the prompt's tokens must get -100 too: the loss trains on "
                "the completion (and its EOS) only – otherwise the model learns to write questions")),
        Mistake("padding labelled", padding_labelled, msg("padding positions need label -100, not the pad id: "
                "otherwise the model is trained to predict padding")),
        Mistake("no EOS", no_eos, msg("append eos_id after each completion (and label it): without it the model never "
                "learns to stop")),
        Mistake("left padding", left_padded, msg("pad on the right: each row starts at position 0 and the padding "
                "goes after its EOS (training batches are right-padded; left padding is for generation)")),
        Mistake("mask on padding", mask_everything, msg("attention_mask is 0 on padding: the model must not attend "
                "to pad tokens")),
    ]


def check_completion_batch(fn) -> bool:
    """Implementation exercise: ``fn(prompts, completions, eos_id, pad_id)`` – token-id lists, one per row –
    returns ``(input_ids, attention_mask, labels)`` as three (rows, longest row) integer tensors, the way TRL's
    collator builds a completion-only batch (:func:`completion_batch_reference`). Checked on padded rows, a
    single row and other EOS / pad ids; typical mistakes get their own hint."""
    import torch

    from .grading import _snapshot, and_list, call_learner

    names = ("input_ids", "attention_mask", "labels")
    for case in _batch_cases():
        got, hint = call_learner(fn, case, mutated=msg("your function changed `prompts` or `completions` (appended "
                                                       "the EOS to a caller's list?): build new lists"))
        if hint:
            return verdict(False, "", hint)
        if not (isinstance(got, tuple) and len(got) == 3 and all(isinstance(t, torch.Tensor) for t in got)):
            return verdict(False, "", msg("return a tuple of three tensors: (input_ids, attention_mask, labels)"))
        right = completion_batch_reference(*_snapshot(case))
        for name, mine in zip(names, got):
            if mine.is_floating_point() or mine.dtype == torch.bool:
                return verdict(False, "", msg("{name} holds token ids or 0/1: an integer tensor (torch.long), not "
                                              "{dtype}", name=name, dtype=str(mine.dtype)))
        same = lambda a, b: all(m.shape == w.shape and torch.equal(m.long(), w.long()) for m, w in zip(a, b))  # noqa: E731
        if same(got, right):
            continue
        for mistake in _batch_mistakes():
            if same(got, mistake.compute(*_snapshot(case))):
                return verdict(False, "", mistake.hint)
        for name, mine, ref in zip(names, got, right):
            if mine.shape != ref.shape:
                return verdict(False, "", msg("{name} should have shape {shape} (rows × the longest prompt + "
                                              "completion + EOS), yours has {yours}", name=name,
                                              shape=str(tuple(ref.shape)), yours=str(tuple(mine.shape))))
        differ = [n for n, m, r in zip(names, got, right) if not torch.equal(m.long(), r)]
        return verdict(False, "", msg("{names} differ from the course's: re-read the docstring – row by row, prompt "
                                      "+ completion + EOS, then padding", names=and_list(differ)))
    return verdict(True, msg("your batch is the one TRL's collator builds: right-padded, loss on completion + EOS "
                             "only"), "")
