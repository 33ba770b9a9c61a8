"""Implementation exercises: each checker accepts a learner's correct function, rejects the typical
wrong answers with their own hint, and answers bad functions (raising, unwritten, wrong shape or dtype,
NaN, mutating their inputs) with a hint – never with a crash."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utils.exercises import n01, n02
from utils.exercises.grading import diagnose


# --- correct answers, written as a learner would ---------------------------------------

def kd_loss(student_logits, teacher_logits, temperature):
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = F.softmax(teacher_logits / temperature, dim=-1)
    kl = (p_teacher * (torch.log(p_teacher) - log_p_student)).sum(-1).mean()
    return temperature**2 * kl


def gae(rewards, values, gamma, lam):
    advantages, last = torch.zeros_like(rewards), 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        last = delta + gamma * lam * last
        advantages[t] = last
    return advantages


def clipped_surrogate(logp, old_logp, advantages, mask, clip_epsilon):
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip_epsilon, 1 + clip_epsilon) * advantages)
    return -(surrogate * mask).sum() / mask.sum()


def group_advantages(rewards, group_size):
    groups = rewards.reshape(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    return (centred / (groups.std(dim=1, keepdim=True) + 1e-4)).flatten()


CHECKERS = {"kd": (n01.check_kd_loss, n01._kd_mistakes, kd_loss),
            "gae": (n02.check_gae_impl, n02._gae_mistakes, gae),
            "surrogate": (n02.check_clipped_surrogate, n02._surrogate_mistakes, clipped_surrogate),
            "group": (n02.check_group_advantages_impl, n02._group_mistakes, group_advantages)}


@pytest.mark.parametrize("name", CHECKERS)
def test_the_solution_passes(name, capsys):
    check, _, solution = CHECKERS[name]
    assert check(solution) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("name, mistake", [(name, m.name) for name, (_, mistakes, _) in CHECKERS.items()
                                           for m in mistakes()])
def test_each_typical_wrong_answer_is_rejected_with_its_own_hint(name, mistake, capsys):
    check, mistakes, _ = CHECKERS[name]
    wrong = next(m for m in mistakes() if m.name == mistake)
    assert check(wrong.compute) is False
    assert str(wrong.hint) in capsys.readouterr().out


def test_each_checker_names_at_least_two_wrong_answers():
    assert all(len(mistakes()) >= 2 for _, mistakes, _ in CHECKERS.values())


def test_gae_off_by_one_written_by_hand_gets_the_off_by_one_hint(capsys):
    def off_by_one(rewards, values, gamma, lam):
        advantages, last = torch.zeros_like(rewards), 0.0
        for t in reversed(range(len(rewards))):
            delta = rewards[t] + gamma * values[t] - values[t]     # V_t where V_{t+1} belongs
            last = delta + gamma * lam * last
            advantages[t] = last
        return advantages

    assert n02.check_gae_impl(off_by_one) is False
    assert "off by one step" in capsys.readouterr().out


def test_group_advantages_without_epsilon_gets_the_nan_hint(capsys):
    def no_eps(rewards, group_size):
        g = rewards.reshape(-1, group_size)
        return ((g - g.mean(1, keepdim=True)) / g.std(1, keepdim=True)).flatten()

    assert n02.check_group_advantages_impl(no_eps) is False
    assert "add 1e-4 to the standard deviation" in capsys.readouterr().out


# --- bad functions: a hint each, never a crash -----------------------------------------

def raises(*args):
    return 1 / 0


def not_written(*args):
    raise NotImplementedError


def returns_nothing(*args):
    pass


def wrong_shape(*args):
    return torch.zeros(2, 3)


def integer_result(s, t, T):
    return torch.tensor(0)


def nan_result(s, t, T):
    return torch.tensor(float("nan"))


def mutates(s, t, T):
    s /= T                                   # in place, on the caller's tensor
    return kd_loss(s * T, t, T)


@pytest.mark.parametrize("fn, hint", [
    (raises, "raised ZeroDivisionError"),
    (not_written, "not written yet"),
    (returns_nothing, "returned None"),
    (wrong_shape, "should have shape ()"),
    (integer_result, "should be floating point"),
    (nan_result, "NaN or inf"),
    (mutates, "changed its inputs in place"),
    ("kd_loss", "pass the function itself"),
])
def test_bad_functions_get_a_hint(fn, hint, capsys):
    assert n01.check_kd_loss(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ not yet – hint:") and hint in out


def test_the_error_hint_points_at_the_learners_line():
    ok, hint = diagnose(raises, lambda *a: torch.tensor(0.0), [(1,)])
    assert not ok and "return 1 / 0" in str(hint)


@pytest.mark.parametrize("check", [n02.check_gae_impl, n02.check_clipped_surrogate, n02.check_group_advantages_impl])
def test_every_checker_survives_bad_functions(check, capsys):
    for fn in (raises, not_written, returns_nothing, wrong_shape):
        assert check(fn) is False
    assert capsys.readouterr().out.count("✗ not yet") == 4


# --- notebook 03: a step-level filter ---------------------------------------------------

def step_filter(rows):
    from utils.tasks import steps_hold, verify

    return [row for row in rows if verify(row["completion"], row["answer"]) and steps_hold(row["completion"])]


def test_step_filter_solution_and_mistakes(capsys):
    from utils.exercises import n03

    assert n03.check_step_filter(step_filter) is True
    for mistake in n03._step_filter_mistakes():
        assert n03.check_step_filter(mistake.compute) is False
        assert str(mistake.hint) in capsys.readouterr().out
    assert n03.check_step_filter(lambda rows: rows[:1]) is False
    assert "you drop" in capsys.readouterr().out
    assert n03.check_step_filter(lambda rows: [r["completion"] for r in rows]) is False   # not rows
    assert n03.check_step_filter(lambda rows: rows.clear()) is False                      # mutates, returns None
    out = capsys.readouterr().out
    assert "returned None" in out or "changed its inputs" in out


# --- notebook 04: the paced curriculum's sampler ----------------------------------------

def pacing_sampler(rows, steps, batch_size, seed):
    import random

    rng = random.Random(seed)
    levels = sorted({r["difficulty"] for r in rows})
    order = []
    for k, level in enumerate(levels):
        stage_steps = (k + 1) * steps // len(levels) - k * steps // len(levels)
        pool = [r for r in rows if r["difficulty"] <= level]
        need = stage_steps * batch_size
        while need > 0:
            chunk = rng.sample(pool, len(pool))
            order += chunk[:need]
            need -= min(need, len(chunk))
    return order


def test_curriculum_sampler_solution_and_the_course_version_pass():
    from utils.exercises import n04
    from utils.sft import curriculum_schedule

    assert n04.check_curriculum_sampler(pacing_sampler) is True
    assert n04.check_curriculum_sampler(
        lambda rows, steps, batch_size, seed: curriculum_schedule(rows, steps=steps, batch_size=batch_size, seed=seed))


def no_pacing(rows, steps, batch_size, seed):
    import random

    rng = random.Random(seed)
    return [rng.choice(rows) for _ in range(steps * batch_size)]


def sorted_replay(rows, steps, batch_size, seed):
    ordered = sorted(rows, key=lambda r: r["difficulty"])
    return [ordered[i % len(ordered)] for i in range(steps * batch_size)]


def only_its_level(rows, steps, batch_size, seed):
    import random

    rng, levels, order = random.Random(seed), sorted({r["difficulty"] for r in rows}), []
    for k, level in enumerate(levels):
        pool = [r for r in rows if r["difficulty"] == level]
        n = ((k + 1) * steps // len(levels) - k * steps // len(levels)) * batch_size
        order += [rng.choice(pool) for _ in range(n)]
    return order


def sorted_in_place(rows, steps, batch_size, seed):
    rows.sort(key=lambda r: -r["difficulty"])
    return pacing_sampler(rows, steps, batch_size, seed)


@pytest.mark.parametrize("fn, hint", [
    (no_pacing, "holds rows harder than level"),
    (sorted_replay, "holds rows harder than level"),
    (only_its_level, "reads only level 2"),
    (lambda rows, steps, batch_size, seed: pacing_sampler(rows, steps, batch_size, seed)[:-1], "your schedule has"),
    (sorted_in_place, "changed `rows`"),
    (lambda rows, steps, batch_size, seed: None, "returned None"),
    (raises, "raised ZeroDivisionError"),
])
def test_curriculum_sampler_rejects_typical_wrong_answers(fn, hint, capsys):
    from utils.exercises import n04

    assert n04.check_curriculum_sampler(fn) is False
    assert hint in capsys.readouterr().out


def test_one_difficulty_per_batch_is_caught():
    from utils.exercises import n04

    rows = n04.curriculum_rows()
    stage_sorted = []
    for k, level in enumerate((1, 2, 3)):   # right pools, but each batch of one level (sorted within the stage)
        pool = sorted((r for r in rows if r["difficulty"] <= level), key=lambda r: r["difficulty"])
        stage_sorted += [pool[i % len(pool)] for i in range(2 * 4)]
    problem = n04.curriculum_problems(stage_sorted, rows, 6, 4)
    assert problem is not None and ("one difficulty" in str(problem) or "never reads" in str(problem))
