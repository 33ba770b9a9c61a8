"""Run every notebook headless, in order, and print the results table (``make run``).

Each notebook is executed in place with ``nbclient`` (so the committed outputs are those of
a real run), with ``R1LAB_PROFILE``/``R1LAB_SEED`` in the kernel's environment; its wall
time goes into ``results.json`` as ``wall_s.<NN>``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from .artifacts import REPO_ROOT, format_results, format_teacher_vs_student, load_results, update_results
from .config import get_profile, set_offline_env

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def notebooks(solutions: bool = False) -> list[Path]:
    """The course's notebooks in order (``01_…`` to ``05_…``), those that exist; with ``solutions``,
    the exercises' solution notebooks (``notebooks/solutions/``) instead."""
    return sorted((NOTEBOOK_DIR / "solutions" if solutions else NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))


HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$")


def section_of(nb, index: int) -> str:
    """The last markdown heading above cell ``index`` (its text, without the ``#``s); "" if none."""
    title = ""
    for cell in nb["cells"][:index]:
        if cell["cell_type"] != "markdown":
            continue
        fenced = False
        for line in "".join(cell["source"]).splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced and (m := HEADING.match(line)):
                title = m.group(1)
    return title


def code_cells(nb) -> list[int]:
    """Indices of the cells nbclient executes (code with a non-blank source)."""
    return [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def progress_line(done: int, total: int, elapsed_s: float, section: str) -> str:
    """One line of ``make run``'s progress: cells done of total, elapsed m:ss, the running cell's section."""
    minutes, seconds = divmod(int(elapsed_s), 60)
    return f"  [{done}/{total} cells · {minutes}:{seconds:02d}] {section or '(no heading)'}"


def run_notebook(path: Path, profile: str, seed: int, timeout: int = 1800,
                 out: Path | None = None, progress: bool = True) -> float:
    """Execute one notebook (in place, or into the folder ``out``); return its wall time in seconds.

    With ``progress``, prints a line as each code cell starts (cells done / total, elapsed, section).
    On an error the partly executed notebook is still written (so the failing cell shows).
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ.update(R1LAB_PROFILE=profile, R1LAB_SEED=str(seed))
    order = {index: n for n, index in enumerate(code_cells(nb))}

    def on_cell_execute(cell, cell_index):
        print(progress_line(order.get(cell_index, 0), len(order), time.perf_counter() - start,
                            section_of(nb, cell_index)), flush=True)

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_execute=on_cell_execute if progress else None)
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(nb, (out / path.name) if out else path)
    return time.perf_counter() - start


def rebuild_chinese() -> None:
    """``make zh`` after a run: the Chinese notebooks get the new outputs. Stale translations do not stop
    the run; they are named, and the Chinese notebooks stay as they were until they are brought up to date."""
    from . import i18n

    try:
        written = i18n.build()
    except i18n.StaleTranslations as stale:
        print(f"Chinese notebooks not rebuilt – {stale}\n(python -m utils.i18n sync, translate, make zh)")
        return
    if written:
        print(f"rebuilt {len(written)} Chinese notebook(s) in notebooks/zh/")


def prepare_class(profile: str, seed: int) -> int:
    """``make class``: make the classroom replay pack, then measure it.

    If the saved runs of this profile and seed are incomplete (no ``make run`` yet), every notebook runs
    once, for real, into ``artifacts/<profile>/class-notebooks`` (the committed notebooks are left alone).
    Then every notebook runs in replay mode (``R1LAB_REPLAY=1``), timed; the times and the pack's size go
    to ``artifacts/<profile>/class.json`` and are printed with how to use the pack in a room.
    """
    import json

    from .artifacts import profile_dir
    from .config import make_run
    from .replay import pack_bytes, pack_missing, pack_needs

    run = make_run(profile, seed, quiet=True)
    if missing := pack_missing(run):
        print(f"make class: no saved run yet for {', '.join(missing)} – running every notebook once, for real "
              f"(about as long as `make run`)", flush=True)
        if main(["--profile", profile, "--seed", str(seed), "--out", str(profile_dir(profile) / "class-notebooks")]):
            return 1
        if still := pack_missing(make_run(profile, seed, quiet=True)):
            print(f"✗ the run did not save {', '.join(still)}", file=sys.stderr)
            return 1
    if main(["--profile", profile, "--seed", str(seed), "--replay"]):
        return 1
    replay_s = load_results(profile).get("replay_wall_s", {})
    size = pack_bytes(run)
    record = {"profile": profile, "seed": seed, "pack_bytes": size, "pack": pack_needs(run), "replay_s": replay_s}
    (profile_dir(profile) / "class.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nClassroom replay pack: artifacts/{profile}/ – {size / 1e6:.0f} MB in {len(record['pack'])} folders")
    for number, seconds in sorted(replay_s.items()):
        print(f"  notebook {number} in replay mode: {seconds:.0f} s")
    print(f"In class: R1LAB_REPLAY=1 make lab (or copy artifacts/{profile}/ to each laptop's clone first).")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=os.environ.get("R1LAB_PROFILE", "tiny"))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("R1LAB_SEED", 0)))
    parser.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 01 03")
    parser.add_argument("--out", type=Path, help="write executed notebooks here instead of in place")
    parser.add_argument("--solutions", action="store_true",
                        help="run the solution notebooks (after the main ones have made the artifacts)")
    parser.add_argument("--replay", action="store_true",
                        help="classroom replay (R1LAB_REPLAY=1): long cells load the saved run; executed notebooks go "
                             "to artifacts/<profile>/replay-notebooks unless --out says otherwise")
    parser.add_argument("--class", dest="class_pack", action="store_true",
                        help="make class: the replay pack (a real run if it is missing), then every notebook in replay")
    args = parser.parse_args(argv)
    prof = get_profile(args.profile)  # fail early on a typo
    set_offline_env(prof.hub_offline)
    if args.class_pack:
        return prepare_class(args.profile, args.seed)
    if args.replay:
        from .artifacts import profile_dir

        os.environ["R1LAB_REPLAY"] = "1"   # the kernels inherit it
        args.out = args.out or profile_dir(args.profile) / "replay-notebooks"
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    for path in notebooks(args.solutions):
        number = path.name[:2]
        if args.only and number not in args.only:
            continue
        print(f"▶ {path.name} (profile={args.profile}, seed={args.seed})", flush=True)
        try:
            seconds = run_notebook(path, args.profile, args.seed, out=args.out)
        except Exception as exc:  # nbclient's CellExecutionError carries the traceback text
            print(f"✗ {path.name} failed:\n{exc}", file=sys.stderr)
            return 1
        if not args.solutions:
            update_results(args.profile, {"replay_wall_s" if args.replay else "wall_s": {number: round(seconds, 1)}})
        print(f"✓ {path.name} in {seconds:.0f} s", flush=True)
    if args.out is None:  # the Chinese notebooks carry the outputs of this run
        rebuild_chinese()
    if args.solutions or args.replay:
        return 0
    results = load_results(args.profile)
    print(f"\nResults – artifacts/{args.profile}/results.json")
    print(format_results(results))
    table = format_teacher_vs_student(results)
    if table:
        print("\nTeacher vs student (notebook 04)")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
