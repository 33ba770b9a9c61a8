"""A character-level tokenizer for the task world, built offline and saved like a hub one.

Taught in notebook 01 ("Tokenizer and models"). Real models (the ``colab`` profile) use their
own hub tokenizer; :func:`load_tokenizer` loads either kind from a folder.

Two details matter (both pitfalls met while building the course):

* ``<think>`` and ``</think>`` are *ordinary* added tokens, not special ones: TRL decodes
  completions with ``skip_special_tokens=True``, which would silently delete special tokens
  and make every completion look malformed to the format reward.
* In transformers 5.x, ``AutoTokenizer.from_pretrained`` on a folder whose ``config.json``
  says ``model_type: qwen2`` rebuilds a Qwen2 tokenizer and ignores ours. We therefore load
  our tokenizer with ``PreTrainedTokenizerFast.from_pretrained`` (a marker in
  ``tokenizer_config.json`` says which loader a folder needs).
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
THINK_TOKENS = ["<think>", "</think>"]
# Every character the task world writes, plus a space for free-form text in the demo.
ALPHABET = "0123456789+-=;:,<>?QAabcdeimnx BCDE"
MARKER = "r1lab_char_tokenizer"


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """Build the course's character tokenizer (deterministic; no download)."""
    specials = [PAD, EOS, UNK]
    vocab = {tok: i for i, tok in enumerate(specials + THINK_TOKENS)}
    for ch in ALPHABET:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Split the text into single characters; <think>/</think> are matched first as added tokens.
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()  # join pieces without spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS,
                                  unk_token=UNK, padding_side="left")
    tok.add_tokens(THINK_TOKENS)  # ordinary added tokens, matched as one piece each
    tok.init_kwargs[MARKER] = True
    return tok


def model_tokenizer(model) -> PreTrainedTokenizerBase:
    """The tokenizer a model reads: a checkpoint's own (``model`` is a hub id or a folder),
    else – a model built from a ``ModelSize`` – the character tokenizer."""
    return load_tokenizer(model) if isinstance(model, str) else build_char_tokenizer()


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, path: str | Path) -> None:
    """``save_pretrained`` plus the marker that tells :func:`load_tokenizer` which class to use."""
    path = Path(path)
    tokenizer.save_pretrained(path)
    cfg_file = path / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    if isinstance(tokenizer, PreTrainedTokenizerFast) and tokenizer.init_kwargs.get(MARKER):
        cfg[MARKER] = True
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_file.write_text(json.dumps(cfg, indent=2))


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer saved by :func:`save_tokenizer`, or any hub-style tokenizer folder/id.

    Always returns a tokenizer with left padding (needed for batched generation) and a pad
    token (the EOS token if the checkpoint has none).
    """
    cfg_file = Path(path) / "tokenizer_config.json"
    is_ours = cfg_file.exists() and json.loads(cfg_file.read_text()).get(MARKER, False)
    if is_ours:
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
        tok.init_kwargs[MARKER] = True
    else:
        tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def tokenizer_source(run, role: str = "teacher") -> Path | str:
    """Where the tokenizer of ``role`` ("teacher", "student" or "reward_model") loads from.

    A model built from config (tiny profile) reads the course's character tokenizer, the
    ``tokenizer`` artifact of notebook 01 (``utils.pipeline.ensure(run, "tokenizer")`` makes it).
    A checkpoint (a hub id or a folder: colab) brings its own tokenizer, and that id or folder is
    returned – the student's differs from the teacher's, which data distillation allows: the
    teacher hands over text, not token ids.
    """
    from .artifacts import artifact_path, read_manifest

    if role not in ("teacher", "student", "reward_model"):
        raise ValueError(f"role must be 'teacher', 'student' or 'reward_model', not {role!r}")
    model = getattr(run.profile, role)
    if isinstance(model, str):
        return model
    read_manifest(run.name, "tokenizer")  # a clear error if notebook 01's tokenizer is missing
    return artifact_path(run.name, "tokenizer")
