"""The training methods, one family per module, and `METHODS`: every method by the name a table spec gives.

Adding a method is its module (a `Method`, see `mml.methods.base`, with its own settings, see
`mml.methods.settings`) and its entry here; the spec, the recipe, the trainer, the evaluation and the GFLOPs count
read everything else from it. `SETTINGS` holds every family's settings by the name of its recipe table.
"""

from mml.methods.adamml import ADAMML, WEIGHTED_FUSION
from mml.methods.base import Method, Training
from mml.methods.distillation import D3D, KD, MARS
from mml.methods.gblend import GBLEND, GBLEND_ONLINE
from mml.methods.late_fusion import LATE_FUSION
from mml.methods.mutual import CE, ML
from mml.methods.settings import MethodSettings
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
SETTINGS: dict[str, type[MethodSettings]] = {
    kind.namespace: kind
    for kind in sorted({m.settings for m in METHODS.values() if m.settings}, key=lambda kind: kind.namespace)
}

__all__ = ["METHODS", "SETTINGS", "Method", "MethodSettings", "Training"]
