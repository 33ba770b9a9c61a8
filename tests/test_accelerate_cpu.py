"""`accelerate launch -m utils.cli student-sft` with two data-parallel CPU processes (gloo).

The README's many-GPU command, run for real on a CPU: two processes, the tiny profile, the
ground-truth arm (no teacher needed), 4 steps of 8 rows per process. It checks that the ranks
trained on *different* shards of each global batch, and that the main process alone wrote the
``student`` artifact. ``--multi_gpu`` only picks accelerate's torchrun launcher (``--cpu`` alone
starts a single process); ``CUDA_VISIBLE_DEVICES=`` keeps a GPU machine on the CPU.
"""

import json
import os
import socket
import subprocess
import sys
import time

STEPS, BATCH, ROWS, RANKS = 4, 8, 64, 2   # 4 steps x 8 rows x 2 ranks = the 64 rows, once each


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_student_sft_two_cpu_processes(tmp_path):
    artifacts, seen = tmp_path / "artifacts", tmp_path / "seen"
    env = {**os.environ, "R1LAB_ARTIFACTS": str(artifacts), "CUDA_VISIBLE_DEVICES": "",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(RANKS),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           "-m", "utils.cli", "student-sft", "--profile", "tiny", "--seed", "0", "--arm", "groundtruth",
           "--rows", str(ROWS), "--steps", str(STEPS), "--set", f"student_batch_size={BATCH}",
           "--set", "n_val=8", "--set", "n_test=8", "--set", "torch_threads=1",
           "--log-examples", str(seen)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    print(f"two-process student-sft: {time.perf_counter() - start:.0f} s")

    # (a) each rank logged one batch of BATCH rows per step, and the shards differ: disjoint at
    # every step (each rank takes its own part of the global batch) and over the whole run.
    logs = {}
    for rank in range(RANKS):
        path = seen / f"rank{rank}.jsonl"
        assert path.exists() and path.stat().st_size > 0, f"rank {rank} logged nothing\n{out[-3000:]}"
        logs[rank] = [json.loads(line) for line in path.read_text().splitlines()]
        assert [b["batch"] for b in logs[rank]] == list(range(1, STEPS + 1))
        assert all(len(b["examples"]) == BATCH and all(b["examples"]) for b in logs[rank])
    for step0, step1 in zip(logs[0], logs[1]):
        assert not set(step0["examples"]) & set(step1["examples"]), "both ranks trained on the same rows"
    shards = [{x for b in logs[rank] for x in b["examples"]} for rank in range(RANKS)]
    assert len(shards[0]) == len(shards[1]) == STEPS * BATCH   # one epoch: no row seen twice
    assert not shards[0] & shards[1]
    assert all(x.startswith("Q:") for x in shards[0] | shards[1])

    # (b) the main process alone wrote the artifact; no temporary or backup folder is left behind.
    tiny = artifacts / "tiny"
    assert out.count("saved the student artifact") == 1 and "[rank 0] saved the student artifact" in out
    manifest = json.loads((tiny / "student" / "manifest.json").read_text())
    assert manifest["config"]["arm"] == "groundtruth" and manifest["config"]["steps"] == STEPS
    assert (tiny / "student" / "model.safetensors").exists()
    names = sorted(p.name for p in tiny.iterdir())
    assert [n for n in names if "student" in n] == ["student"], names
    assert not [n for n in names if n.startswith(".") or n.endswith(".old")], names
    assert (tiny / "tokenizer" / "manifest.json").exists()   # built once, by the main process
