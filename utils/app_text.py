"""The words of notebook 05's Gradio app, in English and Chinese (the app's language switch).

``say(lang, key, **values)`` returns one message; ``LANGUAGES`` maps the switch's labels to the
codes. Every key exists in both languages (``tests/test_serve.py`` checks it, and that both
languages take the same ``{placeholders}``). The app's printed logs stay English.
"""

from __future__ import annotations

import string

LANGUAGES = {"English": "en", "中文": "zh"}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        # labels
        "title": "R1 Distill Lab – the distilled student",
        "intro": "A chain of thought streams into the collapsible **{thinking}** block, then the answer; "
                 "task-world problems are checked by the course's verifier.",
        "problem": "Problem",
        "model": "Model",
        "both": "both",
        "sampling": "Sampling (DeepSeek-R1's advice: temperature 0.6, top_p 0.95)",
        "temperature": "temperature (0 = greedy)",
        "top_p": "top_p",
        "max_new_tokens": "max new tokens",
        "generate": "Generate",
        "examples": "Held-out problems, one per family",
        "thinking": "💭 Thinking",
        "student": "student",
        "teacher": "teacher",
        # the chat and the statistics table
        "no_answer": "(no answer)",
        "not_task": "(not a task-world problem: no reference answer to check against)",
        "correct": "✅ correct – reference {reference} ({steps})",
        "steps_right": "every step right",
        "steps_differ": "but some step differs from the reference",
        "malformed": "⚠ malformed answer (not `<think>…</think>A:<answer>`) – reference {reference}",
        "wrong": "❌ wrong – the model says {answer}, the reference is {reference}",
        "short_correct": "✅ correct",
        "short_correct_step": "✅ correct (a step differs)",
        "short_wrong": "❌ wrong",
        "short_malformed": "⚠ malformed",
        "stats_header": "| model | first token | total | tokens | tokens/s | decoding | check |",
        "greedy": "greedy",
        "sampling_short": "sampling",
        # validation
        "empty": "The prompt is empty: type a problem (for example {example}) or pick an example.",
        "too_long": "The prompt is too long: {length:,} characters; this app accepts at most {limit:,}.",
        "unknown_chars": "The prompt contains characters this model's tokenizer does not know: {chars}.",
        "tiny_reads": "This tiny model reads only the task world's characters – {vocab} and spaces – and it does "
                      "not know {chars}. Write the problem the way it was trained, for example {example}.",
        "and_more": " and {n} more",
        "not_number": "{what} must be a number, got {value}.",
        "not_finite": "{what} must be a finite number, got {value}.",
        "not_whole": "max new tokens must be a whole number, got {value}.",
        "at_least_1": "max new tokens must be at least 1, got {value}.",
        "capped": "max new tokens capped at {cap} (this profile's limit).",
        "temperature_range": "temperature must be between 0 (greedy) and {high:g}, got {value:g}.",
        "top_p_range": "top_p must be in (0, 1], got {value:g}.",
        "greedy_note": "temperature 0 → greedy decoding (top_p is not used).",
        "context": "The prompt is too long for this model: {prompt_tokens} tokens plus {new_tokens} new tokens "
                   "exceed its context of {context} tokens.",
        "unknown_model": "Unknown model {name!r}: choose one of {names}.",
        "field_max_new_tokens": "max new tokens",
        "field_temperature": "temperature",
        "field_top_p": "top_p",
        "invalid_title": "Invalid input",
        "failed": "{error}. The app is still running: try again.",
        "failed_title": "Generation failed",
    },
    "zh": {
        "title": "R1 Distill Lab – 蒸馏得到的学生模型",
        "intro": "思维链会流式显示在可折叠的 **{thinking}** 块里，随后是答案；任务世界的题目由课程的验证器判分。",
        "problem": "题目",
        "model": "模型",
        "both": "两者并排",
        "sampling": "采样（DeepSeek-R1 的建议：temperature 0.6，top_p 0.95）",
        "temperature": "温度 temperature（0 = 贪心解码）",
        "top_p": "top_p",
        "max_new_tokens": "最多生成的 token 数",
        "generate": "生成",
        "examples": "留出的测试题，每个题型一道",
        "thinking": "💭 思考过程",
        "student": "学生模型",
        "teacher": "教师模型",
        "no_answer": "（没有答案）",
        "not_task": "（不是任务世界的题目：没有可以对照的参考答案）",
        "correct": "✅ 正确 – 参考答案 {reference}（{steps}）",
        "steps_right": "每一步都对",
        "steps_differ": "但有一步与参考解法不同",
        "malformed": "⚠ 答案格式不对（应为 `<think>…</think>A:<answer>`）– 参考答案 {reference}",
        "wrong": "❌ 错误 – 模型答 {answer}，参考答案是 {reference}",
        "short_correct": "✅ 正确",
        "short_correct_step": "✅ 正确（有一步不同）",
        "short_wrong": "❌ 错误",
        "short_malformed": "⚠ 格式不对",
        "stats_header": "| 模型 | 首个 token | 总耗时 | token 数 | token/秒 | 解码方式 | 判分 |",
        "greedy": "贪心",
        "sampling_short": "采样",
        "empty": "题目是空的：请输入一道题（例如 {example}），或者选一道示例题。",
        "too_long": "题目太长：{length:,} 个字符；本应用最多接受 {limit:,} 个。",
        "unknown_chars": "题目里有这个模型的分词器不认识的字符：{chars}。",
        "tiny_reads": "这个小模型只认识任务世界里的字符——{vocab} 和空格——不认识 {chars}。"
                      "请按它训练时的格式写题目，例如 {example}。",
        "and_more": "，另有 {n} 个",
        "not_number": "{what} 必须是数字，收到的是 {value}。",
        "not_finite": "{what} 必须是有限的数字，收到的是 {value}。",
        "not_whole": "最多生成的 token 数必须是整数，收到的是 {value}。",
        "at_least_1": "最多生成的 token 数至少为 1，收到的是 {value}。",
        "capped": "最多生成的 token 数已限制为 {cap}（本配置的上限）。",
        "temperature_range": "温度必须在 0（贪心解码）到 {high:g} 之间，收到的是 {value:g}。",
        "top_p_range": "top_p 必须在 (0, 1] 之内，收到的是 {value:g}。",
        "greedy_note": "温度为 0 → 贪心解码（不使用 top_p）。",
        "context": "题目对这个模型来说太长：{prompt_tokens} 个 token 加上 {new_tokens} 个新 token，"
                   "超过了它 {context} 个 token 的上下文长度。",
        "unknown_model": "没有名为 {name!r} 的模型：请从 {names} 中选择。",
        "field_max_new_tokens": "最多生成的 token 数",
        "field_temperature": "温度",
        "field_top_p": "top_p",
        "invalid_title": "输入无效",
        "failed": "{error}。应用仍在运行：请再试一次。",
        "failed_title": "生成失败",
    },
}


def language(choice: str | None) -> str:
    """The code ("en" or "zh") for a switch label ("English", "中文") or a code; ``None`` → "en"."""
    if choice is None:
        return "en"
    code = LANGUAGES.get(choice, choice)
    if code not in TEXT:
        raise ValueError(f"Unknown language {choice!r}: choose one of {', '.join([*LANGUAGES, *TEXT])}.")
    return code


def say(lang: str | None, key: str, **values) -> str:
    """The message ``key`` in ``lang`` ("en", "zh", "English" or "中文"), filled with ``values``."""
    return TEXT[language(lang)][key].format(**values)


def placeholders(text: str) -> set[str]:
    """The names a message's ``{placeholders}`` use (for the test that both languages agree)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}
