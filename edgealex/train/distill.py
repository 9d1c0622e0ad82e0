"""Knowledge distillation (Hinton et al. 2015, arXiv:1503.02531) through the same trainer.

:func:`distill` is :func:`edgealex.train.trainer.train` with a teacher: the student (any arch of
the registry, optionally slimmed with ``width_mult``) learns from
``alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels)``
(:func:`edgealex.train.trainer.distillation_loss`). Resume, reuse by settings hash (the teacher's
sha256, T and alpha are part of the settings) and the holdout evaluation are the trainer's.
"""

from edgealex.train.trainer import train


def distill(teacher, data_dir, out_path, arch="alexnet", width_mult=None, temperature=4.0, alpha=0.9, **train_options):
    """Train ``arch`` on ``data_dir`` distilling from the ``teacher`` checkpoint.

    Args:
        teacher (str): an edgealex checkpoint trained on the same classes.
        data_dir (str): dataset (layouts of :mod:`edgealex.train.data`).
        out_path (str): the student's best checkpoint.
        arch (str): student arch. Defaults to "alexnet".
        width_mult (float): scale every conv and hidden FC width (multiples of 8). Defaults to None (full width).
        temperature (float): T > 0. Defaults to 4.0.
        alpha (float): soft-target weight in [0, 1]. Defaults to 0.9.
        **train_options: passed to :func:`edgealex.train.trainer.train` (preset, epochs, lr, resume, reuse, ...).

    Returns:
        TrainResult: the student's training result (``holdout_acc`` when the data has a holdout split).

    Raises:
        EdgeAlexError: a teacher trained on other classes, bad temperature/alpha, or any training error.
    """
    return train(data_dir, out_path, arch=arch, teacher=teacher, width_mult=width_mult,
                 distill_temperature=temperature, distill_alpha=alpha, **train_options)
