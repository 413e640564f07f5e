"""Every verdict recomputed from the machine-readable files alone, with numpy and scipy and without `mml.report`:
a small generated store (made-up scores for every run the test tables of `tests/specs` plan on three seeds, no
training) is written as an invocation writes it, then each claim's differences, interval, p-value, verdict (for a
claim against several rivals, each pairwise one and their combination) and Benjamini–Hochberg decision are
recomputed from the `<table>.json` files by the rules of docs/verdicts.md."""

import dataclasses
import json
import math
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_reproduce import MICRO

from mml.data.datasets import VideoDataset
from mml.data.sthv2 import VideoRecord
from mml.evaluate import save_scores, topk_correct
from mml.methods import METHODS
from mml.plan import plan_tables
from mml.report.build import write_outputs, write_summary
from mml.report.export import write_records
from mml.report.results import StoredResults
from mml.spec import load_profile, load_table
from mml.store import Store, write_json

SPECS = Path(__file__).parent / "specs"
VIDEOS = 300
EXTRA_CLAIMS = """
[[claims]]
text = "MML beats CE, written a second time"
better = "mml"
worse = "rgb"

[[claims]]
text = "MML is within 2 points of CE"
better = "mml"
worse = "rgb"
kind = "equivalence"
margin = 2.0

[[claims]]
text = "Flow is not worse than RGB by more than 1 point"
better = "flow"
worse = "rgb"
margin = -1.0

[[claims]]
text = "Flow and RGB are equal in top-5"
better = "flow"
worse = "rgb"
metric = "top5"
kind = "equivalence"
margin = 0.5

[[claims]]
text = "MML is ahead of both CE models"
better = "mml"
worse = ["rgb", "flow"]

[[claims]]
text = "Flow CE is ahead of RGB CE and of MML"
better = "flow"
worse = ["rgb", "mml"]

[[claims]]
text = "MML ranks before CE"
better = "RGB: MML"
worse = "RGB: CE"
metric = "positions"
"""
MATRIX_RANKING = """
[[claims]]
text = "RGB MML is the best partner of Flow CE"
better = "Flow CE | RGB MML"
worse = ["Flow CE | RGB CE", "Flow CE | Diff CE"]
"""
SKILL = {"ce": 0.45, "mars": 0.5, "d3d": 0.4, "ml": 0.8}  # probability of a right answer, per method


def fake_scores(seed: int, skill: float, classes: int, difficulty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and logits of a model that gets video v right with probability Φ(Φ⁻¹(skill) + seed effect −
    difficulty_v)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(VIDEOS) % classes
    probability = stats.norm.cdf(stats.norm.ppf(skill) + rng.normal(0, 0.05) - difficulty)
    right = rng.random(VIDEOS) < probability
    logits = rng.normal(0, 0.1, (VIDEOS, classes)).astype(np.float32)
    guess = np.where(right, labels, (labels + 1 + rng.integers(0, classes - 1, VIDEOS)) % classes)
    logits[np.arange(VIDEOS), guess] += 3.0
    return labels, logits


@pytest.fixture(scope="module")
def invocation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The table folder of `all` over the test tables (one of them twice under another id: every claim written
    twice) on the micro profile with seeds 0, 1, 2, from made-up scores."""
    root = tmp_path_factory.mktemp("recompute")
    specs = root / "specs"
    shutil.copytree(SPECS, specs)
    (specs / "table90.toml").write_text(
        (SPECS / "table90.toml").read_text() + EXTRA_CLAIMS.split('[[claims]]\ntext = "MML ranks')[0]
    )
    (specs / "table92.toml").write_text(
        (SPECS / "table92.toml").read_text()
        + '[[claims]]\ntext = "MML ranks'
        + EXTRA_CLAIMS.split('[[claims]]\ntext = "MML ranks')[1]
    )
    (specs / "table91.toml").write_text((SPECS / "table91.toml").read_text() + MATRIX_RANKING)
    twin = (SPECS / "table90.toml").read_text().replace('id = "table90"', 'id = "table93"')
    (specs / "table93.toml").write_text(twin)
    (specs / "profiles.toml").write_text(MICRO.replace("seeds = [0]", "seeds = [0, 1, 2]"))
    profile = load_profile(specs / "profiles.toml", "micro")
    tables = [load_table(specs / f"table9{i}.toml") for i in range(4)]
    train = tuple(VideoRecord(f"t{i}", root / f"t{i}.webm", i % 3, (f"object {i % 2}",)) for i in range(6))
    fingerprints = {f.name: "test" for f in dataclasses.fields(VideoDataset) if f.name.endswith("fingerprint")}
    dataset = VideoDataset(root=root, classes=("a", "b", "c"), train=train, validation=(), **fingerprints)
    plan = plan_tables(tables, profile, dataset)
    store = Store(root / "store")
    difficulty = np.random.default_rng(99).normal(0, 0.8, VIDEOS)
    for number, (rid, config) in enumerate(plan.runs.items()):
        models = len(config.models) + METHODS[config.method].extra_heads
        history = [{"epoch": 1, "lr": 0.1, "loss": [0.5] * models, "ce": [0.5] * models}]
        write_json(store.run_dir(rid) / "metrics.json", {"history": history})
        write_json(store.run_dir(rid) / "run.json", {"run_id": rid, "config": {}})
        for views in plan.evaluations[rid]:
            folder = store.evaluation_dir(rid, plan.evaluation_key(rid, views))
            metrics = []
            for model in range(models):
                skill = SKILL.get(config.method, 0.5) + 0.05 * model
                labels, logits = fake_scores(1000 * number + model, skill, config.num_classes, difficulty)
                save_scores(folder / f"scores{model}.npz", [f"v{i}" for i in range(VIDEOS)], labels, logits)
                metrics.append({k: 100.0 * float(topk_correct(logits, labels, n).mean()) for k, n in TOPK.items()})
            write_json(folder / "metrics.json", {"models": metrics})
    out = root / "tables"
    reports = [write_outputs(StoredResults(store, plan, profile, table), "test", out)[0] for table in tables]
    write_records(reports, out)
    write_summary(reports, out)
    return out


TOPK = {"top1": 1, "top5": 5}


def recomputed_interval(differences: np.ndarray, correct: tuple[np.ndarray, np.ndarray] | None, confidence: float):
    """(se, df, method) by docs/verdicts.md: seeds only, or the seeds × videos variance components."""
    k = len(differences)
    if correct is None:
        return differences.std(ddof=1) / math.sqrt(k), k - 1, "seeds"
    d = 100.0 * (correct[0].astype(float) - correct[1])
    n = d.shape[1]
    spread = differences.var(ddof=1)
    by_video = d.mean(axis=0)
    between = by_video.var(ddof=1)
    residual = d - d.mean(axis=1, keepdims=True) - by_video + d.mean()
    interaction = (residual**2).sum() / ((k - 1) * (n - 1))
    seed = max(0.0, spread - interaction / n) / k
    video = max(0.0, between - interaction / k) / n
    total = seed + video + interaction / (k * n)
    shared = (1 - (seed > 0) - (video > 0)) / (k * n)
    terms = [(spread / k if seed else 0.0, k - 1), (between / n if video else 0.0, n - 1)]
    terms.append((shared * interaction, (k - 1) * (n - 1)))
    df = total**2 / sum(v**2 / f for v, f in terms) if total > 0 else k - 1
    return math.sqrt(total), df, "seeds and videos"


def recompute(claim: dict, cells: dict) -> dict:
    """A claim's verdict from the file's cells alone; against several rivals, each pairwise one and their
    intersection-union (docs/verdicts.md): supported only against all, contradicted against any at R · p < 0.05; the
    deciding rival's numbers (if contradicted, the contradicting rival with the smallest p-value, else the largest
    p-value among the rivals not supported against, or among all)."""
    if isinstance(claim["worse"], str):
        return recompute_pair(claim, claim["worse"], cells)
    pairs = {rival: recompute_pair(claim, rival, cells) for rival in claim["worse"]}
    verdicts = {rival: pair["verdict"] for rival, pair in pairs.items()}

    def weakness(rival: str) -> float:
        return math.inf if pairs[rival]["p_value"] is None else pairs[rival]["p_value"]

    missing = [rival for rival, verdict in verdicts.items() if verdict.startswith("no verdict")]
    against = [
        rival
        for rival, verdict in verdicts.items()
        if verdict in ("contradicted", "different") and len(pairs) * weakness(rival) < 0.05
    ]
    open_ = [rival for rival, verdict in verdicts.items() if verdict not in ("supported", "equivalent")]
    if missing:
        deciding, verdict = missing[0], verdicts[missing[0]]
    elif against:
        deciding = min(against, key=weakness)
        verdict = verdicts[deciding]
        corrected = min(1.0, len(pairs) * weakness(deciding))
        return {**pairs[deciding], "verdict": verdict, "p_value": corrected, "deciding": deciding, "pairs": pairs}
    else:
        deciding = max(open_ or list(pairs), key=weakness)
        verdict = "inconclusive" if open_ else verdicts[deciding]
    return {**pairs[deciding], "verdict": verdict, "deciding": deciding, "pairs": pairs}


def recompute_pair(claim: dict, rival: str, cells: dict) -> dict:
    """The verdict of `claim`'s better cell against one rival from the file's cells alone."""
    better, worse = (np.array(cells[key]["values"][claim["metric"]], dtype=float) for key in (claim["better"], rival))
    advantage = worse - better if claim["lower_is_better"] else better - worse
    differences = 100 * advantage / np.abs(worse) if claim["relative"] else advantage
    outcome = {
        "differences": list(differences),
        "interval": None,
        "p_value": None,
        "verdict": f"no verdict ({len(differences)} seeds)",
    }
    if len(differences) < 3:
        return outcome
    equivalence = claim["kind"] == "equivalence"
    confidence = 0.90 if equivalence else 0.95
    stored = [cells[key]["correct"].get(claim["metric"]) for key in (claim["better"], rival)]
    correct = None if stored[0] is None else tuple(np.array([[c == "1" for c in seed] for seed in s]) for s in stored)
    se, df, method = recomputed_interval(differences, correct, confidence)
    mean, margin = differences.mean(), claim["margin"]
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    low, high = mean - half, mean + half
    outcome["interval"] = {"low": low, "high": high, "confidence": confidence, "method": method, "se": se, "df": df}
    if se == 0:
        outcome["verdict"] = "inconclusive"
        return outcome
    if equivalence:
        outcome["p_value"] = stats.t.sf(abs(abs(mean) - margin) / se, df)
        inside, outside = -margin < low and high < margin, low > margin or high < -margin
        outcome["verdict"] = "equivalent" if inside else "different" if outside else "inconclusive"
    else:
        outcome["p_value"] = 2 * stats.t.sf(abs(mean - margin) / se, df)
        outcome["verdict"] = "supported" if low > margin else "contradicted" if high < margin else "inconclusive"
    return outcome


def agree(stored: dict, ours: dict) -> None:
    """The file's numbers and verdict of a claim (or of one of its pairwise comparisons) are the recomputed ones."""
    assert stored["differences"] == pytest.approx(ours["differences"])
    assert stored["mean"] == pytest.approx(np.mean(ours["differences"]))
    assert stored["verdict"] == ours["verdict"]
    if ours["interval"] is not None:
        numbers = {key: value for key, value in ours["interval"].items() if key != "method"}
        assert stored["interval"]["method"] == ours["interval"]["method"]
        assert {key: stored["interval"][key] for key in numbers} == pytest.approx(numbers, rel=1e-9)
    if ours["p_value"] is None:  # a zero-width interval
        assert stored["p_value"] is None
    else:
        assert stored["p_value"] == pytest.approx(ours["p_value"], rel=1e-9)


def test_every_verdict_recomputes_from_the_files_alone(invocation: Path) -> None:
    files = {path.stem: json.loads(path.read_text()) for path in sorted(invocation.glob("*.json"))}
    assert set(files) == {"table90", "table91", "table92", "table93"}
    family = files["table90"]["rules"]["family"]
    assert family == ["table90", "table91", "table92", "table93"]
    claims = [(table, claim) for table in family for claim in files[table]["claims"]]
    verdicts = {}
    for table, claim in claims:
        ours = recompute(claim, files[table]["cells"])
        agree(claim, ours)
        assert claim["deciding"] == ours.get("deciding")
        if claim["pairs"] is not None:
            assert [pair["worse"] for pair in claim["pairs"]] == list(ours["pairs"])
            for pair in claim["pairs"]:
                agree(pair, ours["pairs"][pair["worse"]])
        verdicts[(table, claim["text"])] = ours
    # Benjamini–Hochberg over the distinct claims of the invocation (the first of each identity) with a p-value.
    first: dict[str, tuple[str, str]] = {}
    for table, claim in claims:
        first.setdefault(claim["identity"], (table, claim["text"]))
    tested = sorted((verdicts[key]["p_value"], key) for key in first.values() if verdicts[key]["p_value"] is not None)
    count, adjusted, running = len(tested), {}, 1.0
    for rank in range(count, 0, -1):
        running = min(running, tested[rank - 1][0] * count / rank)
        adjusted[tested[rank - 1][1]] = running
    for table, claim in claims:
        origin = first[claim["identity"]]
        assert claim["p_adjusted"] == (pytest.approx(adjusted[origin]) if origin in adjusted else None)
        decided = claim["verdict"] not in ("inconclusive",) and not claim["verdict"].startswith("no verdict")
        kept = origin in adjusted and adjusted[origin] < 0.05
        assert claim["verdict_after_bh"] == (claim["verdict"] if kept or not decided else "inconclusive")
        assert (claim["duplicate_of"] is None) == (origin == (table, claim["text"]))
    # The examples this store was made to hold: duplicates, a decided claim, a zero-spread one, videos in an interval.
    assert files["table93"]["claims"][0]["duplicate_of"] == {"table": "table90", "claim": 0}
    texts = {claim["text"]: claim for claim in files["table90"]["claims"]}
    assert texts["MML beats CE, written a second time"]["duplicate_of"] == {"table": "table90", "claim": 0}
    assert texts["MML beats CE"]["verdict"] == "supported"
    assert texts["MML beats CE"]["interval"]["method"] == "seeds and videos"
    assert texts["Flow and RGB are equal in top-5"]["interval"]["se"] == 0  # 3 classes: top-5 always right
    assert texts["Flow and RGB are equal in top-5"]["verdict"] == "inconclusive"
    ahead = texts["MML is ahead of both CE models"]  # against several rivals: every pair in the file
    assert ahead["verdict"] == "supported" and [pair["verdict"] for pair in ahead["pairs"]] == ["supported"] * 2
    assert ahead["p_value"] == max(pair["p_value"] for pair in ahead["pairs"])
    partner = files["table91"]["claims"][1]  # ensembles against several rivals: intervals over seeds and videos
    assert len(partner["pairs"]) == 2 and partner["interval"]["method"] == "seeds and videos"
    behind = texts["Flow CE is ahead of RGB CE and of MML"]
    assert behind["verdict"] == "contradicted" and behind["deciding"] == "mml"
    positions = files["table92"]["claims"][0]
    assert positions["lower_is_better"] and positions["interval"]["method"] == "seeds"
    # The headline counts the distinct claims, as judged and after Benjamini–Hochberg.
    headline = (invocation / "REPORT.md").read_text().splitlines()[4]
    judged = Counter(verdicts[key]["verdict"] for key in first.values())
    kept = Counter(
        verdicts[key]["verdict"] if key in adjusted and adjusted[key] < 0.05 else "inconclusive"
        for key in first.values()
        if verdicts[key]["verdict"] not in ("inconclusive", "no verdict (3 seeds)")
    )
    kept["inconclusive"] += sum(1 for key in first.values() if verdicts[key]["verdict"] == "inconclusive")
    twice = len(claims) - len(first)
    assert headline.startswith(f"Verdicts on the paper's {len(first)} claims ({twice} written twice, counted once): ")
    before, after = headline.split(f"over the {count} claims with a p-value: ")[0], headline.split(": ")[-1]
    assert all(f"{number} {name}" in before for name, number in judged.items())
    assert sorted(after.rstrip(".").split(", ")) == sorted(
        f"{number} {name}" for name, number in kept.items() if number
    )


def test_the_files_and_footnotes_name_the_commit_and_every_run(invocation: Path) -> None:
    record = json.loads((invocation / "table90.json").read_text())
    assert record["seeds"] == [0, 1, 2] and record["profile"] == "micro"
    assert record["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", record["commit"])
    assert record["dirty"] in (None, True, False)
    upstream = record["upstream_run_ids"]  # the ImageNet stand-in of each seed
    assert len(upstream) == 3 and set(upstream) <= set(record["run_ids"])
    assert all(rid not in ids for ids in record["runs"].values() for rid in upstream)
    cell = record["cells"]["mml"]
    assert cell["members"] == [{"run": "mml", "model": 0, "run_ids": record["runs"]["mml"]}]
    assert len(cell["values"]["top1"]) == 3 and [len(seed) for seed in cell["correct"]["top1"]] == [VIDEOS] * 3
    assert "RGB + Flow ensemble | Top-1 / Top-5" in record["cells"]  # cells without an id, by row and column
    markdown = (invocation / "table90.md").read_text()
    assert f"Upstream runs (store ids): {', '.join(upstream)}." in markdown
    assert "Git commit: " in markdown and "`table90.json`" in markdown
