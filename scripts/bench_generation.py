"""Benchmark (make bench): batched generation vs one prompt at a time, same prompts and model.

Prints both throughputs and their ratio and writes artifacts/bench/generation.json.
Target (notebook 03's issue): batched ≥ 10× the tokens/s of the one-at-a-time loop.
"""

import time

import torch

from utils.bench import write_benchmark
from utils.pipeline import setup
from utils.generation import generate
from utils.models import build_causal_lm
from utils.tasks import make_problems
from utils.tokenizer import build_char_tokenizer


def main(n_prompts: int = 64) -> dict:
    run = setup("tiny", 0, quiet=True)
    tok = build_char_tokenizer()
    model = build_causal_lm(run.profile.teacher, tok).eval()  # same cost per token as the trained teacher
    prompts = [p.prompt for p in make_problems(n_prompts, "train", seed=0)]
    kw = dict(max_new_tokens=run.profile.max_new_tokens)
    # Force full-length generations on both sides so both generate the same number of tokens.
    model.generation_config.min_new_tokens = run.profile.max_new_tokens
    start = time.perf_counter()
    _, batched_tokens = generate(model, tok, prompts, batch_size=n_prompts, **kw)
    batched = batched_tokens / (time.perf_counter() - start)
    start, single_tokens = time.perf_counter(), 0
    for p in prompts:
        single_tokens += generate(model, tok, [p], batch_size=1, **kw)[1]
    single = single_tokens / (time.perf_counter() - start)
    out = {"prompts": n_prompts, "threads": torch.get_num_threads(), "batched_tokens_per_s": round(batched, 1),
           "one_at_a_time_tokens_per_s": round(single, 1), "ratio": round(batched / single, 2), "target": ">= 10"}
    return write_benchmark("generation", out)


if __name__ == "__main__":
    main()
