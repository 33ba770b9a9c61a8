"""Colab: the setup cell installs the course without replacing Colab's torch and notebook stack,
a failed clone stops with git's message, the colab profile stops without a GPU, and the GPU's
half precision is the one it computes natively.

The install is checked with pip itself and no download: a throwaway folder holding the
``.dist-info`` of a "Colab" torch 2.9.0+cu126 and torchvision 0.24.0+cu126 goes first on
PYTHONPATH, so pip (and the script's importlib.metadata) see those versions in place of the
venv's torch (the first distribution of a name on sys.path wins, in pip as in importlib.metadata).
Every other requirement is installed in the venv at its pin, so ``pip install --dry-run
--no-index`` resolves offline; ``--find-links`` offers a (fake) torch 2.13.0 wheel, so pip *could*
replace torch – the old command does, the new ones do not. pip's configuration and PIP_* variables
are left out, so the machine's own wheel folders and indexes play no part.
"""

import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tokenize
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "colab_install.py"
NOTEBOOKS = [p for folder in ("", "solutions", "zh", "zh/solutions")
             for p in sorted((ROOT / "notebooks" / folder).glob("0[1-5]_*.ipynb"))]
COLAB_STACK = {"torch", "torchvision", "torchaudio", "jupyterlab", "ipykernel", "ipywidgets", "ipython", "notebook",
               "nbclient", "nbformat", "pandas", "matplotlib", "numpy"}
TIMEOUT = 120


def load_script():
    spec = importlib.util.spec_from_file_location("colab_install", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_installed(site: Path, name: str, version: str) -> None:
    """An installed distribution as pip and importlib.metadata see one: its .dist-info."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text(f"{info.name}/METADATA,,\n{info.name}/INSTALLER,,\n{info.name}/RECORD,,\n")


def fake_wheel(folder: Path, name: str, version: str) -> None:
    """A wheel pip can find offline (metadata only: a dry run never unpacks it)."""
    info = f"{name}-{version}.dist-info"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")


@pytest.fixture
def colab(tmp_path):
    """Environment variables for a child Python that sees Colab's torch, plus a wheel folder."""
    site = tmp_path / "colab-site"
    fake_installed(site, "torch", "2.9.0+cu126")
    fake_installed(site, "torchvision", "0.24.0+cu126")
    wheels = tmp_path / "wheels"
    fake_wheel(wheels, "torch", "2.13.0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PYTHONPATH=str(site), PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               TMPDIR=str(tmp_path))
    return {"env": env, "wheels": wheels, "tmp": tmp_path}


def dry_run(args: list[str], colab: dict, report: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """``pip install --dry-run`` offline (only ``colab["wheels"]``); what it would install."""
    out = colab["tmp"] / report
    offline = ["--dry-run", "--no-index", "--find-links", str(colab["wheels"]), "--report", str(out)]
    done = subprocess.run(args + offline, env=colab["env"], cwd=colab["tmp"], capture_output=True, text=True,
                          timeout=TIMEOUT)
    return done, json.loads(out.read_text())["install"] if out.exists() else []


def test_the_install_keeps_colabs_torch_and_notebook_stack_where_pip_install_e_replaces_them(colab):
    shown = subprocess.run([sys.executable, str(SCRIPT), str(ROOT), "--print"], env=colab["env"], cwd=colab["tmp"],
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert shown.returncode == 0, shown.stderr
    assert "keeping Colab's torch 2.9.0+cu126, torchvision 0.24.0+cu126" in shown.stdout
    deps, course = [shlex.split(line.removeprefix("would run: ")) for line in shown.stdout.splitlines()
                    if line.startswith("would run: ")]
    assert "--no-deps" in course and course[-2:] == ["--editable", str(ROOT)]
    requested = [a for a in deps[deps.index("install") + 1:] if not a.startswith("-")]
    assert requested and not {re.split(r"[=<>!~\[ ]", r)[0].lower() for r in requested} & COLAB_STACK, requested
    constraints = Path(deps[deps.index("--constraint") + 1]).read_text()
    assert "torch==2.9.0+cu126" in constraints and "torchvision==0.24.0+cu126" in constraints

    done, installs = dry_run(deps, colab, "new.json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert installs == [], [(i["metadata"]["name"], i["metadata"]["version"]) for i in installs]

    # The old cell: `pip install -e REPO` resolves pyproject's dependencies, torch==2.13.0 included.
    pyproject = load_script().dependencies(ROOT)
    done, installs = dry_run([sys.executable, "-m", "pip", "install", *pyproject], colab, "old.json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(i["metadata"]["name"], i["metadata"]["version"]) for i in installs] == [("torch", "2.13.0")]


def test_what_is_installed_leaves_the_colab_stack_alone():
    script = load_script()
    deps = script.dependencies(ROOT)
    everything = {name: "1" for name in script.KEEP}
    names = {script.requirement_name(r) for r in script.to_install(deps, everything)}
    assert names and not names & COLAB_STACK, names
    assert {script.requirement_name(r) for r in deps} - names <= COLAB_STACK
    # nothing installed at all: torch and the other libraries at the course's pin, never a notebook stack
    bare = script.to_install(deps, {})
    assert "torch==2.13.0" in bare
    assert not {"jupyterlab", "ipykernel", "nbclient"} & {script.requirement_name(r) for r in bare}


@pytest.mark.parametrize("content", ["nothing", "half a clone"])
def test_an_incomplete_clone_stops_with_what_to_do(tmp_path, content):
    repo = tmp_path / "r1-distill-lab"
    if content == "half a clone":
        (repo / "utils").mkdir(parents=True)
        (repo / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    done = subprocess.run([sys.executable, str(SCRIPT), str(repo)], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode != 0
    assert "not cloned completely" in done.stderr and "utils/pipeline.py" in done.stderr
    assert f"rm -rf {repo}" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------
# The notebooks' setup cell
# ---------------------------------------------------------------------------------------

def setup_cell(path: Path) -> str:
    cell = next(c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code")
    return "".join(cell["source"])


def test_every_notebook_is_checked():
    assert len(NOTEBOOKS) == 20, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_the_setup_cell_installs_with_the_script_and_checks_the_clone(path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import badges
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    source = setup_cell(path)
    compile(source, str(path), "exec")  # plain Python: no `!` shell lines, whose failures pass silently
    assert "scripts/colab_install.py" in source and "sys.executable" in source
    code = "".join(t.string + " " for t in tokenize.generate_tokens(io.StringIO(source).readline)
                   if t.type != tokenize.COMMENT)
    assert not re.search(r"\bpip\b", code), "pip install -e re-pins torch over Colab's: the script installs"
    assert "git clone" in source and "os.path.isdir(COURSE)" in source
    assert "check=True" in source or "check_returncode()" in source, "a failed clone must stop the cell"
    assert "next(" not in source, "a bare next() raises StopIteration where the course is not found"
    assert "RuntimeError" in source and "utils/pipeline.py" in source
    assert badges.CLONE_RE.search(source), "scripts/badges.py must find the clone URL to rewrite it for a fork"


class FakeRun:
    """subprocess.run for the setup cell's commands: records them, fails the first ``fail`` of them."""

    def __init__(self, fail: int = 0):
        self.calls, self.fail = [], fail

    def __call__(self, cmd, **kwargs):
        self.calls.append([str(c) for c in cmd])
        code = 128 if len(self.calls) <= self.fail else 0
        return subprocess.CompletedProcess(cmd, code, "fatal: repository not found\n" if code else "ok\n")


@pytest.fixture
def on_colab(monkeypatch):
    """The setup cell's Colab branch, run here: a fake google.colab, subprocess.run recorded."""
    import types

    google, colab, drive = (types.ModuleType(n) for n in ("google", "google.colab", "google.colab.drive"))
    drive.mount = lambda folder: None
    colab.drive, google.colab = drive, colab
    for name, module in (("google", google), ("google.colab", colab), ("google.colab.drive", drive)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("R1LAB_PROFILE", "tiny")
    monkeypatch.setenv("R1LAB_ARTIFACTS", "unchanged")
    return monkeypatch


def test_on_colab_a_failed_clone_stops_the_cell_with_gits_message(on_colab, capsys):
    if os.path.isdir("/content/r1-distill-lab"):
        pytest.skip("a real /content/r1-distill-lab is here")
    on_colab.setattr(subprocess, "run", run := FakeRun(fail=1))
    with pytest.raises(subprocess.CalledProcessError):
        exec(setup_cell(NOTEBOOKS[0]), {})
    assert run.calls[0][:2] == ["git", "clone"] and len(run.calls) == 1, "nothing runs after a failed clone"
    assert "fatal: repository not found" in capsys.readouterr().out


def test_on_colab_the_cell_clones_then_runs_the_install_script(on_colab):
    if os.path.isdir("/content/r1-distill-lab"):
        pytest.skip("a real /content/r1-distill-lab is here")
    on_colab.setattr(subprocess, "run", run := FakeRun())
    exec(setup_cell(NOTEBOOKS[0]), {})
    assert run.calls[0][:2] == ["git", "clone"] and run.calls[0][-1] == "/content/r1-distill-lab"
    course = "/content/r1-distill-lab"
    assert run.calls[1] == [sys.executable, f"{course}/scripts/colab_install.py", course]
    assert os.environ["R1LAB_PROFILE"] == "tiny", "setdefault: a profile chosen before is kept"


FALLBACK = """
import sys
from IPython.core.inputtransformer2 import TransformerManager
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in (getattr(f, "__module__", "") + type(f).__module__)]
sys.path[:] = [p for p in sys.path if p not in ("", sys.argv[2])]
exec(TransformerManager().transform_cell(open(sys.argv[1], encoding="utf-8").read()))  # as Jupyter runs it
"""


def test_outside_a_clone_the_setup_cell_says_where_it_looked(tmp_path):
    (tmp_path / "setup.py").write_text(setup_cell(NOTEBOOKS[0]), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", FALLBACK, str(tmp_path / "setup.py"), str(ROOT)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode != 0 and "StopIteration" not in done.stderr
    assert f"RuntimeError: Could not find the course (a folder with utils/pipeline.py) above {tmp_path}" in done.stderr
    assert "make lab" in done.stderr


# ---------------------------------------------------------------------------------------
# utils.config: device, dtype, determinism, the colab profile without a GPU
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("gpu, expected", [((7, 5), "float16"), ((8, 0), "bfloat16"), ((9, 0), "bfloat16"),
                                           (None, "float32")], ids=["T4", "A100", "H100", "CPU"])
def test_bf16_only_where_the_gpu_computes_it_natively(monkeypatch, gpu, expected):
    import torch

    from utils.config import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu is not None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: gpu)
    # True on a T4 as well (bf16 emulated, several times slower than fp16): not the test to use
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    device, dtype = pick_device()
    assert (device, dtype) == ("cpu" if gpu is None else "cuda", getattr(torch, expected))


def test_seeding_sets_the_cublas_workspace_for_deterministic_algorithms(monkeypatch):
    from utils.config import seed_everything

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own choice is kept
    seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.fixture
def no_gpu(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("R1LAB_STANDINS", str(tmp_path / "standins"))
    monkeypatch.setenv("R1LAB_ARTIFACTS", str(tmp_path / "artifacts"))
    for name in ("CUBLAS_WORKSPACE_CONFIG", "HF_HUB_OFFLINE"):  # as they were, after the test
        monkeypatch.setenv(name, os.environ.get(name, ""))
        if not os.environ[name]:
            monkeypatch.delenv(name)
    threads = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(threads)


def test_the_colab_profile_stops_at_once_without_a_gpu(no_gpu):
    from utils import config

    no_gpu.setattr(config, "set_offline_env", lambda *a: pytest.fail("make_run went on without a GPU"))
    with pytest.raises(RuntimeError, match="needs a CUDA GPU") as error:
        config.make_run("colab", 0, quiet=True)
    assert "Runtime -> Change runtime type -> T4 GPU" in str(error.value) and "tiny" in str(error.value)


def test_the_colab_dryrun_profile_runs_the_colab_path_on_a_cpu(no_gpu):
    from utils.config import PROFILES, make_run

    assert PROFILES["colab"].require_cuda and not PROFILES["colab-dryrun"].require_cuda
    assert not PROFILES["tiny"].require_cuda
    run = make_run("colab-dryrun", 0, quiet=True)
    assert run.device == "cpu" and run.name == "colab-dryrun"
