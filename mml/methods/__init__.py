"""The training methods, one family per module, and `METHODS`: every method by the name a table spec gives.

Adding a method is its module (a `Method`, see `mml.methods.base`) and its entry here; the spec, the trainer, the
evaluation and the GFLOPs count read everything else from it.
"""

from mml.methods.adamml import ADAMML, WEIGHTED_FUSION
from mml.methods.base import Method, Training
from mml.methods.distillation import D3D, KD, MARS
from mml.methods.gblend import GBLEND, GBLEND_ONLINE
from mml.methods.late_fusion import LATE_FUSION
from mml.methods.mutual import CE, ML
from mml.methods.skd_srl import CE_AUG, SELF_KD, SKD_SRL

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        CE,
        ML,
        MARS,
        D3D,
        KD,
        CE_AUG,
        SELF_KD,
        SKD_SRL,
        LATE_FUSION,
        GBLEND,
        GBLEND_ONLINE,
        WEIGHTED_FUSION,
        ADAMML,
    )
}

__all__ = ["METHODS", "Method", "Training"]
