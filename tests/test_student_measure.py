"""Notebook 04's pieces: the student trains through the shared SFT path; measurements are sane."""

import pytest

from utils.config import Run, get_profile
from utils.measure import disk_mb, latency_ms, peak_generation_memory_mb
from utils.models import build_causal_lm, count_params
from utils.tasks import make_problems


@pytest.fixture(scope="module")
def models(char_tokenizer):
    prof = get_profile("tiny")
    return {n: build_causal_lm(getattr(prof, n), char_tokenizer).eval() for n in ("teacher", "student")}


def test_peak_memory_tracks_model_size_and_batch(models, char_tokenizer):
    prompts = [p.prompt for p in make_problems(4, "test", seed=0)]
    t = peak_generation_memory_mb(models["teacher"], char_tokenizer, prompts[:1], 16)
    s = peak_generation_memory_mb(models["student"], char_tokenizer, prompts[:1], 16)
    t4 = peak_generation_memory_mb(models["teacher"], char_tokenizer, prompts, 16)
    assert s < t < t4  # bigger model, bigger batch: more memory
    weights_mb = count_params(models["teacher"]) * 4 / 2**20
    assert weights_mb < t < weights_mb * 3


def test_latency_and_throughput_divide_what_they_say(models, char_tokenizer, monkeypatch):
    """The arithmetic of the two figures, on a fake clock: tokens/s = tokens generated ÷ wall time, and
    latency = the median batch-1 answer time. How fast batching is, is measured by `make bench`
    (scripts/bench_generation.py, as a ratio in one run), never asserted in a unit test."""
    from types import SimpleNamespace

    from utils import measure
    from utils.generation import generate

    problems = make_problems(32, "test", seed=0)
    _, n_tokens = generate(models["student"], char_tokenizer, [p.prompt for p in problems], max_new_tokens=8,
                           batch_size=256)
    assert n_tokens > 0
    ticks = iter([10.0, 12.5])
    monkeypatch.setattr(measure, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    assert measure.batched_tokens_per_s(models["student"], char_tokenizer, problems, 8) == pytest.approx(n_tokens / 2.5)

    # four answers taking 10, 20, 30 and 100 ms (the warm-up answer is not timed): the median is 25 ms
    ticks = iter([0.0, 0.010, 1.0, 1.020, 2.0, 2.030, 3.0, 3.100])
    assert latency_ms(models["student"], char_tokenizer, problems, 8, n=4) == pytest.approx(25.0)


def test_disk_size(tmp_path, models):
    models["student"].save_pretrained(tmp_path)
    assert disk_mb(tmp_path) == pytest.approx((tmp_path / "model.safetensors").stat().st_size / 2**20)


def _wrong(problem):
    """The ground-truth completion with a wrong final answer: well formed, verified wrong."""
    return problem.completion.rsplit("A:", 1)[0] + "A:" + ("Z" if problem.family == "order" else "999")


def test_evaluate_counts_exactly_the_verified_completions(monkeypatch):
    """A hand-built set of completions: 4 of 6 verify, so accuracy is exactly 2/3."""
    import random

    import utils.generation as generation
    from utils.tasks import generate_problem

    rng = random.Random(0)
    problems = [generate_problem(f, 2, rng) for f in ("add", "add", "add", "arith", "arith", "order")]
    completions = [problems[0].completion, problems[1].completion, _wrong(problems[2]),
                   problems[3].completion, problems[4].completion.replace("</think>", ""),  # malformed
                   problems[5].completion]
    calls = []

    def fake_generate(model, tokenizer, prompts, **kw):
        calls.append((model, list(prompts), kw["max_new_tokens"]))
        return list(completions), 17

    monkeypatch.setattr(generation, "generate", fake_generate)
    ev = generation.evaluate("model", "tokenizer", problems, max_new_tokens=9)
    assert calls == [("model", [p.prompt for p in problems], 9)]
    assert ev.correct == [True, True, False, True, False, True]
    assert ev.accuracy == 4 / 6
    assert ev.per_family == {"add": 2 / 3, "arith": 0.5, "order": 1.0}
    assert ev.completions == completions and ev.tokens == 17
    with pytest.raises(ValueError):
        generation.evaluate("model", "tokenizer", [], max_new_tokens=9)


def test_train_student_learns_something(artifacts_tmp, monkeypatch):
    """The student trains, then is graded on the *test* split with the verifier.

    Generation runs for real (the trained model), but on the test prompts its completions are
    swapped for known ones – the ground truth for 20 of the 30 problems, a wrong answer for 10 –
    so the reported accuracy must be exactly 2/3: graded on another split, on the wrong model,
    or by another rule, it would not be.
    """
    import utils.generation as generation
    from utils import student
    from utils.pipeline import ensure_tokenizer
    from utils.splits import test_problems

    import torch

    # A Run built directly (CPU, float32): no dependence on where setup() lives or on a GPU.
    run = Run(profile=get_profile("tiny").replace(student_sft_steps=30, n_test=30), seed=0, device="cpu",
              dtype=torch.float32)
    ensure_tokenizer(run, "student")  # the tokenizer artifact of notebook 01
    tests = test_problems(run)
    known = {p.prompt: (p.completion if i % 3 else _wrong(p)) for i, p in enumerate(tests)}
    real_generate, test_calls = generation.generate, []

    def spy(model, tokenizer, prompts, **kw):
        texts, n = real_generate(model, tokenizer, prompts, **kw)
        if list(prompts) == [p.prompt for p in tests]:
            test_calls.append(model)
            texts = [known[q] for q in prompts]
        return texts, n

    monkeypatch.setattr(generation, "generate", spy)
    rows = [p.to_dict() for p in make_problems(200, "train", seed=0)]
    model, sft, ev = student.train_student(run, rows, progress=False)
    assert sft.losses[-1][1] < sft.losses[0][1]
    assert len(test_calls) == 1 and test_calls[0] is model  # the returned model, on the test split, once
    assert ev.correct == [bool(i % 3) for i in range(30)]
    assert ev.accuracy == 20 / 30 and ev.per_family == {"add": 20 / 30} and run.profile.families == ("add",)
    assert count_params(model) == count_params(build_causal_lm(run.profile.student, __import__(
        "utils.tokenizer", fromlist=["x"]).build_char_tokenizer()))


def test_accuracy_by_groups_and_checks_lengths():
    from utils.measure import accuracy_by

    problems = make_problems(6, "test", seed=0)
    levels = [p.difficulty for p in problems]
    a = [True, False, True, True, False, False]
    table = accuracy_by(problems, {"a": a, "b": [not x for x in a]}, key=lambda p: p.difficulty)
    for level in set(levels):
        picked = [x for x, lv in zip(a, levels) if lv == level]
        assert table.loc[level, "a"] == pytest.approx(sum(picked) / len(picked))
        assert table.loc[level, "b"] == pytest.approx(1 - sum(picked) / len(picked))
        assert table.loc[level, "n"] == len(picked)
    with pytest.raises(ValueError, match="verdicts"):
        accuracy_by(problems, {"a": a[:-1]}, key=lambda p: p.difficulty)


def test_interleaved_latency_times_every_model_on_the_same_prompts(models, char_tokenizer, monkeypatch):
    import utils.measure as measure

    seen = []
    real_generate = measure.generate

    def spy(model, tokenizer, prompts, **kw):
        seen.append((model, tuple(prompts)))
        return real_generate(model, tokenizer, prompts, **kw)

    monkeypatch.setattr(measure, "generate", spy)
    problems = make_problems(3, "test", seed=0)
    ms = measure.interleaved_latency_ms({"t": (models["teacher"], char_tokenizer),
                                         "s": (models["student"], char_tokenizer)}, problems, 4, n=3)
    assert set(ms) == {"t", "s"} and all(v > 0 for v in ms.values())
    timed = seen[2:]  # after one warm-up answer each
    assert [m for m, _ in timed] == [models["teacher"], models["student"]] * 3  # in turns
    assert [p for _, p in timed] == [(q.prompt,) for q in problems for _ in range(2)]
    with pytest.raises(ValueError):
        measure.interleaved_latency_ms({"t": (models["teacher"], char_tokenizer)}, problems, 4, n=0)


def test_cuda_peak_excludes_other_resident_models(monkeypatch):
    """Five models already on the GPU (1000 MB) must not count in one model's peak."""
    import torch

    from utils import measure

    state = {"allocated": 1000 * 2**20, "peak": 1000 * 2**20}
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: state.update(peak=state["allocated"]))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: state["peak"])

    def generation():  # KV cache and activations: +300 MB at the peak, freed afterwards
        state["peak"] = state["allocated"] + 300 * 2**20

    mb = measure.cuda_peak_above_baseline_mb("cuda", 50 * 2**20, generation)
    assert mb == 350
