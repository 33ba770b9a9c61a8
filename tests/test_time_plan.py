"""The colab profile's time plan (utils.time_plan): the series fits a free Colab session on a T4."""

import pytest

from utils.config import PROFILES
from utils.time_plan import ASSUMPTIONS, _eval_points, count_calls, format_time_plan, plan_times, total_minutes

COLAB = PROFILES["colab"]
BUDGET_MINUTES = 90


def by_stage(profile):
    return {s.stage: s for s in plan_times(profile)}


def test_colab_series_plans_within_90_minutes_on_a_t4():
    minutes = total_minutes(COLAB)
    assert minutes <= BUDGET_MINUTES, format_time_plan(COLAB, details=True)
    assert minutes > 30   # a plan that small would have lost a stage (or its evaluations) on the way


def test_stage_labels_are_the_memory_planners():
    from utils.memory_planner import plan_profile

    assert [s.stage for s in plan_times(COLAB)] == [p["stage"] for p in plan_profile(COLAB)]


def test_every_stage_does_work():
    for s in plan_times(COLAB):
        assert s.seconds > 0 and s.assumption, s
        assert s.tokens_generated > 0, s.stage            # every stage evaluates or samples
    trained = {s.stage for s in plan_times(COLAB) if s.tokens_trained}
    assert trained == {"02 teacher SFT", "02 reward model", "02 PPO", "02 GRPO", "04 student SFT"}


def test_counts_are_the_profiles_arithmetic():
    p, stages = COLAB, by_stage(COLAB)
    assert stages["02 teacher SFT"].tokens_trained == p.teacher_sft_steps * p.sft_batch_size * p.sft_max_length
    assert stages["02 reward model"].tokens_trained == p.rm_steps * p.rm_batch_size * 2 * p.rm_max_length
    assert stages["04 student SFT"].tokens_trained == 4 * p.student_sft_steps * p.student_batch_size * p.sft_max_length
    sampled = (p.n_distill_prompts + p.n_val) * p.samples_per_prompt   # + the threshold chosen on validation
    assert stages["03 sampling"].tokens_generated == sampled * p.max_new_tokens


@pytest.mark.parametrize("field, stage", [("teacher_sft_steps", "02 teacher SFT"), ("rm_steps", "02 reward model"),
                                          ("grpo_steps", "02 GRPO"), ("student_sft_steps", "04 student SFT")])
def test_doubling_a_step_budget_doubles_that_stages_training(field, stage):
    doubled = COLAB.replace(**{field: 2 * getattr(COLAB, field)})
    before, after = by_stage(COLAB), by_stage(doubled)
    assert after[stage].tokens_trained == 2 * before[stage].tokens_trained
    assert after[stage].seconds > before[stage].seconds
    for other in before:   # the other stages do not move
        if other != stage:
            assert after[other].tokens_trained == before[other].tokens_trained


def test_doubling_ppo_steps_doubles_both_ppo_runs():
    """Notebook 02 runs PPO twice: ppo_steps // 3 steps against the reward model alone, then ppo_steps;
    each step trains the policy and the critic for ppo_epochs on every rollout."""
    from utils.ppo import PPOConfig

    def expected(steps):
        p = COLAB
        return (max(1, steps // 3) + steps) * p.ppo_batch * PPOConfig().ppo_epochs * 2 * (256 + p.max_new_tokens)

    doubled = COLAB.replace(ppo_steps=2 * COLAB.ppo_steps)
    assert by_stage(COLAB)["02 PPO"].tokens_trained == expected(COLAB.ppo_steps)
    assert by_stage(doubled)["02 PPO"].tokens_trained == expected(2 * COLAB.ppo_steps)


def test_fewer_evaluations_cost_less():
    sparse = COLAB.replace(rl_eval_every=2 * COLAB.rl_eval_every)
    for stage in ("02 PPO", "02 GRPO"):
        assert by_stage(sparse)[stage].tokens_generated < by_stage(COLAB)[stage].tokens_generated
        assert by_stage(sparse)[stage].tokens_trained == by_stage(COLAB)[stage].tokens_trained


@pytest.mark.parametrize("steps, every", [(20, 10), (6, 10), (40, 10), (7, 3), (1, 5), (150, 50)])
def test_eval_points_match_the_callbacks(steps, every):
    """utils.sft._EvalEvery, utils.grpo._EvalCallback and utils.ppo.train_ppo evaluate when
    ``step % every == 0`` or at the last step."""
    assert _eval_points(steps, every) == sum(1 for s in range(1, steps + 1) if s % every == 0 or s == steps)


def test_every_assumption_has_a_source():
    assert ASSUMPTIONS
    for name, a in ASSUMPTIONS.items():
        assert a.value > 0 and a.unit, name
        assert isinstance(a.source, str) and len(a.source) > 20, name
    # the T4's figures come from its datasheet; the utilisation figures say they are assumptions
    for name in ("fp16_tflops", "fp32_tflops", "bandwidth_gbs"):
        assert "datasheet" in ASSUMPTIONS[name].source
    for name in ("train_mfu", "forward_mfu", "bandwidth_efficiency", "dispatch_ms_per_layer"):
        assert ASSUMPTIONS[name].source.startswith("ASSUMPTION")


def test_table_prints_every_stage_the_total_and_the_assumptions():
    text = format_time_plan(COLAB)
    for s in plan_times(COLAB):
        assert s.stage in text and f"{s.minutes:.1f}" in text
    total_line = next(line for line in text.splitlines() if line.startswith("total"))
    assert total_line.split()[-1] == f"{total_minutes(COLAB):.1f}"
    assert "Downloads" in text or "downloads" in text
    for name, a in ASSUMPTIONS.items():
        assert name in text and a.source in text


def test_details_list_every_call():
    text = format_time_plan(COLAB, details=True)
    for calls in count_calls(COLAB).values():
        for call in calls:
            assert call.what in text
