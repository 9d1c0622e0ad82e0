"""Fit a training run to the machine: time a few real steps, pick the faster memory layout, and
size the number of epochs to a time budget.

Why: the same demo recipe took 14-19 s per epoch on a 2-vCPU Xeon with AVX-512 bf16 and 66-77 s on
a 2-vCPU AMD EPYC with AVX2 only (issue 17). Both layouts are exact (the same fp32 / bf16
arithmetic, only the order of memory differs), so the faster one is simply taken; oneDNN's
channels-last convolutions are not the faster on every CPU.

Workstation-side (needs torch).
"""

import math
import time
from dataclasses import asdict, dataclass

from edgealex._optional import require
from edgealex.log import logger

MEMORY_FORMATS = ("channels_last", "contiguous")


@dataclass
class SpeedProbe:
    """What :func:`probe_training_speed` measured.

    Args:
        memory_format (str): the faster layout ("channels_last" or "contiguous").
        seconds_per_step (float): its median time of one SGD step (forward, backward, update), s.
        images_per_s (float): batch / seconds_per_step.
        batch (int): images per step.
        precision (str): "bf16" (autocast) or "fp32".
        per_format_s (dict): {format: median s/step} for each layout tried.
        probe_s (float): wall time of the probe, s.
    """

    memory_format: str
    seconds_per_step: float
    images_per_s: float
    batch: int
    precision: str
    per_format_s: dict
    probe_s: float

    def to_dict(self):
        return asdict(self)


def probe_training_speed(settings, num_classes, steps=3, formats=MEMORY_FORMATS, threads=None):
    """Time ``steps`` SGD steps (after one warm-up step) of the real model on random inputs, per layout.

    Args:
        settings (TrainSettings): arch, batch, input size, dropout, precision of the run to size.
        num_classes (int): model outputs.
        steps (int): timed steps per layout (median taken). Defaults to 3.
        formats (tuple): layouts to try. Defaults to channels-last and contiguous.
        threads (int): CPU threads. Defaults to torch's current setting.

    Returns:
        SpeedProbe
    """
    torch = require("torch", "edgealex train")
    from edgealex.models.alexnet import build_model
    from edgealex.train.trainer import _use_bf16

    started = time.perf_counter()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    bf16 = _use_bf16(torch, torch.device("cpu"), settings.precision)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(settings.batch, 3, settings.input_size, settings.input_size, generator=gen)
    y = torch.randint(0, num_classes, (settings.batch,), generator=gen)
    per_format = {}
    try:
        for fmt in formats:
            layout = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
            model = build_model(settings.arch, num_classes=num_classes, dropout=settings.dropout, seed=0)
            model = model.to(memory_format=layout).train()
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
            xf = x.contiguous(memory_format=layout)
            times = []
            for i in range(int(steps) + 1):
                t0 = time.perf_counter()
                with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(xf)
                loss = torch.nn.functional.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if i:  # the first step allocates and picks kernels
                    times.append(time.perf_counter() - t0)
            per_format[fmt] = sorted(times)[len(times) // 2]
            del model, optimizer
    finally:
        torch.set_num_threads(old_threads)
    best = min(per_format, key=per_format.get)
    probe = SpeedProbe(memory_format=best, seconds_per_step=round(per_format[best], 4),
                       images_per_s=round(settings.batch / per_format[best], 2), batch=settings.batch,
                       precision="bf16" if bf16 else "fp32",
                       per_format_s={k: round(v, 4) for k, v in per_format.items()},
                       probe_s=round(time.perf_counter() - started, 2))
    logger.info("training speed on this CPU: %.2f s per step of %d (%.1f img/s, %s, %s; %s)", probe.seconds_per_step,
                probe.batch, probe.images_per_s, probe.precision, probe.memory_format,
                ", ".join(f"{k} {v:.2f} s" for k, v in probe.per_format_s.items()))
    return probe


def epochs_for_budget(budget_s, images_per_s, train_images, min_epochs, max_epochs):
    """Epochs that fit ``budget_s`` seconds at ``images_per_s``, clamped to [min_epochs, max_epochs].

    The lower bound is the recipe's accuracy floor: below it the run would be quick but miss the
    accuracy target, so a slow machine takes longer rather than train too little (the caller
    logs the estimate).

    Returns:
        int
    """
    fit = int(math.floor(float(budget_s) * float(images_per_s) / max(1, int(train_images))))
    return max(int(min_epochs), min(int(max_epochs), fit))


def decay_steps(epochs):
    """Step-decay boundaries of the sized demo recipe: the last two epochs at 1/5 and 1/25 of the LR.

    Measured on the synthetic defect data (1,400 training images, SGD 0.01, batch 32, He init):
    5 epochs gave 95.0% holdout accuracy, 6 epochs 96.5% (benchmarks/results/demo_train_sizing.md).
    """
    epochs = int(epochs)
    return (max(1, epochs - 2), max(1, epochs - 1)) if epochs >= 3 else ()
