"""Fresh-machine install (the Makefile's setup, scripts/install_torch.py, scripts/check_python.py) and
`make run`'s progress, `make lab` as root, HF_HUB_OFFLINE per profile. No downloads, no kernel."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="needs GNU make")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU/CUDA choice is Linux's")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env(**extra) -> dict:
    """The environment for a child `make`: no outer make's flags, no HF_HUB_OFFLINE, no PROFILE."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "HF_HUB_OFFLINE", "PROFILE"}}
    env.update(extra)
    return env


def _make(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "--no-print-directory", *args], cwd=ROOT, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


# 1. torch: the CPU wheel on Linux without nvidia-smi ---------------------------------------------

def _dry_run(path: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "install_torch.py"), "--dry-run"],
                         env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@linux_only
def test_install_torch_uses_cpu_index_without_nvidia_smi(tmp_path):
    out = _dry_run(str(tmp_path))   # a PATH with no nvidia-smi
    assert "pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in out


@linux_only
def test_install_torch_uses_default_wheel_with_nvidia_smi(tmp_path):
    _script(tmp_path / "nvidia-smi", 'echo "GPU 0: Fake GPU (UUID: GPU-0)"\n')
    out = _dry_run(str(tmp_path))
    assert "pip install --quiet torch==2.13.0" in out and "--index-url" not in out and "GPU: yes" in out
    # an nvidia-smi that finds no GPU (no driver) counts as none
    _script(tmp_path / "nvidia-smi", "exit 9\n")
    assert "whl/cpu" in _dry_run(str(tmp_path))


def test_install_torch_falls_back_to_configured_sources_offline(monkeypatch, capsys):
    """Offline (here: a local wheel cache in pip's config), plain torch==<pin> is installed."""
    mod = _load("install_torch")
    ran = []
    monkeypatch.setattr(mod, "has_nvidia_gpu", lambda: False)
    monkeypatch.setattr(mod, "index_reachable", lambda *a, **k: False)
    monkeypatch.setattr(mod.sys, "platform", "linux")
    monkeypatch.setattr(mod.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert mod.main([]) == 0
    assert ran == [[sys.executable, "-m", "pip", "install", "--quiet", "torch==2.13.0"]]
    assert "unreachable" in capsys.readouterr().out
    assert mod.pip_command("py", "torch==2.13.0", gpu=False, linux=False) == ["py", "-m", "pip", "install",
                                                                              "--quiet", "torch==2.13.0"]


def test_torch_pin_matches_pyproject():
    mod = _load("install_torch")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert mod.torch_pin((ROOT / "pyproject.toml").read_text()) in deps


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a machine with nvidia-smi gets the CUDA build")
def test_installed_torch_is_the_cpu_build_without_nvidia_smi():
    import torch

    assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build on a machine without a GPU"


@needs_make
def test_setup_checks_python_then_installs_torch_with_the_script():
    out = _make("-n", "-W", "pyproject.toml", ".venv/.installed")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    check = next(i for i, line in enumerate(lines) if "scripts/check_python.py" in line)
    torch_ = next(i for i, line in enumerate(lines) if "scripts/install_torch.py" in line)
    rest = next(i for i, line in enumerate(lines) if '-e ".[test]"' in line)
    assert check < torch_ < rest
    assert "pip install --quiet torch" not in out.stdout


# 2. a broken venv is recreated; a failed `python -m venv` says what to install ---------------------

@needs_make
def test_broken_venv_is_recreated(tmp_path):
    venv = tmp_path / "v"
    _script(venv / "bin" / "python", "exit 1\n")   # what a failed `python3 -m venv` leaves behind
    out = _make("venv", f"VENV={venv}", f"PYTHON={sys.executable}", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Creating" in out.stdout
    subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], check=True, capture_output=True)


@needs_make
def test_failed_venv_says_what_to_install(tmp_path):
    venv = tmp_path / "v"
    # a Debian python3 without python3-venv: `-m venv` leaves bin/python and fails
    fake = _script(tmp_path / "python3", f"""if [ "$1 $2" = "-m venv" ]; then
  mkdir -p {venv}/bin && cp "$0" {venv}/bin/python; echo "ensurepip is not available" >&2; exit 1
fi
if [ "$1 $2" = "-m pip" ]; then echo "No module named pip" >&2; exit 1; fi
exec {sys.executable} "$@"
""")
    for _ in range(2):   # the leftover bin/python does not count as a venv the second time either
        out = _make("venv", f"VENV={venv}", f"PYTHON={fake}")
        assert out.returncode != 0
        assert "apt install python3-venv" in out.stderr and "-venv" in out.stderr


# 3. the interpreter is checked first ---------------------------------------------------------------

@needs_make
def test_unsupported_python_stops_before_the_venv(tmp_path):
    marker = tmp_path / "venv-was-attempted"
    fake = _script(tmp_path / "python3", f"""if [ "$1" = scripts/check_python.py ]; then
  exec {sys.executable} "$@" --as-version 3.10.12
fi
touch {marker}; exit 1
""")
    out = _make("venv", f"VENV={tmp_path / 'v'}", f"PYTHON={fake}")
    assert out.returncode != 0
    assert "3.11, 3.12 or 3.13" in out.stderr and "3.10.12" in out.stderr
    assert not marker.exists() and not (tmp_path / "v").exists()


def test_requires_python_admits_what_the_pinned_stack_supports():
    check = _load("check_python")
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert check.working_versions(spec) == ["3.11", "3.12", "3.13"]
    assert check.allows(spec, tuple(sys.version_info[:3]))
    assert not check.allows(spec, (3, 10, 12)) and not check.allows(spec, (3, 14, 0))
    # every pinned distribution (its installed METADATA) accepts those versions
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
        name = req.split("==")[0]
        requires = metadata.metadata(name).get("Requires-Python") or ""
        for minor in ("3.11", "3.12", "3.13"):
            assert Version(minor + ".0") in SpecifierSet(requires), (name, requires, minor)


def test_makefile_prefers_python311_then_newer():
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("PYTHON ?="))
    assert re.findall(r"command -v ([\w.]+)", line) == ["python3.11", "python3.12", "python3.13", "python3"]


# 4. the browser is a separate step ------------------------------------------------------------------

@needs_make
def test_make_test_does_not_install_the_browser():
    out = _make("-n", "test")
    assert out.returncode == 0, out.stderr
    assert "apt-get" not in out.stdout and "pytest" in out.stdout
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make browser") < ci.index("make test")


@needs_make
def test_make_browser_without_root_says_what_to_install(tmp_path):
    _script(tmp_path / "id", "echo 1000\n")   # a PATH with no browser and a non-root user
    out = _make("browser", env=_env(PATH=str(tmp_path)))
    assert out.returncode != 0 and "apt-get install chromium" in out.stderr


# 5. `make run` shows progress ----------------------------------------------------------------------

def _notebook():
    v4 = nbformat.v4
    return v4.new_notebook(cells=[
        v4.new_markdown_cell("# Notebook title\nintro"),
        v4.new_code_cell("x = 1"),
        v4.new_markdown_cell("## 1. Reward model\n```python\n# not a heading\n```"),
        v4.new_code_cell("y = 2"),
        v4.new_code_cell("   "),                      # blank: nbclient skips it
        v4.new_markdown_cell("text without a heading"),
        v4.new_code_cell("z = 3"),
    ])


def test_section_of_is_the_last_heading_above():
    from utils.runner import code_cells, section_of

    nb = _notebook()
    assert section_of(nb, 0) == ""
    assert section_of(nb, 1) == "Notebook title"
    assert section_of(nb, 3) == "1. Reward model"
    assert section_of(nb, 6) == "1. Reward model"
    assert code_cells(nb) == [1, 3, 6]


def test_progress_line():
    from utils.runner import progress_line

    assert progress_line(2, 12, 125.7, "1. Reward model") == "  [2/12 cells · 2:05] 1. Reward model"
    assert "(no heading)" in progress_line(0, 3, 0, "")


def test_run_notebook_prints_a_line_per_code_cell(tmp_path, monkeypatch, capsys):
    import nbclient

    from utils import runner

    class FakeClient:   # runs the hooks as nbclient does, without a kernel
        def __init__(self, nb, on_cell_execute=None, **kwargs):
            self.nb, self.hook = nb, on_cell_execute

        def execute(self):
            for i, cell in enumerate(self.nb.cells):
                if cell.cell_type == "code" and cell.source.strip():
                    self.hook(cell=cell, cell_index=i)

    monkeypatch.setattr(nbclient, "NotebookClient", FakeClient)
    monkeypatch.setenv("R1LAB_PROFILE", "tiny")
    monkeypatch.setenv("R1LAB_SEED", "0")
    path = tmp_path / "01_x.ipynb"
    nbformat.write(_notebook(), path)
    (tmp_path / "out").mkdir()
    runner.run_notebook(path, "tiny", 0, out=tmp_path / "out")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("·")[0] for line in lines] == ["  [0/3 cells ", "  [1/3 cells ", "  [2/3 cells "]
    assert lines[0].endswith("Notebook title") and lines[2].endswith("1. Reward model")


# 6. `make lab` as root ------------------------------------------------------------------------------

@needs_make
@pytest.mark.parametrize("uid", ["0", "1000"])
def test_lab_allows_root_only_for_root(tmp_path, uid):
    _script(tmp_path / "id", f"echo {uid}\n")
    out = _make("-n", "lab", env=_env(PATH=f"{tmp_path}:{os.environ['PATH']}"))
    assert out.returncode == 0, out.stderr
    lab = next(line for line in out.stdout.splitlines() if "jupyter lab" in line)
    assert "--ip 127.0.0.1" in lab
    assert ("--allow-root" in lab) == (uid == "0")


@needs_make
def test_lab_allows_root_for_this_user():
    lab = next(line for line in _make("-n", "lab").stdout.splitlines() if "jupyter lab" in line)
    assert ("--allow-root" in lab) == (os.geteuid() == 0)


# 7. HF_HUB_OFFLINE only for offline profiles -------------------------------------------------------

@needs_make
@pytest.mark.parametrize("profile, offline", [(None, "1"), ("tiny", "1"), ("colab-dryrun", "1"), ("colab", "")])
def test_hf_hub_offline_only_for_offline_profiles(profile, offline):
    show = 'show-env: ; @echo "offline=$$HF_HUB_OFFLINE telemetry=$$HF_HUB_DISABLE_TELEMETRY"'
    out = _make("-s", "--eval", show, "show-env", *([f"PROFILE={profile}"] if profile else []))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"offline={offline} telemetry=1"


def test_makefile_online_profiles_match_the_config():
    from utils.config import PROFILES

    online = {name for name, prof in PROFILES.items() if not prof.hub_offline}
    assert online == {"colab"}, "update the Makefile's ifneq ($(PROFILE),colab) for " + str(online)


# --- behind a mirror: an explicit source of CPU wheels, probed with a short timeout ------------

def _install_env(monkeypatch, mod, **env):
    for key in ("R1LAB_TORCH_INDEX", "R1LAB_TORCH_FIND_LINKS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ran = []
    monkeypatch.setattr(mod, "has_nvidia_gpu", lambda: False)
    monkeypatch.setattr(mod.sys, "platform", "linux")
    monkeypatch.setattr(mod.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    return ran


def test_an_explicit_index_is_used_when_it_answers(monkeypatch, tmp_path):
    import functools
    import http.server
    import threading

    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "index.html").write_text("<html></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        mod = _load("install_torch")
        url = f"http://127.0.0.1:{server.server_address[1]}"
        ran = _install_env(monkeypatch, mod, R1LAB_TORCH_INDEX=url)
        assert mod.main([]) == 0
        assert ran == [[sys.executable, "-m", "pip", "install", "--quiet", "torch==2.13.0", "--index-url", url]]
        ran = _install_env(monkeypatch, mod, R1LAB_TORCH_FIND_LINKS=url + "/torch/")
        assert mod.main([]) == 0
        assert ran == [[sys.executable, "-m", "pip", "install", "--quiet", "torch==2.13.0+cpu", "--find-links",
                        url + "/torch/"]]
    finally:
        server.shutdown()


def test_an_unreachable_index_is_probed_briefly_then_named(monkeypatch, capsys):
    import socket

    mod = _load("install_torch")
    with socket.socket() as s:   # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/whl/cpu"
    timeouts = []
    real = mod.urllib.request.urlopen
    monkeypatch.setattr(mod.urllib.request, "urlopen", lambda req, timeout: timeouts.append(timeout) or real(req, timeout=timeout))
    ran = _install_env(monkeypatch, mod, R1LAB_TORCH_INDEX=dead)
    assert mod.main([]) == 0
    assert timeouts == [mod.PROBE_TIMEOUT_S] and mod.PROBE_TIMEOUT_S <= 5
    assert ran == [[sys.executable, "-m", "pip", "install", "--quiet", "torch==2.13.0"]]
    out = capsys.readouterr().out
    assert f"{dead} is unreachable" in out and "CUDA build" in out and "R1LAB_TORCH_FIND_LINKS" in out
