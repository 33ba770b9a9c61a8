"""Notebook 05's app (utils.serve): the reference solver, validation, streaming, and the live
API through gradio_client on a free local port – bad inputs, a failing model, 10 at once."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from utils import serve
from utils.tasks import make_problems

MAX_NEW = 12  # short replies keep the live tests fast


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------

def test_solve_recomputes_every_generated_problem():
    problems = make_problems(150, "test", seed=3) + make_problems(150, "train", seed=4)
    assert {p.family for p in problems} == {"add", "arith", "trace", "order"}
    for p in problems:
        # "Q:7+8=" is both a column addition and a one-step arith problem: name the family.
        assert serve.solve(p.prompt, families=(p.family,)) == p, p
        if p.family != "arith":
            assert serve.solve(p.prompt) == p, p


@pytest.mark.parametrize("prompt", ["hello", "Q:7+8-3", "Q:a=b+1;a?", "Q:A=5,A=3;max?", "Q:a=3;b?", ""])
def test_solve_refuses_what_is_not_a_task_world_problem(prompt):
    assert serve.solve(prompt) is None


def test_check_answer_uses_the_verifier():
    p = make_problems(3, "test", seed=0)[0]
    good = serve.check_answer(p.prompt, p.completion)
    assert good["correct"] and good["steps_correct"] and good["reference"] == p.answer
    wrong_answer = p.completion.rsplit("A:", 1)[0] + "A:" + ("Z" if p.family == "order" else "999")
    bad = serve.check_answer(p.prompt, wrong_answer)
    assert bad["well_formed"] and not bad["correct"] and "❌" in serve.describe_check(bad)
    assert not serve.check_answer(p.prompt, "<think>1")["well_formed"]
    assert serve.check_answer("What is love?", "anything") is None


def test_split_thinking():
    assert serve.split_thinking("<think>7+8=15</think>A:15") == ("7+8=15", "A:15", True)
    assert serve.split_thinking("<think>7+8=1") == ("7+8=1", "", False)
    assert serve.split_thinking("A:15") == ("", "A:15", False)


def test_streamer_hands_over_every_token(char_tokenizer):
    """The stock TextIteratorStreamer holds symbols back until a space; ours must not."""
    import torch
    from transformers import TextIteratorStreamer

    ids = char_tokenizer("<think>7+8=15;15-3=12</think>A:12", add_special_tokens=False)["input_ids"]
    ours = serve.EveryTokenStreamer(char_tokenizer, skip_prompt=False, timeout=1)
    stock = TextIteratorStreamer(char_tokenizer, skip_prompt=False, timeout=1)
    for streamer in (ours, stock):
        for i in ids:
            streamer.put(torch.tensor([i]))
    ours_pieces = [ours.text_queue.get_nowait() for _ in range(ours.text_queue.qsize())]
    stock_pieces = [p for p in (stock.text_queue.get_nowait() for _ in range(stock.text_queue.qsize())) if p]
    assert len(ours_pieces) == len(ids) and "".join(ours_pieces) == "<think>7+8=15;15-3=12</think>A:12"
    assert len(stock_pieces) < len(ids) // 2  # why we subclass it
    assert ours.n_tokens == len(ids)


@pytest.fixture(scope="module")
def served(char_tokenizer):
    from utils.config import get_profile
    from utils.models import build_causal_lm

    prof = get_profile("tiny")
    return serve.ServedModel("student", build_causal_lm(prof.student, char_tokenizer).eval(), char_tokenizer)


@pytest.mark.parametrize("prompt, temperature, top_p, max_new, message", [
    ("", 0.6, 0.95, 10, "prompt is empty"),
    ("   ", 0.6, 0.95, 10, "prompt is empty"),
    ("1+" * 1001, 0.6, 0.95, 10, "too long"),
    ("Q:" + "1+" * 100 + "1=", 0.6, 0.95, 64, "exceed its context"),
    ("Q:7+8=é", 0.6, 0.95, 10, "'é' (U+00E9)"),
    ("Q:７+8=", 0.6, 0.95, 10, "does not know"),
    ("Q:7+8=", 0.6, 0.95, 0, "at least 1"),
    ("Q:7+8=", 0.6, 0.95, -5, "at least 1"),
    ("Q:7+8=", -0.1, 0.95, 10, "temperature"),
    ("Q:7+8=", 50, 0.95, 10, "temperature must be between 0 (greedy) and 2, got 50"),
    ("Q:7+8=", 2.01, 0.95, 10, "temperature must be between 0 (greedy) and 2"),
    ("Q:7+8=", float("inf"), 0.95, 10, "temperature must be a finite number"),
    ("Q:7+8=", "hot", 0.95, 10, "temperature must be a number"),
    ("Q:7+8=", 0.6, 0.0, 10, "top_p"),
    ("Q:7+8=", 0.6, 1.01, 10, "top_p"),
    ("Q:7+8=", float("nan"), 0.95, 10, "finite"),
    ("Q:7+8=", 0.6, float("nan"), 10, "top_p must be a finite number"),
    ("Q:7+8=", 0.6, 0.95, float("nan"), "max new tokens must be a finite number"),
    ("Q:7+8=", 0.6, 0.95, 2.5, "whole number"),
])
def test_validation_messages(served, prompt, temperature, top_p, max_new, message):
    with pytest.raises(serve.InputError, match=None) as err:
        serve.validate_request(served, prompt, temperature, top_p, max_new, max_tokens_cap=64,
                               max_prompt_chars=2000)
    assert message in str(err.value)


@pytest.mark.parametrize("prompt, temperature, top_p, max_new, message", [
    ("", 0.6, 0.95, 10, "题目是空的"),
    ("Q:7+8=é", 0.6, 0.95, 10, "不认识 'é' (U+00E9)"),
    ("Q:7+8=", 0.6, 0.95, 0, "至少为 1"),
    ("Q:7+8=", 50, 0.95, 10, "温度必须在 0（贪心解码）到 2 之间，收到的是 50"),
    ("Q:7+8=", 0.6, 1.01, 10, "top_p 必须在 (0, 1] 之内"),
])
def test_validation_messages_in_chinese(served, prompt, temperature, top_p, max_new, message):
    with pytest.raises(serve.InputError) as err:
        serve.validate_request(served, prompt, temperature, top_p, max_new, max_tokens_cap=64,
                               max_prompt_chars=2000, lang="zh")
    assert message in str(err.value)


@pytest.mark.parametrize("lang, reads, example", [("en", "reads only the task world's characters", "for example"),
                                                  ("zh", "这个小模型只认识任务世界里的字符", "例如")])
def test_a_chinese_prompt_is_told_what_the_tiny_model_reads(served, lang, reads, example):
    with pytest.raises(serve.UnreadablePrompt) as err:
        serve.validate_request(served, "Q:三加五=", 0.6, 0.95, 10, max_tokens_cap=64, max_prompt_chars=2000,
                               lang=lang)
    message = str(err.value)
    vocab = "".join(sorted(t for t in served.tokenizer.get_vocab() if len(t) == 1 and t != " "))
    assert reads in message and vocab in message and example in message and "Q:4759+86=" in message
    assert "'三' (U+4E09)" in message and "'加' (U+52A0)" in message and "'五' (U+4E94)" in message


def test_app_text_says_everything_in_both_languages():
    from utils.app_text import TEXT, placeholders, say

    assert TEXT["en"].keys() == TEXT["zh"].keys()
    for key in TEXT["en"]:
        assert placeholders(TEXT["en"][key]) == placeholders(TEXT["zh"][key]), key
    cjk = [key for key, text in TEXT["zh"].items() if any("\u4e00" <= ch <= "\u9fff" for ch in text)]
    same = {"top_p", "field_top_p"}  # the sampling parameter's name is the same in both
    assert set(TEXT["zh"]) - set(cjk) == same
    assert say("中文", "generate") == say("zh", "generate") == "生成" and say("English", "generate") == "Generate"
    with pytest.raises(ValueError, match="Unknown language 'fr'"):
        say("fr", "generate")


def test_a_bad_number_is_named_in_the_apps_language():
    from utils import serve

    with pytest.raises(serve.InputError, match="^温度 必须是数字"):
        serve._number("hot", "temperature", "zh")
    with pytest.raises(serve.InputError, match="^最多生成的 token 数 必须是有限的数字"):
        serve._number(float("nan"), "max_new_tokens", "zh")
    with pytest.raises(serve.InputError, match="^temperature must be"):
        serve._number("hot", "temperature", "en")


def test_check_lines_in_chinese():
    check = {"reference": "15", "model_answer": "14", "well_formed": True, "correct": False, "steps_correct": False}
    assert serve.describe_check(check, lang="zh") == "❌ 错误 – 模型答 14，参考答案是 15"
    assert serve.describe_check(dict(check, correct=True, steps_correct=True), short=True, lang="zh") == "✅ 正确"
    assert serve.describe_check(None, lang="zh").startswith("（不是任务世界的题目")


def test_validation_greedy_and_cap(served):
    req = serve.validate_request(served, " Q:7+8= ", 0, 0.95, 500, max_tokens_cap=64, max_prompt_chars=2000)
    assert req.prompt == "Q:7+8=" and not req.do_sample and req.max_new_tokens == 64
    assert any("greedy" in n for n in req.notes) and any("capped" in n for n in req.notes)


def test_validation_accepts_the_temperature_bounds(served):
    """The range is closed: 0 (greedy) and MAX_TEMPERATURE itself are allowed."""
    assert serve.MAX_TEMPERATURE == 2.0
    hot = serve.validate_request(served, "Q:7+8=", 2.0, 1.0, 10, max_tokens_cap=64, max_prompt_chars=2000)
    assert hot.do_sample and hot.temperature == 2.0 and hot.top_p == 1.0 and hot.notes == []


def test_user_prompt_is_escaped_like_the_model_text():
    prompt = 'Q:<script>alert("x")</script><b>7</b>+8= & <img src=x onerror=alert(1)>'
    result = {"thinking": "<script>t</script>", "answer": "<b>15</b>", "thinking_done": True, "done": False}
    for msgs in (serve._messages(prompt, None), serve._messages(prompt, result)):
        user = msgs[0]
        assert user["role"] == "user"
        assert user["content"] == ('Q:&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;7&lt;/b&gt;+8= '
                                   '&amp; &lt;img src=x onerror=alert(1)&gt;')
        assert "<" not in user["content"] and ">" not in user["content"]
    _, thinking, answer = serve._messages(prompt, result)
    assert thinking["content"] == "&lt;script&gt;t&lt;/script&gt;" and answer["content"] == "**&lt;b&gt;15&lt;/b&gt;**"


def test_refuses_pickle_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="safetensors only"):
        serve.load_served_model("student", tmp_path)


def test_cli_defaults_are_safe():
    args = serve.parse_args([])
    assert args.host == "127.0.0.1" and args.share is False and args.model is None and args.hub is False
    assert serve.parse_args(["--host", "0.0.0.0", "--share"]).share is True


@pytest.fixture
def no_loading(monkeypatch):
    """Record what ``main`` would load and launch, without loading or launching anything."""
    calls = []
    monkeypatch.setattr(serve, "load_served_model", lambda *a, **k: calls.append(("load", a, k)))
    monkeypatch.setattr(serve, "build_app", lambda *a, **k: calls.append(("build_app", a, k)) or "demo")
    monkeypatch.setattr(serve, "launch", lambda *a, **k: calls.append(("launch", a, k)))
    return calls


@pytest.mark.parametrize("option", ["--model", "--teacher"])
def test_cli_refuses_a_path_that_does_not_exist_without_hub(tmp_path, capsys, no_loading, option):
    typo = "artifacts/tiny/studnet"  # a typo: without the check it would be handed to the loader as a hub id
    argv = ["--profile", "tiny", "--model", str(tmp_path), "--teacher", str(tmp_path)]
    argv[argv.index(option) + 1] = typo
    assert serve.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{option} {typo}" in err and "no model folder" in err and "--hub" in err
    assert no_loading == []  # nothing was loaded, nothing downloaded, nothing served


def test_cli_refuses_a_file_as_model_folder(tmp_path, capsys, no_loading):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    assert serve.main(["--profile", "tiny", "--model", str(weights)]) == 2
    assert str(weights) in capsys.readouterr().err and no_loading == []


def test_cli_hub_flag_passes_a_hub_id_through(tmp_path, no_loading):
    assert serve.main(["--profile", "tiny", "--hub", "--model", "org/some-model"]) == 0
    assert [c[0] for c in no_loading] == ["build_app", "launch"]
    assert no_loading[0][1][:2] == ("org/some-model", None)
    no_loading.clear()
    assert serve.main(["--profile", "tiny", "--model", str(tmp_path)]) == 0  # an existing folder needs no flag
    assert no_loading[0][1][:2] == (str(tmp_path), None)


def test_cli_help_documents_the_hub_flag(capsys):
    with pytest.raises(SystemExit):
        serve.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--hub" in out and "hub id" in out and "typo" in out


# ---------------------------------------------------------------------------------------
# The live app: built from artifacts on disk, launched on a free port, called by gradio_client
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tmp_path_factory, char_tokenizer):
    """An untrained tiny student and teacher saved as artifacts, served by build_app."""
    from utils.config import get_profile
    from utils.models import build_causal_lm, save_model_artifact

    prof = get_profile("tiny")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("R1LAB_ARTIFACTS", str(tmp_path_factory.mktemp("artifacts")))
        paths = {name: save_model_artifact("tiny", name, build_causal_lm(size, char_tokenizer, seed=1),
                                           char_tokenizer, seed=1)
                 for name, size in (("student", prof.student), ("teacher", prof.teacher))}
        demo = serve.build_app(paths["student"], paths["teacher"], profile=prof, device="cpu")
        url = serve.launch(demo, port=free_port())  # default host
        try:
            yield demo, url
        finally:
            demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app[1], analytics_enabled=False, verbose=False, download_files=False)


def _generate(client, prompt="Q:7+8-3=", model="student", temperature=0.6, top_p=0.95, max_new=MAX_NEW,
              *language):
    return client.predict(prompt, model, temperature, top_p, max_new, *language, api_name="/generate")


def test_binds_loopback_by_default(app):
    demo, url = app
    assert demo.server_name == "127.0.0.1" and url.startswith("http://127.0.0.1:")
    # Not reachable through another interface of this machine (when it has one).
    try:
        other = socket.gethostbyname(socket.gethostname())
    except OSError:
        other = None
    if other and not other.startswith("127."):
        with pytest.raises(OSError), socket.create_connection((other, demo.server_port), timeout=2):
            pass


def test_api_streams_tokens_then_checks(client):
    job = client.submit("Q:7+8-3=", "student", 0.6, 0.95, MAX_NEW, api_name="/generate")
    updates = list(job)
    final = job.outputs()[-1]
    assert len(updates) >= 3, "tokens should arrive one by one, not all at the end"
    assert [u["new_tokens"] for u in updates] == sorted(u["new_tokens"] for u in updates)
    assert final["done"] and final["text"].startswith("<think>") and 1 <= final["new_tokens"] <= MAX_NEW
    assert final["first_token_ms"] is not None and final["first_token_ms"] <= final["total_ms"]
    assert final["check"]["reference"] == "12" and final["check"]["family"] == "arith"


@pytest.mark.parametrize("prompt, temperature, top_p, max_new, message", [
    ("", 0.6, 0.95, MAX_NEW, "prompt is empty"),
    ("7" * 5000, 0.6, 0.95, MAX_NEW, "too long"),
    ("Q:7+8=é", 0.6, 0.95, MAX_NEW, "does not know"),
    ("Q:你好", 0.6, 0.95, MAX_NEW, "does not know"),
    ("Q:7+8=", 0.6, 0.95, 0, "at least 1"),
    ("Q:7+8=", 0.6, 1.5, MAX_NEW, "top_p"),
    # the UI's slider stops at 1.5, but the API takes any number: the function behind it checks
    ("Q:7+8=", 50, 0.95, MAX_NEW, "temperature must be between 0 \\(greedy\\) and 2, got 50"),
    ("Q:7+8=", -1, 0.95, MAX_NEW, "temperature must be between 0"),
])
def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(client, prompt, temperature, top_p,
                                                                  max_new, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        _generate(client, prompt, temperature=temperature, top_p=top_p, max_new=max_new)
    assert _generate(client)["done"]


def test_temperature_zero_is_greedy(client):
    a, b = _generate(client, temperature=0), _generate(client, temperature=0)
    assert a["greedy"] and any("greedy" in n for n in a["notes"])
    assert a["text"] == b["text"]


def test_unknown_model_name(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Unknown model"):
        _generate(client, model="gpt-5")


def test_generation_error_is_reported_and_the_app_keeps_serving(app, client):
    from gradio_client.exceptions import AppError

    model = app[0].served_models["student"].model

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    model.generate = broken  # an instance attribute shadows the method
    try:
        with pytest.raises(AppError, match="out of memory.*still running"):
            _generate(client)
    finally:
        del model.generate
    assert _generate(client)["done"]


def test_ten_concurrent_requests_all_answered(client):
    prompts = [f"Q:{i}+{i % 9 + 1}=" for i in range(10)]

    def ask(prompt):
        return _generate(client, prompt, temperature=0.6)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(ask, prompts))
    assert time.perf_counter() - start < 60
    assert [r["prompt"] for r in results] == prompts  # every request answered, none mixed up
    assert all(r["done"] and r["new_tokens"] >= 1 for r in results)
    assert all(r["check"]["reference"] == str(i + i % 9 + 1) for i, r in enumerate(results))


def _text(message) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_chat_escapes_the_user_prompt(client):
    """The rendered history shows the prompt's markup as text (escaped), like the model's."""
    # "/" is not in the tiny tokenizer's alphabet, so no closing tags: "<b>" and "<i>" open ones
    student, _, _ = client.predict("Q:<b>7+8=<i>", "student", 0, 0.95, MAX_NEW, api_name="/chat")
    shown = _text(student[0])
    assert student[0]["role"] == "user"
    assert shown == "Q:&lt;b&gt;7+8=&lt;i&gt;", shown


def test_chat_both_models_side_by_side(client):
    student, teacher, stats = client.predict("Q:A=5,B=3,C=8;max?", "both", 0, 0.95, MAX_NEW, api_name="/chat")
    for pane in (student, teacher):
        assert pane[0]["role"] == "user"
        thinking = pane[1]
        assert thinking["metadata"]["title"] == serve.THINKING_TITLE
        assert "reference C" in pane[-1]["content"][0]["text"]
    assert "| student |" in stats and "| teacher |" in stats and " ms |" in stats


@pytest.mark.parametrize("language, reads, header, check", [
    ("English", "This tiny model reads only the task world's characters", "| model | first token |", "reference C"),
    ("中文", "这个小模型只认识任务世界里的字符", "| 模型 | 首个 token |", "参考答案 C"),
])
def test_language_switch_one_request_each(client, language, reads, header, check):
    """Per language: a Chinese prompt is answered in the chat with what the tiny model reads (no error);
    a real problem gets its check line and statistics in that language; a bad request to /generate
    gets its error message in that language."""
    from gradio_client.exceptions import AppError

    student, teacher, stats = client.predict("Q:三加五等于几？", "both", 0.6, 0.95, MAX_NEW, language,
                                             api_name="/chat")
    for pane in (student, teacher):
        assert [m["role"] for m in pane] == ["user", "assistant"]
        reply = _text(pane[1])
        assert reads in reply and "'三' (U+4E09)" in reply and "Q:4759+86=" in reply
    assert stats == ""

    student, teacher, stats = client.predict("Q:A=5,B=3,C=8;max?", "both", 0, 0.95, MAX_NEW, language,
                                             api_name="/chat")
    assert check in _text(student[-1]) and check in _text(teacher[-1])
    assert stats.startswith(header)

    message = "at least 1" if language == "English" else "至少为 1"
    with pytest.raises(AppError, match=message):
        _generate(client, "Q:7+8=", "student", 0.6, 0.95, 0, language)


def test_unknown_language_is_refused(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Unknown language 'klingon'"):
        _generate(client, "Q:7+8=", "student", 0.6, 0.95, MAX_NEW, "klingon")
    assert _generate(client)["done"]


def test_cli_without_a_student_says_what_to_do(artifacts_tmp, capsys):
    assert serve.main(["--profile", "tiny"]) == 2
    assert "make run" in capsys.readouterr().err
