"""Procedural defect-inspection data: surfaces, defects, and the ImageFolder dataset writer."""

from edgealex.synth.render import (  # noqa: F401
    DEFECT_LABELS,
    DIFFICULTIES,
    GENERATOR_VERSION,
    LABELS,
    SURFACES,
    draw_defect,
    render_sample,
    render_surface,
)
from edgealex.synth.dataset import (  # noqa: F401,E402
    DEFAULT_SPLITS,
    SPLITS,
    SynthResult,
    read_dataset,
    synthesize,
)
