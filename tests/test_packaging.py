"""pyproject.toml and environment.yml pin the same versions; the README shows the two commands."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    pins = {}
    for line in lines:
        m = re.match(r"^\s*-?\s*\"?([A-Za-z0-9_.\-]+)==([^\"\s,]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_pyproject_and_environment_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    py = _pins(deps)
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert py and py == env


def test_everything_the_course_uses_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    names = set(_pins(deps))
    for need in ["jupyterlab", "torch", "transformers", "trl", "datasets", "ipywidgets", "gradio",
                 "nbval", "accelerate", "matplotlib", "papermill", "nbclient"]:
        assert need in names, need


def test_readme_and_ci_use_the_make_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
