"""Static checks of the notebooks: shared setup cell, parameters cell, badges, no errors committed."""

import re
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


# ---------------------------------------------------------------------------------------
# Teaching structure (issue: "teach each algorithm in the notebook itself")
# ---------------------------------------------------------------------------------------

SOLUTIONS = ROOT / "notebooks" / "solutions"

# A measured figure typed into prose: a number followed by %, s or ms (or "points"/"x faster").
# Cited facts (a paper's or the article's numbers) are allowed on a line that names its source.
_MEASURED = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?\s?(?:%|ms\b|s\b|×)|[+\-−±]\d[\d.]*\s?points?\b")
_CITED = re.compile(r"paper|article|model card|README|Hinton|Kim & Rush|DeepSeek|\(source|claims?|target|"
                    r"budget|profile|recommend", re.I)


def _prose_without_code(text: str) -> str:
    text = re.sub(r"```.*?```", "", text, flags=re.S)      # code blocks
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)    # display formulas
    text = re.sub(r"\$[^$\n]+\$", "", text)                # inline formulas
    text = re.sub(r"`[^`\n]+`", "", text)                  # code spans
    return re.sub(r"\b(?:90|95|99)\s?% (?:interval|confidence)", "", text)   # a confidence level is chosen, not measured


def typed_measurements(markdown: str) -> list[str]:
    """Lines of a markdown cell that state a number with a unit and cite no source."""
    return [line.strip() for line in _prose_without_code(markdown).splitlines()
            if _MEASURED.search(line) and not _CITED.search(line)]


def test_typed_measurements_are_found():
    assert typed_measurements("The student reached 87.5 % on test.") != []
    assert typed_measurements("It took 12 s.") != []
    assert typed_measurements("Filtering is worth +4.7 points.") != []
    assert typed_measurements("200 points with their true labels") == []
    assert typed_measurements("The paper reports ~800k samples and 60 % lower latency.") == []
    assert typed_measurements("Set `temperature = 0.6`, see $p_T = 0.5$.") == []
    assert typed_measurements("Each accuracy with its 95 % interval.") == []
    assert typed_measurements("It scored 95 % on test.") != []


@pytest.mark.parametrize("path", NOTEBOOKS + sorted(SOLUTIONS.glob("*.ipynb")), ids=lambda p: p.name)
def test_no_measured_number_is_typed_into_prose(path):
    """A sentence about a result is rendered from the run's values (Markdown output), never typed."""
    nb = nbformat.read(path, as_version=4)
    typed = [line for c in nb.cells if c.cell_type == "markdown" for line in typed_measurements(c.source)]
    assert typed == [], typed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_objectives_questions_exercises_summary(path):
    """Each notebook: learning objectives first, ≥ 2 questions with hidden answers, ≥ 2 exercises
    with a solution notebook, ≥ 2 toy cells, and a closing summary."""
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "learning objectives" in nb.cells[0].source.lower() or "you will" in nb.cells[0].source.lower()
    assert text.count("<details>") >= 2, "check-your-understanding answers live in <details> blocks"
    assert len(re.findall(r"^#+ .*Exercise", text, re.M | re.I)) >= 2
    assert len(re.findall(r"toy", text, re.I)) >= 2
    assert re.search(r"^#+ .*(Summary|What we measured|Takeaways)", text, re.M | re.I)
    solution = list(SOLUTIONS.glob(f"{path.name[:2]}_*.ipynb"))
    assert len(solution) == 1, f"solutions for {path.name} in notebooks/solutions/"
