"""Static checks of the notebooks: shared setup cell, parameters cell, badges, no errors committed."""

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_all_five_notebooks_exist():
    names = [p.name[:2] for p in NOTEBOOKS]
    assert names == ["01", "02", "03", "04", "05"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_shared_setup_and_parameters(path):
    nb = nbformat.read(path, as_version=4)
    first = _code(nb)[0].source
    reference = _code(nbformat.read(NOTEBOOKS[0], as_version=4))[0].source
    assert first == reference, "every notebook starts with the same setup cell"
    params = [c for c in _code(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "profile = None" in params[0].source and "seed = None" in params[0].source
    slug = (ROOT / ".colab-repo").read_text().strip()
    assert f"colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name}" in nb.cells[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs_and_no_errors(path):
    nb = nbformat.read(path, as_version=4)
    code = _code(nb)
    assert sum(bool(c.outputs) for c in code) >= len(code) // 2, "commit the notebook executed (make run)"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nothing_branches_on_the_profile_name(path):
    nb = nbformat.read(path, as_version=4)
    for cell in _code(nb)[1:]:
        assert 'profile == "' not in cell.source and "profile.name ==" not in cell.source
