"""Table specs and scale profiles: typed, validated dataclasses read from TOML.

`schema` (with `recipe` and `dataset`) holds the dataclasses, `profile` reads `reproductions/profiles.toml`, `table`
reads a table spec; every error names the file, the key and the reason on one line. The names below are the
package's interface.
"""

from mml.spec.dataset import DATASET_KINDS, DatasetConfig, RawframesConfig
from mml.spec.profile import load_profile
from mml.spec.recipe import SAMPLINGS, Recipe, execution, identity, run_recipe
from mml.spec.schema import (
    ACCURACY_METRICS,
    CLAIM_KINDS,
    COST_METRICS,
    IMAGENET_SOURCES,
    INFORMATIVE_METRICS,
    METRICS,
    MODALITY_NAMES,
    MULTILABEL_SETUP,
    POSITIONS,
    SELECTION_METRICS,
    SETUPS,
    SPATIAL_CROPS,
    ClaimSpec,
    ImagenetSource,
    MatrixSpec,
    ModelRef,
    ModelSpec,
    Profile,
    ResultCell,
    RunSpec,
    TableSpec,
    TriplesSpec,
    ViewProtocol,
    cell_model_count,
)
from mml.spec.table import (
    ALL_GROUP,
    RELATED_GROUP,
    RELATED_TABLES,
    all_table_paths,
    load_table,
    table_path,
    table_paths,
)

__all__ = [
    "ACCURACY_METRICS",
    "COST_METRICS",
    "ALL_GROUP",
    "CLAIM_KINDS",
    "DATASET_KINDS",
    "IMAGENET_SOURCES",
    "METRICS",
    "MODALITY_NAMES",
    "MULTILABEL_SETUP",
    "POSITIONS",
    "INFORMATIVE_METRICS",
    "SELECTION_METRICS",
    "RELATED_GROUP",
    "RELATED_TABLES",
    "SAMPLINGS",
    "SETUPS",
    "SPATIAL_CROPS",
    "ClaimSpec",
    "DatasetConfig",
    "ImagenetSource",
    "MatrixSpec",
    "ModelRef",
    "ModelSpec",
    "Profile",
    "RawframesConfig",
    "Recipe",
    "ResultCell",
    "RunSpec",
    "TableSpec",
    "TriplesSpec",
    "ViewProtocol",
    "all_table_paths",
    "cell_model_count",
    "execution",
    "identity",
    "load_profile",
    "load_table",
    "run_recipe",
    "table_path",
    "table_paths",
]
