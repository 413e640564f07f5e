"""Tests of the synthetic Something-Something-v2 generator."""

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from mml.data.generated import generate_into
from mml.data.regions import read_informative_regions
from mml.data.synthetic import (
    DISTRACTOR_COLOURS,
    GENERATOR_VERSION,
    MARKER_NAME,
    OBJECT_COLOURS,
    REGIONS_FILE,
    TEMPLATES,
    SyntheticConfig,
    ensure_sthv2,
    generate_sthv2,
    plan_clip,
    render_clip,
    typical_object,
)
from mml.data.transforms import center_crop
from mml.data.video import decode_video
from mml.errors import DataError, InvalidValue
from mml.spec import load_profile

TINY = SyntheticConfig(num_classes=3, train_per_class=2, val_per_class=1, frames=6, min_frames=4, height=32, width=48)
ANNOTATIONS = (
    "something-something-v2-labels.json",
    "something-something-v2-train.json",
    "something-something-v2-validation.json",
    "something-something-v2-test.json",
)
# Many videos per class: plans are cheap, so trajectory statistics can use a large sample.
LARGE = SyntheticConfig(train_per_class=150)
# Long videos: the class motion in 2 of 4 regions.
LONG = SyntheticConfig(num_classes=10, train_per_class=40, frames=8, min_frames=5, regions=4, informative_regions=2)
TINY_LONG = SyntheticConfig(**{**vars(TINY), "regions": 3, "informative_regions": 2})


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_sthv2(tmp_path_factory.mktemp("tiny") / "sthv2", TINY, progress=False)


def _load(path: Path) -> object:
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "changes",
    [
        {"num_classes": 1},
        {"num_classes": 11},
        {"train_per_class": 0},
        {"val_per_class": 0},
        {"min_frames": 1},
        {"min_frames": 17},
        {"height": 47},
        {"width": 30},
        {"fps": 0},
        {"seed": -1},
        {"frames": 16.0},
        {"num_classes": True},
        {"margin": -1},
        {"margin": 7},
        {"typical_percent": 101},
        {"moving_distractor_percent": -1},
        {"regions": 0},
        {"informative_regions": 0},
        {"informative_regions": 2},
        {"informative_regions": 4, "regions": 3},
        {"regions": 2.0},
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidValue, match=f"^{next(iter(changes))}: "):
        SyntheticConfig(**changes)


def test_fingerprint_fields_hold_every_field_and_the_version() -> None:
    fields = SyntheticConfig(seed=3).fingerprint_fields()
    assert fields["seed"] == 3 and fields["generator_version"] == GENERATOR_VERSION
    assert set(fields) == {
        "num_classes",
        "train_per_class",
        "val_per_class",
        "frames",
        "min_frames",
        "height",
        "width",
        "fps",
        "seed",
        "margin",
        "typical_percent",
        "moving_distractor_percent",
        "generator_version",
    }
    assert SyntheticConfig().fingerprint_fields() != fields


def _plans(config: SyntheticConfig, label: int) -> list:
    return [plan_clip(config, "train", index) for index in range(label, config.split_size("train"), config.num_classes)]


# (label, axis, sign): the trajectory coordinate (x=0, y=1, radius=2) that must strictly grow (+1) or shrink (-1).
MOTION_CHECKS = [
    (0, 0, 1),
    (1, 0, -1),
    (2, 1, -1),
    (3, 1, 1),
    (4, 0, 1),
    (4, 1, 1),
    (5, 0, -1),
    (5, 1, -1),
    (6, 0, -1),
    (6, 1, 1),
    (7, 0, 1),
    (7, 1, -1),
    (8, 2, 1),
    (9, 2, -1),
]


@pytest.mark.parametrize(("label", "axis", "sign"), MOTION_CHECKS)
def test_trajectories_follow_the_class_motion(label: int, axis: int, sign: int) -> None:
    for plan in _plans(SyntheticConfig(), label):
        assert plan.label == label
        values = plan.radii if axis == 2 else plan.centres[:, axis]
        assert np.all(sign * np.diff(values) > 0), TEMPLATES[label]


def _inside(box: tuple[np.ndarray, np.ndarray], centres: np.ndarray, radii: np.ndarray) -> bool:
    """Whether discs of `radii` at `centres` lie inside the box (low corner, high corner)."""
    low, high = box
    return bool(np.all(centres - radii[:, None] >= low) and np.all(centres + radii[:, None] <= high))


@pytest.mark.parametrize("label", range(10))
def test_objects_stay_inside_the_stage(label: int) -> None:
    config = SyntheticConfig()
    low, high = config.stage()
    assert np.allclose(low, [8 + config.margin, config.margin]) and np.allclose(high, [56 - config.margin, 44])
    for plan in _plans(config, label):
        assert config.min_frames <= len(plan.centres) == len(plan.radii) <= config.frames
        for track in (plan.obj, plan.distractor):
            assert len(track.centres) == len(track.radii) == len(plan.centres)
            assert _inside(config.stage(), track.centres, track.radii)


def test_objects_stay_inside_the_smoke_profiles_test_crop() -> None:
    """The smoke profile's centre crop (the test view) holds every object of every clip whole."""
    profile = load_profile(Path(__file__).parents[1] / "reproductions" / "profiles.toml", "smoke")
    config = SyntheticConfig(**profile.dataset.synthetic)
    recipe = profile.recipe
    assert min(config.height, config.width) == recipe.short_side  # frames are not rescaled, so pixels are the crop's
    crop = center_crop(config.height, config.width, recipe.input_size)
    box = (np.array([crop.left, crop.top]), np.array([crop.left + crop.width, crop.top + crop.height]))
    for split in ("train", "validation"):
        for index in range(config.split_size(split)):
            plan = plan_clip(config, split, index)
            assert all(_inside(box, track.centres, track.radii) for track in (plan.obj, plan.distractor))


def test_typical_objects_are_distinct_and_differ_within_pairs() -> None:
    objects = [typical_object(label) for label in range(len(TEMPLATES))]
    assert len(set(objects)) == len(objects)
    assert all(colour in OBJECT_COLOURS for colour, _ in objects)
    for first in range(0, len(TEMPLATES), 2):
        (colour_a, shape_a), (colour_b, shape_b) = objects[first], objects[first + 1]
        assert colour_a != colour_b and shape_a != shape_b


@pytest.mark.parametrize("percent", [0, 30, 100])
def test_objects_correlate_with_the_class_at_the_configured_rate(percent: int) -> None:
    config = SyntheticConfig(train_per_class=100, typical_percent=percent)
    plans = [plan_clip(config, "train", index) for index in range(config.split_size("train"))]
    rate = np.mean([plan.typical for plan in plans])
    assert abs(rate - percent / 100) <= 3 * np.sqrt(0.25 / len(plans))  # 3 standard deviations of a binomial at most
    for plan in plans:
        assert plan.colour in OBJECT_COLOURS
        if plan.typical:
            assert (plan.colour, plan.shape) == typical_object(plan.label)
    # Objects not drawn as typical are spread over the vocabulary, so appearance is only a partial cue.
    others = {(plan.colour, plan.shape) for plan in plans if not plan.typical}
    assert percent == 100 or len(others) > 0.9 * len(OBJECT_COLOURS) * 4


def test_appearance_alone_predicts_the_class_well_above_chance_but_far_from_always() -> None:
    """The best guess of the class from the labelled object's name alone, learned on training plans."""
    config = SyntheticConfig(num_classes=8, train_per_class=300, val_per_class=300)
    votes: dict[str, Counter] = defaultdict(Counter)
    for index in range(config.split_size("train")):
        plan = plan_clip(config, "train", index)
        votes[plan.placeholder][plan.label] += 1
    guess = {name: counter.most_common(1)[0][0] for name, counter in votes.items()}
    plans = [plan_clip(config, "validation", index) for index in range(config.split_size("validation"))]
    accuracy = np.mean([guess.get(plan.placeholder) == plan.label for plan in plans])
    assert 0.45 < accuracy < 0.65  # chance: 1/8


@pytest.mark.parametrize("percent", [0, 50, 100])
def test_distractors_move_as_another_class_at_the_configured_rate(percent: int) -> None:
    config = SyntheticConfig(train_per_class=100, moving_distractor_percent=percent)
    plans = [plan_clip(config, "train", index) for index in range(config.split_size("train"))]
    moving = [plan for plan in plans if plan.distractor.motions != (None,)]
    assert abs(len(moving) / len(plans) - percent / 100) <= 3 * np.sqrt(0.25 / len(plans))
    for plan in plans:
        distractor = plan.distractor
        assert distractor.colour in DISTRACTOR_COLOURS and distractor.colour not in OBJECT_COLOURS
        (motion,) = distractor.motions
        if motion is None:
            assert np.ptp(distractor.centres, axis=0).max() == 0 and np.ptp(distractor.radii) == 0
            continue
        assert motion != plan.label and 0 <= motion < config.num_classes
    for label, axis, sign in MOTION_CHECKS:  # a moving distractor follows its own class's motion
        for plan in (plan for plan in moving if plan.distractor.motions == (label,)):
            values = plan.distractor.radii if axis == 2 else plan.distractor.centres[:, axis]
            assert np.all(sign * np.diff(values) > 0), TEMPLATES[label]


def test_speeds_vary_within_a_clip() -> None:
    for plan in _plans(SyntheticConfig(), 0):
        steps = np.diff(plan.centres[:, 0])
        assert steps.max() > 1.3 * steps.min()


def test_the_labelled_object_is_the_only_saturated_thing_in_a_frame() -> None:
    """One frame tells which object the label is about (the object task is well posed), by colour alone."""
    config = SyntheticConfig()
    ys, xs = np.mgrid[0 : config.height, 0 : config.width]
    for index in range(10):
        plan = plan_clip(config, "train", index)
        frames = render_clip(config, "train", index).astype(int)
        chroma = frames.max(axis=-1) - frames.min(axis=-1)
        for frame_chroma, centre, radius in zip(chroma, plan.centres, plan.radii):
            distance = np.hypot(xs - centre[0], ys - centre[1])
            assert frame_chroma[distance > 1.2 * radius + 1.5].max() < 60
            assert np.median(frame_chroma[distance < 0.4 * radius]) > 90


def _best_threshold_accuracy(first: np.ndarray, second: np.ndarray) -> float:
    """Accuracy of the best single threshold (either direction) separating two samples of a scalar."""
    values = np.concatenate([first, second])
    is_first = np.concatenate([np.ones(len(first)), np.zeros(len(second))]).astype(bool)
    best = 0.0
    for threshold in np.unique(values):
        below = values <= threshold
        accuracy = float(np.mean(below == is_first))
        best = max(best, accuracy, 1 - accuracy)
    return best


@pytest.mark.parametrize(("first", "second", "axis"), [(0, 1, 0), (2, 3, 1), (8, 9, 2)])
def test_single_frames_do_not_reveal_the_class(first: int, second: int, axis: int) -> None:
    def values(label: int) -> np.ndarray:
        plans = _plans(LARGE, label)
        return np.concatenate([plan.radii if axis == 2 else plan.centres[:, axis] for plan in plans])

    a, b = values(first), values(second)
    # Start positions are spread out: the positions span most of the reachable range.
    assert np.ptp(a) > 0.6 * np.ptp(np.concatenate([a, b]))
    assert _best_threshold_accuracy(a, b) < 0.58
    histogram_a, edges = np.histogram(a, bins=8)
    histogram_b, _ = np.histogram(b, bins=edges)
    overlap = np.minimum(histogram_a / len(a), histogram_b / len(b)).sum()
    assert overlap > 0.85


def test_start_positions_are_random_and_overlap_across_opposite_classes() -> None:
    starts = {label: np.array([plan.centres[0, 0] for plan in _plans(LARGE, label)]) for label in (0, 1)}
    low, high = LARGE.stage()
    side = high[0] - low[0]
    for label in (0, 1):
        assert starts[label].std() > 0.08 * side
    # Some left-to-right clips start further right than some right-to-left clips.
    assert starts[0].max() - starts[1].min() > 0.1 * side


def test_whole_trajectories_do_reveal_the_class() -> None:
    displacement = [plan.centres[-1, 0] - plan.centres[0, 0] for label in (0, 1) for plan in _plans(LARGE, label)]
    labels = [label for label in (0, 1) for _ in _plans(LARGE, label)]
    assert all((move > 0) == (label == 0) for move, label in zip(displacement, labels))


def test_renderer_draws_the_object_on_its_trajectory() -> None:
    config = SyntheticConfig()
    for index in range(4):
        plan = plan_clip(config, "train", index)
        frames = render_clip(config, "train", index).astype(int)
        assert frames.shape == (len(plan.radii), config.height, config.width, 3)
        xs, ys = np.round(plan.centres).astype(int).T
        at_object = frames[np.arange(len(frames)), ys, xs]
        # The object's colour follows the centre through the clip...
        assert np.abs(at_object - at_object[0]).max() < 30
        # ...and the first position holds something else once the object has left it.
        left_behind = frames[-1, ys[0], xs[0]]
        if np.hypot(xs[-1] - xs[0], ys[-1] - ys[0]) > 2 * plan.radii.max():
            assert np.abs(left_behind - at_object[0]).max() > 40


def test_plan_rejects_out_of_range_index() -> None:
    with pytest.raises(ValueError):
        plan_clip(TINY, "train", TINY.split_size("train"))
    with pytest.raises(ValueError):
        plan_clip(TINY, "test", 0)


def test_layout_and_annotations(tiny_root: Path) -> None:
    assert _load(tiny_root / ANNOTATIONS[0]) == {
        "Moving something from left to right": "0",
        "Moving something from right to left": "1",
        "Moving something up": "2",
    }
    assert _load(tiny_root / ANNOTATIONS[3]) == []
    ids = []
    for name, count in ((ANNOTATIONS[1], 6), (ANNOTATIONS[2], 3)):
        entries = _load(tiny_root / name)
        assert isinstance(entries, list) and len(entries) == count
        for entry in entries:
            assert set(entry) == {"id", "label", "template", "placeholders"}
            assert entry["id"].isdigit()
            assert entry["template"] in TEMPLATES[:3]
            (placeholder,) = entry["placeholders"]
            assert entry["label"] == entry["template"].replace("[something]", placeholder).lower()
            ids.append(entry["id"])
        assert sorted(entry["template"] for entry in entries) == sorted(TEMPLATES[:3] * (count // 3))
    assert len(set(ids)) == len(ids)
    videos = tiny_root / "20bn-something-something-v2"
    assert sorted(path.name for path in videos.iterdir()) == sorted(f"{video_id}.webm" for video_id in ids)
    assert _load(tiny_root / MARKER_NAME) == TINY.fingerprint_fields()
    assert sorted(path.name for path in tiny_root.parent.iterdir()) == ["sthv2"]


def test_videos_hold_the_rendered_clips(tiny_root: Path) -> None:
    for split, name in (("train", ANNOTATIONS[1]), ("validation", ANNOTATIONS[2])):
        for index, entry in enumerate(_load(tiny_root / name)):
            decoded = decode_video(tiny_root / "20bn-something-something-v2" / f"{entry['id']}.webm")
            rendered = render_clip(TINY, split, index)
            assert decoded.shape == rendered.shape
            assert np.abs(decoded.astype(int) - rendered.astype(int)).mean() < 5
            assert entry["placeholders"] == [plan_clip(TINY, split, index).placeholder]


def test_generation_is_deterministic(tiny_root: Path, tmp_path: Path) -> None:
    again = ensure_sthv2(tmp_path / "again", TINY, progress=False)
    other = ensure_sthv2(tmp_path / "other", SyntheticConfig(**{**vars(TINY), "seed": 1}), progress=False)
    for name in ANNOTATIONS:
        assert (again / name).read_bytes() == (tiny_root / name).read_bytes()
    videos = sorted((tiny_root / "20bn-something-something-v2").iterdir())
    for path in videos:
        assert np.array_equal(decode_video(path), decode_video(again / path.parent.name / path.name))
    assert not any(
        np.array_equal(decode_video(path), decode_video(other / path.parent.name / path.name)) for path in videos
    )
    assert (other / ANNOTATIONS[1]).read_bytes() != (tiny_root / ANNOTATIONS[1]).read_bytes()


def test_ensure_reuses_existing_dataset(tiny_root: Path) -> None:
    files = [tiny_root / MARKER_NAME, *sorted((tiny_root / "20bn-something-something-v2").iterdir())]
    before = [path.stat().st_mtime_ns for path in files]
    assert ensure_sthv2(tiny_root, TINY, progress=False) == tiny_root
    assert [path.stat().st_mtime_ns for path in files] == before


def test_ensure_refuses_other_settings(tiny_root: Path) -> None:
    with pytest.raises(DataError, match="seed=0 \\(wanted 5\\)") as caught:
        ensure_sthv2(tiny_root, SyntheticConfig(**{**vars(TINY), "seed": 5}), progress=False)
    assert str(caught.value).startswith(f"{tiny_root}: ")
    assert (tiny_root / MARKER_NAME).is_file()


def test_ensure_refuses_folder_without_marker(tmp_path: Path) -> None:
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="marker"):
        ensure_sthv2(tmp_path / "user", TINY, progress=False)
    assert (tmp_path / "user" / "notes.txt").read_text() == "keep me"


def test_generate_fills_an_empty_folder_and_refuses_a_full_one(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    config = SyntheticConfig(
        num_classes=2, train_per_class=1, val_per_class=1, frames=3, min_frames=2, height=32, width=32
    )
    generate_sthv2(root, config, progress=False)
    assert _load(root / MARKER_NAME) == config.fingerprint_fields()
    with pytest.raises(DataError, match="not empty"):
        generate_sthv2(root, config, progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty"]


def test_an_interrupted_generation_leaves_no_partial_dataset(tmp_path: Path) -> None:
    def write(staging: Path) -> None:
        (staging / "half.webm").write_bytes(b"")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_into(tmp_path / "data", write)
    assert list(tmp_path.iterdir()) == []


def test_a_concurrent_generator_that_finished_first_wins(tmp_path: Path) -> None:
    root = tmp_path / "data"

    def write(staging: Path) -> None:
        (staging / "mine").write_text("mine")
        root.mkdir()  # meanwhile another process renamed its finished dataset into place
        (root / "theirs").write_text("theirs")

    generate_into(root, write)
    assert [path.name for path in tmp_path.iterdir()] == ["data"]
    assert [path.name for path in root.iterdir()] == ["theirs"]


# Pinned: TINY's rendered frames, all videos in split order, and its dataset's annotation files and marker. The
# generator must render them unchanged whatever it adds for other data sets (the long set's regions).
TINY_RENDERS_SHA256 = "4226063d79ccd628b2136ff0cb5112d2209ba6c1b82280bea177d72120bc4e08"
TINY_FILES_SHA256 = {
    MARKER_NAME: "6bb3f8da88665dc1c65df3992a145700df0252f59cb96d9733e67b40ab371e42",
    ANNOTATIONS[0]: "606cfb5a4eb4263cbeeae4d41f64bb3493161036c18ce1e356feb60a4c7e8b42",
    ANNOTATIONS[1]: "115857188a8537aee3053e2ce35d958087b40d39e175793040cb5f8d0bb55acd",
    ANNOTATIONS[2]: "5e8633a60097339e71bacdbafa8175b7fe94fef01dfbedb7e31eb62ced85a7bb",
    ANNOTATIONS[3]: "37517e5f3dc66819f61f5a7bb8ace1921282415f10551d2defa5c3eb0985b570",
}


def test_one_region_fingerprints_as_before_regions_existed() -> None:
    """Stores and committed tables identify datasets by fingerprint: the defaults leave the new fields out."""
    before = {
        **{name: value for name, value in vars(TINY).items() if name not in ("regions", "informative_regions")},
        "generator_version": GENERATOR_VERSION,
    }
    assert TINY.fingerprint_fields() == before
    assert list(TINY.fingerprint_fields())[-1] == "generator_version"  # the marker's bytes keep their key order
    assert TINY_LONG.fingerprint_fields() == {**before, "regions": 3, "informative_regions": 2, "generator_version": 2}


def test_one_region_generates_what_was_generated_before_regions_existed(tiny_root: Path) -> None:
    renders = hashlib.sha256()
    for split in ("train", "validation"):
        for index in range(TINY.split_size(split)):
            renders.update(render_clip(TINY, split, index).tobytes())
    assert renders.hexdigest() == TINY_RENDERS_SHA256
    assert {name: hashlib.sha256((tiny_root / name).read_bytes()).hexdigest() for name in TINY_FILES_SHA256} == (
        TINY_FILES_SHA256
    )
    assert not (tiny_root / REGIONS_FILE).exists()
    assert all(plan_clip(TINY, "train", index).informative == (0,) for index in range(TINY.split_size("train")))


def _region(values: np.ndarray, config: SyntheticConfig, region: int) -> np.ndarray:
    """The frames of `region` of a per-frame array of one video."""
    length = len(values) // config.regions
    return values[region * length : (region + 1) * length]


def test_long_videos_are_equal_regions_of_a_drawn_length() -> None:
    lengths = [len(plan_clip(LONG, "train", index).radii) for index in range(LONG.split_size("train"))]
    assert all(length % LONG.regions == 0 for length in lengths)
    assert {length // LONG.regions for length in lengths} == set(range(LONG.min_frames, LONG.frames + 1))


@pytest.mark.parametrize(("label", "axis", "sign"), MOTION_CHECKS)
def test_exactly_the_informative_regions_carry_the_class_motion(label: int, axis: int, sign: int) -> None:
    for plan in _plans(LONG, label):
        assert len(plan.informative) == LONG.informative_regions
        assert plan.obj.motions == tuple(label if r in plan.informative else None for r in range(LONG.regions))
        for region in range(LONG.regions):
            values = _region(plan.radii if axis == 2 else plan.centres[:, axis], LONG, region)
            if region in plan.informative:
                assert np.all(sign * np.diff(values) > 0), TEMPLATES[label]
            else:
                assert np.ptp(_region(plan.centres, LONG, region), axis=0).max() == 0 and np.ptp(values) == 0


def test_informative_regions_are_spread_over_the_regions() -> None:
    plans = [plan_clip(LONG, "train", index) for index in range(LONG.split_size("train"))]
    counts = Counter(region for plan in plans for region in plan.informative)
    expected = len(plans) * LONG.informative_regions / LONG.regions
    assert sorted(counts) == list(range(LONG.regions))
    assert all(abs(count - expected) < 0.2 * expected for count in counts.values())
    assert len({plan.informative for plan in plans}) == 6  # every 2 of 4


def test_long_videos_keep_objects_inside_the_stage_and_move_distractors_per_region() -> None:
    plans = [plan_clip(LONG, "train", index) for index in range(LONG.split_size("train"))]
    motions = [motion for plan in plans for motion in plan.distractor.motions]
    assert abs(np.mean([motion is not None for motion in motions]) - 0.5) < 3 * np.sqrt(0.25 / len(motions))
    assert any(len(set(plan.distractor.motions)) > 2 for plan in plans)  # drawn per region, not per video
    for plan in plans:
        assert all(motion != plan.label for motion in plan.distractor.motions)
        for track in (plan.obj, plan.distractor):
            assert _inside(LONG.stage(), track.centres, track.radii)


def _moving_pixels(frames: np.ndarray, config: SyntheticConfig, colour: bool) -> np.ndarray:
    """Per region, how many pixels change by more than 40 levels between consecutive frames of the region: with
    `colour`, in any RGB channel and only where one of the two frames is saturated (the labelled object), else in
    luma (what grey-level optical flow sees)."""
    frames = frames.astype(float)
    counts = []
    for region in range(config.regions):
        clip = _region(frames, config, region)
        if colour:
            chroma = clip.max(axis=-1) - clip.min(axis=-1)
            changed = (np.abs(np.diff(clip, axis=0)).max(axis=-1) > 40) & (np.maximum(chroma[1:], chroma[:-1]) > 75)
        else:
            changed = np.abs(np.diff(clip @ [0.299, 0.587, 0.114], axis=0)) > 40
        counts.append(int(changed.sum()))
    return np.array(counts)


def test_colour_frame_differences_find_the_informative_regions_and_grey_motion_alone_does_not() -> None:
    """The cheap cue a policy can use: where something saturated moves. Grey-level motion is misled by the
    distractor, which moves in uninformative regions too."""
    grey_misled = 0
    for index in range(40):
        plan = plan_clip(LONG, "train", index)
        frames = render_clip(LONG, "train", index)
        colour = _moving_pixels(frames, LONG, colour=True)
        uninformative = [region for region in range(LONG.regions) if region not in plan.informative]
        assert colour[uninformative].max() < 0.2 * colour[list(plan.informative)].min()
        grey = _moving_pixels(frames, LONG, colour=False)
        grey_misled += set(np.argsort(-grey)[: LONG.informative_regions]) != set(plan.informative)
    assert grey_misled >= 10


@pytest.fixture(scope="module")
def tiny_long_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_sthv2(tmp_path_factory.mktemp("tiny-long") / "sthv2", TINY_LONG, progress=False)


def test_long_dataset_records_the_informative_regions_of_every_video(tiny_long_root: Path) -> None:
    regions = _load(tiny_long_root / REGIONS_FILE)
    ids = []
    for split, name in (("train", ANNOTATIONS[1]), ("validation", ANNOTATIONS[2])):
        for index, entry in enumerate(_load(tiny_long_root / name)):
            plan = plan_clip(TINY_LONG, split, index)
            assert regions[entry["id"]] == list(plan.informative)
            video = decode_video(tiny_long_root / "20bn-something-something-v2" / f"{entry['id']}.webm")
            assert len(video) == len(plan.radii)
            ids.append(entry["id"])
    assert sorted(regions) == sorted(ids)
    assert _load(tiny_long_root / MARKER_NAME) == TINY_LONG.fingerprint_fields()
    read = read_informative_regions(tiny_long_root)
    assert read is not None and read.count == TINY_LONG.regions
    assert read.informative == {video_id: tuple(indices) for video_id, indices in regions.items()}


def test_long_generation_is_deterministic(tiny_long_root: Path, tmp_path: Path) -> None:
    again = ensure_sthv2(tmp_path / "again", TINY_LONG, progress=False)
    for name in (*ANNOTATIONS, REGIONS_FILE, MARKER_NAME):
        assert (again / name).read_bytes() == (tiny_long_root / name).read_bytes()
    for path in sorted((tiny_long_root / "20bn-something-something-v2").iterdir()):
        assert path.read_bytes() == (again / path.parent.name / path.name).read_bytes()
    other = SyntheticConfig(**{**vars(LONG), "seed": 1})
    assert [plan_clip(other, "train", index).informative for index in range(20)] != [
        plan_clip(LONG, "train", index).informative for index in range(20)
    ]
