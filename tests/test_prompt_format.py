"""Served as trained: a course artifact reads its raw training prompt, a hub checkpoint its chat template.

The course trains every model on raw ``Q:…`` prompts (TRL prompt/completion rows, no chat
template). SmolLM2's and Qwen's chat templates add role markers and a default system prompt the
trained student never saw; fed them, it may never stop. The artifact's manifest records
``prompt_format`` ("raw"), and :func:`utils.serve.model_input` follows it.
"""

import json

import pytest
import torch

from utils import serve
from utils.artifacts import artifact_path, read_manifest
from utils.config import ModelSize
from utils.gsm8k import from_gsm8k, load_gsm8k
from utils.models import build_causal_lm, save_model_artifact
from utils.tasks import THINK_OPEN, make_problems

SIZE = ModelSize(16, 1, 1, 32)
SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# Qwen2.5-Instruct's template in short: a default system prompt unless the conversation brings one.
CHAT_WITH_SYSTEM = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + SYSTEM + "<|im_end|>\n"
                    "{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def gsm8k_problems(tmp_path_factory):
    from utils import standins

    folder = tmp_path_factory.mktemp("gsm8k")
    standins.write_gsm8k(folder)
    return [from_gsm8k(r) for r in load_gsm8k(folder, "test")], standins._corpus(folder)


@pytest.fixture(scope="module")
def chat_tokenizer(gsm8k_problems):
    """A byte-level BPE tokenizer (the stand-ins' Qwen kind) whose chat template injects a system prompt."""
    from utils.standins import build_teacher_tokenizer

    tok = build_teacher_tokenizer(gsm8k_problems[1])
    tok.chat_template = CHAT_WITH_SYSTEM
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="module")
def folders(tmp_path_factory, chat_tokenizer, char_tokenizer):
    """Course artifacts (colab: GSM8K, tiny: task world) and a hub-style folder (no manifest)."""
    root = tmp_path_factory.mktemp("served")
    model = build_causal_lm(SIZE, chat_tokenizer, seed=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("R1LAB_ARTIFACTS", str(root / "artifacts"))
        paths = {"colab": save_model_artifact("colab", "student", model, chat_tokenizer, seed=0),
                 "tiny": save_model_artifact("tiny", "student", build_causal_lm(SIZE, char_tokenizer, seed=0),
                                             char_tokenizer, seed=0),
                 "chat": save_model_artifact("colab", "chatty", model, chat_tokenizer, seed=0,
                                             prompt_format="chat")}
        manifests = {k: read_manifest(p.parent.name, p.name) for k, p in paths.items()}
    hub = root / "hub"
    model.save_pretrained(hub)
    chat_tokenizer.save_pretrained(hub)
    return dict(paths, hub=hub, manifests=manifests)


def test_the_manifest_records_the_prompt_format(folders):
    assert folders["manifests"]["colab"]["config"]["prompt_format"] == "raw"
    assert folders["manifests"]["tiny"]["config"]["prompt_format"] == "raw"
    assert folders["manifests"]["chat"]["config"]["prompt_format"] == "chat"
    assert serve.prompt_format_of(folders["colab"]) == "raw"
    assert serve.prompt_format_of(folders["hub"]) == "chat"
    assert serve.prompt_format_of("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B") == "chat"


def test_save_refuses_an_unknown_prompt_format(artifacts_tmp, char_tokenizer):
    with pytest.raises(ValueError, match="prompt_format"):
        save_model_artifact("tiny", "x", build_causal_lm(SIZE, char_tokenizer), char_tokenizer, seed=0,
                            prompt_format="chatml")


def test_a_course_artifact_is_served_its_exact_training_prompt(folders, gsm8k_problems, chat_tokenizer):
    """The student's tokenizer has a chat template with a default system prompt, yet the served
    text is the GSM8K training prompt ``Q:<question>\\n`` and the first token of every training
    completion, ``<think>\\n`` – and the token ids match the ones TRL's SFT trains on."""
    from utils.sft import sft_batch

    served = serve.load_served_model("student", folders["colab"], device="cpu")
    assert served.prompt_format == "raw" and served.data_source == "gsm8k"
    p = gsm8k_problems[0][0]
    text = serve.model_input(served, p.prompt.strip())  # the app's text box strips the prompt
    assert text == p.prompt + THINK_OPEN + "\n"
    assert (p.prompt + p.completion).startswith(text)
    assert SYSTEM not in text and "<|im_start|>" not in text
    assert serve.model_input(served, p.prompt.strip()[2:]) == text  # "Q:" is added when missing
    ids = chat_tokenizer(text, add_special_tokens=False)["input_ids"]
    trained = sft_batch(chat_tokenizer, [{"prompt": p.prompt, "completion": p.completion}], max_length=512)
    assert trained["input_ids"][0][:len(ids)].tolist() == ids
    assert (trained["labels"][0][:len(chat_tokenizer(p.prompt, add_special_tokens=False)["input_ids"])]
            == -100).all()


def test_notebook_05_style_served_model_reads_the_manifest(folders, chat_tokenizer):
    """Notebook 05 builds ServedModel(name, model, tokenizer, source=artifact folder) itself."""
    model = build_causal_lm(SIZE, chat_tokenizer, seed=0)
    served = serve.ServedModel("student", model, chat_tokenizer, source=str(folders["colab"]))
    assert served.prompt_format == "raw"
    assert serve.model_input(served, "Q:How many?") == "Q:How many?\n<think>\n"


def test_tiny_artifact_reads_the_task_world_prompt(folders, char_tokenizer):
    served = serve.load_served_model("student", folders["tiny"], device="cpu")
    assert served.prompt_format == "raw" and served.data_source == "synthetic"
    for p in make_problems(8, "test", seed=1):
        text = serve.model_input(served, p.prompt)
        assert text == p.prompt + THINK_OPEN and (p.prompt + p.completion).startswith(text)


def test_generation_reads_the_raw_prompt(folders, gsm8k_problems, chat_tokenizer):
    """What stream_generate hands to model.generate is the training prompt, token for token."""
    served = serve.load_served_model("student", folders["colab"], device="cpu")
    seen = []
    real = served.model.generate
    served.model.generate = lambda **kw: seen.append(kw["input_ids"]) or real(**kw)
    p = gsm8k_problems[0][1]
    request = serve.validate_request(served, p.prompt, 0, 1.0, 3, max_tokens_cap=3, max_prompt_chars=2000)
    final = list(serve.stream_generate(served, request))[-1]
    assert final["done"] and len(seen) == 1
    assert chat_tokenizer.decode(seen[0][0]) == p.prompt + THINK_OPEN + "\n"


@pytest.mark.parametrize("kind", ["hub", "chat"])
def test_a_hub_checkpoint_keeps_its_chat_template(folders, kind):
    served = serve.load_served_model("r1-distill", folders[kind], device="cpu")
    assert served.prompt_format == "chat"
    text = serve.model_input(served, "Q:How many?")
    assert text == (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nQ:How many?<|im_end|>\n"
                    "<|im_start|>assistant\n<think>\n")


def test_an_artifact_from_before_the_field_is_raw(folders, tmp_path):
    """Manifests written before ``prompt_format`` existed belong to course-trained models: raw."""
    import shutil

    old = tmp_path / "student"
    shutil.copytree(folders["colab"], old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["config"]["prompt_format"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    served = serve.load_served_model("student", old, device="cpu")
    assert served.prompt_format == "raw"
    assert "<|im_start|>" not in serve.model_input(served, "Q:How many?")


def test_an_unknown_prompt_format_is_refused(char_tokenizer):
    with pytest.raises(ValueError, match="prompt_format"):
        serve.ServedModel("x", torch.nn.Linear(1, 1), char_tokenizer, prompt_format="chatml")
