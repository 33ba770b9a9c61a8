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
