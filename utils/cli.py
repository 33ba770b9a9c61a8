"""Command-line entry for student SFT – the same function as notebook 04, on one or many GPUs.

    python -m utils.cli student-sft --profile colab --arm filtered
    accelerate launch --num_processes 4 -m utils.cli student-sft --profile colab --arm filtered

Under ``accelerate launch`` TRL's trainer (inside :func:`utils.sft.train_sft`) runs data-parallel
on every GPU; the batch size in the profile is per device.
"""

from __future__ import annotations

import argparse

from .config import setup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sft = sub.add_parser("student-sft", help="fine-tune the student on one ablation arm and save it")
    sft.add_argument("--profile", default=None)
    sft.add_argument("--seed", type=int, default=None)
    sft.add_argument("--arm", default="filtered", choices=["filtered", "unfiltered", "groundtruth", "curriculum"])
    args = parser.parse_args(argv)
    from .student import ablation_rows, save_student, student_tokenizer, train_student

    run = setup(args.profile, args.seed)
    model, _, ev = train_student(run, ablation_rows(run)[args.arm], curriculum=args.arm == "curriculum")
    print(ev.summary())
    save_student(run, model, student_tokenizer(run), ev, args.arm)


if __name__ == "__main__":
    main()
