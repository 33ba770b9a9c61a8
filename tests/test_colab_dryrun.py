"""The colab profile's code path, end to end: notebooks 01–05 executed with ``colab-dryrun``.

Only the names of what is loaded differ from a real Colab run: local GSM8K JSONL instead of
the hub, tiny checkpoints saved with ``save_pretrained`` instead of hub ids (utils.standins),
and a few steps per stage. Artifacts and stand-ins go to a temporary folder; the executed
notebooks too (the committed ones are never touched). About 2–3 minutes on 2 cores.

Every test sits in ``TestNotebooks…`` so that ``-k "not notebooks"`` skips this slow part.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import nbformat
import pytest

from utils.runner import notebooks, run_notebook

PROFILE = "colab-dryrun"
NOTEBOOKS = notebooks()


@pytest.fixture(scope="module")
def dryrun(tmp_path_factory):
    """Run every notebook once with the dry-run profile; collect wall times and errors.

    The kernels inherit ``R1LAB_ARTIFACTS`` / ``R1LAB_STANDINS`` (and the profile) from this
    process's environment, which is restored afterwards.
    """
    root = tmp_path_factory.mktemp("colab_dryrun")
    out = root / "notebooks"
    out.mkdir()
    outcome = {"seconds": {}, "errors": {}, "root": root, "out": out, "committed": _digests()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("R1LAB_ARTIFACTS", str(root / "artifacts"))
        mp.setenv("R1LAB_STANDINS", str(root / "standins"))
        mp.setenv("R1LAB_PROFILE", PROFILE)  # run_notebook sets these too; the context restores them
        mp.setenv("R1LAB_SEED", "0")
        start = time.perf_counter()
        for path in NOTEBOOKS:
            try:
                outcome["seconds"][path.name] = run_notebook(path, PROFILE, 0, timeout=600, out=out)
            except Exception as exc:  # nbclient's CellExecutionError holds the failing cell
                outcome["errors"][path.name] = str(exc)[-3000:]
        outcome["total_s"] = time.perf_counter() - start
    print(f"\ncolab-dryrun: {outcome['total_s']:.0f} s in all – "
          + ", ".join(f"{name[:2]} {s:.0f} s" for name, s in outcome["seconds"].items()))
    return outcome


def _digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in NOTEBOOKS}


def _results(dryrun) -> dict:
    return json.loads((dryrun["root"] / "artifacts" / PROFILE / "results.json").read_text())


def _artifact(dryrun, name: str) -> Path:
    return dryrun["root"] / "artifacts" / PROFILE / name


class TestNotebooksColabDryrun:
    @pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
    def test_notebook_executes_without_error(self, dryrun, path):
        assert path.name not in dryrun["errors"], dryrun["errors"].get(path.name)
        executed = nbformat.read(dryrun["out"] / path.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.output_type == "error"]
        assert not errors

    def test_committed_notebooks_are_untouched(self, dryrun):
        assert _digests() == dryrun["committed"]

    def test_results_hold_every_stage(self, dryrun):
        results = _results(dryrun)
        assert {"acc_sft", "acc_ppo", "acc_grpo", "acc", "method", "params"} <= set(results["teacher"])
        assert {"params", "arm", "acc_filtered", "acc_unfiltered", "acc_groundtruth",
                "acc_curriculum"} <= set(results["student"])
        assert results["data"]["kept"] > 0 and results["data"]["kept_correct_frac"] == 1.0
        assert results["serving"]["concurrent_ok"] == results["serving"]["concurrent_sent"]
        assert results["student"]["params"] <= 0.2 * results["teacher"]["params"]

    def test_data_came_from_local_gsm8k(self, dryrun):
        rows = [json.loads(line) for line in
                (_artifact(dryrun, "distill_data_unfiltered") / "data.jsonl").read_text().splitlines()]
        assert {r["family"] for r in rows} == {"gsm8k"}
        sample = (Path(__file__).parent / "fixtures" / "gsm8k_sample.jsonl").read_text(encoding="utf-8")
        assert all(r["prompt"][2:].strip() in sample for r in rows)  # "Q:<question>\n"

    def test_models_are_the_standins_fine_tuned(self, dryrun):
        standins = dryrun["root"] / "standins"
        for name, source in [("teacher_sft", "teacher"), ("student", "student"),
                             ("reward_model", "reward_model")]:
            saved = json.loads((_artifact(dryrun, name) / "config.json").read_text())
            original = json.loads((standins / source / "config.json").read_text())
            assert saved["model_type"] == original["model_type"]
            assert saved["hidden_size"] == original["hidden_size"]
        manifest = json.loads((_artifact(dryrun, "teacher_sft") / "manifest.json").read_text())
        assert manifest["config"]["lora_rank"] == 16  # the colab path trains LoRA adapters, merged on save
        # The RL teacher keeps its adapters, unmerged, on the warm-up teacher (a few MB, no rounding)
        teacher = _artifact(dryrun, "teacher")
        assert (teacher / "adapter_config.json").is_file() and not (teacher / "config.json").exists()
        assert json.loads((teacher / "manifest.json").read_text())["config"]["adapter_of"] == "teacher_sft"

    def test_student_has_its_own_tokenizer(self, dryrun):
        from utils.tokenizer import load_tokenizer

        teacher = load_tokenizer(_artifact(dryrun, "teacher"))
        student = load_tokenizer(_artifact(dryrun, "student"))
        assert type(student) is not type(teacher)
        assert len(student) != len(teacher)
        text = "Q:Tom has 12 apples.\n<think>\n12-5=7\n</think>A:7"
        assert student(text)["input_ids"] != teacher(text)["input_ids"]
        assert student.decode(student(text)["input_ids"]) == text

    def test_fits_the_ci_budget(self, dryrun):
        # Target: <= 5 min on 2 cores. Asserted with headroom for a loaded CI machine.
        assert dryrun["total_s"] < 600, dryrun["seconds"]
