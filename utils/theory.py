"""Notebook 01's live demonstrations: soft-label knowledge distillation vs data distillation,
and a back-of-envelope of what model size costs at inference time.

Everything here is small enough to run in seconds on a laptop CPU.

* :func:`soft_labels` – the teacher's softmax at temperature T (Hinton et al., 2015).
* :func:`kd_loss` – the knowledge-distillation loss: T² · KL(teacher_T ‖ student_T) mixed
  with the ordinary cross-entropy on hard labels.
* :func:`distillation_experiment` – one teacher, three students trained three ways:
  on the few *true* labels, on the teacher's *soft labels* (knowledge distillation),
  and on the teacher's *hard outputs* for many new inputs (data distillation – the
  classification analogue of sequence-level distillation, Kim & Rush 2016, which is what
  DeepSeek-R1's distilled students were trained with).
* :func:`inference_cost` – weights and KV-cache bytes and a memory-bandwidth latency bound, each
  model's weights at the precision it is published in (R1: FP8; the students: bf16).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def soft_labels(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / T)``: higher T spreads probability over the "dark knowledge" classes."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    return F.softmax(logits / temperature, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
            temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. (2015): ``α·T²·KL(p_T^teacher ‖ p_T^student) + (1-α)·CE(student, labels)``.

    The T² factor keeps the soft term's gradients on the same scale as T changes. With
    ``labels=None`` only the soft term is used (α is then ignored).
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = soft_labels(teacher_logits, temperature)
    soft = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2
    if labels is None:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


# ---------------------------------------------------------------------------------------
# A small, real experiment: classification of points drawn from a mixture of Gaussians.
# ---------------------------------------------------------------------------------------

def make_blobs(n: int, n_classes: int = 10, dim: int = 16, seed: int = 0,
               spread: float = 2.5) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points in ``dim`` dimensions from ``n_classes`` overlapping Gaussian blobs.

    The class centres are fixed (seed 1234) so that train and test sets drawn with different
    seeds come from the same distribution.
    """
    centres = torch.randn(n_classes, dim, generator=torch.Generator().manual_seed(1234)) * 2.0
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_classes, (n,), generator=g)
    x = centres[y] + spread * torch.randn(n, dim, generator=g)
    return x, y


def mlp(dim: int, hidden: int, n_classes: int, seed: int) -> nn.Module:
    """A two-layer perceptron (teacher: wide; student: narrow)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def _fit(model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss_fn, steps: int,
         lr: float = 1e-2, batch: int = 128, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=g)
        loss = loss_fn(model(x[idx]), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of points classified correctly."""
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


@dataclass
class DistillationResult:
    teacher_params: int
    student_params: int
    acc: dict[str, float]          # test accuracy per way of training the student
    teacher_logits_example: torch.Tensor


def distillation_experiment(seed: int = 0, n_labelled: int = 200, n_unlabelled: int = 5000,
                            temperature: float = 4.0, steps: int = 600) -> DistillationResult:
    """Train one teacher and four same-size students; return their test accuracies.

    * teacher: wide MLP trained on 20,000 labelled points;
    * ``student_labels``: the student trained on only ``n_labelled`` true labels;
    * ``student_kd``: same ``n_labelled`` points, but with the teacher's soft labels
      at ``temperature`` (Hinton-style knowledge distillation: needs the teacher's logits);
    * ``student_data``: ``n_unlabelled`` new inputs labelled by the teacher's *argmax* only
      (data distillation: needs only the teacher's outputs, like R1's distilled students);
    * ``student_kd_data``: the same new inputs with the teacher's soft labels (both ideas at
      once – possible only when the teacher's logits are available and share the label space).
    """
    dim, k = 16, 10
    x_big, y_big = make_blobs(20_000, k, dim, seed=seed + 1)
    x_test, y_test = make_blobs(5_000, k, dim, seed=seed + 2)
    x_few, y_few = x_big[:n_labelled], y_big[:n_labelled]
    x_new, _ = make_blobs(n_unlabelled, k, dim, seed=seed + 3)  # labels thrown away

    teacher = _fit(mlp(dim, 256, k, seed), x_big, y_big, F.cross_entropy, steps * 2, seed=seed)
    with torch.no_grad():
        t_few, t_new_logits = teacher(x_few), teacher(x_new)
        t_new = t_new_logits.argmax(-1)

    def student():
        return mlp(dim, 16, k, seed + 10)

    acc = {
        "teacher": accuracy(teacher, x_test, y_test),
        "student_labels": accuracy(_fit(student(), x_few, y_few, F.cross_entropy, steps, seed=seed),
                                   x_test, y_test),
        "student_kd": accuracy(_fit(student(), x_few, t_few,
                                    lambda s, t: kd_loss(s, t, None, temperature), steps, seed=seed),
                               x_test, y_test),
        "student_data": accuracy(_fit(student(), x_new, t_new, F.cross_entropy, steps, seed=seed),
                                 x_test, y_test),
        "student_kd_data": accuracy(_fit(student(), x_new, t_new_logits,
                                         lambda s, t: kd_loss(s, t, None, temperature), steps,
                                         seed=seed), x_test, y_test),
    }
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return DistillationResult(count(teacher), count(student()), acc, t_few[0])


# ---------------------------------------------------------------------------------------
# Back-of-envelope: what a model costs to serve.
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServedModel:
    """What matters for inference memory and speed (numbers from the models' configs)."""

    name: str
    params_total: float        # all weights that must sit in memory
    params_active: float       # weights read per generated token (< total for a MoE)
    layers: int
    kv_bytes_per_token_per_layer: int  # in elements: 2·kv_heads·head_dim, or MLA's latent
    bytes_per_param: float = 2.0       # precision the weights are published in: bf16 = 2, FP8 = 1


def inference_cost(m: ServedModel, tokens: int = 32_768, bytes_per_param: float | None = None,
                   bandwidth_gb_s: float = 3_350.0, kv_bytes_per_element: float = 2.0) -> dict[str, float]:
    """Weights and KV cache in GB for one sequence of ``tokens``, and a latency floor.

    Weights take ``m.bytes_per_param`` bytes each – the precision the checkpoint is published in
    (DeepSeek-R1: FP8, 1 byte; the distilled Qwen students: bf16, 2 bytes) – unless
    ``bytes_per_param`` overrides it. The KV cache is counted at ``kv_bytes_per_element`` (bf16:
    2 bytes) whatever the weights' precision.

    Decoding one token reads every *active* weight once, so on a GPU with memory bandwidth
    ``bandwidth_gb_s`` (an H100 SXM: 3,350 GB/s) a token takes at least
    ``active_params × bytes_per_param / bandwidth``. Real serving is slower; the ratio between
    models is the point.
    """
    weight_bytes = m.bytes_per_param if bytes_per_param is None else bytes_per_param
    weights = m.params_total * weight_bytes / 1e9
    kv = m.layers * m.kv_bytes_per_token_per_layer * tokens * kv_bytes_per_element / 1e9
    ms_per_token = m.params_active * weight_bytes / (bandwidth_gb_s * 1e9) * 1e3
    return {"weights_gb": weights, "kv_cache_gb": kv, "min_ms_per_token": ms_per_token}


# Shapes from the public configs: Qwen2.5-1.5B / Qwen2.5-7B (28 layers, GQA with 2 / 4 KV
# heads of dim 128) and DeepSeek-V3/R1 (61 layers, 671B total / 37B active parameters,
# MLA caching a 512-dim latent plus a 64-dim rotary key per token per layer).
# Precision as published: the distilled students in bf16 (2 bytes per parameter); DeepSeek-R1,
# like DeepSeek-V3, in FP8 (1 byte per parameter – the DeepSeek-V3 README: FP8 training is native,
# so only FP8 weights are provided).
SERVED_MODELS = (
    ServedModel("R1-Distill-Qwen-1.5B", 1.78e9, 1.78e9, 28, 2 * 2 * 128, bytes_per_param=2.0),
    ServedModel("R1-Distill-Qwen-7B", 7.62e9, 7.62e9, 28, 2 * 4 * 128, bytes_per_param=2.0),
    ServedModel("DeepSeek-R1 (671B MoE)", 671e9, 37e9, 61, 512 + 64, bytes_per_param=1.0),
)
