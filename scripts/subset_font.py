"""Make utils/fonts/NotoSansSC-course-subset.otf: the glyphs Chinese plots need, from Noto Sans CJK SC.

Chinese plot labels need a CJK font, and neither matplotlib nor Colab brings one. The course ships a
subset of Noto Sans CJK SC (SIL Open Font License 1.1, utils/fonts/OFL.txt): the 3,755 common
characters of GB 2312 level 1, every character of the course's Chinese catalogues, and CJK punctuation.
Run it again after adding Chinese text with new characters (tests/test_i18n_render.py says when):

    python scripts/subset_font.py [/path/to/NotoSansCJK-Regular.ttc]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")   # Debian's fonts-noto-cjk
OUT = ROOT / "utils" / "fonts" / "NotoSansSC-course-subset.otf"
FAMILY = "Noto Sans SC course subset"


def course_text() -> str:
    files = [ROOT / "utils" / "messages.zh.yaml", ROOT / "utils" / "exercises" / "messages.zh.yaml",
             ROOT / "utils" / "app_text.py", *sorted((ROOT / "notebooks" / "zh" / "i18n").rglob("*.yaml"))]
    return "".join(p.read_text(encoding="utf-8") for p in files if p.exists())


def wanted() -> set[str]:
    """GB 2312 level 1 (rows 16–55), the catalogues' CJK characters, full-width forms and CJK punctuation."""
    chars = {bytes([row, col]).decode("gb2312") for row in range(0xB0, 0xD8) for col in range(0xA1, 0xFF)
             if not (row == 0xD7 and col > 0xF9)}
    chars |= set(re.findall(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef\u2014\u2018\u2019\u201c\u201d\u2026\u00b7]",
                            course_text()))
    return chars


def main(source: Path = SOURCE) -> Path:
    from fontTools import subset
    from fontTools.ttLib import TTCollection, TTFont

    font = next(f for f in TTCollection(str(source)).fonts if f["name"].getDebugName(1) == "Noto Sans CJK SC") \
        if source.suffix == ".ttc" else TTFont(str(source))
    options = subset.Options()
    options.name_IDs, options.layout_features, options.hinting = ["*"], ["*"], False
    sub = subset.Subsetter(options)
    sub.populate(unicodes=sorted(ord(c) for c in wanted()))
    sub.subset(font)
    font.recalcTimestamp = False   # the same characters give the same file, byte for byte
    for record in font["name"].names:   # its own family name: it does not shadow a full Noto CJK install
        if record.nameID in (1, 4, 16):
            record.string = FAMILY
        elif record.nameID == 6:
            record.string = FAMILY.replace(" ", "")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(OUT))
    return OUT


if __name__ == "__main__":
    out = main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
    print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size / 1e6:.2f} MB)")
