"""Write the "Open in Colab" badges and the Colab clone URL from one repository slug.

    make badges REPO=org/name      (or: python scripts/badges.py org/name)

The slug is stored in ``.colab-repo``; every notebook's first markdown cell gets a badge line
and its setup cell clones that repository on Colab. The Chinese notebooks follow: their
catalogues (``notebooks/zh/i18n/``) get the new badge in ``en`` and ``zh`` (and the new hash),
and ``notebooks/zh/`` is rebuilt. Run it again after forking the course.
"""

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils import i18n  # noqa: E402
BADGE = ("[![{alt}](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{name})")
ALT = {"en": "Open In Colab", "zh": "在 Colab 中打开"}
BADGE_RE = re.compile(r"^\[!\[[^\]]*\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\].*$\n?", re.M)
CLONE_RE = re.compile(r"https://github\.com/[\w.\-]+/[\w.\-]+(?= /content/r1-distill-lab)")


def with_badge(text: str, slug: str, name: str, lang: str = "en") -> str:
    """``text`` starting with the badge of notebook ``name`` (a path under ``notebooks/``)."""
    return BADGE.format(alt=ALT[lang], slug=slug, name=name) + "\n\n" + BADGE_RE.sub("", text).lstrip("\n")


def apply(slug: str, root: Path = ROOT) -> list[str]:
    """Rewrite badges and clone URLs for ``slug`` (English notebooks, then the Chinese catalogues
    and notebooks); return the notebooks changed."""
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", slug):
        raise SystemExit(f"REPO must look like org/name, got {slug!r}")
    changed = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        first_md = next(c for c in nb.cells if c.cell_type == "markdown")
        first_md.source = with_badge(first_md.source, slug, path.name)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = CLONE_RE.sub(f"https://github.com/{slug}", cell.source)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path.name)
    for pair in i18n.pairs(root):
        entries = i18n.read_catalogue(pair.catalogue)
        english = {c["id"]: i18n.cell_source(c) for c in nbformat.read(pair.english, as_version=4).cells
                   if c.cell_type == "markdown"}
        for entry in entries:
            if BADGE_RE.search(entry["en"]) and entry["id"] in english:
                entry.update(en=english[entry["id"]], en_sha256=i18n.source_hash(english[entry["id"]]),
                             zh=with_badge(str(entry["zh"]), slug, f"zh/{pair.english.name}", "zh"))
        if entries:
            i18n.write_catalogue(pair.catalogue, entries, pair)
    changed += [p.relative_to(root / "notebooks").as_posix() for p in i18n.build(root)]
    (root / ".colab-repo").write_text(slug + "\n")
    return changed


if __name__ == "__main__":
    slug = sys.argv[1] if len(sys.argv) > 1 else (ROOT / ".colab-repo").read_text().strip()
    print("updated:", ", ".join(apply(slug)) or "nothing")
