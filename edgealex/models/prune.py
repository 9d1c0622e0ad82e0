"""Structured pruning: physically remove convolution filters and FC neurons (workstation side).

Criterion: the L1 norm of each filter / neuron's incoming weights, smallest removed first (Li et
al. 2017, "Pruning Filters for Efficient ConvNets", arXiv:1608.08710). Every conv layer and both
hidden FC layers keep ``keep`` of their outputs (rounded to a multiple of ``multiple_of``); the
next layer loses the matching input channels (for conv5 -> FC1: the 36 inputs per channel that
AdaptiveAvgPool 6x6 + flatten make). The classifier head keeps all classes.

The graph surgery is written here rather than taken from torch-pruning (1.6.1 installs): the
topology is a fixed sequence (conv [BN] ReLU [LRN] [pool] ... FC FC FC) where each layer's kept
outputs simply slice the next layer's inputs, and the result must be an edgealex checkpoint that
loads with ``torch.load(weights_only=True)`` and is rebuilt from ``(arch, widths)`` - torch-pruning
returns a modified module whose structure would otherwise have to be pickled. Pruning is refused
for ``alexnet-se`` (the SE block's 1x1 convs would need slicing too) and ``alexnet-dw`` (depthwise
channels are tied to their input channels).

The pruned checkpoint records ``widths`` (so ``build_model``/``export`` rebuild it), ``parent``
(path, sha256, arch, widths, parameters of the checkpoint it came from) and ``pruning`` (keep,
criterion, multiple_of, parameters before/after).
"""

import os
from dataclasses import asdict, dataclass
from typing import Optional

from edgealex._optional import require
from edgealex.artifacts import same_file, sha256_file
from edgealex.errors import EdgeAlexError
from edgealex.log import logger
from edgealex.models.alexnet import (build_model, kept_count, load_checkpoint, model_from_checkpoint,
                                     parameter_count, save_checkpoint)
from edgealex.preprocess import Preprocess

PRUNABLE = ("alexnet", "alexnet-v1", "alexnet-bn")
CRITERION = "l1"


@dataclass
class PruneResult:
    """Outcome of :func:`prune`.

    Args:
        path (str): the pruned (and, with fine-tuning, fine-tuned) checkpoint.
        arch (str): its arch.
        widths (dict): its conv and hidden FC widths.
        parameters_before (int), parameters_after (int): parameter counts.
        keep (float): requested kept fraction.
        parent (dict): path and sha256 of the source checkpoint.
        fine_tune (dict or None): the training result when fine-tuned (holdout accuracy inside).
    """

    path: str
    arch: str
    widths: dict
    parameters_before: int
    parameters_after: int
    keep: float
    parent: dict
    fine_tune: Optional[dict] = None

    def to_dict(self):
        return asdict(self)


def _ranked(torch, scores, count):
    """Indices of the ``count`` largest scores, in ascending index order (ties: lower index first)."""
    order = sorted(range(scores.numel()), key=lambda i: (-float(scores[i]), i))[:count]
    return torch.tensor(sorted(order), dtype=torch.long)


def prune_model(model, keep, multiple_of=8):
    """A new model with ``keep`` of every conv layer's filters and hidden FC neurons (L1 ranking).

    Args:
        model (torch.nn.Module): an edgealex model of an arch in :data:`PRUNABLE` (any widths).
        keep (float): kept fraction in (0, 1].
        multiple_of (int): round kept counts to this multiple. Defaults to 8.

    Returns:
        torch.nn.Module: the smaller model, in eval mode, with ``model.widths`` set.

    Raises:
        EdgeAlexError: an arch that cannot be pruned, or a bad ``keep``.
    """
    torch = require("torch", "edgealex prune")
    nn = torch.nn
    arch = getattr(model, "arch", None)
    if arch not in PRUNABLE:
        raise EdgeAlexError(f"arch {arch}", "structured pruning supports only " + ", ".join(PRUNABLE),
                            "prune an alexnet, alexnet-v1 or alexnet-bn checkpoint")
    old_convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    old_bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    old_fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    widths = {"conv": [kept_count(m.out_channels, keep, multiple_of) for m in old_convs],
              "fc": [kept_count(m.out_features, keep, multiple_of) for m in old_fcs[:2]]}
    lrn = any(type(m).__name__ == "LRN" for m in model.features)
    kwargs = {"lrn": lrn} if arch == "alexnet-v1" else {}
    new = build_model(arch, num_classes=old_fcs[-1].out_features, widths=widths,
                      dropout=float(model.classifier[0].p), **kwargs)
    new_convs = [m for m in new.features if isinstance(m, nn.Conv2d)]
    new_bns = [m for m in new.features if isinstance(m, nn.BatchNorm2d)]
    new_fcs = [m for m in new.classifier if isinstance(m, nn.Linear)]
    with torch.no_grad():
        kept_in = torch.arange(3)
        for i, (old, dst) in enumerate(zip(old_convs, new_convs)):
            weight = old.weight[:, kept_in]
            kept = _ranked(torch, weight.abs().sum(dim=(1, 2, 3)), dst.out_channels)
            dst.weight.copy_(weight[kept])
            dst.bias.copy_(old.bias[kept])
            if old_bns:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(new_bns[i], name).copy_(getattr(old_bns[i], name)[kept])
                new_bns[i].num_batches_tracked.copy_(old_bns[i].num_batches_tracked)
            kept_in = kept
        cells = old_fcs[0].in_features // old_convs[-1].out_channels  # 36: AdaptiveAvgPool 6x6
        columns = (kept_in[:, None] * cells + torch.arange(cells)[None, :]).reshape(-1)
        for old, dst in zip(old_fcs, new_fcs):
            weight = old.weight[:, columns]
            if dst is new_fcs[-1]:
                kept = torch.arange(old.out_features)  # the head keeps every class
            else:
                kept = _ranked(torch, weight.abs().sum(dim=1), dst.out_features)
            dst.weight.copy_(weight[kept])
            dst.bias.copy_(old.bias[kept])
            columns = kept
    return new.eval()


def _flat(widths):
    """Every layer width of a ``widths`` record ({"conv": [...], "fc": [...]}) in order."""
    return [int(w) for key in ("conv", "fc") for w in ((widths or {}).get(key) or [])]


def unfinetuned_path(output):
    """Where :func:`prune` keeps the pruned, not yet fine-tuned weights: ``<output stem>.unfinetuned.pt``."""
    base, ext = os.path.splitext(str(output))
    return base + ".unfinetuned" + ext


def _interrupted(checkpoint, output, target, data, distill):
    """The user error for a fine-tuning stopped by Ctrl-C/SIGTERM: what each file now holds, how to go on."""
    from edgealex.train.trainer import last_path_for

    started = os.path.getmtime(target) if os.path.isfile(target) else float("inf")  # written just before training
    kept = [f"the pruned, not fine-tuned checkpoint is {target}"] if os.path.isfile(target) else []
    if os.path.isfile(output) and os.path.getmtime(output) >= started:
        kept.append(f"{output} holds the best weights of the epochs finished so far (not the finished fine-tuning)")
    last = last_path_for(output)
    if os.path.isfile(last) and os.path.getmtime(last) >= started:
        from shlex import quote

        command = (f"edgealex distill --teacher {quote(str(checkpoint))}" if distill else "edgealex train") + \
            f" --data {quote(str(data))} -o {quote(output)} --resume {quote(last)}"
        note = f"continue the fine-tuning with `{command}`, or run the same command again to start it over"
    else:
        note = "run the same command again to start the fine-tuning over"
    return EdgeAlexError(output, "; ".join(["fine-tuning interrupted"] + kept), note)


def prune(checkpoint, output, keep, multiple_of=8, fine_tune_epochs=0, data=None, distill=False, temperature=None,
          alpha=None, **train_options):
    """Prune a checkpoint and write the smaller one (optionally fine-tuned on ``data``).

    Args:
        checkpoint (str): an edgealex checkpoint (or a torchvision AlexNet state_dict).
        output (str): the pruned checkpoint to write (``.pt``).
        keep (float): kept fraction of filters/neurons per layer, in (0, 1].
        multiple_of (int): round kept counts to this multiple. Defaults to 8.
        fine_tune_epochs (int): train this many epochs after pruning (needs ``data``). The pruned,
            not yet fine-tuned weights are kept as ``<output stem>.unfinetuned.pt``.
        data (str): dataset for fine-tuning (layouts of :mod:`edgealex.train.data`).
        distill (bool): fine-tune with the unpruned ``checkpoint`` as the distillation teacher
            (Hinton loss, :func:`edgealex.train.trainer.distillation_loss`), the usual way to win back
            what pruning lost. Needs ``fine_tune_epochs``. Defaults to False (labels only).
        temperature (float): distillation temperature T (only with ``distill``). Defaults to None (4.0).
        alpha (float): weight of the soft-target term, in [0, 1] (only with ``distill``). Defaults to
            None (0.9).
        **train_options: passed to :func:`edgealex.train.trainer.train` (preset, lr, threads, reuse, ...).

    Returns:
        PruneResult

    Raises:
        EdgeAlexError: unreadable checkpoint, unsupported arch, bad keep, fine-tuning without data.
    """
    output = str(output)
    if not output.endswith(".pt"):
        raise EdgeAlexError(output, "the output must be a .pt checkpoint", "pass -o pruned.pt")
    if isinstance(fine_tune_epochs, bool) or not isinstance(fine_tune_epochs, int) or fine_tune_epochs < 0:
        raise EdgeAlexError(f"--fine-tune-epochs {fine_tune_epochs}", "must be a whole number, 0 or more",
                            "pass --fine-tune-epochs 0 (no fine-tuning) or more")
    for option, value in (("--temperature", temperature), ("--alpha", alpha)):
        if value is not None and not distill:  # else a forgotten --distill fine-tunes on labels alone, silently
            raise EdgeAlexError(f"{option} {value}", "is a distillation setting, and --distill was not given",
                                f"add --distill to fine-tune distilling from the unpruned checkpoint, or drop {option}")
    if distill and not fine_tune_epochs:
        raise EdgeAlexError("--distill", "distillation happens during fine-tuning, and none was asked for",
                            "pass --fine-tune-epochs N (and --data DIR) with --distill")
    if fine_tune_epochs and data is None:
        raise EdgeAlexError(f"--fine-tune-epochs {fine_tune_epochs}", "fine-tuning needs training data",
                            "pass --data DIR (e.g. the dataset the parent was trained on)")
    target = output
    written = [output]
    if fine_tune_epochs:
        from edgealex.artifacts import sidecar_path
        from edgealex.train.trainer import last_path_for

        target = unfinetuned_path(output)
        # the fine-tuning also writes the resume state (removed at the end) and the training record
        written += [target, last_path_for(output), sidecar_path(output)]
    for path in written:
        if same_file(path, checkpoint):
            raise EdgeAlexError(path, "would overwrite the checkpoint being pruned", "choose another -o")
    ckpt = load_checkpoint(checkpoint)
    spec = Preprocess.from_dict(ckpt["preprocess"]) if ckpt.get("preprocess") else Preprocess()
    if fine_tune_epochs:
        from dataclasses import fields

        from edgealex.train.data import find_train_data
        from edgealex.train.trainer import TrainSettings, settings_for

        train_options = dict(train_options)
        # the parent's input geometry, unless asked otherwise: the preset's 224 px would silently
        # change the model's input (and show the teacher images of a size it never saw)
        train_options.setdefault("input_size", spec.input_size)
        train_options.setdefault("resize", spec.resize)
        if distill:  # None leaves the trainer's defaults (those of `edgealex distill` too)
            train_options.update({key: value for key, value in (("distill_temperature", temperature),
                                                                 ("distill_alpha", alpha)) if value is not None})
        # the fine-tuning's data and settings are checked before anything is written
        train_data = find_train_data(data)
        known = {f.name for f in fields(TrainSettings)} - {"arch", "widths", "init_sha256", "teacher_sha256"}
        settings_for(train_options.get("preset", "demo"),
                     **dict({k: v for k, v in train_options.items() if k in known}, epochs=int(fine_tune_epochs)))
    if fine_tune_epochs and ckpt.get("labels") and list(ckpt["labels"]) != list(train_data.labels):
        raise EdgeAlexError(f"--data {data}", "its classes ({}) are not the checkpoint's ({})".format(
            ", ".join(train_data.labels), ", ".join(ckpt["labels"])),
            "fine-tune on the dataset the checkpoint was trained on")
    if distill and not ckpt.get("labels"):
        raise EdgeAlexError(str(checkpoint), "has no class labels, so it cannot teach the classes of --data",
                            "prune a checkpoint written by `edgealex train` (or its exported ONNX) to distil from it")
    model = model_from_checkpoint(ckpt, source=str(checkpoint)).eval()
    pruned = prune_model(model, keep, multiple_of)
    before, after = parameter_count(model), parameter_count(pruned)
    labels = ckpt.get("labels") or [f"class_{i}" for i in range(pruned.classifier[-1].out_features)]
    parent = {"path": os.path.abspath(str(checkpoint)), "sha256": sha256_file(checkpoint), "arch": model.arch,
              "widths": model.widths, "parameters": before, "parent": ckpt.get("parent")}
    pruning = {"keep": float(keep), "criterion": CRITERION, "multiple_of": int(multiple_of),
               "parameters_before": before, "parameters_after": after}
    existed = os.path.exists(target)
    save_checkpoint(target, pruned, labels, spec, parent=parent, pruning=pruning)
    logger.info(f"pruned {checkpoint}: {before:,} -> {after:,} parameters ({after / before:.1%}), widths {pruned.widths}")
    off = [f"{w_after}/{w_before}" for w_before, w_after in zip(_flat(model.widths), _flat(pruned.widths))
           if abs(w_after / w_before - float(keep)) > max(0.1, 0.5 * float(keep))]
    if off:  # the rounding to --multiple-of (or its floor of one multiple) overrode --keep
        logger.warning(f"--keep {keep} with --multiple-of {multiple_of} kept {', '.join(off[:4])} channels in "
                       f"{len(off)} layer(s): far from the asked fraction (a smaller --multiple-of follows --keep "
                       "more closely)")
    fine = None
    if fine_tune_epochs:
        from edgealex.train.trainer import train

        options = dict(train_options)
        options.setdefault("preset", "demo")
        options.setdefault("keep_last", False)  # prune has no --resume: no resume state is left behind
        if distill:  # the parent teaches its pruned self (T and alpha are in train_options, checked above)
            options["teacher"] = str(checkpoint)
        try:
            result = train(str(data), output, epochs=int(fine_tune_epochs), init_weights=target, **options)
        except EdgeAlexError:
            if not existed and os.path.isfile(target):
                os.remove(target)  # made by this call for a fine-tuning that did not start
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: say what is on disk and how to go on (prune has no --resume)
            raise _interrupted(checkpoint, output, target, data, distill) from None
        fine = result.to_dict()
    return PruneResult(path=output, arch=model.arch, widths=pruned.widths, parameters_before=before,
                       parameters_after=after, keep=float(keep), parent={"path": parent["path"], "sha256": parent["sha256"]},
                       fine_tune=fine)
