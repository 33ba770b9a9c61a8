"""Install pyproject.toml's torch pin into this interpreter's environment, choosing the wheel (``make setup``).

    .venv/bin/python scripts/install_torch.py [--dry-run]

pip does not look for GPUs: on Linux, PyPI's torch wheel is the CUDA build (GBs of CUDA libraries).
So, on Linux without a working ``nvidia-smi`` on PATH, the CPU wheel comes from PyTorch's CPU index
(as in the Dockerfile); with one, or on macOS/Windows, the default wheel. If the CPU index cannot
be reached (offline, a local wheel cache or mirror in pip's config), plain ``torch==<pin>`` is
installed from pip's configured sources – on Linux from a PyPI mirror that is the CUDA build (several
GB), so the script says so and how to avoid it.

Behind a mirror (e.g. in China, where download.pytorch.org is slow or blocked), name the CPU wheels'
source explicitly, and the script uses it instead of PyTorch's index:

* ``R1LAB_TORCH_INDEX=<url>`` – a package index with the CPU wheels (a mirror of
  ``download.pytorch.org/whl/cpu``): ``pip install torch==<pin> --index-url <url>``;
* ``R1LAB_TORCH_FIND_LINKS=<url>`` – a page or folder that lists the wheel files (such mirrors are often
  plain directories): ``pip install torch==<pin>+cpu --find-links <url>``, the other packages from pip's
  configured index (``PIP_INDEX_URL``).

Each source is probed first with a short timeout (``PROBE_TIMEOUT_S``): an unreachable one costs
seconds, not a hung install, and the script falls back as above. ``--dry-run`` prints the pip command,
assuming the source is reachable, and installs nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT_S = 5.0   # how long a wheel source may take to answer the probe
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


def index_reachable(url: str = CPU_INDEX, timeout: float = PROBE_TIMEOUT_S, *, find_links: bool = False) -> bool:
    """Whether ``url`` answers within ``timeout`` seconds: an index's ``torch/`` page, or a find-links page."""
    probe = url if find_links else url.rstrip("/") + "/torch/"
    try:
        urllib.request.urlopen(urllib.request.Request(probe, method="HEAD" if not find_links else "GET"),
                               timeout=timeout)
        return True
    except Exception:
        return False


def pip_command(python: str, pin: str, gpu: bool, linux: bool, cpu_index_ok: bool = True, *,
                index: str = CPU_INDEX, find_links: str | None = None) -> list[str]:
    """The pip command that installs ``pin``: on Linux without a GPU, the CPU wheel from ``index`` (or from
    the ``find_links`` page, as ``<pin>+cpu``) when it was reachable; otherwise pip's configured sources."""
    if linux and not gpu and cpu_index_ok and find_links:
        return [python, "-m", "pip", "install", "--quiet", f"{pin}+cpu", "--find-links", find_links]
    cmd = [python, "-m", "pip", "install", "--quiet", pin]
    if linux and not gpu and cpu_index_ok:
        cmd += ["--index-url", index]
    return cmd


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dry = "--dry-run" in argv
    pin = torch_pin(PYPROJECT.read_text())
    gpu, linux = has_nvidia_gpu(), sys.platform.startswith("linux")
    cpu_wanted = linux and not gpu
    find_links = os.environ.get("R1LAB_TORCH_FIND_LINKS") or None
    index = os.environ.get("R1LAB_TORCH_INDEX") or CPU_INDEX
    source = find_links or index
    ok = True if dry or not cpu_wanted else index_reachable(source, find_links=bool(find_links))
    if cpu_wanted and not ok:
        print(f"{source} is unreachable (no answer within {PROBE_TIMEOUT_S:g} s): installing {pin} from pip's configured "
              "sources. On Linux a PyPI mirror serves the CUDA build there (several GB); to get the CPU wheel, "
              "set R1LAB_TORCH_INDEX (a mirror of download.pytorch.org/whl/cpu) or R1LAB_TORCH_FIND_LINKS "
              "(a folder of torch wheels) and run make again.", flush=True)
    cmd = pip_command(sys.executable, pin, gpu, linux, ok, index=index, find_links=find_links)
    print(("would run: " if dry else "") + " ".join(cmd),
          f"(NVIDIA GPU: {'yes' if gpu else 'no'})", flush=True)
    return 0 if dry else subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
