"""Artifacts: how notebooks hand models and data forward, and where results are written.

Taught in notebook 01 ("Artifacts"); used by every notebook.

Layout (``artifacts/`` is ignored by git)::

    artifacts/<profile>/
        results.json                 one nested JSON every notebook adds its figures to
        <name>/                      one artifact: a model, a tokenizer, a dataset, ...
            manifest.json            profile, seed, config, package versions, metrics
            ...                      whatever the artifact is made of

Writes are *atomic*: an artifact is written into a temporary folder next to its final place
and renamed into place only once complete, so an interrupted run (a closed laptop, a Colab
disconnect) never leaves a half-written model behind – the previous version stays intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import REPO_ROOT, artifacts_root, package_versions

__all__ = ["REPO_ROOT", "artifacts_root"]  # re-exported: notebooks and the runner read them here


def profile_dir(profile: str) -> Path:
    """``artifacts/<profile>/`` (created if missing)."""
    path = artifacts_root() / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact_path(profile: str, name: str) -> Path:
    """Where the artifact ``name`` of ``profile`` lives (it may not exist yet)."""
    _recover(profile_dir(profile) / name)
    return profile_dir(profile) / name


def exists(profile: str, name: str) -> bool:
    """True when a complete artifact (with its manifest) is in place."""
    return (artifact_path(profile, name) / "manifest.json").exists()


def _recover(final: Path) -> None:
    """Finish a swap that a crash interrupted: if only the backup exists, put it back."""
    backup = final.with_name(final.name + ".old")
    if backup.exists() and not final.exists():
        backup.rename(final)
    elif backup.exists():
        shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def atomic_artifact(profile: str, name: str, *, seed: int, config: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None, fingerprint: str | None = None) -> Iterator[Path]:
    """Write an artifact atomically::

        with atomic_artifact("tiny", "teacher", seed=0, config={...}) as tmp:
            model.save_pretrained(tmp)

    Everything is written into ``tmp``; on success the manifest is added and ``tmp`` replaces
    the old artifact in two renames. If the block raises, ``tmp`` is deleted and the previous
    artifact is untouched. ``metrics`` may be filled in inside the block (it is a dict).
    ``fingerprint`` (``run.fingerprint(name)``) says which run it belongs to: see :func:`mismatch`.
    """
    final = artifact_path(profile, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=final.parent))
    metrics = {} if metrics is None else metrics
    try:
        yield tmp
        manifest = {
            "name": name,
            "profile": profile,
            "seed": seed,
            "fingerprint": fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "config": config or {},
            "metrics": metrics,
            "versions": package_versions(),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        backup = final.with_name(final.name + ".old")
        if final.exists():
            final.rename(backup)
        tmp.rename(final)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(profile: str, name: str) -> dict[str, Any]:
    """The manifest of an artifact; a clear error if the artifact is missing."""
    path = artifact_path(profile, name) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"No artifact {name!r} for profile {profile!r} at {path.parent}. "
                                "Run the notebook that makes it first (or `make run`).")
    return json.loads(path.read_text())


def mismatch(profile: str, name: str, *, seed: int, fingerprint: str) -> str | None:
    """Why the artifact ``name`` cannot serve this run, or ``None`` when it can.

    "missing", "made with seed 0 (this run: seed 1)" or "made with another configuration": an
    artifact is only reused by the run it was made for (same seed, same profile fields, same inputs).
    """
    if not exists(profile, name):
        return "missing"
    manifest = read_manifest(profile, name)
    if manifest.get("fingerprint") == fingerprint:
        return None
    if manifest.get("seed") != seed and manifest.get("fingerprint") is not None:
        return f"made with seed {manifest.get('seed')} (this run: seed {seed})"
    return "made with another configuration (or before fingerprints were recorded)"


# ---------------------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------------------

def results_path(profile: str) -> Path:
    return profile_dir(profile) / "results.json"


def load_results(profile: str) -> dict[str, Any]:
    """The nested results dict of ``profile`` (empty if nothing was measured yet)."""
    path = results_path(profile)
    return json.loads(path.read_text()) if path.exists() else {}


def _deep_merge(base: dict, new: dict) -> dict:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


PROVENANCE = "_runs"        # results.json's record of which run wrote which keys
_notebook: str | None = None  # the notebook this process is running (set by begin_results)


def _write_results(profile: str, results: dict[str, Any]) -> None:
    path = results_path(profile)
    fd, tmp = tempfile.mkstemp(prefix=".results.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _delete(results: dict[str, Any], dotted: str) -> None:
    """Remove ``a.b.c`` from nested ``results``, and parents left empty."""
    *parents, leaf = dotted.split(".")
    chain, node = [], results
    for key in parents:
        if not isinstance(node.get(key), dict):
            return
        chain.append((node, key))
        node = node[key]
    node.pop(leaf, None)
    for parent, key in reversed(chain):
        if parent[key]:
            break
        del parent[key]


def begin_results(profile: str, notebook: str, *, seed: int, commit: str | None = None) -> None:
    """A notebook starts writing results: the keys it wrote last time are removed (so nothing
    from an older run survives its rerun), and ``_runs.<notebook>`` records this run's seed,
    commit and start time. Later :func:`update_results` calls in this process are credited to it.
    """
    global _notebook
    _notebook = notebook
    results = load_results(profile)
    for key in results.get(PROVENANCE, {}).get(notebook, {}).get("keys", []):
        _delete(results, key)
    results.setdefault(PROVENANCE, {})[notebook] = {
        "profile": profile, "seed": seed, "commit": commit or git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "keys": []}
    _write_results(profile, results)


def git_commit() -> str:
    """The checkout's commit (short hash, ``+dirty`` with uncommitted changes), or ``"unknown"``."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def update_results(profile: str, new: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``new`` into ``results.json`` (atomically) and return the whole dict.

    ``update_results("tiny", {"teacher": {"acc_sft": 0.52}})`` keeps every other key. After
    :func:`begin_results` the new keys are credited to the running notebook (and replaced when
    it reruns).
    """
    results = _deep_merge(load_results(profile), new)
    if _notebook is not None:
        record = results.setdefault(PROVENANCE, {}).setdefault(_notebook, {"keys": []})
        record["keys"] = sorted(set(record.get("keys", [])) | set(flatten(new)))
    _write_results(profile, results)
    return results


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for printing results as a table)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def format_results(results: dict[str, Any]) -> str:
    """A two-column text table of every measured figure."""
    flat = flatten({k: v for k, v in results.items() if k != PROVENANCE})
    if not flat:
        return "(no results yet)"
    width = max(len(k) for k in flat)
    lines = [f"{'key'.ljust(width)}  value", f"{'-' * width}  -----"]
    for key in sorted(flat):
        value = flat[key]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(lines)


def format_teacher_vs_student(results: dict[str, Any]) -> str | None:
    """Notebook 04's teacher-vs-student table from ``results.json``, or None before notebook 04 ran.

    One row per measured quantity, with the student/teacher ratio (the article's claims are
    ratios: ~20 % of the parameters, > 85 % of the accuracy, 60 % lower latency, 1/5 of the memory).
    """
    teacher, student = results.get("teacher", {}), results.get("student", {})
    rows = [("parameters", teacher.get("params"), student.get("params"), "{:,.0f}"),
            ("eval accuracy", teacher.get("acc"), student.get("acc_" + str(student.get("arm"))), "{:.1%}"),
            ("latency, batch 1 (ms)", results.get("latency_ms", {}).get("teacher"),
             results.get("latency_ms", {}).get("student"), "{:.1f}"),
            ("peak generation memory (MB)", results.get("peak_memory_mb", {}).get("teacher"),
             results.get("peak_memory_mb", {}).get("student"), "{:.2f}")]
    rows = [r for r in rows if r[1] is not None and r[2] is not None]
    if not rows:
        return None
    lines = [f"{'':28}  {'teacher':>10}  {'student':>10}  student/teacher"]
    for name, t, s, fmt in rows:
        ratio = f"{s / t:.1%}" if t else "n/a"
        lines.append(f"{name:28}  {fmt.format(t):>10}  {fmt.format(s):>10}  {ratio}")
    return "\n".join(lines)
