"""The Chinese notebooks (notebooks/zh/) stay in step with the English ones.

* every English markdown cell has a translation made from its *current* text (hash), that keeps
  what must not change (code spans, math, numbers, links that resolve, <details>, headings);
* code cells are the English ones (source and metadata; the parameters cell's ``lang = "zh"`` and the
  outputs the course re-renders in Chinese are checked in tests/test_i18n_render.py);
* ``make zh`` (``python -m utils.i18n build``) rebuilds notebooks/zh/ without a change;
* the translator's loop works: a changed English cell is named, ``sync`` marks it, a fix passes;
* the shared setup cell finds the course from any notebook folder, so a Chinese notebook runs
  from a fresh clone.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from utils import i18n

ROOT = Path(__file__).resolve().parents[1]
PAIRS = i18n.pairs()


def test_every_english_notebook_has_a_chinese_one():
    names = sorted(p.english.relative_to(ROOT / "notebooks").as_posix() for p in PAIRS)
    assert len(names) == 10 and sum(n.startswith("solutions/") for n in names) == 5, names
    assert all(p.catalogue.exists() and p.chinese.exists() for p in PAIRS)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.catalogue.relative_to(i18n.CATALOGUE_DIR).as_posix())
def test_every_markdown_cell_translated_from_the_current_english(pair):
    problems = i18n.problems(pair)
    assert not problems, ("translations to update (python -m utils.i18n sync, translate the TODOs, make zh):\n"
                          + "\n".join(problems))


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.chinese.relative_to(i18n.ZH_DIR).as_posix())
def test_code_cells_are_the_english_ones(pair):
    english = json.loads(pair.english.read_text(encoding="utf-8"))
    chinese = json.loads(pair.chinese.read_text(encoding="utf-8"))
    assert [(c["id"], c["cell_type"]) for c in chinese["cells"]] == [(c["id"], c["cell_type"]) for c in english["cells"]]
    # the code is the English code (the parameters cell's `lang = "zh"` aside: tests/test_i18n_render.py), and the
    # outputs the English run's, except what the course rendered, re-rendered in Chinese (test_i18n_render.py too)
    same = lambda e, z: ({**e, "outputs": None, "source": None} == {**z, "outputs": None, "source": None}
                         and (e["source"] == z["source"] or "parameters" in e["metadata"].get("tags", [])))
    differ = [e["id"] for e, z in zip(english["cells"], chinese["cells"]) if e["cell_type"] == "code" and not same(e, z)]
    assert not differ, f"code cells that differ from the English: {differ}"
    assert chinese["metadata"] == english["metadata"]
    translated = [z for e, z in zip(english["cells"], chinese["cells"]) if e["cell_type"] == "markdown"]
    assert all(i18n.CJK.search(i18n.cell_source(c)) for c in translated)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.chinese.relative_to(i18n.ZH_DIR).as_posix())
def test_make_zh_rebuilds_them_identically(pair):
    assert pair.chinese.read_text(encoding="utf-8") == i18n.translate(pair), \
        f"{pair.chinese.name} is not what `make zh` builds: run make zh (or make run) and commit it"


@pytest.mark.parametrize("pair", [p for p in PAIRS if p.english.parent.name != "solutions"],
                         ids=lambda p: p.chinese.name)
def test_chinese_notebooks_keep_the_teaching_structure(pair):
    """Objectives, toys, questions with hidden answers, exercises and the summary survive translation."""
    english = "\n".join(i18n.cell_source(c) for c in json.loads(pair.english.read_text())["cells"]
                        if c["cell_type"] == "markdown")
    cells = [i18n.cell_source(c) for c in json.loads(pair.chinese.read_text())["cells"] if c["cell_type"] == "markdown"]
    chinese = "\n".join(cells)
    assert "学习目标" in cells[0]
    assert len(re.findall(r"^#+ .*练习", chinese, re.M)) == len(re.findall(r"^#+ .*Exercise", english, re.M | re.I))
    assert len(re.findall("玩具示例", chinese)) >= 2
    assert re.search(r"^#+ .*小结", chinese, re.M)
    assert chinese.count("<details>") == english.count("<details>") >= 2


# ---------------------------------------------------------------------------------------
# The checker catches what it must (a test that could not fail would prove nothing)
# ---------------------------------------------------------------------------------------

EN = "Run `make test` with $T = 2$; the student has 364,800 parameters. See [the README](../README.md)."
ZH_OK = "用 $T = 2$ 运行 `make test`；学生模型有 364,800 个参数。见 [中文说明](../../README.zh-CN.md)。"


@pytest.mark.parametrize("zh, complaint", [
    (ZH_OK, None),
    (ZH_OK.replace("`make test`", "make test"), "inline code"),
    (ZH_OK.replace("$T = 2$", "$T=2$"), "math"),
    (ZH_OK.replace("364,800", "364,801"), "numbers"),
    (ZH_OK.replace("364,800 个参数", "约 36 万个参数"), "numbers"),
    (ZH_OK.replace("../../README.zh-CN.md", "../README.zh-CN.md"), "does not resolve"),
    (ZH_OK.replace("见 [中文说明](../../README.zh-CN.md)。", ""), "links"),
    (EN, "no Chinese"),
])
def test_the_checker_names_what_a_translation_broke(zh, complaint):
    found = i18n.cell_problems(EN, zh, ROOT / "notebooks" / "zh" / "01_x.ipynb")
    if complaint is None:
        assert found == []
    else:
        assert any(complaint in f for f in found), found


@pytest.fixture
def course_copy(tmp_path):
    """The notebooks folder (English, Chinese, catalogues) copied into an empty checkout."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copy(ROOT / "README.zh-CN.md", tmp_path / "README.zh-CN.md")
    shutil.copy(ROOT / ".colab-repo", tmp_path / ".colab-repo")
    return tmp_path


def test_a_translator_updates_one_cell(course_copy):
    """English cell changes → check names it → sync marks it TODO → the translator edits zh → build."""
    pair = i18n.pairs(course_copy)[0]
    nb = json.loads(pair.english.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown" and c["source"] and c["id"] != nb["cells"][0]["id"])
    cell["source"] = i18n.cell_source(cell).replace("distillation", "distillation (revised)", 1).splitlines(keepends=True)
    pair.english.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    problems = i18n.problems(pair)
    assert len(problems) == 1 and cell["id"] in problems[0] and "English changed" in problems[0]
    with pytest.raises(i18n.StaleTranslations, match=cell["id"]):
        i18n.build(course_copy)

    assert any(cell["id"] in line and i18n.TODO in line for line in i18n.sync(pair))
    entries = i18n.read_catalogue(pair.catalogue)
    entry = next(e for e in entries if e["id"] == cell["id"])
    assert entry["zh"].startswith(i18n.TODO) and "(revised)" in entry["en"]
    assert any("marked TODO" in p for p in i18n.problems(pair))

    entry["zh"] = entry["zh"][len(i18n.TODO):].lstrip().replace("蒸馏", "蒸馏（修订）", 1)
    i18n.write_catalogue(pair.catalogue, entries, pair)
    assert i18n.problems(pair) == []
    written = i18n.build(course_copy)
    assert written == [pair.chinese]
    zh_cell = next(c for c in json.loads(pair.chinese.read_text())["cells"] if c["id"] == cell["id"])
    assert "（修订）" in i18n.cell_source(zh_cell)
    assert i18n.build(course_copy) == []  # a second build changes nothing


def test_new_and_deleted_cells_are_synced(course_copy):
    pair = i18n.pairs(course_copy)[0]
    nb = json.loads(pair.english.read_text(encoding="utf-8"))
    gone = [c for c in nb["cells"] if c["cell_type"] == "markdown"][1]["id"]
    nb["cells"] = [c for c in nb["cells"] if c["id"] != gone]
    nb["cells"].append({"cell_type": "markdown", "id": "new00001", "metadata": {}, "source": ["A new closing word."]})
    pair.english.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    problems = "\n".join(i18n.problems(pair))
    assert "new00001" in problems and "no translation" in problems and gone in problems and "remove it" in problems
    did = "\n".join(i18n.sync(pair))
    assert "new00001: new" in did and f"{gone}: removed" in did
    assert [e["id"] for e in i18n.read_catalogue(pair.catalogue)][-1] == "new00001"


def test_badges_for_a_fork_keep_the_chinese_notebooks_current(course_copy):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import badges
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    changed = badges.apply("fork-org/fork-name", root=course_copy)
    assert "01_distillation_theory.ipynb" in changed and "zh/01_distillation_theory.ipynb" in changed
    for pair in i18n.pairs(course_copy):
        assert i18n.problems(pair) == [], pair
        first = i18n.cell_source(json.loads(pair.chinese.read_text())["cells"][0])
        if pair.english.parent.name != "solutions":
            assert f"github/fork-org/fork-name/blob/main/notebooks/zh/{pair.english.name}" in first


# ---------------------------------------------------------------------------------------
# A Chinese notebook runs from its own folder
# ---------------------------------------------------------------------------------------

FIND_COURSE = """
import sys, runpy
from IPython.core.inputtransformer2 import TransformerManager
repo = sys.argv[2]
# as in a fresh clone without `pip install -e .`: the course is not importable from here
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in (getattr(f, "__module__", "") + type(f).__module__)]
sys.path[:] = [p for p in sys.path if p not in ("", repo)]
try:
    import utils
    raise SystemExit("utils was importable before the setup cell ran")
except ImportError:
    pass
exec(TransformerManager().transform_cell(open(sys.argv[1], encoding="utf-8").read()))
print(utils.__file__)
"""


@pytest.mark.parametrize("folder", ["notebooks", "notebooks/solutions", "notebooks/zh", "notebooks/zh/solutions"])
def test_the_setup_cell_finds_the_course_from_every_notebook_folder(folder, tmp_path):
    nb = json.loads((ROOT / "notebooks" / "zh" / "01_distillation_theory.ipynb").read_text(encoding="utf-8"))
    setup = next(i18n.cell_source(c) for c in nb["cells"] if c["cell_type"] == "code")
    (tmp_path / "setup.py").write_text(setup, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", FIND_COURSE, str(tmp_path / "setup.py"), str(ROOT)],
                          cwd=ROOT / folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip()) == ROOT / "utils" / "__init__.py"


# ---------------------------------------------------------------------------------------
# Where a Chinese-speaking learner meets the course
# ---------------------------------------------------------------------------------------

def test_readme_links_the_chinese_readme_and_notebooks_from_the_top():
    top = (ROOT / "README.md").read_text(encoding="utf-8").split("## ", 1)[0]
    assert "(README.zh-CN.md)" in top and "(notebooks/zh/)" in top and "(docs/glossary.md)" in top


def test_chinese_readme_links_resolve_and_name_every_chinese_notebook():
    text = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not t.startswith("http")]
    assert all((ROOT / t.split("#")[0]).exists() for t in targets), targets
    for pair in PAIRS:
        if pair.english.parent.name != "solutions":
            assert f"(notebooks/zh/{pair.english.name})" in text


def test_glossary_gives_every_term_in_both_languages():
    rows = [line for line in (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| English")]
    assert len(rows) >= 30
    for row in rows:
        english, chinese, meaning, where = [cell.strip() for cell in row.strip("|").split("|")]
        # a term the Chinese literature writes in English (pass@k, top_p) is its own translation
        assert re.search("[A-Za-z]", english) and meaning and where, row
        assert i18n.CJK.search(chinese) or chinese == english, row
