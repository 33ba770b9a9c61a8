"""Notebook 04's pieces: the student trains through the shared SFT path; measurements are sane."""

import pytest

from utils.config import get_profile, setup
from utils.measure import batched_tokens_per_s, disk_mb, latency_ms, peak_generation_memory_mb
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


def test_latency_and_throughput_are_positive_and_batched_is_faster(models, char_tokenizer):
    problems = make_problems(32, "test", seed=0)
    ms = latency_ms(models["student"], char_tokenizer, problems, 8, n=4)
    tps = batched_tokens_per_s(models["student"], char_tokenizer, problems, 8)
    assert ms > 0 and tps > 0
    assert tps > 8 / (ms / 1e3)  # batched beats one-at-a-time tokens/s


def test_disk_size(tmp_path, models):
    models["student"].save_pretrained(tmp_path)
    assert disk_mb(tmp_path) == pytest.approx((tmp_path / "model.safetensors").stat().st_size / 2**20)


def test_train_student_learns_something(artifacts_tmp):
    from utils import student

    run = setup("tiny", 0, quiet=True)
    run.profile = run.profile.replace(student_sft_steps=30, n_test=30)
    rows = [p.to_dict() for p in make_problems(200, "train", seed=0)]
    model, sft, ev = student.train_student(run, rows, progress=False)
    assert sft.losses[-1][1] < sft.losses[0][1]
    assert 0.0 <= ev.accuracy <= 1.0 and set(ev.per_family) == set(run.profile.families)
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
