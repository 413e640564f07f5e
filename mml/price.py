"""What a reproduction costs before it runs: training clips, counted FLOPs, GPU-hours, cache disk and the seed
count's statistical power, for `mml reproduce ... --dry-run`.

Computing (`price_plan` → `Price`) is kept apart from rendering (`price_lines`). Nothing is trained or decoded:
the price is read from the plan's run configs, FLOPs counted by torch's FLOP counter on zero clips
(`mml.flops`, `mml.report.cost`), and figures of `reproductions/throughput.toml`.

Rules:

- Training clips of a run: per epoch, the clips the trainer's batches hold (the training videos the method trains
  on, `Method.training_videos`, in batches of `batch_size`, the last smaller batch dropped), times the clips each
  video gives (AdaMML's `regions`) and the augmented views a step sees (`Method.views`); times the epochs. A
  G-Blend run adds the epochs its weight estimates train (each head's network for the estimate's length, every
  super-epoch). A run loaded from checkpoint files trains nothing.
- Training FLOPs per clip: each trained model's counted forward GFLOPs at the training input (`segments` frames of
  `input_size`) × 3 (forward + backward ≈ 3 forwards), plus a frozen teacher's forward. AdaMML: its policy's
  forward on every segment, and in a policy epoch the policy trained (× 3) with the recognition networks forward
  only. A G-Blend estimate epoch forwards every branch and trains one head's. Not counted: G-Blend's loss
  measurements and small auxiliary heads in training (a fused fc, SimSiam's projector).
- Evaluation FLOPs: for every view protocol the run is evaluated with (`Plan.evaluations`) and every evaluated
  head (its models, and a method's fused head), validation videos × `clips_per_video` × forward GFLOPs per clip
  (`video_gflops` for a fused head: an AdaMML network with every segment selected, an upper bound).
- GPU-hours: training runs under the trainer's speed `setting` (on CUDA by default `bf16-cl-compile`), evaluation
  always fp32 eager. A throughput entry that matches a run exactly (GPU, setting, arch, the models' modalities,
  segments, input size; one clip costing the same in every epoch, no teacher) gives clips / clips-per-s. Otherwise
  the run is scaled from the nearest entry of the same GPU and setting by counted FLOPs: the entry's achieved
  GFLOP/s (its clips/s × its counted training GFLOPs per clip, with our network of its arch at its frames and size)
  divides the run's GFLOPs. Nearest: an entry of the run's arch if there is one, then the one whose GFLOPs per clip
  are closest in ratio to the run's. Evaluation uses an entry's `eval_clips_per_s` on an exact match, else the
  GFLOP/s of the nearest fp32-eager training entry (assuming a forward pass runs as efficiently as training). A GPU
  (or setting) without entries gives "no throughput figure".
- Cache disk: decoded frames at each short side the runs read, with TV-L1 flow (two planes per consecutive frame
  pair) where a run reads Flow, for every training and validation video. JPEG caches (real videos) are priced at
  bytes per pixel measured on our own cache (`JPEG_BYTES_PER_PIXEL`), packed caches (synthetic videos) at their
  exact uint8 size. Frame counts come from the cache's preparation report when there is one, else from the
  generator's configuration (synthetic data) or a documented average (`AVERAGE_FRAMES`, an estimate).
- Power: the expected half-width of a claim's 95 % t-interval over n seeds, t_{0.975, n−1} × sd / √n, for a
  per-seed paired difference of standard deviation sd (below `MIN_SEEDS` seeds: no verdict, as the verdicts).
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from scipy import stats

from mml.data.modalities import MODALITIES
from mml.data.synthetic import SyntheticConfig
from mml.data.synthetic_charades import SyntheticCharadesConfig
from mml.errors import InvalidValue, SpecError
from mml.methods import METHODS
from mml.methods.adamml import POLICY_PHASE, AdaMMLMethod, AdaptiveNetwork, phase
from mml.methods.gblend import GBlend, gblend_schedule
from mml.methods.late_fusion import heads
from mml.models.fusion import FUSED
from mml.models.i3d import I3D_ARCHS
from mml.models.tsm import ARCHS
from mml.report.claims import MIN_SEEDS, ORDERING_CONFIDENCE
from mml.report.cost import clips_per_video, inference_gflops, policy_gflops, video_gflops
from mml.spec import Recipe, ViewProtocol
from mml.spec.reader import TomlReader, load_toml
from mml.store import ModelConfig, RunConfig
from mml.validation import one_of, positive, require, typed

if TYPE_CHECKING:
    from mml.data.datasets import VideoDataset
    from mml.plan import Plan
    from mml.spec import Profile

THROUGHPUT_FILE = "throughput.toml"
SETTINGS = ("fp32-eager", "bf16-cl-eager", "bf16-cl-compile")  # as benchmark/gpu_throughput.py names them
TRAINING_SETTING = "bf16-cl-compile"  # the trainer's CUDA default (`Execution.for_device`)
EVALUATION_SETTING = "fp32-eager"  # evaluation is always fp32 eager
BACKWARD_FACTOR = 3  # a training step's forward + backward ≈ 3 forward passes

# Bytes per pixel of the JPEG cache (`JpegCache`: `write_image` at JPEG_QUALITY 95), measured 2026-12-06 on the
# 2-core CPU machine: 6 synthetic VP9 videos of 256x340 (`SyntheticConfig(num_classes=2, train_per_class=2,
# val_per_class=1, frames=12, min_frames=10, height=256, width=340, margin=8)`) prepared by `JpegCache.prepare_one`
# with OpenCV TV-L1 flow; the files' bytes over their pixels (docs/price.md). Synthetic content is smoother than
# real video, which compresses worse: a lower bound for real frames.
JPEG_BYTES_PER_PIXEL = {"frames": 0.2276, "flow": 0.03662}  # RGB frame; one flow plane (x or y)
JPEG_MEASURED_SIDE = (256, 340)  # (short, long) side of that measurement; a real dataset's frames are priced at it
NPY_HEADER_BYTES = 128  # one `.npy` header per video and kind in a packed cache
# Frames per video where a dataset's records do not say and no preparation report counted them: an estimate.
AVERAGE_FRAMES = {
    "sthv2": (45.0, "videos of 2-6 s at 12 fps (Goyal et al. 2017), taken as about 4 s"),
}

# Tab. 7 of the paper (shared/papers/mml-paper.txt): pairs of RGB models trained the same way from initialisations
# "obtained in the same way" (its caption), i.e. relaunches of one training; top-1 of each.
TABLE7_RELAUNCHES = (
    ("row 1 vs row 2 RGB from RGB (MML; Flow from RGB vs RGB2)", 60.82, 60.88),
    ("row 5 RGB from RGB vs RGB from RGB2 (ML, tag C)", 60.54, 60.47),
    ("row 6 RGB from C(RGB) vs RGB from C2(RGB) (ML)", 60.68, 60.88),
)


def relaunch_sd(pairs: Sequence[tuple[str, float, float]]) -> float:
    """The standard deviation of a per-seed paired difference estimated from relaunch pairs: a relaunch difference
    a − b of two runs with seed noise σ has variance 2σ², as has the paired difference of two methods' runs of one
    seed, and its mean is 0 (which run is a is arbitrary), so the root mean square of the relaunch differences."""
    if not pairs:
        raise ValueError("relaunch_sd needs at least one pair")
    return math.sqrt(statistics.fmean((a - b) ** 2 for _, a, b in pairs))


DEFAULT_SEED_SD = relaunch_sd(TABLE7_RELAUNCHES)
DEFAULT_SEED_SD_SOURCE = (
    f"RMS of the {len(TABLE7_RELAUNCHES)} relaunch differences of RGB top-1 in the paper's Tab. 7 "
    f"({'; '.join(f'{name}: {a:.2f} vs {b:.2f}' for name, a, b in TABLE7_RELAUNCHES)})"
)


@dataclass(frozen=True)
class Throughput:
    """One measured training throughput of `reproductions/throughput.toml` (see its header)."""

    gpu: str
    arch: str
    modalities: tuple[str, ...]
    segments: int
    input_size: int
    setting: str
    train_clips_per_s: float
    source: str
    eval_clips_per_s: float = 0.0  # 0: not measured

    def __post_init__(self) -> None:
        for key in ("gpu", "source"):
            require(bool(typed(key, getattr(self, key), str).strip()), key, "must not be empty")
        one_of("arch", typed("arch", self.arch, str), (*ARCHS, *I3D_ARCHS))
        one_of("setting", typed("setting", self.setting, str), SETTINGS)
        modalities = typed("modalities", self.modalities, (list, tuple))
        require(bool(modalities), "modalities", "must name at least one modality")
        for name in modalities:
            one_of("modalities", name, tuple(MODALITIES))
        object.__setattr__(self, "modalities", tuple(modalities))
        for key in ("segments", "input_size"):
            positive(key, typed(key, getattr(self, key), int))
        object.__setattr__(self, "train_clips_per_s", typed("train_clips_per_s", self.train_clips_per_s, float))
        object.__setattr__(self, "eval_clips_per_s", typed("eval_clips_per_s", self.eval_clips_per_s, float))
        for key in ("train_clips_per_s", "eval_clips_per_s"):
            value = getattr(self, key)
            require(math.isfinite(value), key, f"must be a finite number, got {value!r}")
        positive("train_clips_per_s", self.train_clips_per_s)
        positive("eval_clips_per_s", self.eval_clips_per_s, zero=True)

    @property
    def label(self) -> str:
        """E.g. `H100 tsm_r50 RGB+Flow 8x224 bf16-cl-compile`."""
        return f"{self.gpu} {self.arch} {'+'.join(self.modalities)} {self.segments}x{self.input_size} {self.setting}"


def load_throughputs(specs: Path) -> tuple[Throughput, ...]:
    """The entries of `specs/throughput.toml` (the specs folder: the checkout's `reproductions/` or the installed
    `mml/reproductions`); a one-line SpecError naming the file, entry and key for a bad one."""
    path = Path(specs) / THROUGHPUT_FILE
    reader = TomlReader(path, load_toml(path))
    entries = reader.get("entry", list)
    reader.finish()
    loaded = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SpecError(f"{path}: entry[{index}]: expected a table, got {type(entry).__name__}")
        loaded.append(TomlReader(path, entry, f"entry[{index}].").config(Throughput))
    return tuple(loaded)


@dataclass(frozen=True)
class GpuTime:
    """A time on a GPU, or None with the reason; `basis` says where it comes from."""

    seconds: float | None
    basis: str

    @property
    def hours(self) -> float | None:
        return None if self.seconds is None else self.seconds / 3600


@dataclass(frozen=True)
class RunPrice:
    """The price of one run of a plan."""

    run_id: str
    name: str
    method: str
    modalities: tuple[str, ...]
    trained: bool  # False: loaded from checkpoint files
    train_clips: int
    train_gflops: float
    eval_clips: int
    eval_gflops: float
    train_time: GpuTime
    eval_time: GpuTime

    @property
    def hours(self) -> float | None:
        """Training plus evaluation GPU-hours; None when either has no figure."""
        parts = (self.train_time.hours, self.eval_time.hours)
        return None if None in parts else sum(p for p in parts if p is not None)


@dataclass(frozen=True)
class CacheDisk:
    """The frame (and flow) cache of a dataset at one short side."""

    short_side: int
    kind: str  # "jpeg", "npy", or "none" (the dataset's own frame folders are read)
    videos: int
    frames: float | None  # frames of all videos; None: unknown without decoding
    frames_basis: str
    with_flow: bool
    frame_bytes: float | None
    flow_bytes: float | None

    @property
    def total_bytes(self) -> float | None:
        if self.frame_bytes is None or self.flow_bytes is None:
            return None
        return self.frame_bytes + self.flow_bytes


@dataclass(frozen=True)
class Power:
    """The expected 95 % half-width of a claim's paired difference over `seeds` seeds (None: no verdict)."""

    seeds: int
    sd: float
    half_width: float | None


@dataclass(frozen=True)
class Price:
    """What a plan costs on one GPU."""

    gpu: str
    setting: str
    seeds: tuple[int, ...]
    runs: tuple[RunPrice, ...]
    caches: tuple[CacheDisk, ...]
    sd: float
    sd_source: str

    @property
    def train_clips(self) -> int:
        return sum(run.train_clips for run in self.runs)

    @property
    def train_gflops(self) -> float:
        return sum(run.train_gflops for run in self.runs)

    @property
    def eval_gflops(self) -> float:
        return sum(run.eval_gflops for run in self.runs)

    @property
    def hours(self) -> float | None:
        """GPU-hours of every run, None when a run has no figure."""
        each = [run.hours for run in self.runs]
        return None if None in each else sum(h for h in each if h is not None)

    def power(self, seeds: int) -> Power:
        return Power(seeds, self.sd, expected_half_width(seeds, self.sd))

    def hours_for(self, seeds: int) -> float | None:
        """GPU-hours of the same tables over `seeds` seeds: every seed plans the same runs."""
        return None if self.hours is None or not self.seeds else self.hours * seeds / len(self.seeds)


def expected_half_width(seeds: int, sd: float, confidence: float = ORDERING_CONFIDENCE) -> float | None:
    """t_{(1+confidence)/2, n−1} × sd / √n: the half-width of a claim's t-interval over `seeds` per-seed paired
    differences of standard deviation `sd`; None below `MIN_SEEDS` seeds (no verdict)."""
    if seeds < MIN_SEEDS:
        return None
    return float(stats.t.ppf(0.5 + confidence / 2, seeds - 1)) * sd / math.sqrt(seeds)


def training_clips_per_epoch(config: RunConfig, train_videos: int) -> int:
    """Clips one epoch of a run trains each of its models on: the batches' videos (the last smaller batch dropped,
    as the trainer does), times a video's regions and the views a step sees."""
    method = METHODS[config.method]
    indices = method.training_videos(config, train_videos) if train_videos else None
    videos = train_videos if indices is None else len(indices)
    if videos == 0:
        return 0
    batch = min(config.recipe.batch_size, videos)
    return videos // batch * batch * method.regions(config) * method.views


@functools.cache
def clip_gflops(arch: str, modality: str, segments: int, size: int, num_classes: int) -> float:
    """Counted forward GFLOPs of one clip of `segments` frames of `size` pixels through our network of `arch`
    (`inference_gflops` on a run of that shape; the torch RNG is left as it was)."""
    recipe = Recipe(segments=segments, short_side=size, input_size=size, batch_size=1, epochs=1, lr=1.0, lr_steps=())
    shape = RunConfig(
        method="ce",
        models=(ModelConfig(modality=modality, init="random"),),
        arch=arch,
        recipe=recipe,
        dataset="",
        num_classes=num_classes,
        seed=0,
    )
    with torch.random.fork_rng():
        return inference_gflops(shape, 0, ViewProtocol())


def _model_gflops(config: RunConfig, modality: str, size: int) -> float:
    return clip_gflops(config.arch, modality, config.recipe.segments, size, config.num_classes)


@functools.cache
def _policy_gflops(config: RunConfig) -> float:
    """Counted GFLOPs of an AdaMML policy on one segment (the torch RNG is left as it was)."""
    with torch.random.fork_rng():
        head = METHODS[config.method].evaluation_heads(config, [], None)[0]
    assert isinstance(head, AdaptiveNetwork) and head.policy is not None  # an AdaMML method with a policy
    return policy_gflops(head.policy, head.policy_shapes())


def _epoch_gflops(config: RunConfig, epoch: int) -> float:
    """Training GFLOPs of one clip in epoch `epoch` of a run (see the module's rules)."""
    method, size = METHODS[config.method], config.recipe.input_size
    forward = sum(_model_gflops(config, m.modality, size) for m in config.models)
    teacher = _model_gflops(config, config.teacher.modality, size) if config.teacher else 0.0
    if isinstance(method, AdaMMLMethod) and method.policy:
        policy = _policy_gflops(config)
        if phase(config.recipe, epoch)[0] == POLICY_PHASE:
            return forward + BACKWARD_FACTOR * policy
        return BACKWARD_FACTOR * forward + policy
    return BACKWARD_FACTOR * forward + teacher


def _estimate_gflops(config: RunConfig) -> tuple[int, float]:
    """Epochs and GFLOPs per clip of a G-Blend run's weight estimates: for each head, its network trained (every
    branch forward, the head's branches backward) for each estimate's length."""
    method = METHODS[config.method]
    if not isinstance(method, GBlend):
        return 0, 0.0
    size = config.recipe.input_size
    cost = {m.modality: _model_gflops(config, m.modality, size) for m in config.models}
    forward = sum(cost.values())
    epochs = sum(length for _, length in gblend_schedule(config, method.online))
    per_pass = [forward + (BACKWARD_FACTOR - 1) * (forward if head == FUSED else cost[head]) for head in heads(config)]
    return epochs * len(per_pass), epochs * sum(per_pass)


@dataclass(frozen=True)
class _Work:
    """Work to time on a GPU: `clips` clips costing `gflops` in all; `shape` (arch, modalities, segments, size)
    when every clip costs the same and an entry of that shape times it exactly, else None."""

    clips: int
    gflops: float
    arch: str
    shape: tuple[str, tuple[str, ...], int, int] | None


def _entry_gflops(entry: Throughput, num_classes: int) -> float:
    """Counted training GFLOPs of one clip of an entry's step."""
    return BACKWARD_FACTOR * sum(
        clip_gflops(entry.arch, m, entry.segments, entry.input_size, num_classes) for m in entry.modalities
    )


def _key(entry: Throughput) -> tuple[str, tuple[str, ...], int, int]:
    return entry.arch, tuple(sorted(entry.modalities)), entry.segments, entry.input_size


def gpu_time(
    works: Sequence[_Work], entries: Sequence[Throughput], gpu: str, setting: str, evaluation: bool, num_classes: int
) -> GpuTime:
    """The GPU time of `works` (see the module's rules: an exact entry, else scaled from the nearest by FLOPs)."""
    works = [work for work in works if work.clips]
    if not works:
        return GpuTime(0.0, "nothing to run")
    candidates = [e for e in entries if e.gpu == gpu and e.setting == setting]
    if not candidates:
        return GpuTime(None, f"no throughput figure for {gpu} at {setting}")
    seconds, bases = 0.0, []
    for work in works:
        exact = [e for e in candidates if work.shape == _key(e) and (e.eval_clips_per_s if evaluation else True)]
        if exact:
            entry = exact[0]
            seconds += work.clips / (entry.eval_clips_per_s if evaluation else entry.train_clips_per_s)
            bases.append(f"measured: {entry.label}")
            continue
        per_clip = work.gflops / work.clips * (BACKWARD_FACTOR if evaluation else 1)
        pool = [e for e in candidates if e.arch == work.arch] or candidates
        entry = min(pool, key=lambda e: abs(math.log(per_clip / _entry_gflops(e, num_classes))))
        seconds += work.gflops / (entry.train_clips_per_s * _entry_gflops(entry, num_classes))
        bases.append(f"scaled from {entry.label} by FLOPs")
    return GpuTime(seconds, "; ".join(dict.fromkeys(bases)))


def price_run(
    rid: str,
    config: RunConfig,
    name: str,
    views: Sequence[ViewProtocol],
    dataset: VideoDataset,
    entries: Sequence[Throughput],
    gpu: str,
    setting: str,
    trained: bool = True,
) -> RunPrice:
    """The price of one run: training (unless `trained` is False) and its evaluations under `views`."""
    method, recipe = METHODS[config.method], config.recipe
    videos = dataset.for_target(config.target)
    per_epoch = training_clips_per_epoch(config, len(videos.train)) if trained else 0
    estimate_epochs, estimate_gflops = _estimate_gflops(config) if per_epoch else (0, 0.0)
    epoch_gflops = [_epoch_gflops(config, epoch) for epoch in range(recipe.epochs)] if per_epoch else []
    train_clips = per_epoch * (recipe.epochs + estimate_epochs)
    train_gflops = per_epoch * (sum(epoch_gflops) + estimate_gflops)
    modalities = tuple(sorted(m.modality for m in config.models))
    plain = not config.teacher and not estimate_epochs and len(set(epoch_gflops)) <= 1 and method.regions(config) == 1
    shape = (config.arch, modalities, recipe.segments, recipe.input_size) if plain else None
    training = gpu_time(
        [_Work(train_clips, train_gflops, config.arch, shape)], entries, gpu, setting, False, config.num_classes
    )
    evaluations, eval_clips, eval_gflops = [], 0, 0.0
    for protocol in views:
        size = protocol.crop_side(recipe)
        for index in range(len(config.models) + method.extra_heads):
            if index < len(config.models):
                modality = config.models[index].modality
                clips = len(videos.validation) * clips_per_video(protocol)
                gflops = clips * _model_gflops(config, modality, size)
                head_shape = (config.arch, (modality,), recipe.segments, size)
            else:
                head_views = method.head_views(config, protocol)
                clips = len(videos.validation) * clips_per_video(head_views)
                with torch.random.fork_rng():
                    gflops = len(videos.validation) * video_gflops(config, index, protocol)
                head_shape = None
            evaluations.append(_Work(clips, gflops, config.arch, head_shape))
            eval_clips, eval_gflops = eval_clips + clips, eval_gflops + gflops
    evaluation = gpu_time(evaluations, entries, gpu, EVALUATION_SETTING, True, config.num_classes)
    return RunPrice(
        rid,
        name,
        config.method,
        tuple(m.modality for m in config.models),
        trained,
        train_clips,
        train_gflops,
        eval_clips,
        eval_gflops,
        training,
        evaluation,
    )


def cache_disk(
    dataset: VideoDataset,
    profile: Profile,
    short_side: int,
    with_flow: bool,
    frame_counts: Mapping[str, int] | None = None,
) -> CacheDisk:
    """The disk of a dataset's frame (and flow) cache at `short_side` (see the module's rules). `frame_counts`:
    frames per video id as a preparation report counted them."""
    records = (*dataset.train, *dataset.validation)
    if dataset.frames is not None:
        return CacheDisk(
            short_side, "none", len(records), None, "read from the dataset's frame folders", with_flow, 0, 0
        )
    kind = "npy" if dataset.packed else "jpeg"
    synthetic = _synthetic_config(profile)
    frames: float | None
    if frame_counts and all(r.video_id in frame_counts for r in records):
        frames, basis = float(sum(frame_counts[r.video_id] for r in records)), "counted by the preparation report"
    elif synthetic is not None:
        per_video = (synthetic.min_frames + synthetic.frames) / 2 * getattr(synthetic, "regions", 1)
        frames, basis = per_video * len(records), f"{per_video:g} frames a video on average (the generator's)"
    elif profile.dataset.kind in AVERAGE_FRAMES:
        average, source = AVERAGE_FRAMES[profile.dataset.kind]
        frames, basis = average * len(records), f"estimate: {average:g} frames a video ({source})"
    else:
        frames, basis = None, "frame count unknown without decoding the videos (prepare them for a count)"
    if frames is None:
        return CacheDisk(short_side, kind, len(records), None, basis, with_flow, None, None)
    pairs = max(frames - len(records), 0.0)
    if synthetic is not None:  # packed: uint8 arrays, (N, H, W, 3) frames and (N - 1, H, W, 2) flow
        pixels = short_side * round(
            short_side * max(synthetic.height, synthetic.width) / min(synthetic.height, synthetic.width)
        )
        frame_bytes = frames * pixels * 3 + len(records) * NPY_HEADER_BYTES
        flow_bytes = pairs * pixels * 2 + len(records) * NPY_HEADER_BYTES if with_flow else 0.0
    else:
        short, long = JPEG_MEASURED_SIDE
        pixels = short_side * round(short_side * long / short)
        frame_bytes = frames * pixels * JPEG_BYTES_PER_PIXEL["frames"]
        flow_bytes = pairs * 2 * pixels * JPEG_BYTES_PER_PIXEL["flow"] if with_flow else 0.0
    return CacheDisk(short_side, kind, len(records), frames, basis, with_flow, frame_bytes, flow_bytes)


def _synthetic_config(profile: Profile) -> SyntheticConfig | SyntheticCharadesConfig | None:
    """The generator configuration of a synthetic dataset, None for a real one."""
    kind = profile.dataset.kind
    if not kind.startswith("synthetic"):
        return None
    generator = SyntheticConfig if kind == "synthetic-sthv2" else SyntheticCharadesConfig
    return generator(**profile.dataset.synthetic)


def prepared_frame_counts(dataset: VideoDataset, cache_root: Path, short_side: int) -> dict[str, int] | None:
    """Frames per video from the preparation report of the dataset's cache at `short_side`, None without one."""
    path = dataset.cache_dir(cache_root) / f"prepare-short{short_side}.json"
    if not path.is_file():
        return None
    try:
        counts = json.loads(path.read_text())["frames"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise SpecError(f"{path}: not a preparation report (no `frames` table)") from None
    return {str(video): int(count) for video, count in counts.items()}


def price_plan(
    plan: Plan,
    dataset: VideoDataset,
    profile: Profile,
    entries: Sequence[Throughput],
    gpu: str,
    setting: str = TRAINING_SETTING,
    seed_sd: float | None = None,
    cache_root: Path | None = None,
) -> Price:
    """The price of every run of `plan` (planned for `profile` on `dataset`) on `gpu` under the trainer's speed
    `setting`, the caches its runs read (frame counts from `cache_root`'s preparation reports where they exist),
    and the power of its seed count for a paired per-seed sd `seed_sd` (default: the paper's Tab. 7 relaunches)."""
    if seed_sd is not None and not (math.isfinite(seed_sd) and seed_sd > 0):
        raise InvalidValue("seed sd", f"must be a positive number, got {seed_sd!r}")
    one_of("setting", setting, SETTINGS)
    runs = tuple(
        price_run(
            rid,
            config,
            (plan.names.get(rid) or [""])[0],
            sorted(plan.evaluations.get(rid, ()), key=lambda v: v.key),
            dataset,
            entries,
            gpu,
            setting,
            trained=rid not in plan.checkpoints,
        )
        for rid, config in sorted(((rid, plan.runs[rid]) for rid in plan.order()), key=lambda item: item[1].seed)
    )
    caches = []
    for short_side in sorted({config.recipe.short_side for config in plan.runs.values()}):
        configs = [c for c in plan.runs.values() if c.recipe.short_side == short_side]
        with_flow = any(m.modality == "Flow" for c in configs for m in (*c.models, c.teacher) if m)
        counts = prepared_frame_counts(dataset, cache_root, short_side) if cache_root else None
        caches.append(cache_disk(dataset, profile, short_side, with_flow, counts))
    seeds = tuple(sorted({config.seed for config in plan.runs.values()}))
    sd, source = (seed_sd, "given") if seed_sd is not None else (DEFAULT_SEED_SD, DEFAULT_SEED_SD_SOURCE)
    return Price(gpu, setting, seeds, runs, tuple(caches), sd, source)


def price_lines(price: Price) -> list[str]:
    """The price as text lines for the caller to log: one line per run, the totals, the caches' disk, and the
    expected half-width of a claim's interval for this seed count and for 3 seeds, with what 3 seeds cost."""
    seeds = len(price.seeds)
    lines = [
        f"Price on {price.gpu} (training {price.setting}, evaluation {EVALUATION_SETTING}), "
        f"{len(price.runs)} runs, {seeds} seed{'s' if seeds != 1 else ''} ({', '.join(map(str, price.seeds))}):",
        f"  {'run':<8} {'name':<28} {'method':<15} {'models':<14} {'train clips':>13} {'train PFLOPs':>12} "
        f"{'eval TFLOPs':>11} {'GPU-hours':>9}  basis",
    ]
    bases: dict[str, int] = {}
    for run in price.runs:
        train = run.train_time.basis if run.trained else "loaded from checkpoint files"
        marks = [bases.setdefault(basis, len(bases) + 1) for basis in (train, run.eval_time.basis)]
        basis = f"[{marks[0]}], eval [{marks[1]}]"
        lines.append(
            f"  {run.run_id[:8]:<8} {run.name[:28]:<28} {run.method:<15} {'+'.join(run.modalities):<14} "
            f"{run.train_clips:>13,} {run.train_gflops / 1e6:>12,.1f} {run.eval_gflops / 1e3:>11,.1f} "
            f"{_hours(run.hours):>9}  {basis}"
        )
    lines.append(
        f"  {'total':<8} {'':<28} {'':<15} {'':<14} {price.train_clips:>13,} {price.train_gflops / 1e6:>12,.1f} "
        f"{price.eval_gflops / 1e3:>11,.1f} {_hours(price.hours):>9}"
    )
    lines += [f"  [{number}] {basis}" for basis, number in bases.items()]
    for cache in price.caches:
        lines.append(_cache_line(cache))
    for count in dict.fromkeys((seeds, 3)):
        power = price.power(count)
        width = (
            f"±{power.half_width:.2f} points"
            if power.half_width is not None
            else f"no verdict ({count} seed{'s' if count != 1 else ''})"
        )
        plural = "s" if count != 1 else ""
        lines.append(f"Expected 95 % half-width of a claim's paired difference with {count} seed{plural}: {width}")
    lines.append(f"  (per-seed paired sd {price.sd:.3f} points: {price.sd_source})")
    lines.append(f"3 seeds cost {_hours(price.hours_for(3))} GPU-hours on {price.gpu}")
    return lines


def _hours(hours: float | None) -> str:
    return "no figure" if hours is None else f"{hours:,.1f}"


def _cache_line(cache: CacheDisk) -> str:
    what = "frames + TV-L1 flow" if cache.with_flow else "frames"
    where = f"Cache of {what} at short side {cache.short_side} ({cache.videos:,} videos"
    if cache.kind == "none":
        return f"{where}): none written, {cache.frames_basis}"
    if cache.total_bytes is None or cache.frames is None:
        return f"{where}): unknown, {cache.frames_basis}"
    flow = f" + flow {_gb(cache.flow_bytes)}" if cache.with_flow else ""
    return (
        f"{where}, {cache.frames:,.0f} frames, {cache.frames_basis}): frames {_gb(cache.frame_bytes)}{flow} = "
        f"{_gb(cache.total_bytes)} ({'packed uint8 arrays' if cache.kind == 'npy' else _JPEG_NOTE})"
    )


_JPEG_NOTE = "JPEG at the bytes per pixel of synthetic frames: real video compresses worse, a lower bound"


def _gb(size: float | None) -> str:
    return "?" if size is None else f"{size / 1e9:,.1f} GB"
