"""Local stand-ins for what the ``colab`` profile downloads – for the ``colab-dryrun`` profile.

The ``colab`` profile names hub checkpoints (Qwen2.5 teacher and reward model, a SmolLM2
student) and the GSM8K data set. A GPU and a network are needed to run it for real; the
dry run runs the *same* code on a CPU, offline, in minutes, with stand-ins of the same kinds,
built here from the 40-problem GSM8K sample in ``tests/fixtures``:

==================  ======================================================================
stand-in            what it imitates
==================  ======================================================================
``gsm8k/``          ``openai/gsm8k``: ``train.jsonl`` (32 problems), ``test.jsonl`` (8)
``teacher/``        Qwen2.5-1.5B-Instruct: a Qwen2 checkpoint with a byte-level BPE tokenizer
                    trained like Qwen's (``Qwen2Tokenizer``, Qwen's pre-tokenizer, ChatML)
``reward_model/``   Qwen2.5-0.5B-Instruct: a smaller Qwen2 with the *teacher's* tokenizer
                    (the two Qwen2.5 sizes share one) – PPO's critic is built from it
``student/``        SmolLM2-360M-Instruct: a much smaller Llama (SmolLM2's architecture) with
                    its *own* tokenizer (``GPT2Tokenizer``, GPT-2's pre-tokenizer, another
                    vocabulary)
==================  ======================================================================

The profile also serves ``teacher/`` in notebook 05 where ``colab`` serves its ``serve_model``
(DeepSeek-R1-Distill-Qwen-1.5B, a Qwen2 with Qwen's tokenizer).

Every model folder is written with ``save_pretrained`` together with its tokenizer, exactly
like a hub checkpoint, so ``from_pretrained(folder)`` is the only thing that differs from
``from_pretrained("Qwen/...")``. ``<think>``/``</think>`` are ordinary added tokens (as in
the R1 distills), so decoding with ``skip_special_tokens=True`` keeps them.

One liberty, on purpose: the teacher is *pre-fitted* on the short training problems. A real
instruct model already solves some GSM8K problems; a randomly initialised one solves none,
and notebook 03's rejection sampling would then keep nothing for notebook 04 to train on.

:func:`build_standins` is deterministic and cached: it writes ``STAMP`` (a hash of its inputs)
last and does nothing when the stamp matches, so it runs once per folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .config import ModelSize

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gsm8k_sample.jsonl"
STAMP = "STAMP"
N_TEST = 8                     # test problems (every 5th of the sample); the other 32 train
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]
# ChatML, the format of both Qwen2.5-Instruct and SmolLM2-Instruct (no default system prompt).
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# Shapes (~590k, ~180k and ~70k parameters): the student must stay under 20 % of the teacher
# (notebook 04 checks it). Two vocabularies, as Qwen2.5's and SmolLM2's differ (151k vs 49k).
TEACHER = ModelSize(96, 4, 4, 256)
REWARD_MODEL = ModelSize(64, 2, 2, 128)
STUDENT = ModelSize(48, 2, 2, 96)
TEACHER_VOCAB, STUDENT_VOCAB = 1536, 512
CONTEXT = 2048                 # max_position_embeddings: room for a chat prompt and a long reply
PREFIT_MAX_TOKENS = 60         # the teacher pre-fits the training problems whose answer is this short
                               # (5 of 32: they fit the dry run's max_new_tokens = 64)
PREFIT_STEPS, PREFIT_LR = 150, 3e-3
# The sampling recipe Qwen2.5-Instruct's generation_config.json ships (sampling on, with a
# repetition penalty and top-k). Every stand-in model folder carries it, as a hub checkpoint
# does, so the dry run exercises utils.models.neutral_generation_config: the course's loaders
# must reset all of it (greedy evaluation, untruncated sampling).
HUB_GENERATION = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}


def standin_paths(root: str | Path) -> dict[str, Path]:
    """Where :func:`build_standins` puts each stand-in under ``root``."""
    root = Path(root)
    return {name: root / name for name in ("gsm8k", "teacher", "reward_model", "student")}


# ---------------------------------------------------------------------------------------
# Data: the GSM8K sample split into train/test files, the layout load_gsm8k(folder) reads
# ---------------------------------------------------------------------------------------

def write_gsm8k(folder: Path) -> None:
    """Split the 40-problem sample: every 5th line to ``test.jsonl``, the rest to ``train.jsonl``."""
    lines = [line for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    test = lines[::len(lines) // N_TEST][:N_TEST]
    train = [line for line in lines if line not in test]
    (folder / "train.jsonl").write_text("\n".join(train) + "\n", encoding="utf-8")
    (folder / "test.jsonl").write_text("\n".join(test) + "\n", encoding="utf-8")


def _corpus(folder: Path) -> list[str]:
    """The texts the tokenizers learn from: every problem, in the course's prompt/answer format."""
    from .gsm8k import load_gsm8k
    from .gsm8k import from_gsm8k

    problems = [from_gsm8k(r) for split in ("train", "test") for r in load_gsm8k(folder, split)]
    return [p.prompt + p.completion for p in problems]


# ---------------------------------------------------------------------------------------
# Tokenizers: byte-level BPE (every byte has a token, so no text is ever unknown)
# ---------------------------------------------------------------------------------------

def _train_bpe(texts: list[str], vocab_size: int, pre_tokenizer, normalizer=None) -> tuple[dict, list]:
    """Train a byte-level BPE on ``texts``; return its ``(vocab, merges)``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizer
    if normalizer is not None:
        core.normalizer = normalizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer)
    model = json.loads(core.to_str())["model"]
    return model["vocab"], [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def _finish(tok):
    """Add what every stand-in tokenizer shares: ChatML's special tokens, think tokens, template."""
    from tokenizers import AddedToken

    tok.add_tokens([AddedToken(t, special=True) for t in SPECIALS], special_tokens=True)
    tok.add_tokens(THINK_TOKENS)  # ordinary added tokens: skip_special_tokens keeps them
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_teacher_tokenizer(texts: list[str]):
    """A Qwen2.5-style tokenizer: Qwen's pre-tokenizer (digits one by one), NFC, byte-level BPE."""
    from tokenizers import Regex, normalizers, pre_tokenizers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    vocab, merges = _train_bpe(texts, TEACHER_VOCAB, pre, normalizers.NFC())
    return _finish(Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>"))


def build_student_tokenizer(texts: list[str]):
    """A SmolLM2-style tokenizer: GPT-2's pre-tokenizer, a smaller vocabulary, pad = eos."""
    from tokenizers import pre_tokenizers
    from transformers import GPT2Tokenizer

    vocab, merges = _train_bpe(texts, STUDENT_VOCAB, pre_tokenizers.ByteLevel(add_prefix_space=False))
    return _finish(GPT2Tokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>",
                                 bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"))


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------

def build_model(size: ModelSize, tokenizer, seed: int, architecture: str = "qwen2"):
    """A tiny causal LM for ``tokenizer`` (seeded), with a context long enough for GSM8K and a
    hub-style sampling recipe in its generation config (:data:`HUB_GENERATION`).

    ``architecture``: "qwen2" (the Qwen2.5 stand-ins) or "llama" (SmolLM2's). The student must
    not be a Qwen2: for ``model_type: qwen2`` transformers' ``AutoTokenizer`` always builds a
    ``Qwen2Tokenizer`` and would silently swap the student's own tokenizer for Qwen's kind.
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from .models import _fix_generation_config, qwen2_config

    config = qwen2_config(size, tokenizer, max_position_embeddings=CONTEXT)
    if tokenizer.bos_token_id is not None:  # SmolLM2's tokenizer has one (<|im_start|>), Qwen's none
        config.bos_token_id = tokenizer.bos_token_id
    if architecture == "llama":
        keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "max_position_embeddings", "tie_word_embeddings", "pad_token_id",
                "eos_token_id", "bos_token_id")
        config = LlamaConfig(**{key: getattr(config, key) for key in keep})
    elif architecture != "qwen2":
        raise ValueError(f"architecture must be 'qwen2' or 'llama', not {architecture!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    _fix_generation_config(model, tokenizer)
    for key, value in HUB_GENERATION.items():  # saved like a hub checkpoint's (see HUB_GENERATION)
        setattr(model.generation_config, key, value)
    return model


def prefit(model, tokenizer, texts: list[str], steps: int = PREFIT_STEPS, lr: float = PREFIT_LR) -> float:
    """Fit ``model`` to ``texts`` (whole-batch language-model loss); return the final loss."""
    import torch

    enc = tokenizer([t + tokenizer.eos_token for t in texts], return_tensors="pt", padding=True,
                    add_special_tokens=False, padding_side="right")
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return float(loss.detach())


def _prefit_texts(folder: Path, tokenizer) -> list[str]:
    """The training problems whose worked answer is at most ``PREFIT_MAX_TOKENS`` tokens long."""
    from .gsm8k import load_gsm8k
    from .gsm8k import from_gsm8k

    problems = [from_gsm8k(r) for r in load_gsm8k(folder, "train")]
    short = [p for p in problems if len(tokenizer(p.completion, add_special_tokens=False)["input_ids"])
             <= PREFIT_MAX_TOKENS]
    return [p.prompt + p.completion for p in short]


def _save(model, tokenizer, folder: Path, texts: list[str]) -> None:
    """``save_pretrained`` both, then check the folder loads back as the *same* tokenizer."""
    from .tokenizer import load_tokenizer

    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    reloaded = load_tokenizer(folder)
    if type(reloaded) is not type(tokenizer) or any(
            reloaded(t)["input_ids"] != tokenizer(t)["input_ids"] for t in texts[:8]):
        raise RuntimeError(f"{folder} does not load back as the tokenizer saved there "
                           f"({type(reloaded).__name__} instead of {type(tokenizer).__name__})")


# ---------------------------------------------------------------------------------------
# All of it, cached
# ---------------------------------------------------------------------------------------

def _fingerprint() -> str:
    """A hash of everything the stand-ins are made from: this recipe, the sample, the libraries."""
    from .config import package_versions

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(FIXTURE.read_bytes())
    digest.update(json.dumps(package_versions(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def is_built(root: str | Path) -> bool:
    """True when ``root`` holds stand-ins built from the current recipe and sample."""
    stamp = Path(root) / STAMP
    return stamp.exists() and stamp.read_text().strip() == _fingerprint()


def _build_into(folder: Path, seed: int) -> float:
    """Write every stand-in into ``folder``; return the teacher's pre-fit loss."""
    import torch

    paths = standin_paths(folder)
    write_gsm8k(paths["gsm8k"])
    texts = _corpus(paths["gsm8k"])
    teacher_tok, student_tok = build_teacher_tokenizer(texts), build_student_tokenizer(texts)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same weights whatever the caller's thread count (and fast)
    try:
        with torch.random.fork_rng():  # the caller's random state is left as it was
            teacher = build_model(TEACHER, teacher_tok, seed)
            loss = prefit(teacher, teacher_tok, _prefit_texts(paths["gsm8k"], teacher_tok))
            _save(teacher, teacher_tok, paths["teacher"], texts)
            _save(build_model(REWARD_MODEL, teacher_tok, seed + 1), teacher_tok, paths["reward_model"], texts)
            _save(build_model(STUDENT, student_tok, seed + 2, "llama"), student_tok, paths["student"], texts)
    finally:
        torch.set_num_threads(threads)
    (folder / "README.md").write_text(__doc__ or "", encoding="utf-8")
    return loss


def build_standins(root: str | Path, *, seed: int = 0, quiet: bool = False) -> dict[str, Path]:
    """Build every stand-in under ``root`` (once: cached by :func:`is_built`); return their paths.

    Deterministic for ``seed``; offline; about 15 s on a 2-core CPU. Everything is written into
    a temporary sibling folder that replaces ``root`` only when complete, so an interrupted
    build leaves nothing half-written behind.
    """
    root = Path(root)
    if is_built(root):
        return standin_paths(root)
    if not quiet:
        print(f"ℹ building the colab-dryrun stand-ins (tokenizers, tiny models, GSM8K sample) in {root}",
              flush=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        loss = _build_into(tmp, seed)
        (tmp / STAMP).write_text(_fingerprint())  # last: the mark of a complete build
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        print(f"✓ stand-ins ready (teacher pre-fit loss {loss:.3f})", flush=True)
    return standin_paths(root)
