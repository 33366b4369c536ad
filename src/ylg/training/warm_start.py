"""Start a run from a model folder's weights (``--init-from``): fine-tuning or continuing a
model whose optimizer state was not kept.

A model folder (``ylg export``) holds G (the EMA weights when its run kept an EMA) and D but
no optimizer state, so a run started from one is not a resume: Adam's moments, the EMA, LeCam's
anchors and the step count start fresh; G, D (spectral norm's u and v included) and the EMA
copy of G start from the folder. What the run started from is recorded in every checkpoint
(``extra["init"]``), so that ``ylg export`` can count the images the model has seen in all.
"""

from __future__ import annotations

from ylg.models.loading import MODEL_OPTIONS
from ylg.models.pretrained import load_pretrained, model_info
from ylg.training.config import TrainConfig
from ylg.training.state import Networks


def warm_start(nets: Networks, config: TrainConfig, num_classes: int) -> dict:
    """Load ``config.init_from``'s G and D into ``nets`` (and the EMA copy of G); returns
    what to record: the folder's name, step, images seen and G's SHA-256.

    Raises ValueError when the folder's models differ in shape from the run's options (naming
    the option, the folder's value and the run's) or in their number of classes."""
    info = model_info(config.init_from)
    base = load_pretrained(config.init_from)  # checks every file's SHA-256
    for name in MODEL_OPTIONS:
        theirs, ours = base.config[name], getattr(config, name)
        if theirs != ours:
            raise ValueError(
                f"init_from={config.init_from!r} has {name}={theirs!r} but this run has "
                f"{name}={ours!r}; give --{name.replace('_', '-')} {theirs} (or another model)"
            )
    if info["num_classes"] != num_classes:
        raise ValueError(
            f"init_from={config.init_from!r} was trained with {info['num_classes']} classes "
            f"but the data has {num_classes}"
        )
    nets.G.load_state_dict(base.G.state_dict())
    nets.D.load_state_dict(base.D.state_dict())
    if nets.ema is not None:
        nets.ema.module.load_state_dict(base.G.state_dict())
    return info
