"""``make bench``: every benchmark of the course, each a ratio measured within one run.

Each script in ``scripts/bench_*.py`` times two ways of doing the same work on this machine
and writes ``artifacts/bench/<name>.json`` with both figures and their ratio; this module
runs them in turn and prints one table. Ratios, not absolute times, are the claims: they
survive a slower or busier machine far better than seconds do.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .artifacts import REPO_ROOT, artifacts_root
from .config import set_offline_env

BENCHMARKS = [
    ("generation", "scripts/bench_generation.py", "batched vs one-at-a-time generation, tokens/s ratio (target ≥ 10)"),
    ("ppo", "scripts/bench_ppo.py", "our PPO update vs TRL 1.12's, time ratio (target ≤ 1.0)"),
    ("packing", "scripts/bench_packing.py", "SFT tokens/s with vs without packing"),
]


def write_benchmark(name: str, result: dict) -> dict:
    """Print one benchmark's figures and save them as ``artifacts/bench/<name>.json``."""
    path = artifacts_root() / "bench" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


def main() -> int:
    set_offline_env()
    failed = 0
    for name, script, what in BENCHMARKS:
        path = REPO_ROOT / script
        if not path.exists():
            print(f"– {name}: {script} not present, skipped")
            continue
        print(f"▶ {name}: {what}", flush=True)
        if subprocess.run([sys.executable, str(path)], cwd=REPO_ROOT).returncode != 0:
            print(f"✗ {name} failed", file=sys.stderr)
            failed += 1
    print("\nBenchmark summary (artifacts/bench/*.json)")
    for name, _, what in BENCHMARKS:
        out = artifacts_root() / "bench" / f"{name}.json"
        if out.exists():
            data = json.loads(out.read_text())
            print(f"  {name:10} ratio = {data.get('ratio')}   ({what})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
