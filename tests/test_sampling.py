"""Tests of temporal sampling against the paper's formulas and the original code's examples."""

import numpy as np
import pytest

from mml.data import sampling
from mml.data.sampling import dense_view, frame_indices, region_train_starts, train_starts, uniform_view
from mml.spec import DENSE_SPACINGS


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_uniform_starts_one_per_segment() -> None:
    rng = _rng()
    for _ in range(200):
        (starts,) = train_starts([53], [1], 8, "uniform", 4, rng)
        avg = 53 // 8
        assert starts.dtype == np.int64
        assert np.all(starts >= np.arange(8) * avg) and np.all(starts < (np.arange(8) + 1) * avg)


def test_uniform_uses_new_length_of_shortest_modality() -> None:
    rng = _rng(1)
    for _ in range(200):
        (starts,) = train_starts([20], [5], 4, "uniform", 4, rng)
        avg = (20 - 5 + 1) // 4
        assert np.all(starts >= np.arange(4) * avg) and np.all(starts < (np.arange(4) + 1) * avg)


def test_uniform_short_video_fallbacks() -> None:
    rng = _rng(2)
    seen = set()
    for _ in range(300):  # T < N < T + L - 1 + T: avg == 0 but N > T -> sorted random starts in 0..N-L
        (starts,) = train_starts([10], [5], 8, "uniform", 4, rng)
        assert np.all(np.diff(starts) >= 0) and starts.min() >= 0 and starts.max() <= 10 - 5
        seen.update(starts.tolist())
    assert seen == set(range(6))
    (starts,) = train_starts([6], [1], 8, "uniform", 4, rng)  # N <= T: all zeros
    np.testing.assert_array_equal(starts, np.zeros(8))


def test_dense_starts_have_exact_stride_and_reach_last_start() -> None:
    rng = _rng(3)
    firsts = set()
    for _ in range(400):
        (starts,) = train_starts([40], [1], 8, "dense", 4, rng)
        np.testing.assert_array_equal(np.diff(starts), np.full(7, 4))
        firsts.add(int(starts[0]))
    assert firsts == set(range(40 - 32 + 1))  # includes the last valid start 8 (deliberate fix)


def test_dense_wraps_short_videos() -> None:
    rng = _rng(4)
    for _ in range(20):
        (starts,) = train_starts([20], [1], 8, "dense", 4, rng)
        np.testing.assert_array_equal(starts, (np.arange(8) * 4) % 20)


@pytest.mark.parametrize("strategy", ["uniform", "dense"])
def test_xi_aligns_rgb_with_flow(strategy: str) -> None:
    rng = _rng(5)
    xis = []
    for _ in range(300):
        rgb, flow = train_starts([40, 39], [1, 5], 8, strategy, 4, rng)
        xi = rgb - flow
        assert np.all(xi == xi[0]) and xi[0] in (0, 1)
        xis.append(int(xi[0]))
    assert set(xis) == {0, 1}


def test_xi_zero_for_argmin_and_bounded_for_others() -> None:
    rng = _rng(6)
    seen = set()
    for _ in range(300):
        diff, flow, rgb = train_starts([50, 47, 50], [6, 5, 1], 8, "uniform", 4, rng)
        assert np.all(flow >= 0) and np.all(flow <= 47 - 5)
        for starts in (diff, rgb):
            xi = starts - flow
            assert np.all(xi == xi[0]) and 0 <= xi[0] <= 3
            seen.add(int(xi[0]))
    assert seen == {0, 1, 2, 3}


def test_argmin_ties_pick_first() -> None:
    rng = _rng(7)
    for _ in range(50):  # with ties, the first modality's L sets avg: (10-5+1)//2 = 3 bounds each chunk
        first, second = train_starts([10, 10], [5, 1], 2, "uniform", 4, rng)
        np.testing.assert_array_equal(first, second)
        assert first[0] < 3 and 3 <= first[1] < 6


def test_both_mixes_strategies_evenly() -> None:
    rng = _rng(8)
    dense = 0
    draws = 2000
    for _ in range(draws):
        (starts,) = train_starts([100], [1], 8, "both", 4, rng)
        spread = int(starts[-1] - starts[0])
        assert spread == 28 or spread >= 7 * 12 - 11  # dense spans 7*4; uniform (avg 12) spans at least 73
        dense += spread == 28
    assert abs(dense / draws - 0.5) < 0.05


def _clips(seed: int) -> list[np.ndarray]:
    rng = _rng(seed)
    return [starts for _ in range(20) for starts in train_starts([400, 399], [1, 5], 8, "both", 4, rng)]


def test_reproducible_from_seed() -> None:
    first, again, other = _clips(9), _clips(9), _clips(10)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([40], [1], 8, "random", 4), "unknown sampling strategy"),
        (([40], [1], 0, "uniform", 4), "segments"),
        (([40], [1], 8, "dense", 0), "dense_stride"),
        (([0], [1], 8, "uniform", 4), "num_frames"),
        (([40], [1, 5], 8, "uniform", 4), "one new_length per modality"),
    ],
)
def test_train_starts_rejects_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train_starts(*args, rng=_rng())


def test_uniform_view_centre_matches_original_example() -> None:
    np.testing.assert_array_equal(uniform_view(40, 1, 8, 0.5), [2, 7, 12, 17, 22, 27, 32, 37])


@pytest.mark.parametrize("num_frames", [8, 13, 24, 40, 57, 72, 100, 121])  # 72: (k + 2/3)·9 is an integer
@pytest.mark.parametrize("views", [1, 2, 3, 4])
def test_uniform_views_match_paper_formula(num_frames: int, views: int) -> None:
    segments = 8
    for i in range(views):
        expected = [((k * views + i) * num_frames) // (segments * views) for k in range(segments)]
        np.testing.assert_array_equal(uniform_view(num_frames, 1, segments, i / views), expected)


def test_uniform_view_clamps_to_valid_starts() -> None:
    starts = uniform_view(10, 5, 8, 0.99)
    assert starts.min() >= 0 and starts.max() <= 5
    np.testing.assert_array_equal(uniform_view(3, 5, 4, 0.5), np.zeros(4))


@pytest.mark.parametrize("num_frames", [40, 61, 100])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_dense_view_matches_paper_formula(num_frames: int, count: int) -> None:
    segments, stride = 8, 4
    spare = num_frames - stride * (segments - 1)
    for i in range(count):
        first = (i * spare) // count if count > 1 else spare // 2
        expected = [first + stride * k for k in range(segments)]
        np.testing.assert_array_equal(dense_view(num_frames, 1, segments, stride, i, count), expected)


def test_dense_view_wraps_short_videos() -> None:
    np.testing.assert_array_equal(dense_view(20, 1, 8, 4, 0, 1), (np.arange(8) * 4) % 20)
    np.testing.assert_array_equal(dense_view(20, 5, 8, 4, 1, 2), (np.arange(8) * 4) % 16)
    with pytest.raises(ValueError, match="index"):
        dense_view(40, 1, 8, 4, 2, 2)


def test_spread_dense_views_run_from_the_first_start_to_the_last_as_pyslowfast() -> None:
    # Charades-like: 8 frames with stride 8 span 57 frames; a 100-frame video's last start is 43, and PySlowFast's
    # 10 clips start at round(i * 43 / 9): 0, 5, 10, 14, 19, 24, 29, 33, 38, 43 (Python's rounding, 4.78 -> 5 ...).
    starts = [int(sampling.spread_dense_view(100, 1, 8, 8, i, 10)[0]) for i in range(10)]
    assert starts == [round(i * 43 / 9) for i in range(10)] == [0, 5, 10, 14, 19, 24, 29, 33, 38, 43]
    last = sampling.spread_dense_view(100, 1, 8, 8, 9, 10)
    np.testing.assert_array_equal(last, 43 + 8 * np.arange(8))
    assert last[-1] == 99  # the last clip ends on the video's last frame


def test_spread_dense_views_of_an_exact_fit_all_start_at_zero() -> None:
    for i in range(10):  # 57 frames hold the 57-frame clip exactly once
        np.testing.assert_array_equal(sampling.spread_dense_view(57, 1, 8, 8, i, 10), 8 * np.arange(8))


def test_spread_dense_views_clamp_short_videos_instead_of_wrapping() -> None:
    # 30 frames are shorter than the 57-frame clip: every clip starts at 0 and repeats the last frame, as PySlowFast's
    # max(min(start + i * rate, L - 1), 0); Appendix 1's views wrap round to the beginning instead.
    expected = [0, 8, 16, 24, 29, 29, 29, 29]
    for i in range(10):
        np.testing.assert_array_equal(sampling.spread_dense_view(30, 1, 8, 8, i, 10), expected)
    assert list(dense_view(30, 1, 8, 8, 0, 10)) == [0, 8, 16, 24, 2, 10, 18, 26]
    # A stack of L = 5 flow frames: segment starts end at N - L, so the frames read end at the last one.
    np.testing.assert_array_equal(sampling.spread_dense_view(30, 5, 8, 8, 3, 10), [0, 8, 16, 24, 25, 25, 25, 25])
    assert frame_indices(sampling.spread_dense_view(30, 5, 8, 8, 3, 10), 5, 30).max() == 29
    assert list(sampling.spread_dense_view(100, 1, 8, 8, 0, 1)) == list(21 + 8 * np.arange(8))  # one view: the middle
    with pytest.raises(ValueError, match="index"):
        sampling.spread_dense_view(40, 1, 8, 4, 2, 2)


def test_view_starts_spaces_dense_views_as_asked() -> None:
    spread = sampling.view_starts(100, 1, 8, dense=3, uniform=1, dense_stride=8, dense_spacing="pyslowfast")
    for i in range(3):
        np.testing.assert_array_equal(spread[i], sampling.spread_dense_view(100, 1, 8, 8, i, 3))
    np.testing.assert_array_equal(spread[3], uniform_view(100, 1, 8, 0.0))
    assert set(sampling.DENSE_VIEWS) == set(DENSE_SPACINGS)
    with pytest.raises(ValueError, match="unknown dense spacing 'wrapped'"):
        sampling.view_starts(100, 1, 8, dense=1, uniform=0, dense_stride=8, dense_spacing="wrapped")


def test_test_views_order_and_count() -> None:
    views = sampling.view_starts(61, 1, 8, dense=2, uniform=3, dense_stride=4)
    assert len(views) == 5
    for i in range(2):
        np.testing.assert_array_equal(views[i], dense_view(61, 1, 8, 4, i, 2))
    for i in range(3):
        np.testing.assert_array_equal(views[2 + i], uniform_view(61, 1, 8, i / 3))
    assert len(sampling.view_starts(61, 1, 8, dense=0, uniform=1, dense_stride=4)) == 1
    with pytest.raises(ValueError, match="at least one view"):
        sampling.view_starts(61, 1, 8, dense=0, uniform=0, dense_stride=4)


def test_frame_indices_clamp_to_last_frame() -> None:
    indices = frame_indices(np.array([0, 36, 38]), 5, 40)
    np.testing.assert_array_equal(indices, [[0, 1, 2, 3, 4], [36, 37, 38, 39, 39], [38, 39, 39, 39, 39]])
    assert indices.dtype == np.int64


@pytest.mark.parametrize("strategy", ["uniform", "dense"])
def test_region_clips_stay_inside_their_regions(strategy: str) -> None:
    rng = np.random.default_rng(3)
    rgb, flow = region_train_starts([50, 49], [1, 5], 4, strategy, 2, 5, rng)
    assert rgb.shape == flow.shape == (5, 4)
    bounds = [0, 9, 19, 29, 39, 49]  # floor(r * 49 / 5) on Flow's 49-frame timeline
    for region, (first, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        assert first <= flow[region].min() and flow[region].max() <= end - 1
        assert first <= rgb[region].min() and rgb[region].max() <= end  # RGB has one frame more
        assert np.all((rgb[region] - flow[region]) == rgb[region][0] - flow[region][0])  # one ξ per clip


def test_one_region_is_the_ordinary_clip() -> None:
    one = region_train_starts([30, 29], [1, 5], 4, "both", 2, 1, np.random.default_rng(5))
    plain = train_starts([30, 29], [1, 5], 4, "both", 2, np.random.default_rng(5))
    assert all(np.array_equal(a[0], b) for a, b in zip(one, plain, strict=True))


def test_more_regions_than_frames_is_refused() -> None:
    with pytest.raises(ValueError, match="3 frames cannot be split into 5 regions"):
        region_train_starts([3], [1], 2, "uniform", 1, 5, np.random.default_rng(0))
