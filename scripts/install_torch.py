"""Install pyproject.toml's torch pin into this interpreter's environment, choosing the wheel (``make setup``).

    .venv/bin/python scripts/install_torch.py [--dry-run]

pip does not look for GPUs: on Linux, PyPI's torch wheel is the CUDA build (GBs of CUDA libraries).
So, on Linux without a working ``nvidia-smi`` on PATH, the CPU wheel comes from PyTorch's CPU index
(as in the Dockerfile); with one, or on macOS/Windows, the default wheel. If the CPU index cannot
be reached (offline, a local wheel cache or mirror in pip's config), plain ``torch==<pin>`` is
installed from pip's configured sources. ``--dry-run`` prints the pip command, assuming the index
is reachable, and installs nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def torch_pin(text: str) -> str:
    """The ``torch==X`` requirement in pyproject.toml's text."""
    m = re.search(r'"(torch==[^"]+)"', text)
    if not m:
        raise ValueError("no torch==<version> pin in pyproject.toml")
    return m.group(1)


def has_nvidia_gpu() -> bool:
    """``nvidia-smi`` is on PATH and lists a GPU (exits 0)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def index_reachable(url: str = CPU_INDEX, timeout: float = 10) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(url + "/torch/", method="HEAD"), timeout=timeout)
        return True
    except Exception:
        return False


def pip_command(python: str, pin: str, gpu: bool, linux: bool, cpu_index_ok: bool = True) -> list[str]:
    """The pip command that installs ``pin``: the CPU index on Linux without a GPU, when reachable."""
    cmd = [python, "-m", "pip", "install", "--quiet", pin]
    if linux and not gpu and cpu_index_ok:
        cmd += ["--index-url", CPU_INDEX]
    return cmd


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dry = "--dry-run" in argv
    pin = torch_pin(PYPROJECT.read_text())
    gpu, linux = has_nvidia_gpu(), sys.platform.startswith("linux")
    cpu_wanted = linux and not gpu
    ok = True if dry or not cpu_wanted else index_reachable()
    if cpu_wanted and not ok:
        print(f"{CPU_INDEX} is unreachable: installing {pin} from pip's configured sources", flush=True)
    cmd = pip_command(sys.executable, pin, gpu, linux, ok)
    print(("would run: " if dry else "") + " ".join(cmd),
          f"(NVIDIA GPU: {'yes' if gpu else 'no'})", flush=True)
    return 0 if dry else subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
