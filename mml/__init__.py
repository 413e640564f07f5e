"""mml: reproduction suite for Mutual Modality Learning (Komkov, Dzabraev, Petiushko; Computer Optics 2023).

Importing mml asks torch's CPU libraries for numerics that do not depend on the CPU model (`mml.numerics`), before
torch first runs."""

from mml.numerics import apply as _apply_cpu_numerics

__version__ = "0.1.0"

_apply_cpu_numerics()
