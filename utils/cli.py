"""Command-line entry for student SFT – the same function as notebook 04, on one or many GPUs.

    python -m utils.cli student-sft --profile colab --arm filtered
    accelerate launch --num_processes 4 -m utils.cli student-sft --profile colab --arm filtered

Under ``accelerate launch`` TRL's trainer (inside :func:`utils.sft.train_sft`) runs data-parallel
on every GPU; the batch size in the profile is per device. Each process trains on its own shard
of every global batch; the main process builds any missing input first and alone writes the
``student`` artifact.

Two data-parallel processes on the CPU (gloo), what ``tests/test_accelerate_cpu.py`` runs. It takes
``--multi_gpu``: that selects accelerate's torchrun launcher, while ``--cpu`` alone starts *one*
process (accelerate's CPU launcher spawns several only through ``mpirun``)::

    CUDA_VISIBLE_DEVICES= accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \\
        --mixed_precision no --dynamo_backend no -m utils.cli student-sft --profile tiny \\
        --arm groundtruth --rows 64 --steps 4 --set student_batch_size=8 --set torch_threads=1

``--steps``, ``--rows`` and ``--set FIELD=VALUE`` shrink a run (a smoke test, a quick look);
``--log-examples DIR`` has every process write the training examples it was fed to
``DIR/rank<k>.jsonl`` (one line per optimiser step).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
from pathlib import Path


def _parse_set(items: list[str], profile) -> dict:
    """``["n_val=8", "student_lr=1e-3"]`` -> ``{"n_val": 8, "student_lr": 0.001}`` (checked against the profile)."""
    fields = {f.name for f in dataclasses.fields(profile)}
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise SystemExit(f"--set wants FIELD=VALUE with a profile field, not {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # a plain string: a hub id, a scheduler name
        out[key] = value
    return out


def _arm_rows(run, arm: str) -> list[dict]:
    """The arm's training rows, after building any missing input artifact. ``groundtruth`` needs
    no teacher: the task world's own rows, no distillation data (nor the teacher behind it)."""
    from .pipeline import ensure_distill_data, ensure_tokenizer

    ensure_tokenizer(run, "student")
    if arm == "groundtruth":
        from .splits import train_problems

        return [p.to_dict() for p in train_problems(run)]
    from .student import ablation_rows

    ensure_distill_data(run)
    return ablation_rows(run)[arm]


def _log_examples(folder: str | Path, rank: int, tokenizer):
    """Append, per training forward pass of this process, the decoded examples of the batch to
    ``folder/rank<rank>.jsonl``. A global forward pre-hook on the (training-mode, grad-enabled)
    token embedding: it sees exactly the ``input_ids`` the trainer's sharded DataLoader fed this
    process. Returns the hook's handle."""
    import torch

    path = Path(folder) / f"rank{rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    pad = tokenizer.pad_token_id
    count = [0]

    def hook(module, inputs):
        if not (isinstance(module, torch.nn.Embedding) and module.training and torch.is_grad_enabled()):
            return None
        count[0] += 1
        texts = [tokenizer.decode([t for t in row if t != pad], skip_special_tokens=True)
                 for row in inputs[0].tolist()]
        with path.open("a") as f:
            f.write(json.dumps({"rank": rank, "batch": count[0], "examples": texts}) + "\n")
        return None

    return torch.nn.modules.module.register_module_forward_pre_hook(hook)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sft = sub.add_parser("student-sft", help="fine-tune the student on one ablation arm and save it")
    sft.add_argument("--profile", default=None)
    sft.add_argument("--seed", type=int, default=None)
    sft.add_argument("--arm", default="filtered", choices=["filtered", "unfiltered", "groundtruth", "curriculum"])
    sft.add_argument("--steps", type=int, default=None, help="student_sft_steps (default: the profile's)")
    sft.add_argument("--rows", type=int, default=None, help="train on the arm's first N rows only")
    sft.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a profile field, e.g. --set n_val=8 (repeatable)")
    sft.add_argument("--log-examples", default=None, metavar="DIR",
                     help="each process writes the examples it trained on to DIR/rank<k>.jsonl")
    args = parser.parse_args(argv)

    import torch
    from accelerate import PartialState

    from .pipeline import setup
    from .student import save_student, student_tokenizer, train_student

    # Before anything touches a device: under `accelerate launch` this joins the process group
    # (gloo on CPU, NCCL on GPU) and selects this rank's GPU, so "cuda" means the local one. `cpu`
    # must follow train_sft's `use_cpu`: PartialState(cpu=False) on a CPU-only machine would lock
    # every rank into a single-process state and they would train separately.
    state = PartialState(cpu=not torch.cuda.is_available())
    run = setup(args.profile, args.seed, quiet=not state.is_main_process)
    overrides = _parse_set(args.set, run.profile)
    if args.steps is not None:
        overrides["student_sft_steps"] = args.steps
    if overrides:
        run = dataclasses.replace(run, profile=run.profile.replace(**overrides))
        if run.profile.torch_threads:
            torch.set_num_threads(run.profile.torch_threads)
    # A missing input artifact (tokenizer, distillation data) is built once, by the main process;
    # the others wait for it and then read it.
    with state.main_process_first():
        rows = _arm_rows(run, args.arm)
        tokenizer = student_tokenizer(run)
    if args.rows is not None:
        rows = rows[: args.rows]
    hook = _log_examples(args.log_examples, state.process_index, tokenizer) if args.log_examples else None
    try:
        model, _, ev = train_student(run, rows, curriculum=args.arm == "curriculum",
                                     progress=state.is_main_process)
    finally:
        if hook is not None:
            hook.remove()
    if state.is_main_process:  # every rank holds the same weights; one writes them
        print(ev.summary())
        save_student(run, model, tokenizer, ev, args.arm)
        print(f"[rank {state.process_index}] saved the student artifact ({args.arm}, "
              f"{run.profile.student_sft_steps} steps)", flush=True)
    state.wait_for_everyone()


if __name__ == "__main__":
    main()
