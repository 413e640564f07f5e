"""`mml prepare` on small generated data sets in the real layouts: Something-Something-v2 (VP9 webm + JSON) and
Charades (H.264 mp4 + CSV, or the official JPEG frame and flow folders); the cache written, reused and resumed; every
bad input skipped with its reason while the rest prepares."""

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mml.atomic import host_tag
from mml.cli import main
from mml.data import cache as cache_module
from mml.data.cache import JpegCache, prepare
from mml.data.charades import CLASSES_FILE, SPLIT_FILES
from mml.data.datasets import open_dataset, prepare_frames
from mml.data.flow import tvl1_flow
from mml.data.frames import write_image
from mml.data.modalities import MODALITIES, build_input, gather_clip
from mml.data.rawframes import RawframesConfig
from mml.data.shard import Shard
from mml.data.synthetic import SyntheticConfig, ensure_sthv2
from mml.data.synthetic_charades import SyntheticCharadesConfig, ensure_charades
from mml.data.transforms import center_crop
from mml.data.video import decode_video
from mml.errors import DataError
from mml.spec import DatasetConfig

SHORT_SIDE = 32
STHV2 = DatasetConfig(kind="sthv2")
CHARADES = DatasetConfig(kind="charades")
SPECS = """
[real]
description = "real-layout test profile"
arch = "tsm_tiny"
[real.dataset]
kind = "sthv2"
[real.imagenet]
source = "torchvision"
[real.recipe]
segments = 2
short_side = {short_side}
input_size = 28
batch_size = 4
epochs = 1
lr = 0.01
lr_steps = []
[real.charades]
arch = "i3d_tiny"
[real.charades.dataset]
kind = "charades"
[real.charades.imagenet]
source = "torchvision"
[real.charades.recipe]
segments = 4
short_side = {short_side}
input_size = 28
batch_size = 4
epochs = 1
lr = 0.01
lr_steps = []
"""


@pytest.fixture(scope="module")
def sthv2_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sthv2") / "data"
    config = SyntheticConfig(num_classes=2, train_per_class=3, val_per_class=1, frames=8, min_frames=6)
    return ensure_sthv2(root, config, progress=False)


@pytest.fixture
def sthv2(sthv2_source: Path, tmp_path: Path) -> Path:
    """A private copy of the small Something-Something-v2 layout data set, free to break."""
    return Path(shutil.copytree(sthv2_source, tmp_path / "sthv2"))


@pytest.fixture(scope="module")
def charades_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("charades") / "data"
    config = SyntheticCharadesConfig(num_classes=3, train_videos=4, test_videos=2, min_frames=10, frames=12)
    return ensure_charades(root, config, progress=False)


def _specs(tmp_path: Path, short_side: int = SHORT_SIDE) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir(exist_ok=True)
    (folder / "profiles.toml").write_text(SPECS.replace("{short_side}", str(short_side)))
    return folder


def _cache_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def test_sthv2_prepare_writes_jpeg_frames_and_flow_and_reuses_them(sthv2: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    dataset = open_dataset(STHV2, sthv2, tmp_path)
    usable, report = prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 3, workers=1, progress=False)
    assert usable == dataset and "8 videos ready (8 prepared now), 0 skipped" in caplog.text
    source = dataset.frame_source(tmp_path / "cache", SHORT_SIDE)
    assert isinstance(source, JpegCache)
    record = dataset.train[0]
    decoded = decode_video(record.path, SHORT_SIDE)
    folder = source.layout.root / "frames" / record.video_id
    assert sorted(p.name for p in folder.iterdir())[:2] == ["img_00001.jpg", "img_00002.jpg"]
    assert len(source.frames(record)) == len(decoded) and len(source.flow(record)) == len(decoded) - 1
    frames = source.frames(record)[np.arange(len(decoded))]
    assert frames.shape == decoded.shape and np.abs(frames.astype(int) - decoded).mean() < 3
    assert json.loads(report.read_text())["frames"][record.video_id] == len(decoded)
    written = _cache_files(tmp_path / "cache")
    again = prepare(source, (*dataset.train, *dataset.validation), True, workers=1, progress=False)
    assert again.newly == 0 and len(again.frames) == 8 and _cache_files(tmp_path / "cache") == written


def test_flow_cache_gives_the_model_inputs_of_on_the_fly_flow(sthv2: Path, tmp_path: Path) -> None:
    dataset = open_dataset(STHV2, sthv2, tmp_path)
    source = dataset.frame_source(tmp_path / "cache", SHORT_SIDE)
    record = dataset.train[1]
    prepare(source, [record], True, workers=1, progress=False)
    on_the_fly = tvl1_flow(decode_video(record.path, SHORT_SIDE))
    spec, starts = MODALITIES["Flow"], np.array([0, 1])
    crop = center_crop(*on_the_fly.shape[1:3], 28)
    cached = build_input(spec, gather_clip(spec, source.flow(record), starts), crop, 28)
    direct = build_input(spec, gather_clip(spec, on_the_fly, starts), crop, 28)
    # Within JPEG quantisation: a few grey levels of 255, i.e. a few hundredths after (x / 255 - 0.5) / 0.226.
    assert (cached - direct).abs().mean() < 0.03 and not torch.equal(cached, torch.zeros_like(cached))


def test_bad_videos_are_skipped_with_their_reason_and_the_rest_prepares(sthv2: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    videos = sorted((sthv2 / "20bn-something-something-v2").glob("*.webm"))
    missing, truncated, empty = videos[0], videos[1], videos[2]
    missing.unlink()
    content = truncated.read_bytes()
    truncated.write_bytes(content[: len(content) // 2])
    empty.write_bytes(b"")
    dataset = open_dataset(STHV2, sthv2, tmp_path)
    usable, report_path = prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 7, workers=1, progress=False)
    out = caplog.text
    assert "5 videos ready (5 prepared now), 3 skipped" in out
    report = json.loads(report_path.read_text())
    assert report["skipped"][missing.stem] == f"{missing}: file not found"
    assert str(truncated) in report["skipped"][truncated.stem] and "truncated" in report["skipped"][truncated.stem]
    assert report["skipped"][empty.stem].startswith(f"{empty}: cannot decode")
    assert {r.video_id for r in (*usable.train, *usable.validation)} == set(report["frames"])
    short = report["shorter_than_a_sample"]
    assert short["frames_needed"] == 7 and short["videos"] == sorted(v for v, n in report["frames"].items() if n < 7)
    assert short["videos"] and "frame is repeated, as the original code does" in out


def test_zero_frame_video_is_skipped(sthv2: Path, tmp_path: Path) -> None:
    import av

    video = sorted((sthv2 / "20bn-something-something-v2").glob("*.webm"))[0]
    with av.open(str(video), mode="w") as container:  # a valid WebM with a video stream and no frame
        stream = container.add_stream("libvpx-vp9", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    dataset = open_dataset(STHV2, sthv2, tmp_path)
    records = (*dataset.train, *dataset.validation)
    report = prepare(dataset.frame_source(tmp_path, SHORT_SIDE), records, False, workers=1, progress=False)
    assert report.skipped == {video.stem: f"{video}: no decodable video frames"}


def test_bad_annotations_are_warned_with_file_and_reason(sthv2: Path, tmp_path: Path, caplog) -> None:
    train_file = sthv2 / "something-something-v2-train.json"
    entries = json.loads(train_file.read_text())
    entries += [{"id": "901", "template": "Juggling [something]"}, {"id": "902"}]
    train_file.write_text(json.dumps(entries))
    with caplog.at_level(logging.WARNING, "mml.data"):
        dataset = open_dataset(STHV2, sthv2, tmp_path)
    messages = caplog.messages
    assert f"{train_file}: skipping entry 901: template 'Juggling [something]' is not in the labels file" in messages
    assert f"{train_file}: skipping entry 902: missing template" in messages
    assert len(dataset.train) == len(entries) - 2


def test_a_half_written_video_never_counts_as_done(sthv2: Path, tmp_path: Path, monkeypatch) -> None:
    dataset = open_dataset(STHV2, sthv2, tmp_path)
    source = dataset.frame_source(tmp_path / "cache", SHORT_SIDE)
    record = dataset.train[0]
    written = []

    def crash_after_three_images(path: Path, image: np.ndarray) -> None:
        if len(written) == 3:
            raise KeyboardInterrupt  # as if killed while writing the video's fourth image
        written.append(path)
        write_image(path, image)

    monkeypatch.setattr(cache_module, "write_image", crash_after_three_images)
    with pytest.raises(KeyboardInterrupt):
        prepare(source, [record], False, workers=1, progress=False)
    monkeypatch.undo()
    assert written and not (source.layout.root / "frames" / record.video_id).exists()
    report = prepare(source, [record], False, workers=1, progress=False)
    assert report.newly == 1 and len(source.frames(record)) == len(decode_video(record.path))


def test_staging_folders_of_killed_processes_of_this_host_are_removed_and_others_kept(
    sthv2: Path, tmp_path: Path
) -> None:
    dataset = open_dataset(STHV2, sthv2, tmp_path)
    source = dataset.frame_source(tmp_path / "cache", SHORT_SIDE)
    record = dataset.train[0]
    final = source.layout.root / "frames" / record.video_id
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here, there = host_tag(), hashlib.sha256(f"not-{socket.gethostname()}".encode()).hexdigest()[:12]
    folders = {  # (pid, host tag of its name): a pid means something only on the host that wrote it
        "stale": (dead.stdout.strip(), here),  # a killed writer of this host's
        "live": (str(os.getpid()), here),  # a running writer's
        "other_host": (dead.stdout.strip(), there),  # a writer of another node sharing the cache
        "no_host": (dead.stdout.strip(), ""),  # a name without a host tag: whose it is cannot be told
    }
    for number, (name, (pid, host)) in enumerate(folders.items()):
        folder = final.with_name(f".{record.video_id}.{pid}.{host}{number:012x}.partial")
        folder.mkdir(parents=True)
        (folder / "img_00001.jpg").write_bytes(b"half")
        folders[name] = (str(folder), host)
    prepare(source, [record], False, workers=1, progress=False)
    kept = {name for name, (folder, _) in folders.items() if Path(folder).is_dir()}
    assert kept == {"live", "other_host", "no_host"} and final.is_dir()


def test_prepare_killed_midway_resumes_to_the_uninterrupted_result(sthv2: Path, tmp_path: Path) -> None:
    specs = _specs(tmp_path, short_side=96)  # large enough frames that TV-L1 takes a while
    command = [sys.executable, "-m", "mml", "prepare", "sthv2", "--data", str(sthv2), "--profile", "real"]
    command += ["--specs", str(specs), "--workers", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    killed = subprocess.Popen([*command, "--store", str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL)
    flow_folders = tmp_path / "killed" / "cache"
    deadline = time.monotonic() + 120
    while killed.poll() is None and time.monotonic() < deadline:
        if len(list(flow_folders.glob("*/jpeg96/flow/*"))) >= 2:
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert killed.wait() == -signal.SIGKILL, "prepare ended before it could be killed"
    assert len(list(flow_folders.glob("*/jpeg96/flow/[!.]*"))) < 8
    subprocess.run([*command, "--store", str(tmp_path / "killed")], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*command, "--store", str(tmp_path / "straight")], env=env, check=True, stdout=subprocess.DEVNULL)
    resumed, straight = _cache_files(tmp_path / "killed" / "cache"), _cache_files(tmp_path / "straight" / "cache")
    assert resumed == straight and len(straight) > 6


def test_cli_prepare_logs_and_writes_the_summary(sthv2: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    first = json.loads((sthv2 / "something-something-v2-train.json").read_text())[0]["id"]
    (sthv2 / "20bn-something-something-v2" / f"{first}.webm").unlink()
    argv = ["prepare", "sthv2", "--data", str(sthv2), "--profile", "real", "--specs", str(_specs(tmp_path))]
    assert main([*argv, "--store", str(tmp_path / "store"), "--workers", "2", "--no-progress"]) == 0
    out = caplog.text
    assert "7 videos ready (7 prepared now), 1 skipped" in out and "file not found" in out
    report = next((tmp_path / "store" / "cache").glob("*/prepare-short32.json"))
    assert f"report: {report}" in out and len(json.loads(report.read_text())["frames"]) == 7


def _official_frames(source: Path, target: Path) -> Path:
    """The Charades data set with its videos replaced by the official download's frame and flow folders."""
    root = target / "charades"
    root.mkdir()
    for name in (CLASSES_FILE, *SPLIT_FILES.values()):
        shutil.copy(source / name, root / name)
    for video in sorted((source / "Charades_v1_480").glob("*.mp4")):
        frames = decode_video(video)
        for kind, images in (("rgb", frames), ("flow", tvl1_flow(frames))):
            folder = root / f"Charades_v1_{kind}" / video.stem
            folder.mkdir(parents=True)
            for index, image in enumerate(images, start=1):
                if kind == "rgb":
                    write_image(folder / f"{video.stem}-{index:06d}.jpg", image)
                else:
                    for axis, name in enumerate("xy"):
                        write_image(folder / f"{video.stem}-{index:06d}{name}.jpg", image[..., axis])
    return root


def test_charades_videos_and_official_frames_are_both_read(charades_source: Path, tmp_path: Path) -> None:
    from_videos = open_dataset(CHARADES, charades_source, tmp_path)
    assert from_videos.frames is None and from_videos.multilabel
    prepared, _ = prepare_frames(from_videos, tmp_path / "cache", SHORT_SIDE, True, 5, workers=1, progress=False)
    from_frames = open_dataset(CHARADES, _official_frames(charades_source, tmp_path), tmp_path)
    assert from_frames.frames is not None and len(from_frames.train) == len(from_videos.train)
    usable, _ = prepare_frames(from_frames, tmp_path / "cache", SHORT_SIDE, True, 5, workers=1, progress=False)
    assert len(usable.train) == len(prepared.train)
    record_v, record_f = from_videos.train[0], from_frames.train[0]
    cached = from_videos.frame_source(tmp_path / "cache", SHORT_SIDE)
    official = from_frames.frame_source(tmp_path / "cache", SHORT_SIDE)
    assert len(official.frames(record_f)) == len(cached.frames(record_v))
    assert len(official.flow(record_f)) == len(cached.flow(record_v))
    indices = np.arange(len(cached.frames(record_v)))
    difference = official.frames(record_f)[indices].astype(int) - cached.frames(record_v)[indices]
    assert official.frames(record_f)[indices].shape[1] == SHORT_SIDE and np.abs(difference).mean() < 4


def test_charades_bad_rows_and_missing_frames(charades_source: Path, tmp_path: Path, caplog) -> None:
    root = _official_frames(charades_source, tmp_path)
    train_csv = root / SPLIT_FILES["train"]
    lines = train_csv.read_text().splitlines()
    header = lines[0].split(",")
    row = dict.fromkeys(header, "")
    row.update(id="ZZZ01", actions="c999 0.00 1.00", length="2.0")
    lines.append(",".join(row[column] for column in header))
    lines.append("ZZZ02,only,three")
    train_csv.write_text("\n".join(lines) + "\n")
    gone = sorted((root / "Charades_v1_rgb").iterdir())[0]
    shutil.rmtree(gone)
    with caplog.at_level(logging.WARNING, "mml.data"):
        dataset = open_dataset(CHARADES, root, tmp_path)
    messages = caplog.messages
    assert f"{train_csv}: skipping video ZZZ01: action class c999 is not in {CLASSES_FILE}" in messages
    assert any(m.startswith(f"{train_csv}: skipping video ZZZ02:") for m in messages)
    usable, report_path = prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 5, workers=1, progress=False)
    report = json.loads(report_path.read_text())
    assert report["skipped"] == {gone.name: f"{gone}: no frame images (expected names like {gone.name}-000001.jpg)"}
    assert gone.name not in {r.video_id for r in (*usable.train, *usable.validation)}


def test_pyslowfast_frame_lists_annotate_the_official_frames(charades_source: Path, tmp_path: Path) -> None:
    root = _official_frames(charades_source, tmp_path)
    (root / "frame_lists").mkdir()
    videos = sorted(p.name for p in (root / "Charades_v1_rgb").iterdir())
    for name, chosen in (("train", videos[:-2]), ("val", videos[-2:])):
        rows = ["original_vido_id video_id frame_id path labels"]
        for number, video in enumerate(chosen):
            frames = sorted((root / "Charades_v1_rgb" / video).iterdir())
            rows += [f'{video} {number} {i} {video}/{f.name} "{1 if i < 4 else ""}"' for i, f in enumerate(frames)]
        (root / "frame_lists" / f"{name}.csv").write_text("\n".join(rows) + "\n")
    dataset = open_dataset(DatasetConfig(kind="charades", frame_lists=True), root, tmp_path)
    assert [r.video_id for r in dataset.validation] == videos[-2:] and dataset.frames is not None
    assert all(r.labels == (1,) and r.actions[0].end == 4 / 24 for r in (*dataset.train, *dataset.validation))
    usable, _ = prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 5, workers=1, progress=False)
    assert len(usable.train) == len(videos) - 2


def test_rawframe_lists_of_frames_extracted_elsewhere(sthv2: Path, tmp_path: Path) -> None:
    """The TSM layout: `images/<id>/img_000001.jpg`, `flow/<id>/flow_x_00001.jpg`, lists of `<id> <frames> <label>`."""
    source = open_dataset(STHV2, sthv2, tmp_path)
    root = tmp_path / "rawframes"
    for split, records in (("train", source.train), ("val", source.validation)):
        lines = []
        for record in records:
            frames = decode_video(record.path)
            for kind, images, name in (("images", frames, "img_{:06d}.jpg"), ("flow", tvl1_flow(frames), None)):
                folder = root / kind / record.video_id
                folder.mkdir(parents=True)
                for index, image in enumerate(images, start=1):
                    if name:
                        write_image(folder / name.format(index), image)
                    else:
                        for axis, letter in enumerate("xy"):
                            write_image(folder / f"flow_{letter}_{index:05d}.jpg", image[..., axis])
            lines.append(f"{record.video_id} {len(frames)} {record.label}")
        (root / f"{split}_videofolder.txt").write_text("\n".join(lines))
    layout = {"frames": "images/{video}/img_{index:06d}.jpg", "flow": "flow/{video}/flow_{axis}_{index:05d}.jpg"}
    config = RawframesConfig(train="train_videofolder.txt", validation="val_videofolder.txt", **layout)
    dataset = open_dataset(DatasetConfig(kind="rawframes", rawframes=config), root, tmp_path)
    assert [r.label for r in dataset.train] == [r.label for r in source.train] and dataset.classes == ("0", "1")
    usable, _ = prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 3, workers=1, progress=False)
    assert usable == dataset and not (dataset.cache_dir(tmp_path / "cache") / "jpeg32").exists()
    frames = dataset.frame_source(tmp_path / "cache", SHORT_SIDE).frames(dataset.train[0])
    assert frames[np.array([0])].shape[1] == SHORT_SIDE  # 48-pixel frames resized to the short side when read


def _prepare_argv(data: Path, specs: Path, store: Path) -> list[str]:
    command = ["prepare", "sthv2", "--data", str(data), "--profile", "real", "--specs", str(specs)]
    return [*command, "--store", str(store), "--workers", "1", "--no-progress"]


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (frames, flow, reports, and any staging leftover), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _break_one_video_per_shard(sthv2: Path) -> dict[str, str]:
    """Remove the first video of shard 0 and truncate that of shard 2, so that two shards have a failure to report."""
    folder = sthv2 / "20bn-something-something-v2"
    videos = sorted(folder.glob("*.webm"))
    missing = next(v for v in videos if Shard(0, 3).owns(v.stem))
    truncated = next(v for v in videos if Shard(2, 3).owns(v.stem))
    missing.unlink()
    truncated.write_bytes(truncated.read_bytes()[:200])
    return {"missing": missing.stem, "truncated": truncated.stem}


def _no_decoding(path: Path, short_side: int | None = None) -> np.ndarray:
    raise AssertionError(f"{path} decoded again")


def _check_merge(sharded: Path, single: Path, broken: dict[str, str]) -> None:
    """The sharded cache holds the single process's files byte for byte, its shards' reports beside them, disjoint
    and covering every video, each only of its own videos."""
    files, reference = _files(sharded / "cache"), _files(single / "cache")
    shard_reports = {name: json.loads(files.pop(name)) for name in list(files) if ".shard-" in name}
    assert files == reference
    merged = json.loads(next(content for name, content in files.items() if name.endswith("prepare-short32.json")))
    assert set(merged["skipped"]) == set(broken.values()) and merged["prepared"] == 6
    assert sorted(Path(name).name for name in shard_reports) == [
        f"prepare-short32.shard-{i}-of-3.json" for i in range(3)
    ]
    videos = [set(report["frames"]) | set(report["skipped"]) for report in shard_reports.values()]
    assert sum(len(part) for part in videos) == 8 and set().union(*videos) == set(merged["frames"]) | set(
        merged["skipped"]
    )
    for name, report in shard_reports.items():
        index = int(Path(name).name.split("-")[2])
        shard = Shard(index, 3)
        assert report["shard"] == f"{index}/3" and report["with_flow"] is True
        assert all(shard.owns(video) for video in [*report["frames"], *report["skipped"]])
        assert report["skipped"] == {v: reason for v, reason in merged["skipped"].items() if shard.owns(v)}


def test_shards_split_the_videos_disjointly_whatever_their_order_or_process(sthv2: Path, tmp_path: Path) -> None:
    dataset = open_dataset(STHV2, sthv2, tmp_path)
    ids = [r.video_id for r in (*dataset.train, *dataset.validation)]
    parts = [[video for video in ids if Shard(i, 3).owns(video)] for i in range(3)]
    assert sorted(video for part in parts for video in part) == sorted(ids) and all(parts)
    assert [[v for v in reversed(ids) if Shard(i, 3).owns(v)] for i in range(3)] == [part[::-1] for part in parts]
    code = f"from mml.data.shard import Shard; print([[v for v in {ids!r} if Shard(i, 3).owns(v)] for i in range(3)])"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == repr(parts)
    assert all(Shard(0, 1).owns(video) for video in ids)


def test_shards_one_after_another_then_a_plain_run_equal_one_process(
    sthv2: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.INFO)
    broken = _break_one_video_per_shard(sthv2)
    specs = _specs(tmp_path)
    assert main(_prepare_argv(sthv2, specs, tmp_path / "single")) == 0
    for index in range(3):
        assert main([*_prepare_argv(sthv2, specs, tmp_path / "sharded"), "--shard", f"{index}/3"]) == 0
    assert "(shard 2/3): 1 videos ready (1 prepared now), 1 skipped" in caplog.text
    caplog.clear()
    monkeypatch.setattr(cache_module, "decode_video", _no_decoding)  # the merge finds everything cached
    assert main(_prepare_argv(sthv2, specs, tmp_path / "sharded")) == 0
    assert "6 videos ready (0 prepared now), 2 skipped" in caplog.text and "not tried again" in caplog.text
    _check_merge(tmp_path / "sharded", tmp_path / "single", broken)


def test_shards_at_the_same_time_then_a_plain_run_equal_one_process(sthv2: Path, tmp_path: Path, monkeypatch) -> None:
    broken = _break_one_video_per_shard(sthv2)
    specs = _specs(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    command = [sys.executable, "-m", "mml", *_prepare_argv(sthv2, specs, tmp_path / "sharded")]
    shards = [
        subprocess.Popen([*command, "--shard", f"{i}/3"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i in range(3)
    ]
    assert main(_prepare_argv(sthv2, specs, tmp_path / "single")) == 0
    for shard in shards:
        _, errors = shard.communicate()
        assert shard.returncode == 0, errors.decode()
    monkeypatch.setattr(cache_module, "decode_video", _no_decoding)
    assert main(_prepare_argv(sthv2, specs, tmp_path / "sharded")) == 0
    _check_merge(tmp_path / "sharded", tmp_path / "single", broken)


def test_a_shard_failure_counts_only_while_the_video_is_not_cached(sthv2: Path, tmp_path: Path, monkeypatch) -> None:
    dataset = open_dataset(STHV2, sthv2, tmp_path)
    _, report_path = prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 3, workers=1, progress=False)
    cached, gone, frames_only = (r.video_id for r in dataset.train[:3])
    shutil.rmtree(report_path.parent / "jpeg32" / "flow" / gone)
    shard_reports = {"0-of-2": (True, {cached: "boom", gone: "bang"}), "1-of-2": (False, {frames_only: "frames"})}
    for name, (with_flow, skipped) in shard_reports.items():
        (report_path.parent / f"prepare-short32.shard-{name}.json").write_text(
            json.dumps({"with_flow": with_flow, "skipped": skipped})
        )
    monkeypatch.setattr(cache_module, "decode_video", _no_decoding)
    _, report_path = prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 3, workers=1, progress=False)
    report = json.loads(report_path.read_text())
    assert report["skipped"] == {gone: "bang"} and cached in report["frames"] and frames_only in report["frames"]
    (report_path.parent / "prepare-short32.shard-1-of-2.json").write_text("[]")
    with pytest.raises(DataError, match=r"prepare-short32\.shard-1-of-2\.json: not a shard's preparation report"):
        prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 3, workers=1, progress=False)


@pytest.mark.parametrize(
    ("shard", "reason"),
    [
        ("3/3", "the shard index I must be in 0..2"),
        ("1/0", "the number of shards N must be at least 1"),
        ("-1/3", "expected I/N"),
        ("1/2/3", "expected I/N"),
        ("one", "expected I/N"),
    ],
)
def test_a_malformed_shard_fails_in_one_line(shard: str, reason: str, tmp_path: Path, caplog) -> None:
    argv = _prepare_argv(tmp_path / "absent", tmp_path / "specs", tmp_path / "store")
    assert main([*argv, f"--shard={shard}"]) == 2  # with "=": argparse reads a lone -1/3 as an option
    (error,) = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert error.startswith(f"--shard {shard!r}: {reason}") and "\n" not in error
    assert not (tmp_path / "store").exists()
