"""Same identity, same result: the pinned micro runs retrained from scratch have the pinned ids and results.

The pinned runs (tests/pinned/: the ImageNet stand-in, CE, MML of RGB + Flow + Diff, MARS and D3D students) train
in about 13 s from a new store. Their ids include `SEMANTICS`, the profile, the specs and the data fingerprint: an
id that differs from the pin means one of those changed on purpose, and the pin is re-made with
`python -m tests.pinned_run`. The same ids with other results mean that code changed what a run computes without
bumping `SEMANTICS`, so stored runs would be reused under ids that now name other results.

Tolerances (`pinned_run.RTOL`, `ATOL`: 1e-5 relative, 1e-6 absolute, on every epoch's mean losses and every logit;
top-1 / top-5 exactly). mml trains on the CPU with one intra-op thread, so on the same kind of machine (CI: 2-core
x86_64, as here) the results are bit-identical; another CPU or BLAS build rounds differently. As the stand-in for
that, the same runs with 2 threads differed from the pinned ones by at most 8.9e-6 in a loss (the MARS loss, about
45: 2e-7 relative) and 1.8e-7 in a logit, 5-50 times inside the tolerance; scaling MML's KL term by 0.999 moved the
losses by up to 7.4e-5 and the logits by 1.4e-5, outside it. The recipe is tame on purpose (lr 0.001, 6 steps): at
lr 0.01 two threads instead of one already changed a loss by 23. `python -m tests.pinned_run` re-checks this when it
re-pins: it refuses to pin runs whose 2-thread results fall outside the tolerance.
"""

import json
from pathlib import Path

import pytest
from pinned_run import PIN_FILE, REPIN_COMMAND, changed_ids, changed_results, measure


@pytest.mark.slow
def test_pinned_runs_reproduce_their_ids_and_results(tmp_path: Path) -> None:
    pinned = json.loads(PIN_FILE.read_text())
    measured = measure(tmp_path)
    ids = changed_ids(pinned, measured)
    assert not ids, (
        "SEMANTICS or the run config changed (ids differ from the pin): re-pin with "
        f"`{REPIN_COMMAND}` and commit {PIN_FILE.relative_to(PIN_FILE.parents[2])}.\n" + "\n".join(ids)
    )
    results = changed_results(pinned, measured)
    assert not results, (
        "the training semantics changed without a SEMANTICS bump: the same run ids now give other results. Bump "
        f"SEMANTICS in mml/store.py, then re-pin with `{REPIN_COMMAND}`.\n" + "\n".join(results)
    )


def test_the_comparison_tells_an_id_change_from_a_result_change() -> None:
    pinned = json.loads(PIN_FILE.read_text())
    name = next(iter(pinned))
    renamed = {**pinned, name: {**pinned[name], "id": "0" * 16}}
    assert changed_ids(pinned, renamed) == [f"{name}: pinned {pinned[name]['id']}, now {'0' * 16}"]
    assert changed_results(pinned, pinned) == []
    first_loss = pinned[name]["loss"][0][0]
    moved = {**pinned, name: {**pinned[name], "loss": [[first_loss * (1 + 1e-4)], *pinned[name]["loss"][1:]]}}
    rounded = {**pinned, name: {**pinned[name], "loss": [[first_loss * (1 + 1e-7)], *pinned[name]["loss"][1:]]}}
    assert changed_ids(pinned, moved) == [] and len(changed_results(pinned, moved)) == 1
    assert changed_results(pinned, rounded) == []
