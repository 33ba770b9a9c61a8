"""Notebook 05's app in a real browser: headless Chromium driven by Playwright.

Types a problem, clicks Generate, watches the reply stream into the chat, checks that the
thinking block and the checked answer appear, and saves a screenshot to
``artifacts/screenshots/``. The browser is found on PATH (chromium, chromium-browser or
google-chrome; ``make browser`` installs Debian's chromium, as root). Without one the test is
skipped, or fails when ``CI=true`` (CI must not pass silently without it). We never run
``playwright install`` (no downloads).
"""

import os
import shutil
import socket

import pytest

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MISSING = ("no Chromium on PATH (looked for " + ", ".join(BROWSER_NAMES) + "): run `make browser` as root, "
           "or apt-get install chromium (Ubuntu: chromium-browser)")


def find_browser() -> str | None:
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_browser(env=os.environ) -> str:
    """The browser's path; without one, skip – or fail when CI=true."""
    path = find_browser()
    if path is None:
        if env.get("CI", "").lower() == "true":
            pytest.fail(MISSING + " (CI=true: a missing browser is a failure)", pytrace=False)
        pytest.skip(MISSING)
    return path


def has_chinese_font() -> bool:
    """Whether fontconfig knows a font with Chinese glyphs (else the 中文 screenshot shows boxes)."""
    import subprocess

    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    return bool(subprocess.run([fc_list, ":lang=zh"], capture_output=True, text=True).stdout.strip())


@pytest.fixture(scope="module")
def browser_path():
    return require_browser()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(char_tokenizer):
    """The app serving an untrained tiny student and teacher (the UI is under test, not the model)."""
    from utils import serve
    from utils.config import get_profile
    from utils.models import build_causal_lm

    prof = get_profile("tiny")
    models = {name: serve.ServedModel(name, build_causal_lm(size, char_tokenizer, seed=2).eval(), char_tokenizer)
              for name, size in (("student", prof.student), ("teacher", prof.teacher))}
    demo = serve.build_app(models=models, profile=prof)
    url = serve.launch(demo, port=free_port())
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(browser_path, app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(app_url, wait_until="domcontentloaded")
            yield page
        finally:
            browser.close()


def test_type_a_problem_and_watch_it_stream(page):
    from playwright.sync_api import expect

    from utils.artifacts import artifacts_root

    prompt = page.locator("#prompt textarea")
    expect(prompt).to_be_visible(timeout=20_000)
    expect(page.locator("#chat-student")).to_be_attached(timeout=20_000)  # Gradio mounts components one by one
    # Record every state the student's chat goes through, to see the reply arrive piece by piece.
    page.evaluate("""() => {
        window.__states = [];
        const target = document.querySelector('#chat-student');
        new MutationObserver(() => {
            const t = target.innerText;
            if (window.__states[window.__states.length - 1] !== t) window.__states.push(t);
        }).observe(target, {subtree: true, childList: true, characterData: true});
    }""")
    prompt.fill("Q:4759+86=")
    page.locator("#model-choice").get_by_text("both", exact=True).click()
    page.locator("#generate").click()

    student = page.locator("#chat-student")
    expect(student.get_by_text("💭 Thinking").first).to_be_visible(timeout=30_000)
    expect(student.get_by_text("reference 4845")).to_be_visible(timeout=30_000)   # the verifier's line
    expect(page.locator("#chat-teacher").get_by_text("reference 4845")).to_be_visible(timeout=30_000)
    stats = page.locator("#stats")
    expect(stats).to_contain_text("student")
    expect(stats).to_contain_text("teacher")
    expect(stats).to_contain_text(" ms")

    states = page.evaluate("window.__states")
    assert sum("Q:4759+86=" in s for s in states) >= 3, f"the reply should stream in, saw {len(states)} states"

    out = artifacts_root() / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "05_gradio_app.png"), full_page=True)
    assert (out / "05_gradio_app.png").stat().st_size > 10_000


def test_bad_input_shows_a_message(page):
    from playwright.sync_api import expect

    prompt = page.locator("#prompt textarea")
    prompt.fill("Q:7+8=é")
    page.locator("#generate").click()
    expect(page.get_by_text("does not know").first).to_be_visible(timeout=20_000)


def test_language_switch_relabels_the_app_and_answers_a_chinese_prompt(page):
    """Switch to 中文: the labels change, and a Chinese prompt gets, in the chat, what the tiny model can read."""
    from playwright.sync_api import expect

    if not has_chinese_font():
        message = "no Chinese font (fc-list :lang=zh is empty): `make browser` installs fonts-noto-cjk"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true)", pytrace=False)
        pytest.skip(message)

    from utils.artifacts import artifacts_root

    page.locator("#language").get_by_text("中文", exact=True).click()
    expect(page.locator("#generate")).to_have_text("生成", timeout=20_000)
    expect(page.get_by_text("题目", exact=True).first).to_be_visible()
    expect(page.locator("#model-choice").get_by_text("两者并排", exact=True)).to_be_visible()
    page.locator("#prompt textarea").fill("Q:三加五等于几？")
    page.locator("#generate").click()
    expect(page.locator("#chat-student").get_by_text("这个小模型只认识任务世界里的字符")).to_be_visible(timeout=20_000)
    out = artifacts_root() / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "05_gradio_app_zh.png"), full_page=True)
    assert (out / "05_gradio_app_zh.png").stat().st_size > 10_000
    page.locator("#language").get_by_text("English", exact=True).click()
    expect(page.locator("#generate")).to_have_text("Generate", timeout=20_000)


def test_missing_browser_skips_or_fails_on_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="make browser"):
        require_browser({})
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_browser({"CI": "true"})
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/chrome" if name == "google-chrome" else None)
    assert require_browser({"CI": "true"}) == "/opt/chrome"
