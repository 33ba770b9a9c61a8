# R1 Distill Lab – the distilled student behind Gradio, in a container.
#
# Mirrors the reference article's Dockerfile (its section 3.6: CUDA base, pip install, EXPOSE 7860, run the app),
# with its problems fixed: the model is copied from a real path (the article's `COPY -r` is not Dockerfile syntax),
# weights are safetensors without remote code, nothing is downloaded at run time, and the app runs as a normal user.
# CPU base, because the tiny profile needs no GPU; docs/serving.md shows the CUDA variant.
#
#   make run                                               # writes artifacts/tiny/student first
#   docker build -t r1-distill-lab .
#   docker run --rm -p 127.0.0.1:7860:7860 r1-distill-lab  # then open http://127.0.0.1:7860
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    TOKENIZERS_PARALLELISM=false \
    R1LAB_PROFILE=tiny \
    R1LAB_ARTIFACTS=/app/artifacts

WORKDIR /app

# torch first, as the Makefile does: the CPU wheel (no CUDA libraries in the image).
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The project and its pinned dependencies (pyproject.toml).
COPY pyproject.toml README.md ./
COPY utils ./utils
RUN pip install --no-cache-dir .

# The model to serve: the student artifact written by notebook 04 (weights, tokenizer, manifest).
COPY artifacts/tiny/student ./artifacts/tiny/student

RUN useradd --create-home --uid 1000 app && chown -R app /app
USER app

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"

# The app binds 127.0.0.1 by default. Inside a container that would be unreachable through `docker run -p`,
# so the container opts in to 0.0.0.0 explicitly; publish the port on the host's loopback (see above) unless
# you mean to expose it.
CMD ["python", "-m", "utils.serve", "--host", "0.0.0.0", "--port", "7860"]
