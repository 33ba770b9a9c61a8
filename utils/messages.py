"""What the course's code says – summaries, verdicts, hints, plot labels – in English or Chinese.

A message is an English template with named values, written where it is used, so the cell reads as
it runs::

    show(msg("The teacher scored {acc:.1%} on {n} test problems.", acc=0.842, n=300))

``msg`` keeps the template and the values; it is rendered when it is shown, in the course's language
(:func:`language`). The Chinese template comes from one catalogue, ``utils/messages.zh.yaml``, keyed by
the English template (``python -m utils.messages check`` lists the ones still missing; the app's
:mod:`utils.app_text` table is the other half of the same catalogue, keyed by name). A value may itself
be a message (a word chosen by the code: ``msg("beat")``), so a sentence that varies is still one
template per language.

Every shown output keeps its message keys and values in the output's metadata (``r1lab``), and every
course plot is drawn in both languages (:func:`show_figure`): ``make zh`` renders the Chinese notebooks'
outputs from the English run without running anything again (:func:`zh_output`).

The language: :func:`set_language` (the notebooks' ``lang`` parameter; the Chinese notebooks set
``lang = "zh"``), else the notebook's folder under Jupyter (``notebooks/zh/`` → Chinese), else
``$R1LAB_LANG`` (``en`` or ``zh``; anything else stops with the choices), else English.
"""

from __future__ import annotations

import base64
import io
import os
import string
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .config import REPO_ROOT

LANGUAGES = ("en", "zh")
CATALOGUE = Path(__file__).with_name("messages.zh.yaml")
FONT = Path(__file__).parent / "fonts" / "NotoSansSC-course-subset.otf"   # the CJK glyphs the plots use (OFL)
FONT_FAMILY = "Noto Sans SC course subset"
META = "r1lab"      # the output-metadata key

_chosen: str | None = None


class UnknownLanguage(ValueError):
    """``R1LAB_LANG`` (or a ``lang`` parameter) names a language the course does not have."""


def check_language(lang: str, where: str = "lang") -> str:
    """``lang`` if it is one of :data:`LANGUAGES`, else :class:`UnknownLanguage` naming the choices."""
    if lang not in LANGUAGES:
        raise UnknownLanguage(f"{where}={lang!r}: the course speaks {' or '.join(map(repr, LANGUAGES))} "
                              f"(for example R1LAB_LANG=zh, or lang = \"zh\" in the parameters cell)")
    return lang


def set_language(lang: str | None) -> str:
    """Fix the language for this session (``None``: decide from the folder or ``$R1LAB_LANG``); return it."""
    global _chosen
    env = os.environ.get("R1LAB_LANG")
    if env:
        check_language(env, "R1LAB_LANG")   # a typo stops here, with the choices, wherever the language comes from
    _chosen = None if lang is None else check_language(lang)
    return language()


def notebook_folder_language() -> str | None:
    """``"zh"`` when the kernel runs a notebook of ``notebooks/zh/`` (Jupyter's ``JPY_SESSION_NAME``,
    VS Code's ``__vsc_ipynb_file__``, else the kernel's working folder), ``"en"`` for another notebook
    folder of the course, ``None`` outside a notebook."""
    if "ipykernel" not in sys.modules:
        return None
    path = os.environ.get("JPY_SESSION_NAME")
    main = sys.modules.get("__main__")
    path = path or getattr(main, "__vsc_ipynb_file__", None)
    parts = Path(path).parent.parts if path else Path.cwd().parts
    if "notebooks" not in parts:
        return None
    return "zh" if "zh" in parts[parts.index("notebooks"):] else "en"


def language() -> str:
    """The language the course speaks now: the chosen one, else the notebook's folder, else ``$R1LAB_LANG``, else English."""
    if _chosen:
        return _chosen
    folder = notebook_folder_language()
    if folder:
        return folder
    env = os.environ.get("R1LAB_LANG")
    return check_language(env, "R1LAB_LANG") if env else "en"


@contextmanager
def speaking(lang: str):
    """Render in ``lang`` inside the block (drawing a figure's other language)."""
    global _chosen
    before, _chosen = _chosen, check_language(lang)
    try:
        yield
    finally:
        _chosen = before


# ---------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def catalogue() -> dict[str, str]:
    """English template → Chinese template (``utils/messages.zh.yaml``)."""
    import yaml

    out: dict[str, str] = {}
    for path in catalogue_files():
        for e in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            out[e["en"]] = e["zh"]
    return out


def catalogue_files() -> list[Path]:
    """``utils/messages.zh.yaml`` and the exercises' ``utils/exercises/messages.zh.yaml``."""
    return [p for p in (CATALOGUE, Path(__file__).parent / "exercises" / "messages.zh.yaml") if p.exists()]


def _plain(value: Any) -> Any:
    """A value as the metadata stores it (JSON): numbers, text, booleans, None, messages, lists of them."""
    if isinstance(value, Msg) or value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):       # numpy / torch scalars
        try:
            return value.item()
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)   # e.g. an accuracy with its interval: the same text in both languages


@dataclass(frozen=True)
class Msg:
    """An English template and its values; ``str()`` renders it in the current language."""

    en: str
    values: dict = field(default_factory=dict)
    key: bool = False     # True: ``en`` names an entry of the app's table (utils.app_text), not a template

    def render(self, lang: str | None = None) -> str:
        lang = check_language(lang or language())
        template = self.template(lang)
        values = {k: _render_value(v, lang) for k, v in self.values.items()}
        return template.format(**values)

    def template(self, lang: str) -> str:
        if self.key:
            from .app_text import TEXT
            return TEXT[lang][self.en]
        if lang == "en":
            return self.en
        return catalogue().get(self.en, self.en)   # not translated yet: English (the tests list it)

    def to_json(self) -> dict:
        out = {"en": self.en, "values": {k: _to_json(v) for k, v in self.values.items()}}
        if self.key:
            out["key"] = True
        return out

    def __str__(self) -> str:
        return self.render()

    def __hash__(self) -> int:   # usable as a dict key or a table label
        return hash((self.en, self.key, repr(sorted(self.values.items()))))

    def __format__(self, spec: str) -> str:
        return format(self.render(), spec)


def _render_value(value: Any, lang: str) -> Any:
    if isinstance(value, Msg):
        return value.render(lang)
    if isinstance(value, list):
        return "".join(_render_value(v, lang) for v in value)   # parts of one sentence, in order
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, Msg):
        return value.to_json()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def from_json(data: Any) -> Any:
    """The inverse of :meth:`Msg.to_json` (values stay as stored)."""
    if isinstance(data, dict) and "en" in data and "values" in data:
        return Msg(data["en"], {k: from_json(v) for k, v in data["values"].items()}, bool(data.get("key")))
    if isinstance(data, list):
        return [from_json(v) for v in data]
    return data


def msg(template: str, **values: Any) -> Msg:
    """A message: the English ``template`` (``str.format`` fields) and its values."""
    return Msg(template, {k: _plain(v) for k, v in values.items()})


def text(template: str, **values: Any) -> str:
    """A message rendered now, in the current language (for a print or a label)."""
    return msg(template, **values).render()


def placeholders(template: str) -> list[str]:
    """The fields of a template with their format specs (``{acc:.1%}`` → ``acc:.1%``), sorted."""
    return sorted(f"{name}:{spec}" for _, name, spec, _ in string.Formatter().parse(template) if name is not None)


# ---------------------------------------------------------------------------------------
# Showing: Markdown or plain text, with the message in the output's metadata
# ---------------------------------------------------------------------------------------

def render_parts(parts: list, sep: str, lang: str) -> str:
    return sep.join(p.render(lang) if isinstance(p, Msg) else str(p) for p in parts)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None


def _display(parts: tuple, sep: str, markdown: bool) -> None:
    parts = [p if isinstance(p, Msg) else msg("{text}", text=p) for p in parts]
    body = render_parts(parts, sep, language())
    if not _in_notebook():       # a script or a test: print it
        print(body, flush=True)
        return
    from IPython.display import display

    data = {"text/markdown": body, "text/plain": body} if markdown else {"text/plain": body}
    display(data, raw=True, metadata={META: {"parts": [p.to_json() for p in parts], "sep": sep}})


def show(*parts: Msg, sep: str = "\n") -> None:
    """Display messages as Markdown (a summary, a verdict), one per line by default."""
    _display(parts, sep, markdown=True)


def say(*parts: Msg, sep: str = "\n") -> None:
    """Display messages as plain text (what ``print`` would show)."""
    _display(parts, sep, markdown=False)


# ---------------------------------------------------------------------------------------
# Figures, drawn in both languages
# ---------------------------------------------------------------------------------------

def use_course_font() -> None:
    """Let matplotlib draw Chinese: the course's CJK subset (and any system CJK font) after DejaVu Sans."""
    import matplotlib as mpl
    from matplotlib import font_manager

    if FONT.exists() and FONT_FAMILY not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(FONT))
    installed = {f.name for f in font_manager.fontManager.ttflist}
    # matplotlib falls back glyph by glyph only along an explicit family list (not a generic "sans-serif"),
    # and names only installed fonts so that it logs no "font not found"
    family = [f for f in ("DejaVu Sans", FONT_FAMILY, "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
                          "PingFang SC", "Microsoft YaHei", "SimHei") if f in installed]
    mpl.rcParams["font.family"] = family


def figure_png(fig) -> str:
    """A figure as the notebook shows it (PNG, base64)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=fig.dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def show_figure(draw: Callable[[], Any]) -> None:
    """Draw a plot once per language – ``draw()`` builds a figure whose labels are :func:`msg` (or
    :func:`text`) and returns it – show the current language's and keep the other's in the output's
    metadata (``make zh`` swaps it in)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    use_course_font()
    now = language()
    if not _in_notebook():                      # a script or a test: draw the current language only
        figure_png(draw() or plt.gcf())         # drawn (and saved in memory), as a notebook would
        plt.close("all")
        return None
    pngs = {}
    for lang in (now, *[l for l in LANGUAGES if l != now]):
        with speaking(lang):
            fig = draw()
            fig = fig if fig is not None else plt.gcf()
            pngs[lang] = figure_png(fig)
            plain = repr(fig)
            plt.close(fig)
    others = {lang: png for lang, png in pngs.items() if lang != now}
    display({"image/png": pngs[now], "text/plain": plain}, raw=True, metadata={META: {"figure": others}})


def show_table(build: Callable[[], Any]) -> None:
    """Display a table once built per language – ``build()`` returns a pandas DataFrame (or Styler) whose
    headers, index labels and text cells may be :func:`msg` – showing the current language's and keeping the
    other's in the output's metadata (``make zh`` swaps it in). Numbers are the same in both."""
    from IPython.display import display

    import pandas as pd

    def data_of(table) -> dict:
        if isinstance(table, pd.DataFrame):   # messages rendered now, in the language being drawn
            rendered = lambda v: str(v) if isinstance(v, Msg) else v
            table = table.map(rendered).rename(index=rendered, columns=rendered)
        html = table._repr_html_() if hasattr(table, "_repr_html_") else None
        data = {"text/plain": repr(table) if not hasattr(table, "to_string") else table.to_string()}
        if html:
            data["text/html"] = html
        return data

    now = language()
    tables = {}
    for lang in (now, *[l for l in LANGUAGES if l != now]):
        with speaking(lang):
            tables[lang] = data_of(build())
    if not _in_notebook():
        print(tables[now]["text/plain"])
        return
    display(tables[now], raw=True, metadata={META: {"table": {l: d for l, d in tables.items() if l != now}}})


# ---------------------------------------------------------------------------------------
# make zh: one output of the English run, as the Chinese notebook shows it
# ---------------------------------------------------------------------------------------

def zh_output(output: dict, lang: str = "zh") -> dict:
    """The output re-rendered in ``lang`` from its metadata (messages re-rendered, the figure swapped);
    outputs without course metadata are returned unchanged."""
    meta = (output.get("metadata") or {}).get(META)
    if not meta or output.get("output_type") not in ("display_data", "execute_result"):
        return output
    out = dict(output, data=dict(output["data"]), metadata=dict(output["metadata"]))
    if "parts" in meta:
        body = render_parts([from_json(p) for p in meta["parts"]], meta["sep"], lang)
        for mime in ("text/markdown", "text/plain"):
            if mime in out["data"]:
                out["data"][mime] = body
    if "table" in meta and lang in meta["table"]:
        out["data"] = dict(meta["table"][lang])
        table = {l: d for l, d in meta["table"].items() if l != lang}
        table[next(l for l in LANGUAGES if l not in meta["table"])] = output["data"]
        out["metadata"][META] = dict(meta, table=table)
    if "figure" in meta and lang in meta["figure"]:
        shown = next(l for l in LANGUAGES if l not in meta["figure"])
        out["data"]["image/png"] = meta["figure"][lang]
        figure = {l: p for l, p in meta["figure"].items() if l != lang}
        figure[shown] = output["data"]["image/png"]
        out["metadata"][META] = dict(meta, figure=figure)
    return out


def templates_in(source: str) -> list[str]:
    """The literal English templates of ``msg(...)``/``text(...)`` calls in Python source (for the catalogue check)."""
    import ast

    found = []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return found
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
                and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in ("msg", "text")
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append(node.args[0].value)
    return found


def course_templates(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """Every template in ``utils/`` and the English notebooks (code cells), with where it is used."""
    import json

    where: dict[str, list[str]] = {}
    for path in sorted((root / "utils").rglob("*.py")):
        if path.name == "messages.py":
            continue
        for t in templates_in(path.read_text(encoding="utf-8")):
            where.setdefault(t, []).append(str(path.relative_to(root)))
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted((root / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                                  for line in "".join(cell["source"]).splitlines())   # IPython magics
                for t in templates_in(code):
                    where.setdefault(t, []).append(f"{path.relative_to(root)}:{cell.get('id')}")
    return where


def missing(root: Path = REPO_ROOT) -> list[str]:
    """Templates without a Chinese entry, or whose Chinese takes other fields: one line each."""
    cat = catalogue()
    out = []
    for template, where in course_templates(root).items():
        if template not in cat:
            out.append(f"untranslated: {template!r} ({where[0]})")
        elif placeholders(cat[template]) != placeholders(template):
            out.append(f"fields differ: {template!r} → {cat[template]!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m utils.messages", description="The course's printed messages.")
    parser.add_argument("command", choices=["check"])
    parser.parse_args(argv)
    problems = missing()
    print("\n".join(problems) if problems else f"All {len(course_templates())} messages are translated.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
