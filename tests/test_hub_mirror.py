"""The colab profile honours HF_ENDPOINT (a hub mirror, for learners where huggingface.co is blocked
or slow) – even when a notebook sets it after transformers was imported.

A local HTTP server plays the mirror: it serves one small Qwen2 checkpoint the way the hub does
(``/<repo>/resolve/<revision>/<file>``, ``/api/models/<repo>`` and its file tree). A fresh Python
process imports the course, *then* sets ``HF_ENDPOINT``, starts the colab profile's run and loads
the checkpoint by its hub id. Nothing else can answer: the process has no other network.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "mirror-test/tiny-qwen2"
COMMIT = "1" * 40


def mirror(files: dict[str, bytes], log: list[tuple[str, str]]):
    """A hub mirror serving ``files`` as the repository ``REPO_ID``; requests are appended to ``log``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, body: bytes, head_only: bool, content_type: str, headers: dict | None = None):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

        def answer(self, head_only: bool):
            path = self.path.split("?")[0]
            log.append((self.command, path))
            api, resolve = f"/api/models/{REPO_ID}", f"/{REPO_ID}/resolve/"
            if path.startswith(api + "/tree/"):
                sub = "/".join(path[len(api + "/tree/"):].split("/")[1:])
                tree = [{"type": "file", "path": name, "oid": hashlib.sha1(body).hexdigest(), "size": len(body)}
                        for name, body in files.items() if not sub or name.startswith(sub + "/")]
                return self.send(json.dumps(tree).encode(), head_only, "application/json")
            if path.rstrip("/") in (api, f"{api}/revision/main"):
                info = {"id": REPO_ID, "sha": COMMIT, "siblings": [{"rfilename": name} for name in files]}
                return self.send(json.dumps(info).encode(), head_only, "application/json")
            if path.startswith(resolve):
                name = "/".join(path[len(resolve):].split("/")[1:])
                if name in files:
                    body = files[name]
                    return self.send(body, head_only, "application/octet-stream",
                                     {"ETag": f'"{hashlib.sha256(body).hexdigest()}"', "X-Repo-Commit": COMMIT})
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            self.answer(head_only=False)

        def do_HEAD(self):
            self.answer(head_only=True)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, char_tokenizer):
    from utils.config import get_profile
    from utils.models import build_causal_lm

    folder = tmp_path_factory.mktemp("checkpoint")
    build_causal_lm(get_profile("tiny").student, char_tokenizer, seed=0).save_pretrained(folder)
    char_tokenizer.save_pretrained(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


LOAD = textwrap.dedent("""
    import os, sys
    import transformers                       # huggingface_hub is imported (and has read its settings) here
    from utils.models import load_causal_lm
    from utils.tokenizer import load_tokenizer
    os.environ["HF_ENDPOINT"] = sys.argv[1]   # what a learner does in a cell, after the imports
    import utils.config as c
    c.PROFILES["colab"] = c.PROFILES["colab"].replace(require_cuda=False)  # this CPU: no T4 here
    run = c.make_run("colab", 0)
    model = load_causal_lm(sys.argv[2], device="cpu")
    tok = load_tokenizer(sys.argv[2])
    print("loaded", type(model).__name__, model.num_parameters(), len(tok))
""")


def test_colab_profile_downloads_through_hf_endpoint(checkpoint, tmp_path):
    log: list[tuple[str, str]] = []
    server = mirror(checkpoint, log)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if k != "HF_ENDPOINT"}
    env.update(HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(ROOT),
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    try:
        done = subprocess.run([sys.executable, "-c", LOAD, url, REPO_ID], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"hub downloads from {url} (HF_ENDPOINT)" in done.stdout
    assert "loaded Qwen2ForCausalLM" in done.stdout
    fetched = {path.rsplit("/", 1)[-1] for method, path in log if method == "GET"}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= fetched, sorted(fetched)
    cached = list((tmp_path / "hf-home").rglob("model.safetensors"))
    assert cached, "the download lands in the hub cache, like one from huggingface.co"


def test_apply_hub_endpoint_updates_already_imported_libraries(monkeypatch):
    import datasets.config
    import huggingface_hub.constants as hub
    from huggingface_hub import hf_hub_url

    from utils.config import HF_DEFAULT_ENDPOINT, apply_hub_endpoint

    for module, names in ((hub, ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE")),
                          (datasets.config, ("HF_ENDPOINT", "HUB_DATASETS_URL"))):
        for name in names:
            monkeypatch.setattr(module, name, getattr(module, name))  # restored after the test
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    assert apply_hub_endpoint() == "https://hf-mirror.example"
    assert hf_hub_url("Qwen/Qwen2.5-1.5B-Instruct", "config.json") == \
        "https://hf-mirror.example/Qwen/Qwen2.5-1.5B-Instruct/resolve/main/config.json"
    assert datasets.config.HUB_DATASETS_URL.startswith("https://hf-mirror.example/datasets/")
    monkeypatch.delenv("HF_ENDPOINT")
    assert apply_hub_endpoint() == HF_DEFAULT_ENDPOINT
