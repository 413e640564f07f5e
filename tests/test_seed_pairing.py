"""Seeds pair across methods and through initialisation chains: seed s of a run starts from seed s of the runs it is
initialised from (and is taught by seed s of its teacher), so two cells of one seed form a pair."""

from pathlib import Path

from mml.plan import plan_tables
from mml.spec import load_profile, load_table

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"


class Videos:
    """The parts of a `VideoDataset` that planning reads."""

    fingerprint = training_fingerprint = "synthetic-fingerprint"
    validation_fingerprint = "synthetic-validation"
    multilabel = False
    classes = tuple(range(8))

    def for_target(self, target: str) -> "Videos":
        return self


def test_every_upstream_run_of_seed_s_is_of_seed_s() -> None:
    profile = load_profile(REPRODUCTIONS / "profiles.toml", "smoke", ["seeds=[0, 1, 2]"])
    tables = [load_table(REPRODUCTIONS / f"table{n:02d}.toml") for n in (2, 7, 11)]
    plan = plan_tables(tables, profile, Videos())
    seeds_of = {rid: config.seed for rid, config in plan.runs.items()}
    assert sorted(set(seeds_of.values())) == [0, 1, 2]
    for rid, config in plan.runs.items():
        assert all(seeds_of[upstream] == config.seed for upstream in config.upstream), plan.names[rid]
    for table in tables:
        for name in table.runs:
            ids = plan.run_ids(table.id, name)
            assert [plan.runs[rid].seed for rid in ids] == [0, 1, 2] and len(set(ids)) == 3


def test_the_small_profile_shares_its_seed_0_runs_with_smoke() -> None:
    tables = [load_table(REPRODUCTIONS / "table07.toml")]
    smoke = plan_tables(tables, load_profile(REPRODUCTIONS / "profiles.toml", "smoke"), Videos())
    small = plan_tables(tables, load_profile(REPRODUCTIONS / "profiles.toml", "small"), Videos())
    for name in tables[0].runs:
        assert small.run_ids("table07", name)[0] == smoke.run_ids("table07", name)[0]
    assert len(small.runs) == 3 * len(smoke.runs)
