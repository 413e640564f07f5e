"""Seeds derived from (seed, replica, purpose, ...): every random stream of a run is independent of the others and
the same in any process, so a resumed run reproduces an uninterrupted one."""

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integer parts (stable across processes and machines, unlike `hash`)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


# Purposes of derived seeds, so that each random stream is independent of the others.
INIT_SEED, EPOCH_SEED, ORDER_SEED, SAMPLE_SEED, SPLIT_SEED, ESTIMATE_SEED = 1, 2, 3, 4, 5, 6
