"""The Chinese notebooks (``notebooks/zh/``): built from the executed English ones and a catalogue.

Each English notebook has one translation catalogue, ``notebooks/zh/i18n/NN.yaml`` (its solution
notebook: ``notebooks/zh/i18n/solutions/NN.yaml``). The catalogue has one entry per markdown cell,
in the notebook's order::

    - id: 190bd9d8              # the English cell's id (nbformat ≥ 4.5 gives every cell one)
      en_sha256: 3f1c0a9e77d2   # the first 12 hex digits of sha256(English source)
      en: |-                    # the English text that was translated (shows what changed)
        ## 1 · Two kinds of distillation
      zh: |-
        ## 1 · 两种蒸馏

A Chinese notebook is the English notebook – code cells and metadata byte for byte, so the outputs
are those of the real English run – with every markdown cell's source replaced by its ``zh``, the
parameters cell's ``lang = "zh"``, and what the course's code rendered (summaries, verdicts, hints,
plots: :mod:`utils.messages`) re-rendered in Chinese from the message keys and values each output
keeps in its metadata. Library logs and plain ``print`` output stay as the run wrote them.

Commands (``make zh`` runs ``build``)::

    python -m utils.i18n check    # every markdown cell translated, hashes current; exit 1 and name the cells if not
    python -m utils.i18n build    # write notebooks/zh/*.ipynb (refuses while check fails)
    python -m utils.i18n sync     # add entries for new English cells, mark changed ones (for translators)

Updating one cell after the English changed: ``check`` names it; ``sync`` copies the new English
text into ``en`` and the new hash into ``en_sha256`` and puts ``TODO`` in front of the old ``zh``; edit ``zh``
(remove the ``TODO``), then ``build``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import REPO_ROOT
from .messages import zh_output

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
ZH_DIR = NOTEBOOK_DIR / "zh"
CATALOGUE_DIR = ZH_DIR / "i18n"
TODO = "TODO"  # the prefix ``sync`` puts on a translation whose English changed

HEADER = """\
# Chinese translation of {english} → {chinese}
# One entry per markdown cell of the English notebook, in its order. Translate `zh` only; `id`, `en_sha256`
# and `en` say which English text the translation is of. After an English change: python -m utils.i18n sync,
# edit the entries it marks {todo}, then make zh. (See utils/i18n.py.)
"""


def source_hash(text: str) -> str:
    """The first 12 hex digits of the SHA-256 of a cell's source (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def cell_source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


@dataclass(frozen=True)
class Pair:
    """An English notebook, its Chinese twin and the catalogue between them."""

    english: Path
    chinese: Path
    catalogue: Path


def pairs(root: Path = REPO_ROOT) -> list[Pair]:
    """Every English notebook (``notebooks/NN_*.ipynb`` and ``notebooks/solutions/NN_*.ipynb``) with its
    Chinese notebook and catalogue paths."""
    notebooks, zh = root / "notebooks", root / "notebooks" / "zh"
    out = []
    for sub in ("", "solutions"):
        for english in sorted((notebooks / sub).glob("[0-9][0-9]_*.ipynb")):
            out.append(Pair(english, zh / sub / english.name, zh / "i18n" / sub / f"{english.name[:2]}.yaml"))
    return out


# ---------------------------------------------------------------------------------------
# Catalogue files (YAML: a header comment and a list of entries)
# ---------------------------------------------------------------------------------------

def _yaml():
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value: str):
        # Multi-line text as a literal block (readable, diff-friendly); YAML falls back to quotes
        # by itself where a block cannot hold the text exactly (e.g. trailing spaces).
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml, Dumper


def read_catalogue(path: Path) -> list[dict]:
    """The entries of a catalogue (``[]`` when the file does not exist)."""
    if not path.exists():
        return []
    yaml, _ = _yaml()
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
        raise ValueError(f"{path}: expected a list of entries with id, en_sha256, en and zh")
    return entries


def write_catalogue(path: Path, entries: list[dict], pair: Pair) -> None:
    yaml, Dumper = _yaml()
    path.parent.mkdir(parents=True, exist_ok=True)

    def rel(p: Path) -> str:  # from the "notebooks" folder on: the same in any checkout
        return "/".join(p.parts[max(i for i, part in enumerate(p.parts) if part == "notebooks"):])

    body = yaml.dump([{k: e[k] for k in ("id", "en_sha256", "en", "zh")} for e in entries], Dumper=Dumper,
                     allow_unicode=True, sort_keys=False, width=10_000)
    path.write_text(HEADER.format(english=rel(pair.english), chinese=rel(pair.chinese), todo=TODO) + body,
                    encoding="utf-8")


# ---------------------------------------------------------------------------------------
# What a translation must keep from the English (checked cell by cell)
# ---------------------------------------------------------------------------------------

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[ \t]*$", re.M | re.S)
MATH = re.compile(r"\$\$.+?\$\$|\$(?:[^$\n]|\n(?!\s*\n))+?\$", re.S)  # inline math may wrap a line
CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
CJK = re.compile(r"[\u4e00-\u9fff]")
COLAB = "https://colab.research.google.com/github/"


def parts(text: str) -> dict[str, list[str]]:
    """What a translation keeps verbatim, pulled out of a markdown text: fenced blocks, math,
    inline code, link targets, and the numbers of the remaining prose (each sorted)."""
    fences = [m.group(0) for m in FENCE.finditer(text)]
    rest = FENCE.sub(" ", text)
    math = [m.group(0) for m in MATH.finditer(rest)]
    rest = MATH.sub(" ", rest)
    code = [m.group(0) for m in CODE.finditer(rest)]
    rest = CODE.sub(" ", rest)
    links = [m.group(1) for m in LINK.finditer(rest)]
    prose = LINK.sub(" ", rest)
    prose = re.sub(r"https?://\S+", " ", prose)
    return {"fenced blocks": sorted(fences), "math": sorted(math), "inline code": sorted(code),
            "links": sorted(links), "numbers": sorted(NUMBER.findall(prose)),
            "headings": sorted(re.findall(r"^ {0,3}(#{1,6}) ", rest, re.M)),
            "<details>": sorted(re.findall(r"</?(?:details|summary)>", rest))}


def zh_link(target: str, chinese: Path) -> bool:
    """Whether a link target of the Chinese notebook is acceptable: a web address, an anchor, or a
    relative path that exists from the Chinese notebook's folder – or a Chinese notebook not built
    yet, whose English original exists."""
    if target.startswith(("http://", "https://", "mailto:", "#")):
        return True
    path = (chinese.parent / target.split("#", 1)[0]).resolve()
    if path.exists():
        return True
    zh = next(p for p in chinese.resolve().parents if p.name == "zh")
    return path.suffix == ".ipynb" and path.is_relative_to(zh) and (zh.parent / path.relative_to(zh)).exists()


def cell_problems(en: str, zh: str, chinese: Path) -> list[str]:
    """How a Chinese cell departs from its English original where it must not (``[]``: it does not).

    Kept verbatim: fenced blocks, math, inline code, the numbers of the prose (digits stay digits:
    a translation never adds or changes a figure), heading levels and ``<details>`` blocks. Links may
    change (README.md → README.zh-CN.md) but must resolve from ``notebooks/zh/``; the Colab badge
    opens the Chinese notebook. Prose is Chinese.
    """
    out = []
    e, z = parts(en), parts(zh)
    for what in ("fenced blocks", "math", "inline code", "numbers", "headings", "<details>"):
        if e[what] != z[what]:
            missing = [x for x in e[what] if x not in z[what]]
            extra = [x for x in z[what] if x not in e[what]]
            out.append(f"{what} differ from the English (missing {missing[:4]}, extra {extra[:4]})")
    for target in z["links"]:
        if target.startswith(COLAB):
            want = chinese.relative_to(next(p for p in chinese.parents if p.name == "notebooks")).as_posix()
            if not target.endswith("notebooks/" + want):
                out.append(f"the Colab link should open notebooks/{want}, not {target}")
        elif not zh_link(target, chinese):
            out.append(f"link {target} does not resolve from {chinese.parent.name}/")
    if len(z["links"]) != len(e["links"]):
        out.append(f"{len(e['links'])} links in the English, {len(z['links'])} in the Chinese")
    letters = re.sub(r"[^A-Za-z]", "", FENCE.sub("", MATH.sub("", CODE.sub("", LINK.sub("", en)))))
    if len(letters) > 20 and not CJK.search(zh):
        out.append("no Chinese in the translation")
    return out


# ---------------------------------------------------------------------------------------
# Check, build, sync
# ---------------------------------------------------------------------------------------

def problems(pair: Pair) -> list[str]:
    """What keeps ``pair.catalogue`` from translating ``pair.english`` today, one line per cell
    (``[]``: every markdown cell has a current, finished translation and no entry is left over)."""
    nb = json.loads(pair.english.read_text(encoding="utf-8"))
    entries = {e["id"]: e for e in read_catalogue(pair.catalogue)}
    name = pair.english.relative_to(pair.english.parents[1]).as_posix()
    out = []
    markdown_ids = set()
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        cid = cell.get("id")
        if cid is None:
            out.append(f"{name} cell {index}: has no id (save the notebook with nbformat ≥ 4.5)")
            continue
        markdown_ids.add(cid)
        text = cell_source(cell)
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        where = f"{name} cell {index} (id {cid}, “{first}”)"
        entry = entries.get(cid)
        if entry is None:
            out.append(f"{where}: no translation")
        elif entry.get("en_sha256") != source_hash(text):
            out.append(f"{where}: the English changed since it was translated (hash {entry.get('en_sha256')}, "
                       f"now {source_hash(text)})")
        elif not str(entry.get("zh") or "").strip():
            out.append(f"{where}: empty translation")
        elif str(entry["zh"]).startswith(TODO):
            out.append(f"{where}: translation marked {TODO}")
        else:
            out += [f"{where}: {p}" for p in cell_problems(text, str(entry["zh"]), pair.chinese)]
    for cid in entries.keys() - markdown_ids:
        out.append(f"{pair.catalogue.name}: entry {cid} matches no markdown cell of {name} (remove it)")
    return out


# The one code difference: the Chinese parameters cell speaks Chinese wherever it runs (Colab included).
EN_LANG_LINE = 'lang = None     # None: the notebook\'s folder (notebooks/zh/ speaks Chinese), else $R1LAB_LANG or "en"\n'
ZH_LANG_LINE = 'lang = "zh"     # 中文：本笔记本打印的小结、判定、提示和图都用中文\n'


def translate(pair: Pair) -> str:
    """The Chinese notebook's text: the English notebook with each markdown source replaced, the
    parameters cell's ``lang`` set to ``"zh"``, and every course output rendered in Chinese from its
    metadata (:func:`utils.messages.zh_output`: messages re-rendered, figures swapped)."""
    nb = json.loads(pair.english.read_text(encoding="utf-8"))
    entries = {e["id"]: e for e in read_catalogue(pair.catalogue)}
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = str(entries[cell["id"]]["zh"]).splitlines(keepends=True)
        elif cell["cell_type"] == "code":
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                cell["source"] = [ZH_LANG_LINE.rstrip("\n") + line[len(line.rstrip("\n")):]
                                  if line.rstrip("\n") == EN_LANG_LINE.rstrip("\n") else line for line in cell["source"]]
            cell["outputs"] = [zh_output(o) for o in cell.get("outputs", [])]
    # nbformat's own layout (indent 1, sorted keys, UTF-8 as is), so a rebuild is byte-identical.
    return json.dumps(out, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


class StaleTranslations(RuntimeError):
    """:func:`build` refuses: some catalogue does not translate its English notebook as it is now."""


def build(root: Path = REPO_ROOT) -> list[Path]:
    """Write every Chinese notebook whose text differs from the catalogue's; return those written.
    Raises :class:`StaleTranslations`, naming the cells, while :func:`problems` finds any."""
    broken = [line for pair in pairs(root) for line in problems(pair)]
    if broken:
        raise StaleTranslations("Not building: the translations are not current.\n  " + "\n  ".join(broken))
    written = []
    for pair in pairs(root):
        text = translate(pair)
        if not pair.chinese.exists() or pair.chinese.read_text(encoding="utf-8") != text:
            pair.chinese.parent.mkdir(parents=True, exist_ok=True)
            pair.chinese.write_text(text, encoding="utf-8")
            written.append(pair.chinese)
    return written


def sync(pair: Pair) -> list[str]:
    """Bring a catalogue in line with its English notebook, for a translator: new cells get an entry
    with an empty ``zh``, changed cells get the new ``en``/``en_sha256`` and ``TODO`` before the old
    ``zh``, entries of deleted cells are dropped. Returns what it did, one line per cell."""
    nb = json.loads(pair.english.read_text(encoding="utf-8"))
    old = {e["id"]: e for e in read_catalogue(pair.catalogue)}
    entries, did = [], []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text, cid = cell_source(cell), cell["id"]
        entry = dict(old.get(cid) or {"id": cid, "zh": ""})
        if cid not in old:
            did.append(f"{cid}: new, translate it")
        elif entry.get("en_sha256") != source_hash(text):
            zh = str(entry.get("zh") or "")
            entry["zh"] = zh if zh.startswith(TODO) else f"{TODO} {zh}"
            did.append(f"{cid}: English changed, update the translation marked {TODO}")
        entry.update(id=cid, en_sha256=source_hash(text), en=text)
        entries.append(entry)
    did += [f"{cid}: removed (no such markdown cell any more)" for cid in old.keys() - {e["id"] for e in entries}]
    write_catalogue(pair.catalogue, entries, pair)
    return did


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.i18n", description="Build and check the Chinese notebooks.")
    parser.add_argument("command", choices=["check", "build", "sync"])
    parser.add_argument("--only", nargs="*", help="check only these catalogues, e.g. 01 solutions/01")
    args = parser.parse_args(argv)
    if args.command == "check":
        chosen = [p for p in pairs() if not args.only or any(
            p.catalogue.relative_to(CATALOGUE_DIR).with_suffix("").as_posix() == o for o in args.only)]
        broken = [line for pair in chosen for line in problems(pair)]
        print("\n".join(broken) if broken else f"All {len(chosen)} catalogues are current.")
        return 1 if broken else 0
    if args.command == "build":
        try:
            written = build()
        except StaleTranslations as stale:
            print(stale, file=sys.stderr)
            return 1
        print("\n".join(f"wrote {p.relative_to(REPO_ROOT)}" for p in written) or "The Chinese notebooks are up to date.")
        return 0
    for pair in pairs():
        for line in sync(pair):
            print(f"{pair.catalogue.relative_to(REPO_ROOT)}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
