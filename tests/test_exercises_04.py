"""Notebook 04's exercise checkers and the helper its loss-mask toy calls (fast: no training)."""

from utils.exercises.n04 import check_epochs
from utils.sft import sft_batch
from utils.tasks import column_addition


def test_check_epochs_accepts_steps_times_batch_over_rows(capsys):
    assert check_epochs(400 * 32 / 2092, rows=2092, steps=400, batch=32)
    assert check_epochs(6.2, rows=2092, steps=400, batch=32)  # rounded is fine
    assert "✓" in capsys.readouterr().out


def test_check_epochs_rejects_typical_mistakes(capsys):
    assert not check_epochs(400 / 2092, rows=2092, steps=400, batch=32)   # forgot the batch
    assert not check_epochs(2092 / (400 * 32), rows=2092, steps=400, batch=32)  # upside down
    assert not check_epochs(None, rows=2092, steps=400, batch=32)  # the placeholder
    assert "hint" in capsys.readouterr().out


def test_sft_batch_masks_the_prompt_and_counts_completion_and_eos(char_tokenizer):
    tok = char_tokenizer
    rows = [column_addition(47, 85).to_dict(), column_addition(3, 4).to_dict()]
    batch = sft_batch(tok, rows, max_length=128)
    for i, row in enumerate(rows):
        prompt = tok(row["prompt"])["input_ids"]
        full = tok(row["prompt"] + row["completion"] + tok.eos_token)["input_ids"]
        labels = batch["labels"][i].tolist()
        assert batch["input_ids"][i].tolist()[:len(full)] == full
        assert labels[:len(prompt)] == [-100] * len(prompt)              # no loss on the prompt
        assert labels[len(prompt):len(full)] == full[len(prompt):]       # completion + EOS count
        assert full[-1] == tok.eos_token_id
        assert labels[len(full):] == [-100] * (len(labels) - len(full))  # padding: no loss
    short = sft_batch(tok, rows[:1], max_length=10)["labels"][0].tolist()  # truncated like training
    assert len(short) == 10


# --- Exercise 2 and 3: predictions against the learner's own recordings -----------------

import pytest
import torch

from utils.exercises import n04
from utils.exercises.n04 import check_batch_speedup, check_completion_batch, check_short_run

LOSS = {"filtered": 1.20, "unfiltered": 1.31}
TIED_AT_ZERO = {"filtered": [False] * 20, "unfiltered": [False] * 20}


def test_short_run_accepts_what_the_runs_show(capsys):
    assert check_short_run({"lower loss": "filtered", "higher validation accuracy": "tie", "enough to tell": "no"},
                           LOSS, TIED_AT_ZERO)
    assert "✓" in capsys.readouterr().out
    far = {"filtered": [True] * 20, "unfiltered": [False] * 20}   # 20 discordant problems: told apart
    assert check_short_run({"lower loss": "Filtered ", "higher validation accuracy": "filtered",
                            "enough to tell": "yes"}, LOSS, far)


@pytest.mark.parametrize("prediction, hint", [
    ({"lower loss": "unfiltered", "higher validation accuracy": "tie", "enough to tell": "no"}, "which rows are easier"),
    ({"lower loss": "filtered", "higher validation accuracy": "filtered", "enough to tell": "no"}, "a tie"),
    ({"lower loss": "filtered", "higher validation accuracy": "tie", "enough to tell": "yes"}, "must exclude 0"),
    ({"lower loss": None, "higher validation accuracy": None, "enough to tell": None}, "fill in all three"),
    ({"lower loss": "clean", "higher validation accuracy": "tie", "enough to tell": "no"}, "takes one of"),
    ("filtered", "fill in all three"),
])
def test_short_run_rejects_wrong_or_malformed_predictions(prediction, hint, capsys):
    assert check_short_run(prediction, LOSS, TIED_AT_ZERO) is False
    assert hint in capsys.readouterr().out


def test_short_run_asks_for_the_runs_first(capsys):
    right = {"lower loss": "filtered", "higher validation accuracy": "tie", "enough to tell": "no"}
    assert check_short_run(right, {}, {}) is False
    assert "run both arms first" in capsys.readouterr().out
    assert check_short_run(right, LOSS, {"filtered": [True], "unfiltered": [True, False]}) is False
    assert "same validation problems" in capsys.readouterr().out


def test_batch_speedup_reads_the_recording(capsys):
    tps = {("teacher", 1): 100.0, ("student", 1): 200.0, ("teacher", 8): 400.0, ("student", 8): 1200.0}  # 2× -> 3×
    assert check_batch_speedup("grows", tps)
    assert check_batch_speedup("shrinks", tps) is False
    assert "went from 2.00× at batch 1 to 3.00× at batch 8" in capsys.readouterr().out
    flat = {**tps, ("student", 8): 820.0}   # 2.05×: within 5 %
    assert check_batch_speedup("stays", flat)
    assert check_batch_speedup("grows", flat) is False


@pytest.mark.parametrize("prediction, tps, hint", [
    (None, {}, "set your_prediction"), ("faster", {}, "takes one of"),
    ("grows", {}, "run the measurement first"),
    ("grows", {("teacher", 1): 1.0, ("student", 1): 1.0, ("teacher", 8): 0.0, ("student", 8): 1.0}, "positive"),
])
def test_batch_speedup_bad_input_gets_a_hint(prediction, tps, hint, capsys):
    assert check_batch_speedup(prediction, tps) is False
    assert hint in capsys.readouterr().out


# --- Exercise 4: a completion-only batch, as TRL's collator builds it ----------------------

def completion_batch(prompts, completions, eos_id, pad_id):
    rows = [p + c + [eos_id] for p, c in zip(prompts, completions)]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
    attention_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    labels = torch.tensor([[-100] * len(p) + c + [eos_id] + [-100] * (width - len(r))
                           for p, c, r in zip(prompts, completions, rows)])
    return input_ids, attention_mask, labels


def test_completion_batch_solution_passes(capsys):
    assert check_completion_batch(completion_batch)
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("name", [m.name for m in n04._batch_mistakes()])
def test_completion_batch_rejects_each_typical_mistake(name, capsys):
    mistake = next(m for m in n04._batch_mistakes() if m.name == name)
    assert check_completion_batch(mistake.compute) is False
    assert str(mistake.hint) in capsys.readouterr().out


def test_completion_batch_mistakes_differ_from_the_reference():
    for case in n04._batch_cases()[:1]:
        right = n04.completion_batch_reference(*case)
        for m in n04._batch_mistakes():
            wrong = m.compute(*case)
            assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(wrong, right)), m.name


def _appends_eos(prompts, completions, eos_id, pad_id):
    for c in completions:
        c.append(eos_id)
    return completion_batch(prompts, [c[:-1] for c in completions], eos_id, pad_id)


@pytest.mark.parametrize("fn, hint", [
    (lambda p, c, e, q: 1 / 0, "raised ZeroDivisionError"),
    (lambda p, c, e, q: None, "returned None"),
    (lambda p, c, e, q: (_ for _ in ()).throw(NotImplementedError), "not written yet"),
    (lambda p, c, e, q: completion_batch(p, c, e, q)[0], "tuple of three tensors"),
    (lambda p, c, e, q: tuple(t.float() for t in completion_batch(p, c, e, q)), "integer tensor"),
    (lambda p, c, e, q: tuple(t[:, 1:] for t in completion_batch(p, c, e, q)), "shape"),
    (_appends_eos, "changed `prompts` or `completions`"),
    (lambda p, c, e, q: (completion_batch(p, c, e, q)[0], completion_batch(p, c, e, q)[1],
                         completion_batch(p, c, e, q)[2] * 0), "labels differ"),
    ("my_completion_batch", "pass the function itself"),
])
def test_completion_batch_bad_functions_get_a_hint(fn, hint, capsys):
    assert check_completion_batch(fn) is False
    assert hint in capsys.readouterr().out


def test_completion_batch_reference_is_trls_collator(char_tokenizer):
    tok = char_tokenizer
    rows = [column_addition(47, 85).to_dict(), column_addition(3, 4).to_dict()]
    batch = sft_batch(tok, rows, max_length=128)
    prompts = [tok(r["prompt"])["input_ids"] for r in rows]
    completions = [tok(r["completion"])["input_ids"] for r in rows]
    mine = n04.completion_batch_reference(prompts, completions, tok.eos_token_id, tok.pad_token_id)
    for name, tensor in zip(("input_ids", "attention_mask", "labels"), mine):
        assert torch.equal(tensor, batch[name]), name
