"""Temporal sampling: which frames each of a clip's T segments reads (paper §2.3 and Appendix 1).

Notation: ``num_frames`` N is the length of one modality's frame timeline (RGB/Diff: N video frames, Flow: N-1),
``new_length`` L the consecutive frames one segment reads (RGB 1, Flow 5, Diff 6) and ``segments`` T the number
of segments. Every function returns 0-based segment *start* indices; `frame_indices` expands them to the L frames.
"""

from collections.abc import Sequence

import numpy as np

STRATEGIES = ("uniform", "dense", "both")
_ROUNDING_TOLERANCE = 1e-9


def _require_positive(**sizes: int) -> None:
    """Raise ValueError naming the first size that is not a positive integer."""
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")


def _uniform_train_starts(num_frames: int, new_length: int, segments: int, rng: np.random.Generator) -> np.ndarray:
    """TSN's random-frame-per-chunk sampling, with TSN's fallbacks for short videos."""
    valid = num_frames - new_length + 1
    avg = valid // segments
    if avg > 0:
        return np.arange(segments, dtype=np.int64) * avg + rng.integers(avg, size=segments)
    if num_frames > segments:
        # The original draws from randint(valid), which fails when valid < 1 (N < L); we fall back to start 0.
        return np.sort(rng.integers(max(valid, 1), size=segments)).astype(np.int64)
    return np.zeros(segments, dtype=np.int64)


def _dense_train_starts(num_frames: int, segments: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """TSM's dense sampling: every ``stride``-th frame from a random start, wrapping round short videos."""
    sample_pos = max(1, 1 + num_frames - stride * segments)
    start = rng.integers(0, sample_pos)
    return (start + np.arange(segments, dtype=np.int64) * stride) % num_frames


def train_starts(
    num_frames: Sequence[int],
    new_length: Sequence[int],
    segments: int,
    strategy: str,
    dense_stride: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Sample one training clip shared by all modalities of a group, aligned as in paper §2.3.

    Positions are sampled on the timeline of the modality with the fewest frames (the first such one on ties);
    every modality m then reads them shifted by its own ξ_m ~ U{0..N_m - N_min}, drawn once per clip (so ξ = 0 for
    the shortest modality, and RGB with Flow gives RGB either the flow stack's first frame or the next one).

    Strategies: "uniform" (TSN: a random frame in each of T equal chunks of the N_min - L + 1 valid starts, with
    TSN's fallbacks for short videos), "dense" (every ``dense_stride``-th frame from a random start, wrapped modulo
    N_min) and "both" (a fair coin per clip picks dense or uniform, as in paper §3.1.1).

    Random numbers are drawn in this fixed order, so a clip is reproducible from the generator's state: the coin
    (only for "both"; 0 means dense, as in the original), then the positions, then one ξ per modality in order.

    Deliberate deviation: the original dense start is ``randint(0, sample_pos - 1)``, which never picks the last
    valid start N_min - dense_stride*T; here every start in 0..N_min - dense_stride*T is equally likely.

    Args:
        num_frames: N_m of each modality of the group, in modality order.
        new_length: L_m of each modality, in the same order.
        segments: T.
        strategy: "uniform", "dense" or "both".
        dense_stride: frame step τ of dense sampling (the original's dense_length // T, 32 // 8 = 4).
        rng: the generator all draws come from.

    Returns:
        One int64 array of T start indices per modality, in modality order.

    Raises:
        ValueError: on an unknown strategy, mismatched sequences or non-positive sizes.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown sampling strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if len(num_frames) != len(new_length) or not num_frames:
        raise ValueError(f"need one new_length per modality, got {len(num_frames)} num_frames and {len(new_length)}")
    _require_positive(segments=segments, dense_stride=dense_stride)
    for frames, length in zip(num_frames, new_length):
        _require_positive(num_frames=frames, new_length=length)

    shortest = int(np.argmin(num_frames))
    n_min = num_frames[shortest]
    dense = strategy == "dense" or (strategy == "both" and rng.integers(2) == 0)
    if dense:
        base = _dense_train_starts(n_min, segments, dense_stride, rng)
    else:
        base = _uniform_train_starts(n_min, new_length[shortest], segments, rng)
    return [base + rng.integers(0, frames - n_min + 1) for frames in num_frames]


def region_train_starts(
    num_frames: Sequence[int],
    new_length: Sequence[int],
    segments: int,
    strategy: str,
    dense_stride: int,
    regions: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """One training clip in each of `regions` equal parts of the video (AdaMML's C segments, Supp. §B): region r
    covers frames floor(r N_min / C) .. floor((r + 1) N_min / C) - 1 of the shortest timeline, and its clip is
    `train_starts` on that part (each modality keeping its extra N_m - N_min frames), shifted to the region.

    Returns:
        One int64 array (regions, T) of start indices per modality, in modality order; regions = 1 is
        `train_starts` itself, with the same draws.

    Raises:
        ValueError: as `train_starts`, and when there are fewer frames than regions.
    """
    _require_positive(regions=regions)
    n_min = min(num_frames)
    if n_min < regions:
        raise ValueError(f"{n_min} frames cannot be split into {regions} regions")
    bounds = [r * n_min // regions for r in range(regions + 1)]
    per_region = []
    for first, end in zip(bounds[:-1], bounds[1:]):
        lengths = [end - first + frames - n_min for frames in num_frames]
        clip = train_starts(lengths, new_length, segments, strategy, dense_stride, rng)
        per_region.append([starts + first for starts in clip])
    return [np.stack([region[m] for region in per_region]) for m in range(len(num_frames))]


def uniform_view(num_frames: int, new_length: int, segments: int, shift: float) -> np.ndarray:
    """Deterministic uniform test view: start k = floor((N - L + 1)/T * (k + shift)), clamped to [0, N - L].

    ``shift`` 0.5 is the original code's centred single view (its validation and ``test_models.py`` default, used
    for the paper's ablation tables); Appendix 1's "Uniform m" views are shift = i/m for i in 0..m-1, which for
    L = 1 is the paper's floor((k + i/m)·N/T) (the paper writes N for our T and T for our N). Unlike the original,
    which returns all zeros when N <= T + L - 1, short videos still get spread (repeating) starts.
    A tiny tolerance makes positions that are exact integers (e.g. shift = 1/3) immune to float rounding.
    """
    _require_positive(num_frames=num_frames, new_length=new_length, segments=segments)
    positions = (num_frames - new_length + 1) * (np.arange(segments) + shift) / segments
    starts = np.floor(positions + _ROUNDING_TOLERANCE).astype(np.int64)
    return np.clip(starts, 0, max(num_frames - new_length, 0))


def dense_view(num_frames: int, new_length: int, segments: int, stride: int, index: int, count: int) -> np.ndarray:
    """Appendix 1's view ``index`` of "Dense ``count``": T frames ``stride`` apart from a fixed start.

    With T' = (N - L + 1) - stride*(T - 1) valid starts, the start is floor(index*T'/count) for count > 1 and
    floor(T'/2) for count = 1 (0 when T' < 1); starts wrap modulo N - L + 1, so short videos wrap as in the original.
    This follows the paper's formulas; the original code's linspace(0, N - stride*T, count) (and its centre
    (N - stride*T)//2) differ slightly.
    """
    _require_positive(num_frames=num_frames, new_length=new_length, segments=segments, stride=stride, count=count)
    if not 0 <= index < count:
        raise ValueError(f"dense view index must be in 0..{count - 1}, got {index}")
    valid = max(num_frames - new_length + 1, 1)
    spare = valid - stride * (segments - 1)
    if spare < 1:
        start = 0
    elif count > 1:
        start = index * spare // count
    else:
        start = spare // 2
    return (start + stride * np.arange(segments, dtype=np.int64)) % valid


def spread_dense_view(
    num_frames: int, new_length: int, segments: int, stride: int, index: int, count: int
) -> np.ndarray:
    """PySlowFast's test clip ``index`` of ``count`` (`charades.py::get_seq_frames`, its Charades protocol): T
    frames ``stride`` apart, the starts spaced evenly from the first possible start to the last one.

    The last possible start is S = max(N - L - stride*(T - 1), 0) and clip ``index`` starts at
    round(index * S/(count - 1)) (Python's rounding, as PySlowFast's; S // 2 for count = 1, where PySlowFast would
    divide by zero), so the first clip starts at 0 and the last ends at the video's end. In a video shorter than the
    clip, segments past the last frame are clamped to it, never wrapped round to the beginning.
    """
    _require_positive(num_frames=num_frames, new_length=new_length, segments=segments, stride=stride, count=count)
    if not 0 <= index < count:
        raise ValueError(f"dense view index must be in 0..{count - 1}, got {index}")
    last_start = max(num_frames - new_length - stride * (segments - 1), 0)
    start = round(last_start / (count - 1) * index) if count > 1 else last_start // 2
    return np.minimum(start + stride * np.arange(segments, dtype=np.int64), max(num_frames - new_length, 0))


DENSE_VIEWS = {"appendix1": dense_view, "pyslowfast": spread_dense_view}  # by `ViewProtocol.dense_spacing`


def view_starts(
    num_frames: int,
    new_length: int,
    segments: int,
    dense: int,
    uniform: int,
    dense_stride: int,
    uniform_offset: float = 0.0,
    dense_spacing: str = "appendix1",
) -> list[np.ndarray]:
    """All start arrays of Appendix 1's "Dense k + Uniform m" test: the k dense views, then the m uniform views.

    The dense views are spaced as `dense_spacing` says: "appendix1" (`dense_view`, the paper's formula) or
    "pyslowfast" (`spread_dense_view`, PySlowFast's multi-view test). The uniform views use shift
    (i + uniform_offset)/m for i in 0..m-1 (offset 0: the paper's formula; offset 0.5 with m = 1: the original
    code's centred view); the caller fuses the predictions over the k + m views.
    """
    if dense < 0 or uniform < 0 or dense + uniform < 1:
        raise ValueError(f"need dense >= 0, uniform >= 0 and at least one view, got dense={dense} uniform={uniform}")
    if dense_spacing not in DENSE_VIEWS:
        raise ValueError(f"unknown dense spacing {dense_spacing!r}; known: {', '.join(DENSE_VIEWS)}")
    spaced = DENSE_VIEWS[dense_spacing]
    views = [spaced(num_frames, new_length, segments, dense_stride, i, dense) for i in range(dense)]
    views += [uniform_view(num_frames, new_length, segments, (i + uniform_offset) / uniform) for i in range(uniform)]
    return views


def frame_indices(starts: np.ndarray, new_length: int, num_frames: int) -> np.ndarray:
    """Expand T segment starts to the (T, L) frames each segment reads, clamped to N - 1.

    Clamping repeats the last frame near the end of the video, as the original loader does.
    """
    _require_positive(new_length=new_length, num_frames=num_frames)
    indices = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(new_length, dtype=np.int64)
    return np.clip(indices, 0, num_frames - 1)
