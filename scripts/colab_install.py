"""Install the course on Colab without replacing Colab's torch and notebook stack (every notebook's setup cell).

    python scripts/colab_install.py /content/r1-distill-lab [--print]

``pip install -e REPO`` would install pyproject.toml's pins, torch==<pin> and the notebook stack
included, over Colab's own: torchvision then breaks (``operator torchvision::nms does not exist``)
and a torch built for another CUDA may not match the driver (the run silently falls back to the CPU).
So this script, stdlib only (the course is not importable yet):

1. checks the clone is complete (``utils/pipeline.py``), else stops with what to do;
2. installs pyproject's ``[project].dependencies`` minus :data:`KEEP`, with the KEEP packages that
   are installed pinned to their installed versions (a pip constraints file): pip never replaces them;
3. installs the course itself with ``pip install --no-deps -e REPO``;
4. checks that torch sees a CUDA GPU, and says what to do if not.

``--print`` prints what it keeps and the pip commands, and installs nothing.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

#: Colab's own libraries, never replaced. Missing ones are installed at the course's pin, except the
#: notebook stack: Colab *is* the notebook, and a second jupyter stack would only upset it.
RUNTIME_KEEP = ("torch", "torchvision", "torchaudio", "numpy", "pandas", "matplotlib")
NOTEBOOK_KEEP = ("jupyterlab", "ipykernel", "ipywidgets", "ipython", "notebook", "nbclient", "nbformat")
KEEP = RUNTIME_KEEP + NOTEBOOK_KEEP

CLONE_FAILED = """\
The course was not cloned completely: {missing} is missing.
The `git clone` in the notebook's first cell failed or was interrupted. Delete the folder and run
the cell again:  !rm -rf {repo}
If the clone fails again, read git's message above (a wrong repository URL in the badge? no network?)."""

NO_GPU = """\
WARNING: torch {version} sees no CUDA GPU{why}. The colab profile needs one and will stop:
  Colab menu: Runtime -> Change runtime type -> T4 GPU, then run the first cell again,
  or set R1LAB_PROFILE=tiny (or colab-dryrun) to run the course on this CPU."""


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req).group(1))


def check_clone(repo: Path) -> None:
    """Stop with a clear message unless ``repo`` is a complete clone of the course."""
    for part in ("utils/pipeline.py", "pyproject.toml"):
        if not (repo / part).is_file():
            raise SystemExit(CLONE_FAILED.format(missing=repo / part, repo=repo))


def dependencies(repo: Path) -> list[str]:
    """pyproject.toml's ``[project].dependencies``."""
    with open(repo / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def installed_versions(names=KEEP) -> dict[str, str]:
    """The installed version of each of ``names`` that is installed (as pip sees it: first on sys.path)."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def to_install(deps: list[str], installed: dict[str, str]) -> list[str]:
    """The requirements to install: every dependency except :data:`KEEP`, plus the runtime ones
    of KEEP that are not installed at all (at the course's pin)."""
    keep = {canonical(n) for n in KEEP}
    missing = {canonical(n) for n in RUNTIME_KEEP if n not in installed}
    return [r for r in deps if requirement_name(r) not in keep or requirement_name(r) in missing]


def constraints(installed: dict[str, str]) -> str:
    """A pip constraints file holding every installed KEEP package at its version."""
    return "".join(f"{name}=={version}\n" for name, version in installed.items())


def pip_commands(repo: Path, requirements: list[str], constraints_file: Path,
                 python: str = sys.executable) -> list[list[str]]:
    """The two pip commands: the dependencies (KEEP constrained), then the course without its dependencies."""
    pip = [python, "-m", "pip", "install", "--quiet"]
    return [pip + ["--constraint", str(constraints_file), *requirements],
            pip + ["--no-deps", "--no-warn-conflicts", "--editable", str(repo)]]


def check_cuda() -> bool:
    """Print what torch sees; a clear warning if it sees no CUDA GPU."""
    try:
        import torch
    except ImportError as e:
        print(f"WARNING: torch cannot be imported ({e})", flush=True)
        return False
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        print(f"GPU: {torch.cuda.get_device_name()} (compute capability {major}.{minor}), "
              f"torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
        return True
    why = " (a CPU-only build of torch)" if torch.version.cuda is None else ""
    print(NO_GPU.format(version=torch.__version__, why=why), flush=True)
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dry = "--print" in argv
    args = [a for a in argv if a != "--print"]
    if len(args) != 1:
        raise SystemExit(__doc__)
    repo = Path(args[0]).resolve()
    check_clone(repo)
    installed = installed_versions()
    kept = ", ".join(f"{n} {v}" for n, v in installed.items())
    missing = [n for n in KEEP if n not in installed]
    print(f"keeping Colab's {kept}" + (f" (not installed: {', '.join(missing)})" if missing else ""), flush=True)
    constraints_file = Path(tempfile.gettempdir()) / "r1lab-colab-constraints.txt"
    constraints_file.write_text(constraints(installed))
    commands = pip_commands(repo, to_install(dependencies(repo), installed), constraints_file)
    for cmd in commands:
        print(("would run: " if dry else "running: ") + shlex.join(cmd), flush=True)
        if not dry and subprocess.run(cmd).returncode != 0:
            raise SystemExit("pip failed: its message is above. Nothing of Colab's was replaced (see 'keeping').")
    if dry:
        return 0
    print("installed the course (pip install --no-deps -e) and its other dependencies", flush=True)
    check_cuda()
    return 0


if __name__ == "__main__":
    sys.exit(main())
