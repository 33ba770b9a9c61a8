"""Benchmark (make bench): student SFT tokens/s with and without packing, same data and steps.

Three runs of the same student on the same data: padded batches (no packing), TRL's default
packing (best-fit decreasing, trained padding-free) and "wrapped" packing. Writes
artifacts/bench/packing.json with the figures and the ratios packed/padded. Tokens are the
real (non-padding) tokens TRL counts, so the ratios compare useful work per second.
"""


from utils.bench import write_benchmark
from utils.pipeline import setup
from utils.models import build_causal_lm
from utils.sft import to_sft_dataset, train_sft
from utils.tasks import make_problems
from utils.tokenizer import build_char_tokenizer


def main(steps: int = 40) -> dict:
    run = setup("tiny", 0, quiet=True)
    tok = build_char_tokenizer()
    data = to_sft_dataset(make_problems(2000, "train", seed=0))
    out = {"steps": steps}
    for name, packing, strategy in (("padded", False, "bfd"), ("packed", True, "bfd"),
                                    ("wrapped", True, "wrapped")):
        model = build_causal_lm(run.profile.student, tok, seed=0)
        res = train_sft(model, tok, data, steps=steps, lr=1e-3, batch_size=run.profile.sft_batch_size,
                        seed=0, packing=packing, packing_strategy=strategy, progress=False)
        out[f"tokens_per_s_{name}"] = round(res.tokens_per_s, 1)
    out["ratio"] = round(out["tokens_per_s_packed"] / out["tokens_per_s_padded"], 2)
    out["ratio_wrapped"] = round(out["tokens_per_s_wrapped"] / out["tokens_per_s_padded"], 2)
    return write_benchmark("packing", out)


if __name__ == "__main__":
    main()
