"""Write the "Open in Colab" badges and the Colab clone URL from one repository slug.

    make badges REPO=org/name      (or: python scripts/badges.py org/name)

The slug is stored in ``.colab-repo``; every notebook's first markdown cell gets a badge line
and its setup cell clones that repository on Colab. Run it again after forking the course.
"""

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SLUG_FILE = ROOT / ".colab-repo"
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{name})")
BADGE_RE = re.compile(r"^\[!\[Open In Colab\].*$\n?", re.M)
CLONE_RE = re.compile(r"https://github\.com/[\w.\-]+/[\w.\-]+(?= /content/r1-distill-lab)")


def apply(slug: str) -> list[str]:
    """Rewrite badges and clone URLs for ``slug``; return the notebooks changed."""
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", slug):
        raise SystemExit(f"REPO must look like org/name, got {slug!r}")
    changed = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        first_md = next(c for c in nb.cells if c.cell_type == "markdown")
        first_md.source = BADGE.format(slug=slug, name=path.name) + "\n\n" + BADGE_RE.sub("", first_md.source).lstrip("\n")
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = CLONE_RE.sub(f"https://github.com/{slug}", cell.source)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path.name)
    SLUG_FILE.write_text(slug + "\n")
    return changed


if __name__ == "__main__":
    slug = sys.argv[1] if len(sys.argv) > 1 else SLUG_FILE.read_text().strip()
    print("updated:", ", ".join(apply(slug)) or "nothing")
