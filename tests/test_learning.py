"""The learning check behind every table: each evaluated model's top-1 against chance (binomial) and its own
cross-entropy term against the loss of guessing, for every method family; upstream runs; the training curves."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mml.data.cache import prepare
from mml.data.datasets import open_dataset
from mml.distributed import Layout
from mml.evaluate import save_scores
from mml.execution import Execution
from mml.methods import METHODS, Training
from mml.methods.late_fusion import fusion_network
from mml.networks import network
from mml.plan import Plan, plan_tables
from mml.report.learning import ModelHealth, chance_loss, curve_panels, health_lines, table_health, write_curves
from mml.runner import init_loader
from mml.spec import load_profile, load_table
from mml.store import ModelConfig, RunConfig, Store, write_json
from mml.train import Outputs, train_run

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"
PROFILE = load_profile(REPRODUCTIONS / "profiles.toml", "smoke")
CLASSES, VIDEOS = 8, 256  # the small profile's validation set: chance 12.5 %, 2x chance 25 %
LN_K = math.log(CLASSES)


def stored_run(
    store: Store,
    plan: Plan,
    name: str,
    method: str,
    history: list[dict],
    top1: list[float],
    modalities: tuple[str, ...] = ("RGB",),
    init: str = "random",
    seed: int = 0,
    labels: np.ndarray | None = None,
    **extra,
) -> str:
    """A finished run in `store` with the given history and, per evaluated model, a top-1 (%) on `VIDEOS` videos of
    `CLASSES` classes (or mAP-only scores for multi-label `labels`)."""
    config = RunConfig(
        method=method,
        models=tuple(ModelConfig(modality=m, init=init) for m in modalities),
        arch="tsm_tiny",
        recipe=PROFILE.recipe,
        dataset="fingerprint",
        num_classes=CLASSES,
        seed=seed,
        **extra,
    )
    rid = plan.add(config, name)
    plan.validation_sets["fingerprint"] = "validation"
    write_json(store.run_dir(rid) / "metrics.json", {"history": history})
    evaluation = store.evaluation_dir(rid, plan.evaluation_key(rid, PROFILE.views))
    classes = np.arange(VIDEOS) % CLASSES
    metrics = []
    for index, accuracy in enumerate(top1):
        if labels is None:
            correct = round(accuracy * VIDEOS / 100)
            logits = np.zeros((VIDEOS, CLASSES), dtype=np.float32)
            logits[np.arange(VIDEOS), np.where(np.arange(VIDEOS) < correct, classes, (classes + 1) % CLASSES)] = 1.0
            save_scores(evaluation / f"scores{index}.npz", [str(i) for i in range(VIDEOS)], classes, logits)
            metrics.append({"top1": 100.0 * correct / VIDEOS, "top5": 100.0})
        else:
            logits = np.zeros(labels.shape, dtype=np.float32)
            save_scores(evaluation / f"scores{index}.npz", [str(i) for i in range(len(labels))], labels, logits)
            metrics.append({"map": accuracy})
    write_json(evaluation / "metrics.json", {"models": metrics})
    return rid


def epochs(loss: list[float], ce: list[float] | None) -> list[dict]:
    """A two-epoch history ending at `loss` and `ce` (None: a run stored before the trainer recorded `ce`)."""
    first = {"epoch": 1, "lr": 0.1, "loss": [LN_K] * len(loss), **({"ce": [LN_K] * len(ce)} if ce else {})}
    return [first, {"epoch": 2, "lr": 0.1, "loss": loss, **({"ce": ce} if ce else {})}]


def checked(method: str, loss: list[float], ce: list[float] | None, top1: list[float], **options) -> list[ModelHealth]:
    store, plan = Store(Path(options.pop("root"))), Plan()
    rid = stored_run(store, plan, f"t:{method}", method, epochs(loss, ce), top1, **options)
    return table_health(store, plan, [rid], PROFILE.views)


def test_chance_loss() -> None:
    assert chance_loss(np.array([0, 1, 2]), 8) == pytest.approx(math.log(8))
    # Two classes present in half and a quarter of the videos: mean binary entropy.
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 0]])
    expected = (math.log(2) + (-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))) / 2
    assert chance_loss(labels, 2) == pytest.approx(expected)


# Each family with its whole loss above ln K (mutual KL, two views' CE, a distillation term, an efficiency term)
# while its own CE term is below: the small profile's false flags before this check (e.g. Tab. 3's MML RGB models at
# 36-45 %, SKD-SRL's augment at 48.7 %, MARS's loss of 45).
FAMILIES = [
    ("ce", ("RGB",), [1.5], [1.5], [40.0], {}),
    ("ml", ("RGB", "Flow"), [2.30, 2.20], [1.60, 1.70], [40.0, 36.0], {}),
    ("ce_aug", ("RGB",), [2.87], [1.43], [48.7], {}),
    ("self_kd", ("RGB",), [2.68], [1.30], [50.3], {}),
    ("skd_srl", ("RGB",), [2.23], [1.20], [46.0], {}),
    ("mars", ("RGB",), [45.0], [1.40], [38.0], {"teacher": ModelConfig("Flow", "random")}),
    ("d3d", ("RGB",), [3.10], [1.50], [35.0], {"teacher": ModelConfig("Flow", "random")}),
    ("kd", ("RGB",), [2.50], [1.50], [35.0], {"teacher": ModelConfig("Flow", "random")}),
    ("gblend", ("RGB", "Flow"), [1.90], [1.80, 2.00, 1.70], [45.0, 30.0, 55.0], {}),
    ("adamml", ("RGB", "Flow"), [2.40], [1.40, 1.60, 1.50], [55.0, 45.0, 60.0], {}),
    ("weighted_fusion", ("RGB", "Flow"), [1.50], [1.40, 1.60, 1.50], [55.0, 45.0, 60.0], {}),
]


@pytest.mark.parametrize(
    ("method", "modalities", "loss", "ce", "top1", "extra"), FAMILIES, ids=[f[0] for f in FAMILIES]
)
def test_each_family_is_judged_on_its_cross_entropy_term_not_its_whole_loss(
    tmp_path: Path, method: str, modalities: tuple[str, ...], loss, ce, top1, extra
) -> None:
    health = checked(method, loss, ce, top1, modalities=modalities, root=tmp_path, **extra)
    assert len(health) == len(modalities) + METHODS[method].extra_heads  # fused heads are checked too
    assert all(h.learned and h.trained and h.cross_entropy and not h.loss_note for h in health)
    assert [h.curve[-1] for h in health] == ce
    assert health_lines(health)[0].startswith(f"All {len(health)} checked models behind this table learned")


def test_naive_late_fusion_labels_its_branch_heads_and_checks_its_fused_head(tmp_path: Path) -> None:
    # The small profile's naive late fusion: branch heads at chance (never trained), a fused head at 68 % whose last
    # training epoch's CE (2.915) is above ln 8: noted, not flagged.
    health = checked(
        "late_fusion", [2.915], [2.3, 2.4, 2.915], [13.28, 7.81, 68.36], modalities=("RGB", "Flow"), root=tmp_path
    )
    branches, fused = health[:2], health[2]
    assert all(not h.trained and h.learned and not h.problems for h in branches)
    assert fused.trained and fused.learned and fused.loss_note
    lines = health_lines(health)
    assert lines[0].startswith("All 1 checked models behind this table learned")
    assert lines[1] == (
        "Not checked, heads their run never trains (it trains the fused head only): `t:late_fusion/0 (seed 0)`, "
        "`t:late_fusion/1 (seed 0)`."
    )
    assert "`t:late_fusion/2 (seed 0)`" in lines[2]


def test_a_collapsed_gblend_seed_is_flagged_on_its_fused_head(tmp_path: Path) -> None:
    # G-Blend RGB + Flow seed 1 of the small profile: the Flow head at 8.98 %, the fused head near chance.
    health = checked("gblend", [2.05], [1.9, 2.1, 2.08], [50.0, 8.98, 12.89], modalities=("RGB", "Flow"), root=tmp_path)
    assert [h.learned for h in health] == [True, False, False]
    assert health[2].problems == (
        "top-1 12.89 not above chance 12.50 (one-sided binomial p = 0.453)",  # P(X >= 33), X ~ B(256, 1/8)
        "final training CE term 2.080 not below chance 2.079",
    )
    assert (
        health_lines(health)[0]
        == "**2 of 3 checked models behind this table did not learn** — verdicts on them mean little:"
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_no_model_at_twice_chance_is_flagged_and_every_trained_one_at_chance_is(tmp_path: Path, method: str) -> None:
    """Whatever its losses (every term above ln K here), a model at 2x chance learned; at chance it did not."""
    family = METHODS[method]
    modalities = ("RGB", "Flow", "Diff")[: max(family.min_models, 1)]
    extra = {"teacher": ModelConfig("Flow", "random")} if family.teacher else {}
    count = len(modalities) + family.extra_heads
    at_twice = checked(
        method, [3.0], [2.5] * count, [25.0] * count, modalities=modalities, root=tmp_path / "a", **extra
    )
    assert all(h.learned for h in at_twice)
    at_chance = checked(
        method, [3.0], [2.5] * count, [12.5] * count, modalities=modalities, root=tmp_path / "b", **extra
    )
    assert [h.learned for h in at_chance] == [not h.trained for h in at_chance]
    assert [h.trained for h in at_chance] == [
        index >= len(modalities) or family.trains_model_heads for index in range(count)
    ]


def test_multilabel_models_are_judged_on_their_bce_term(tmp_path: Path) -> None:
    # Charades-like: 4 videos, 2 classes; the guess's loss is the mean binary entropy of the prevalences. The MML
    # models' whole losses include the KL / K and lie above it (Tab. 6's 0.644 against 0.626); their BCE terms do not.
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 0]])
    guess = chance_loss(labels, 2)
    store, plan = Store(tmp_path), Plan()
    history = epochs([guess + 0.02, guess + 0.02], [guess - 0.05, guess + 0.01])
    rid = stored_run(store, plan, "t:mml", "ml", history, [30.0, 20.0], modalities=("RGB", "Flow"), labels=labels)
    first, second = table_health(store, plan, [rid], PROFILE.views)
    assert first.learned and first.top1 is None
    assert second.problems == (f"final training BCE term {guess + 0.01:.3f} not below chance {guess:.3f}",)


def test_runs_without_a_recorded_cross_entropy_term_fall_back_to_top1_and_say_so(tmp_path: Path) -> None:
    store, plan = Store(tmp_path), Plan()
    pretrain = stored_run(store, plan, "imagenet", "ce", epochs([1.6], None), [13.0])  # at chance
    student = stored_run(
        store, plan, "t:mml", "ml", epochs([2.3, 2.2], None), [40.0, 36.0], ("RGB", "Flow"), f"run:{pretrain}/0"
    )
    health = {h.name: h for h in table_health(store, plan, [student], PROFILE.views)}
    assert list(health) == ["imagenet/0 (seed 0)", "t:mml/0 (seed 0)", "t:mml/1 (seed 0)"]  # upstream runs first
    assert not health["imagenet/0 (seed 0)"].learned
    assert health["t:mml/0 (seed 0)"].learned and not health["t:mml/0 (seed 0)"].cross_entropy
    assert health["t:mml/0 (seed 0)"].curve == (LN_K, 2.3)  # the whole loss, as the curve says
    assert health_lines(list(health.values()))[2].startswith("3 models have no recorded cross-entropy term")


def test_the_curves_have_one_panel_per_model_role_with_every_seed(tmp_path: Path) -> None:
    store, plan = Store(tmp_path), Plan()
    runs = [
        stored_run(store, plan, name, "ml", epochs([2.2, 2.1], [1.5, 1.6]), [40.0, 36.0], ("RGB", other), seed=seed)
        for name, other in (("t:A", "Flow"), ("t:B", "Diff"))
        for seed in range(3)
    ]
    health = table_health(store, plan, runs, PROFILE.views)
    panels = curve_panels(health)
    assert list(panels) == ["t:A/0", "t:A/1", "t:B/0", "t:B/1"]
    assert all(
        sorted(h.name for h in seeds) == [f"{role} (seed {s})" for s in range(3)] for role, seeds in panels.items()
    )
    png = write_curves(health, tmp_path / "curves.png", "title")
    assert png is not None and png.read_bytes().startswith(b"\x89PNG")
    assert write_curves([], tmp_path / "none.png", "title") is None and not (tmp_path / "none.png").exists()


def _training(config: RunConfig, models: list, auxiliary: dict) -> Training:
    def unused(*args):
        raise AssertionError("a step trains no epoch and builds no clips")

    nets: list[torch.nn.Module] = [Outputs(model) for model in models]
    return Training(config, models, nets, None, auxiliary, Layout(len(models)), "cpu", {}, [], unused, 0, unused)


def test_each_step_records_its_models_cross_entropy_terms_apart_from_the_rest() -> None:
    recipe = PROFILE.recipe
    rgb, flow = ModelConfig("RGB", "random"), ModelConfig("Flow", "random")
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 4])
    inputs = {"RGB": torch.randn(3, 3 * recipe.segments, 32, 32), "Flow": torch.randn(3, 10 * recipe.segments, 32, 32)}
    ml = RunConfig("ml", (rgb, flow), "tsm_tiny", recipe, "d" * 64, 5, 0)
    models = [network(ml, "RGB").eval(), network(ml, "Flow").eval()]
    training = _training(ml, models, {})
    losses = METHODS["ml"].step(training, inputs, labels)
    expected = [F.cross_entropy(m(inputs[c.modality]), labels) for m, c in zip(models, ml.models, strict=True)]
    assert [t.item() for t in training.cross_entropy] == pytest.approx([e.item() for e in expected], rel=1e-5)
    assert all(loss.item() > term.item() for loss, term in zip(losses, training.cross_entropy, strict=True))  # + KL

    fusion = RunConfig("gblend", (rgb, flow), "tsm_tiny", recipe, "d" * 64, 5, 0)
    auxiliary = {"fused": fusion_network(fusion, models).fused_head.eval()}
    training = _training(fusion, models, auxiliary)
    training.heads = {"RGB": 0.2, "Flow": 0.3, "fused": 0.5}
    (blended,) = METHODS["gblend"].step(training, inputs, labels)
    terms = [t.item() for t in training.cross_entropy]
    assert len(terms) == 3  # each branch head, then the fused head (model index M)
    assert blended.item() == pytest.approx(0.2 * terms[0] + 0.3 * terms[1] + 0.5 * terms[2], rel=1e-5)

    views = [{"RGB": torch.randn(3, 3 * recipe.segments, 32, 32)} for _ in range(2)]
    two = RunConfig("self_kd", (rgb,), "tsm_tiny", recipe, "d" * 64, 5, 0)
    training = _training(two, models[:1], {})
    METHODS["self_kd"].step(training, views, labels)
    p1, p2 = (models[0](view["RGB"]) for view in views)
    mean = (F.cross_entropy(p1, labels) + F.cross_entropy(p2, labels)) / 2  # one view's scale, not their sum
    assert training.cross_entropy[0].item() == pytest.approx(mean.item(), rel=1e-5)


def test_the_trainer_records_the_cross_entropy_term_beside_the_loss(tmp_path: Path) -> None:
    from test_reproduce import MICRO

    (tmp_path / "profiles.toml").write_text(MICRO)
    profile = load_profile(tmp_path / "profiles.toml", "micro")
    dataset = open_dataset(profile.dataset, None, tmp_path / "data", progress=False)
    plan = plan_tables([load_table(REPRODUCTIONS / "table07.toml")], profile, dataset)
    store = Store(tmp_path / "store")
    cache = dataset.frame_source(store.cache_dir(), profile.recipe.short_side)
    prepare(cache, (*dataset.train, *dataset.validation), with_flow=False, workers=1, progress=False)
    config = plan.runs[plan.runs[plan.run_id("table07", "rgb", 0)].upstream[0]]  # a CE run: its CE is its loss
    folder = train_run(
        config, dataset.for_target(config.target), cache, store, Execution(progress=False), init_loader(store, None)
    )
    history = json.loads((folder / "metrics.json").read_text())["history"]
    assert len(history) == config.recipe.epochs
    assert all(epoch["ce"] == pytest.approx(epoch["loss"], rel=1e-6) for epoch in history)
