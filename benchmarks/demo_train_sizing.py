"""How few epochs does the demo's recipe need? (issue 17 item 6)

Trains the demo preset (SGD 0.01, batch 32, He init, no dropout, crops + flips) on the synthetic
defect dataset (400 per class: 1,400 train / 200 val / 200 holdout) for each epoch count given,
with the last two epochs decayed (x0.2, x0.04: ``edgealex.train.sizing.decay_steps``), and records
the holdout accuracy and time. Usage: python benchmarks/demo_train_sizing.py --epochs 5,6 [--work DIR]
"""

import argparse
import os
import time

from _common import dumps, machine, write_results  # noqa: F401 (dumps kept for symmetry with the others)

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", default="5,6")
    parser.add_argument("--work", default="/tmp/edgealex-demo-sizing")
    args = parser.parse_args()
    from edgealex.synth.dataset import synthesize
    from edgealex.train.sizing import decay_steps
    from edgealex.train.trainer import train

    start_machine = machine()
    data = os.path.join(args.work, "data")
    synthesize(data, per_class=400, seed=0, force=True)
    runs = []
    for epochs in (int(e) for e in args.epochs.split(",")):
        t0 = time.time()
        result = train(data, os.path.join(args.work, f"m{epochs}.pt"), preset="demo", epochs=epochs,
                       lr_steps=decay_steps(epochs), keep_last=False)
        runs.append({"epochs": epochs, "lr_steps": list(decay_steps(epochs)), "holdout_accuracy": result.holdout_acc,
                     "best_val_accuracy": result.best_val_acc, "seconds": round(time.time() - t0, 1),
                     "train_images_per_s": round(result.train_images_per_s, 1), "precision": result.precision,
                     "history": result.history})
    out = {"machine_start": start_machine, "machine_end": machine(), "runs": runs}
    lines = ["# Demo training: epochs needed (issue 17 item 6)", "",
             f"Machine: {start_machine['cpu_model']}, {start_machine['cpu_count']} CPUs, load at start "
             f"{start_machine['loadavg']}, end {out['machine_end']['loadavg']}.", "",
             "| epochs | LR steps | holdout accuracy | best val | seconds | img/s |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append("| {epochs} | {lr_steps} | {holdout_accuracy:.1%} | {best_val_accuracy:.1%} | {seconds} | "
                     "{train_images_per_s} |".format(**r))
    write_results(os.path.join(HERE, "results"), "demo_train_sizing", out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
