"""What the code renders, in both languages (utils/messages.py): the language switch, the catalogue,
`make zh`'s re-rendering of the English run's outputs, the Chinese plots' font, and the app's language."""

from __future__ import annotations

import json
import os
import re
import sys
import warnings

import pytest

from utils import i18n, messages
from utils.messages import msg, speaking

PAIRS = i18n.pairs()
MAIN = [p for p in PAIRS if p.english.parent.name != "solutions"]


# ---------------------------------------------------------------------------------------
# The language
# ---------------------------------------------------------------------------------------

@pytest.fixture
def fresh_language(monkeypatch):
    monkeypatch.delenv("R1LAB_LANG", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setattr(messages, "_chosen", None)
    return monkeypatch


def test_r1lab_lang_chooses_and_a_typo_stops_with_the_choices(fresh_language):
    assert messages.set_language(None) == "en"
    fresh_language.setenv("R1LAB_LANG", "zh")
    assert messages.set_language(None) == "zh"
    fresh_language.setenv("R1LAB_LANG", "cn")
    with pytest.raises(messages.UnknownLanguage, match=r"'en' or 'zh'"):
        messages.set_language(None)
    with pytest.raises(messages.UnknownLanguage, match=r"'en' or 'zh'"):
        messages.set_language("chinese")


def test_the_notebook_folder_decides_under_jupyter(fresh_language, tmp_path):
    fresh_language.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel") or type(sys)("ipykernel"))
    fresh_language.setenv("R1LAB_LANG", "en")
    fresh_language.setenv("JPY_SESSION_NAME", str(tmp_path / "course" / "notebooks" / "zh" / "01_x.ipynb"))
    assert messages.language() == "zh"          # the folder wins over $R1LAB_LANG
    fresh_language.setenv("JPY_SESSION_NAME", str(tmp_path / "course" / "notebooks" / "01_x.ipynb"))
    assert messages.language() == "en"
    messages.set_language("zh")                 # the parameters cell's lang wins over both
    assert messages.language() == "zh"


def test_the_chinese_parameters_cell_sets_lang_and_is_the_only_code_difference():
    for pair in PAIRS:
        en = json.loads(pair.english.read_text(encoding="utf-8"))
        zh = json.loads(pair.chinese.read_text(encoding="utf-8"))
        params = [(e, z) for e, z in zip(en["cells"], zh["cells"]) if "parameters" in e["metadata"].get("tags", [])]
        assert len(params) == 1, pair.english
        e, z = params[0]
        en_lines = [l.rstrip("\n") for l in e["source"]]
        zh_lines = [l.rstrip("\n") for l in z["source"]]
        assert i18n.EN_LANG_LINE.rstrip("\n") in en_lines and i18n.ZH_LANG_LINE.rstrip("\n") in zh_lines, pair.english
        assert [l for l in en_lines if l != i18n.EN_LANG_LINE.rstrip("\n")] == \
            [l for l in zh_lines if l != i18n.ZH_LANG_LINE.rstrip("\n")]


# ---------------------------------------------------------------------------------------
# Messages and the catalogue
# ---------------------------------------------------------------------------------------

def test_every_message_of_the_course_is_translated_with_the_same_fields():
    assert messages.missing() == [], "run python -m utils.messages check and translate these"
    assert len(messages.course_templates()) >= 100


def test_a_message_renders_in_either_language_with_the_same_values():
    m = msg("- **Reward model**: pairwise accuracy {acc:.1%} on {n} held-out preference pairs.", acc=0.8123, n=200)
    assert m.render("en") == "- **Reward model**: pairwise accuracy 81.2% on 200 held-out preference pairs."
    assert m.render("zh") == "- **奖励模型**：在 200 对留出的偏好对上，成对准确率 81.2%。"
    with speaking("zh"):
        assert str(m) == m.render("zh") and f"{m}" == m.render("zh")
    assert messages.from_json(json.loads(json.dumps(m.to_json()))) == m


def test_nested_messages_and_numpy_values():
    np = pytest.importorskip("numpy")
    m = msg("Base rate: **{base_rate:.1%}** of the training samples are verifier-correct. {verdict}",
            base_rate=np.float64(0.25), verdict=msg("Ground truth is the upper bound, as expected."))
    assert m.render("zh") == "基础正确率：训练样本中有 **25.0%** 通过验证器。正如预期，标准答案是上限。"
    json.dumps(m.to_json())   # the metadata is JSON


def test_describe_difference_is_a_sentence_in_both_languages():
    from utils import stats

    d = stats.paired_difference([1, 1, 1, 0] * 50, [0, 1, 0, 0] * 50)
    sentence = stats.describe_difference(msg("student"), msg("teacher"), d)
    assert str(sentence).endswith("student is better at this test size.")
    assert sentence.render("zh").endswith("在这个测试规模下 学生 更好。") and "配对 95 % 区间" in sentence.render("zh")


def test_a_checker_answers_in_the_notebooks_language(capsys):
    from utils.exercises import n01

    with speaking("zh"):
        assert n01.check_t2_factor("4") is False
    said = capsys.readouterr().out
    assert said.startswith("✗ 还不对——提示：") and i18n.CJK.search(said.split("：", 1)[1])


# ---------------------------------------------------------------------------------------
# make zh: the English run's outputs, rendered in Chinese
# ---------------------------------------------------------------------------------------

def test_zh_output_rerenders_messages_and_swaps_figures():
    m = msg("- Notebook time: {seconds:.0f} s on {device}.", seconds=12.3, device="cpu")
    out = {"output_type": "display_data", "data": {"text/markdown": m.render("en"), "text/plain": m.render("en")},
           "metadata": {"r1lab": {"parts": [m.to_json()], "sep": "\n"}}}
    zh = messages.zh_output(out)
    assert zh["data"]["text/markdown"] == "- 笔记本用时：12 秒（cpu）。" == zh["data"]["text/plain"]
    assert zh["metadata"] == out["metadata"] and out["data"]["text/plain"] == m.render("en")   # input untouched
    fig = {"output_type": "display_data", "data": {"image/png": "EN", "text/plain": "<Figure>"},
           "metadata": {"r1lab": {"figure": {"zh": "ZH"}}}}
    swapped = messages.zh_output(fig)
    assert swapped["data"]["image/png"] == "ZH" and swapped["metadata"]["r1lab"]["figure"] == {"en": "EN"}
    plain = {"output_type": "stream", "name": "stdout", "text": "library log\n"}
    assert messages.zh_output(plain) is plain


def _outputs(nb):
    return [(c["id"], o) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.chinese.relative_to(i18n.ZH_DIR).as_posix())
def test_outputs_identical_except_rendered_text_and_plots_whose_values_are_equal(pair):
    en = json.loads(pair.english.read_text(encoding="utf-8"))
    zh = json.loads(pair.chinese.read_text(encoding="utf-8"))
    rendered = 0
    for (cid, e), (_, z) in zip(_outputs(en), _outputs(zh), strict=True):
        meta = (e.get("metadata") or {}).get("r1lab")
        if not meta:
            assert e == z, f"{cid}: an output without course metadata must be the English run's, byte for byte"
            continue
        rendered += 1
        assert z["metadata"]["r1lab"].get("parts") == meta.get("parts"), f"{cid}: the values differ"
        if "parts" in meta:
            assert z["data"]["text/plain"] == messages.render_parts(
                [messages.from_json(p) for p in meta["parts"]], meta["sep"], "zh")
        if "figure" in meta:
            assert z["data"]["image/png"] == meta["figure"]["zh"] and z["metadata"]["r1lab"]["figure"]["en"] == e["data"]["image/png"]
    if pair in MAIN:
        assert rendered >= 3, f"{pair.english.name}: expected its summaries rendered through utils.messages"


ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[ ]+[A-Za-z][A-Za-z'’-]*){2,}")
KEPT_IN_ENGLISH = ("McNemar p", "Yue et al", "KV cache", "Best-of", "best-of", "pass@", "arXiv", "R1-Zero",
                   "DeepSeek-R1", "Qwen", "on-policy", "PPO", "GRPO", "SFT", "TRL", "MoE", "FP8", "bf16", "HTTP",
                   "GPU", "CPU", "API")


def english_runs(text: str) -> list[str]:
    """Runs of three or more English words left after removing code spans and quoted literals (`x`, 'x', "x"),
    links, numbers and the terms the Chinese text keeps in English (model names, method acronyms, citations)."""
    text = re.sub(r"`[^`]*`|'[^'\n]*'|\"[^\"\n]*\"", " ", text)
    text = re.sub(r"https?://\S+|\]\([^)]*\)", " ", text)
    for term in KEPT_IN_ENGLISH:
        text = text.replace(term, " ")
    return ENGLISH_RUN.findall(text)


def test_the_english_word_counter_finds_what_it_must():
    assert english_runs("教师 the teacher wins 了") == ["the teacher wins"]
    assert english_runs("`a b c d` 和 McNemar p = 0.1，Yue et al., 2025，'lower loss key'") == []


@pytest.mark.parametrize("pair", MAIN, ids=lambda p: p.chinese.name)
def test_no_three_english_words_in_what_the_chinese_notebooks_render(pair):
    zh = json.loads(pair.chinese.read_text(encoding="utf-8"))
    found = []
    for cid, o in _outputs(zh):
        meta = (o.get("metadata") or {}).get("r1lab")
        if meta and "parts" in meta:
            found += [(cid, run) for run in english_runs(o["data"]["text/plain"])]
    assert not found, f"English left in the Chinese rendering: {found}"


# ---------------------------------------------------------------------------------------
# Chinese plots: a CJK font, no missing glyph
# ---------------------------------------------------------------------------------------

def _figure_templates() -> list[str]:
    cat = messages.catalogue()
    return [t for t in messages.course_templates() if t in cat and len(t) < 120]


def test_chinese_labels_render_without_a_missing_glyph():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not messages.FONT.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{messages.FONT} is missing: run python scripts/subset_font.py")
        pytest.skip("the course's CJK font subset is missing")
    messages.use_course_font()
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # matplotlib warns "Glyph … missing from font(s)"
        fig, ax = plt.subplots()
        for i, template in enumerate(_figure_templates()):
            ax.text(0, i, re.sub(r"\{[^}]*\}", "1", messages.catalogue()[template]))
        fig.canvas.draw()
        plt.close(fig)


def test_the_font_subset_holds_every_character_of_the_catalogues():
    from fontTools.ttLib import TTFont

    if not messages.FONT.exists():
        pytest.fail(f"{messages.FONT} is missing: run python scripts/subset_font.py")
    cmap = TTFont(str(messages.FONT)).getBestCmap()
    text = "".join(messages.catalogue().values())
    lacking = sorted({ch for ch in text if i18n.CJK.match(ch) and ord(ch) not in cmap})
    assert not lacking, f"run python scripts/subset_font.py: the font lacks {''.join(lacking)}"


# ---------------------------------------------------------------------------------------
# The app follows the notebook
# ---------------------------------------------------------------------------------------

def test_the_app_opens_in_the_notebooks_language(fresh_language, char_tokenizer):
    from utils import serve
    from utils.config import get_profile
    from utils.models import build_causal_lm

    prof = get_profile("tiny")
    model = serve.ServedModel("student", build_causal_lm(prof.student, char_tokenizer).eval(), char_tokenizer)
    with speaking("zh"):
        demo = serve.build_app(models={"student": model}, profile=prof)
    config = json.dumps(demo.config, ensure_ascii=False)
    assert '"value": "中文"' in config and "题目" in config and "蒸馏" in config
    demo_en = serve.build_app(models={"student": model}, profile=prof, lang="en")
    assert '"value": "English"' in json.dumps(demo_en.config, ensure_ascii=False)
