"""Notebook 02's build-it cells – reward functions, the PPO step, the GRPO loss – read from the notebook by
cell id and run against the package they must agree with (fast: micro models, no training run)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_ppo_teacher.ipynb"

REWARDS_CELL = "b1d0a002"      # accuracy_reward, format_reward, GRPO_REWARDS


def cell_source(cell_id: str, notebook: Path = NOTEBOOK) -> str:
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["id"] == cell_id:
            return "".join(cell["source"])
    raise KeyError(f"no cell {cell_id} in {notebook.name}")


def exec_cell(cell_id: str, tmp_path: Path, **namespace) -> dict:
    """Run a cell's source from a file (so that ``inspect.getsource`` finds its functions, as IPython's
    cache does in the notebook) in a namespace holding ``namespace``; return the namespace."""
    path = tmp_path / f"cell_{cell_id}.py"
    path.write_text(cell_source(cell_id))
    ns = {"__name__": f"cell_{cell_id}", "display": print, **namespace}
    exec(compile(path.read_text(), str(path), "exec"), ns)
    return ns


def _run(**changes):
    from utils.config import Run, get_profile

    prof = get_profile("tiny")
    return Run(profile=prof.replace(**changes) if changes else prof, seed=0, device="cpu", dtype=torch.float32)


# ---------------------------------------------------------------------------------------
# 1 · The reward functions, in a cell, passed in
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("format_on", [False, True])
def test_cell_rewards_are_the_packages_own(tmp_path, format_on, capsys):
    from utils.config import functions_hash
    from utils.grpo import accuracy_reward, default_rewards, format_reward

    run = _run(grpo_format_reward=format_on)
    ns = exec_cell(REWARDS_CELL, tmp_path, prof=run.profile)
    assert [f.__name__ for f in ns["GRPO_REWARDS"]] == [f.__name__ for f in default_rewards(run.profile)]
    assert functions_hash(ns["GRPO_REWARDS"]) == functions_hash(default_rewards(run.profile))
    assert "the package's own" in capsys.readouterr().out
    assert default_rewards(run.profile) == ([accuracy_reward, format_reward] if format_on else [accuracy_reward])
    completions = ["<think>2+3=5</think>A:5", "<think>2+3=6</think>A:6", "A:5"]
    answers = ["5", "5", "5"]
    assert ns["accuracy_reward"](completions, answers) == accuracy_reward(completions, answers)
    assert ns["format_reward"](completions) == format_reward(completions)


def test_an_edited_reward_changes_the_fingerprints_made_from_it(tmp_path):
    from utils.grpo import default_rewards

    run = _run()
    ns = exec_cell(REWARDS_CELL, tmp_path, prof=run.profile)
    names = ("teacher_sft", "reward_model", "teacher_ppo", "teacher_grpo", "teacher", "distill_data", "student")
    before = {n: run.fingerprint(n) for n in names}
    run.using("grpo_rewards", ns["GRPO_REWARDS"], default_rewards(run.profile))
    assert {n: run.fingerprint(n) for n in names} == before      # the cell's own functions: nothing changes
    edited = tmp_path / "edited.py"
    edited.write_text(cell_source(REWARDS_CELL).replace("return [float(verify(c, a))",
                                                        "return [0.5 + 0.5 * float(verify(c, a))"))
    ns2 = {"prof": run.profile}
    exec(compile(edited.read_text(), str(edited), "exec"), ns2)
    run.using("grpo_rewards", ns2["GRPO_REWARDS"], default_rewards(run.profile))
    after = {n: run.fingerprint(n) for n in names}
    for same in ("teacher_sft", "reward_model", "teacher_ppo"):
        assert after[same] == before[same], same
    for changed in ("teacher_grpo", "teacher", "distill_data", "student"):
        assert after[changed] != before[changed], changed
    run.using("grpo_rewards", ns["GRPO_REWARDS"], default_rewards(run.profile))   # back to the package's own
    assert {n: run.fingerprint(n) for n in names} == before


def test_functions_config_names_only_edited_functions():
    from utils.grpo import default_rewards
    from utils.teacher import functions_config

    run = _run()
    run.using("grpo_rewards", default_rewards(run.profile), default_rewards(run.profile))
    assert functions_config(run, "teacher") == {} and functions_config(run, "teacher_grpo") == {}

    def accuracy_reward(completions, answer, **_):
        return [1.0 for _ in completions]

    run.using("grpo_rewards", [accuracy_reward], default_rewards(run.profile))
    assert functions_config(run, "teacher") == {"functions": {"grpo_rewards": run.functions["grpo_rewards"]}}
    assert functions_config(run, "teacher_ppo") == {}


class _FakeGRPOTrainer:
    """Stands in for TRL's GRPOTrainer: records what train_grpo gives it; train() calls each reward once."""

    made: list = []

    def __init__(self, *, model, reward_funcs, args, train_dataset, processing_class, callbacks):
        self.reward_funcs, self.args, self.dataset = reward_funcs, args, train_dataset
        self.state = types.SimpleNamespace(log_history=[], global_step=0, num_input_tokens_seen=0)
        self.ref_model = None
        _FakeGRPOTrainer.made.append(self)

    def train(self):
        g = self.args.num_generations
        completions = ["<think>1+1=2</think>A:2", "A:3"] * g        # two prompts' groups: mixed, mixed
        answers = ["2"] * (2 * g)
        self.rewards = [f(prompts=["Q"] * len(completions), completions=completions, answer=answers)
                        for f in self.reward_funcs]


def _train_with_fake(monkeypatch, char_tokenizer, **kwargs):
    import trl

    from utils.config import ModelSize
    from utils.grpo import train_grpo
    from utils.models import build_causal_lm

    _FakeGRPOTrainer.made = []
    monkeypatch.setattr(trl, "GRPOTrainer", _FakeGRPOTrainer)
    policy = build_causal_lm(ModelSize(32, 1, 2, 64), char_tokenizer, seed=0)
    problems = [types.SimpleNamespace(prompt="Q:1+1=", answer="2")] * 4
    result = train_grpo(_run(), policy, char_tokenizer, problems, eval_fn=None, eval_every=1, progress=False,
                        **kwargs)
    return _FakeGRPOTrainer.made[-1], result


def test_train_grpo_passes_the_given_reward_functions(monkeypatch, char_tokenizer):
    calls = []

    def accuracy_reward(completions, answer, **kwargs):
        calls.append(sorted(kwargs))
        return [float(c.endswith("A:" + a)) for c, a in zip(completions, answer)]

    def length_reward(completions, **_):
        return [-0.001 * len(c) for c in completions]

    trainer, result = _train_with_fake(monkeypatch, char_tokenizer, reward_funcs=[accuracy_reward, length_reward])
    first, second = trainer.reward_funcs
    assert second is length_reward                        # the rest: passed as they are
    assert first.__name__ == "accuracy_reward"            # the first: wrapped, logged under TRL's name
    assert calls == [["prompts"]]                         # called once, with TRL's other keyword arguments
    assert trainer.rewards[0] == [1.0, 0.0] * trainer.args.num_generations
    assert trainer.rewards[1] == length_reward(["<think>1+1=2</think>A:2", "A:3"] * trainer.args.num_generations)
    assert result["zero_variance"] == [0.0]               # the wrapper counted the accuracy rewards' groups
    assert result["think_share"] == [0.5]


def test_train_grpo_default_rewards_are_unchanged(monkeypatch, char_tokenizer):
    from utils.grpo import format_reward

    trainer, result = _train_with_fake(monkeypatch, char_tokenizer)
    assert [f.__name__ for f in trainer.reward_funcs] == ["accuracy_reward"]   # tiny: format reward off
    assert trainer.rewards[0] == [1.0, 0.0] * trainer.args.num_generations
    trainer, _ = _train_with_fake(monkeypatch, char_tokenizer, format_bonus=True)
    assert trainer.reward_funcs[1] is format_reward
    with pytest.raises(ValueError, match="not both"):
        _train_with_fake(monkeypatch, char_tokenizer, reward_funcs=[format_reward], format_bonus=True)


def test_run_grpo_records_the_functions_before_it_looks_for_a_saved_stage(monkeypatch):
    from utils import teacher
    from utils.grpo import default_rewards

    run = _run()
    default_print = run.fingerprint("teacher_grpo")
    seen = []
    monkeypatch.setattr(teacher, "_load_rl", lambda r, stage: seen.append(r.fingerprint(stage)) or {"loaded": True})

    def accuracy_reward(completions, answer, **_):
        return [0.0 for _ in completions]

    assert teacher.run_grpo(run, reward_funcs=[accuracy_reward]) == {"loaded": True}
    teacher.run_grpo(run, reward_funcs=default_rewards(run.profile))
    teacher.run_grpo(run)
    assert seen[0] != default_print and seen[1:] == [default_print, default_print]


# ---------------------------------------------------------------------------------------
# 2 · ppo_step, written out in the notebook, against utils.ppo.ppo_update
# ---------------------------------------------------------------------------------------

PPO_STEP_CELL = "b1d0a004"     # def ppo_step(policy, critic, optimizer, rollout, cfg)
PPO_CHECK_CELL = "b1d0a005"    # the same update from the same start as utils.ppo.ppo_update


def _micro_rollout(char_tokenizer):
    """A policy, a critic and a rollout of three sequences (prompt, response, padding) whose reference
    differs from the sampling policy, so every term of the update is non-zero."""
    from utils.config import ModelSize
    from utils.models import build_causal_lm, build_scalar_head
    from utils.ppo import Rollout, token_logprobs, token_values

    size = ModelSize(32, 1, 2, 64)
    policy = build_causal_lm(size, char_tokenizer, seed=0)
    critic = build_scalar_head(size, char_tokenizer, seed=1)
    texts = ["Q:1+2=<think>1+2=3</think>A:3", "Q:5-1=<think>5-1=4</think>A:4<pad><pad>", "Q:2*3=A:7<pad><pad><pad>"]
    enc = char_tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, attn = enc["input_ids"], enc["attention_mask"]
    response = attn.clone().float()
    response[:, :6] = 0
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        old = token_logprobs(policy, ids, attn)
        values = token_values(critic, ids, attn)
    ref = old + 0.3 * torch.randn(old.shape, generator=g)
    return policy, critic, Rollout(ids, attn, response[:, 1:], old, ref, values, torch.tensor([1.0, 0.0, 0.5]))


def _ppo_step(tmp_path, source=None):
    if source is None:
        return exec_cell(PPO_STEP_CELL, tmp_path, torch=torch)["ppo_step"]
    ns = {"torch": torch}
    exec(compile(source, "edited_ppo_step", "exec"), ns)
    return ns["ppo_step"]


def _both(step, policy, critic, r, cfg):
    from utils.ppo import ppo_update, updates_from_one_start

    return updates_from_one_start({"cell": step, "package": ppo_update}, policy, critic, r, cfg, lr=1e-2, seed=3)


def _assert_same(both):
    (mine, mine_w), (package, package_w) = both["cell"], both["package"]
    assert set(mine) == {"policy_loss", "value_loss", "approx_kl"}
    torch.testing.assert_close(mine, {k: package[k] for k in mine})
    torch.testing.assert_close(mine_w, package_w)


def test_ppo_step_equals_ppo_update(tmp_path, char_tokenizer):
    from utils.ppo import PPOConfig

    policy, critic, r = _micro_rollout(char_tokenizer)
    start = {k: v.clone() for k, v in policy.state_dict().items()}
    cfg = PPOConfig(beta=0.1, lam=0.9, gamma=0.99, ppo_epochs=3, minibatch_size=2, target_kl=None)
    both = _both(_ppo_step(tmp_path), policy, critic, r, cfg)
    _assert_same(both)
    assert both["cell"][0]["policy_loss"] != 0 and both["cell"][0]["approx_kl"] > 0
    moved = both["cell"][1]
    assert any(not torch.equal(moved[f"policy.{k}"], v) for k, v in start.items())   # the update did something
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in start.items())      # ... to a copy


def test_ppo_step_stops_early_on_kl_as_ppo_update_does(tmp_path, char_tokenizer):
    from utils.ppo import PPOConfig

    policy, critic, r = _micro_rollout(char_tokenizer)
    step = _ppo_step(tmp_path)
    early = PPOConfig(beta=0.1, ppo_epochs=3, minibatch_size=1, target_kl=1e-12)   # stops after the first epoch
    stopped = _both(step, policy, critic, r, early)
    _assert_same(stopped)
    full = _both(step, policy, critic, r, PPOConfig(beta=0.1, ppo_epochs=3, minibatch_size=1, target_kl=None))
    assert stopped["package"][0]["approx_kl"] != full["package"][0]["approx_kl"]       # the early stop mattered
    # a ppo_step without the early stop is caught
    no_stop = _ppo_step(tmp_path, cell_source(PPO_STEP_CELL).replace("            break\n", "            pass\n"))
    with pytest.raises(AssertionError):
        _assert_same(_both(no_stop, policy, critic, r, early))
    # and so is one that forgets to whiten the advantages
    unwhitened = _ppo_step(tmp_path, cell_source(PPO_STEP_CELL).replace(
        "    advantages = (advantages - mean) *", "    _ = (advantages - mean) *"))
    with pytest.raises(AssertionError):
        _assert_same(_both(unwhitened, policy, critic, r, PPOConfig(beta=0.1, minibatch_size=3, target_kl=None)))


def test_the_notebook_check_cell_runs_on_copies_and_keeps_the_random_state(tmp_path, char_tokenizer, capsys):
    import pandas as pd

    from utils.config import ModelSize
    from utils.models import build_causal_lm
    from utils.tasks import Problem

    run = _run()
    sft_model = build_causal_lm(ModelSize(32, 1, 2, 64), char_tokenizer, seed=0).eval()
    start = {k: v.clone() for k, v in sft_model.state_dict().items()}
    problems = [Problem("add", 1, f"Q:{a}+1=", f"<think>{a}+1={a + 1}</think>A:{a + 1}", str(a + 1)) for a in range(6)]
    ns = exec_cell(PPO_STEP_CELL, tmp_path, torch=torch)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    exec(compile(cell_source(PPO_CHECK_CELL), "check_cell", "exec"),
         {**ns, "run": run, "prof": run.profile, "sft_model": sft_model, "teacher_tok": char_tokenizer,
          "train_problems": lambda _: problems, "pd": pd, "display": print})
    assert "✓ same losses and weights as utils.ppo" in capsys.readouterr().out
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(sft_model.state_dict()[k], v) for k, v in start.items())


def test_build_it_checks_are_skipped_for_lora_and_large_policies(monkeypatch, char_tokenizer):
    from utils import ppo
    from utils.config import ModelSize
    from utils.models import build_causal_lm

    policy = build_causal_lm(ModelSize(32, 1, 2, 64), char_tokenizer, seed=0)
    assert ppo.build_it_check_skipped(_run(), policy) is None
    assert "LoRA" in ppo.build_it_check_skipped(_run(lora_rank=4), policy)
    monkeypatch.setattr(ppo, "STEP_CHECK_MAX_PARAMS", 1000)
    assert "too heavy" in ppo.build_it_check_skipped(_run(), policy)


# ---------------------------------------------------------------------------------------
# 3 · grpo_loss, written out in the notebook, against TRL's GRPOTrainer
# ---------------------------------------------------------------------------------------

GRPO_LOSS_CELL = "b1d0a007"    # def grpo_loss(logps, old_logps, ref_logps, advantages, mask, *, ...)
GRPO_CHECK_CELL = "b1d0a008"   # grpo_loss against utils.grpo.trl_grpo_loss on one sampled batch


@pytest.fixture(scope="module")
def micro_batch(char_tokenizer):
    """A micro policy and one sampled GRPO batch from it, with non-zero advantages."""
    from utils.config import ModelSize
    from utils.grpo import loss_check_batch
    from utils.models import build_causal_lm
    from utils.tasks import Problem

    policy = build_causal_lm(ModelSize(32, 1, 2, 64), char_tokenizer, seed=0).eval()
    problems = [Problem("add", 1, f"Q:{a}+1=", "", str(a + 1)) for a in range(3)]
    inputs, logps = loss_check_batch(policy, char_tokenizer, problems, group_size=2, max_new_tokens=12,
                                     scale="batch", seed=0, shift=0.3)
    inputs["advantages"] = torch.tensor([1.5, -0.5, 0.8, -1.2, 0.0, 2.0])   # the random policy is never right
    return policy, inputs, logps


def _grpo_loss(tmp_path, source=None):
    if source is None:
        return exec_cell(GRPO_LOSS_CELL, tmp_path, torch=torch)["grpo_loss"]
    ns = {"torch": torch}
    exec(compile(source, "edited_grpo_loss", "exec"), ns)
    return ns["grpo_loss"]


def _losses(fn, policy, tokenizer, inputs, logps, loss_type, beta=0.05):
    from utils.grpo import trl_grpo_loss

    knobs = dict(loss_type=loss_type, beta=beta, epsilon=0.2, max_completion_length=12)
    mine = fn(logps, inputs["old_per_token_logps"], inputs["ref_per_token_logps"], inputs["advantages"],
              inputs["completion_mask"], **knobs)
    return mine, trl_grpo_loss(policy, tokenizer, inputs, **knobs)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_grpo_loss_equals_trls(tmp_path, micro_batch, char_tokenizer, loss_type, beta):
    policy, inputs, logps = micro_batch
    mask = inputs["completion_mask"]
    assert 0 < mask.sum() < mask.numel()          # some completions end early: the aggregation matters
    ratio = torch.exp(logps - inputs["old_per_token_logps"])
    assert ((ratio - 1).abs() > 0.2).any()        # some ratios are clipped
    mine, theirs = _losses(_grpo_loss(tmp_path), policy, char_tokenizer, inputs, logps, loss_type, beta)
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7)


def test_grpo_loss_mistakes_are_caught(tmp_path, micro_batch, char_tokenizer):
    policy, inputs, logps = micro_batch
    source = cell_source(GRPO_LOSS_CELL)
    mutants = {
        "no ratio on the KL": source.replace("    kl = kl * ratio", "    kl = kl * 1.0"),
        "k1 instead of k3": source.replace("torch.exp(log_ratio_ref) - log_ratio_ref - 1", "-log_ratio_ref"),
        "no clip": source.replace("torch.clamp(ratio, 1 - epsilon, 1 + epsilon)", "ratio"),
        "grpo without 1/|o_i|": source.replace("(per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)",
                                                "(per_token_loss * mask).sum(-1) / mask.shape[1]"),
    }
    for name, mutant in mutants.items():
        assert mutant != source, name
        mine, theirs = _losses(_grpo_loss(tmp_path, mutant), policy, char_tokenizer, inputs, logps, "grpo")
        with pytest.raises(AssertionError):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7)


def test_trl_grpo_loss_keeps_the_random_state_and_the_model(micro_batch, char_tokenizer):
    import random

    import numpy as np

    from utils.grpo import trl_grpo_loss

    policy, inputs, _ = micro_batch
    weights = {k: v.clone() for k, v in policy.state_dict().items()}
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    trl_grpo_loss(policy, char_tokenizer, inputs, loss_type="grpo", beta=0.05, epsilon=0.2, max_completion_length=12)
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in weights.items())
    assert not policy.training


def test_trl_grpo_loss_names_the_installed_version(monkeypatch, micro_batch, char_tokenizer):
    import trl

    from utils.grpo import TRL_LOSS_VERSION, trl_grpo_loss

    policy, inputs, _ = micro_batch
    assert trl.__version__.startswith(TRL_LOSS_VERSION)   # the version this course pins
    knobs = dict(loss_type="grpo", beta=0.0, epsilon=0.2, max_completion_length=12)
    monkeypatch.setattr(trl, "__version__", "1.17.0")
    with pytest.raises(RuntimeError, match=r"TRL 1\.17\.0 is installed"):
        trl_grpo_loss(policy, char_tokenizer, inputs, **knobs)
    monkeypatch.undo()
    monkeypatch.setattr(trl.GRPOTrainer, "_compute_loss", lambda self, model, inputs, num_items: None)
    with pytest.raises(RuntimeError, match=r"no _compute_loss\(model, inputs\)"):
        trl_grpo_loss(policy, char_tokenizer, inputs, **knobs)


def test_loss_check_batch_is_in_trls_layout(micro_batch):
    _, inputs, logps = micro_batch
    assert inputs["prompt_ids"].shape == inputs["prompt_mask"].shape and inputs["prompt_ids"].shape[0] == 6
    assert inputs["completion_ids"].shape == inputs["completion_mask"].shape == logps.shape
    for key in ("old_per_token_logps", "ref_per_token_logps"):
        assert inputs[key].shape == logps.shape and not torch.equal(inputs[key], logps)
    mask = inputs["completion_mask"]
    assert (mask[:, 1:] <= mask[:, :-1]).all()     # 1s, then 0s: masked after the first EOS


def test_the_notebook_grpo_check_cell_runs(tmp_path, char_tokenizer, capsys):
    import pandas as pd

    from utils.config import ModelSize
    from utils.models import build_causal_lm
    from utils.tasks import Problem

    run = _run()
    sft_model = build_causal_lm(ModelSize(32, 1, 2, 64), char_tokenizer, seed=0).eval()
    problems = [Problem("add", 1, f"Q:{a}+1=", "", str(a + 1)) for a in range(4)]
    ns = exec_cell(GRPO_LOSS_CELL, tmp_path, torch=torch)
    torch.manual_seed(7)
    rng = torch.get_rng_state()
    exec(compile(cell_source(GRPO_CHECK_CELL), "check_cell", "exec"),
         {**ns, "run": run, "prof": run.profile, "sft_model": sft_model, "teacher_tok": char_tokenizer,
          "train_problems": lambda _: problems, "pd": pd, "display": print})
    assert "✓ same loss as TRL's GRPOTrainer for loss_type grpo and dr_grpo" in capsys.readouterr().out
    assert torch.equal(torch.get_rng_state(), rng)
