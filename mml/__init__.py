"""mml: reproduction suite for Mutual Modality Learning (Komkov, Dzabraev, Petiushko; Computer Optics 2023)."""

__version__ = "0.1.0"
