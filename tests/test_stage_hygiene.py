"""Issue row 6: every generation or scoring call is batched by the profile's settings, and every
model load names its dtype (a load without one comes up in fp32: twice the memory of fp16 on a
GPU). Checked on the source of the package and of every notebook, so a new call cannot slip in."""

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BATCHED = {"generate", "evaluate", "pass_at_k", "pass_at_k_outcomes", "score", "batched_tokens_per_s", "accuracy_on", "sample_candidates"}
LOADS = {"load_model_artifact"}
MODULES = {"generation", "measure", "reward", "teacher", "dd", "models", "utils"}  # how the package is imported


def _sources():
    for path in sorted((ROOT / "utils").rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_text()
    for path in sorted((ROOT / "notebooks").glob("0*.ipynb")) + sorted((ROOT / "notebooks/solutions").glob("0*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("!", "%")))
        yield path.relative_to(ROOT).as_posix(), code


def _calls(tree, names):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):                         # generate(...), score(...)
                name = f.id
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in MODULES:
                name = f.attr                                   # measure.batched_tokens_per_s(...)
            else:                                               # model.generate(**enc), llm.generate, critic.score
                continue
            if name in names:
                yield name, node


def _offenders(keyword: str, names: set[str], positional_at: int | None = None) -> list[str]:
    found = []
    for where, text in _sources():
        for name, call in _calls(ast.parse(text), names):
            kws = {k.arg for k in call.keywords}
            if keyword in kws or None in kws:                   # named, or passed through **kwargs
                continue
            if positional_at is not None and len(call.args) > positional_at:
                continue
            found.append(f"{where}:{call.lineno} {name}(...)")
    return found


def test_every_generation_and_scoring_call_is_batched_by_the_profile():
    # accuracy_on takes the batch as its 4th positional argument
    offenders = [o for o in _offenders("batch_size", BATCHED) if "accuracy_on" not in o]
    offenders += [o for o in _offenders("batch_size", {"accuracy_on"}, positional_at=3)]
    # the definitions' own recursive helpers are fine only if they pass the batch on: none are exempt
    assert not offenders, "calls that fall back to a default batch size:\n" + "\n".join(offenders)


def test_every_model_load_names_its_dtype():
    offenders = _offenders("dtype", LOADS)
    assert not offenders, "loads without an explicit dtype (fp32 by default):\n" + "\n".join(offenders)


@pytest.mark.parametrize("name", ["teacher_sft", "reward_model", "teacher_ppo_rm", "teacher_ppo", "teacher_grpo"])
def test_each_notebook_02_stage_is_saved_with_a_fingerprint(name):
    from utils.config import ARTIFACTS
    from utils.pipeline import BUILDERS

    assert ARTIFACTS[name].notebook == "02" and name in BUILDERS


def test_gradient_checkpointing_reaches_the_trainer_and_lora_still_learns(char_tokenizer):
    """transformers 5 made ``activation_checkpointing`` the setting and ``gradient_checkpointing`` an
    alias it overwrites: passing ``activation_checkpointing=False`` beside it switched checkpointing
    off in every TRL stage (traced: teacher SFT 20 GB instead of 5 GB on the colab profile). Here it
    must be on during training, and the LoRA adapters must still receive gradients through it."""
    import torch

    from utils.config import ModelSize
    from utils.models import add_lora, build_causal_lm
    from utils.sft import to_sft_dataset, train_sft
    from utils.tasks import make_problems

    model = add_lora(build_causal_lm(ModelSize(32, 2, 2, 64), char_tokenizer, seed=0), 4)
    seen = []
    layer = model.get_base_model().model.layers[0]
    layer.register_forward_hook(lambda m, a, o: seen.append(m.gradient_checkpointing and m.training))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    train_sft(model, char_tokenizer, to_sft_dataset(make_problems(16, "train", seed=0, families=("add",))), steps=2, lr=1e-2, batch_size=4,
              seed=0, gradient_checkpointing=True, progress=False)
    assert seen and all(seen[: len(seen) // 2 or 1]), "layers ran without activation checkpointing"
    after = dict(model.named_parameters())
    assert any(not torch.equal(after[n], v) for n, v in before.items()), "LoRA adapters got no gradient"
