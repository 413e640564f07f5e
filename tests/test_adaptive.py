"""AdaMML's policy, decisions, decision-weighted fusion, cost and selection, checked against hand computations."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mml.methods import METHODS
from mml.methods.adamml import AdaMMLSettings
from mml.models.adaptive import FusionWeights, PolicyNetwork, adaptive_fusion, gumbel_decisions, policy_input
from mml.networks import network
from mml.report.cost import adaptive_gflops, inference_gflops, policy_gflops, video_gflops
from mml.report.ensemble import Scores
from mml.report.results import informative_gap, selection_percent
from mml.spec import Recipe, ViewProtocol
from mml.store import ModelConfig, RunConfig

CHANNELS = {"RGB": 3, "Diff": 15}
FRAMES = 4
JOINT = 32


def policy(decided: int = 2) -> PolicyNetwork:
    torch.manual_seed(0)
    return PolicyNetwork(CHANNELS, decided, FRAMES, "tsm_tiny", joint_width=JOINT, hidden=16).eval()


def segments(n: int = 2, s: int = 3, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(n, s, FRAMES * c, size, size, generator=gen) for name, c in CHANNELS.items()}


def test_sampled_decisions_are_hard_with_the_soft_samples_gradient() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 3, 2, generator=gen, dtype=torch.float64)
    weights = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    hard_in = logits.clone().requires_grad_()
    torch.manual_seed(7)
    decisions = gumbel_decisions(hard_in, 0.7, sample=True)
    (decisions * weights).sum().backward()
    soft_in = logits.clone().requires_grad_()
    torch.manual_seed(7)  # the same Gumbel noise
    soft = F.gumbel_softmax(soft_in, tau=0.7, hard=False)
    (soft[..., 1] * weights).sum().backward()

    assert decisions.shape == (64, 3) and decisions.dtype == torch.float64
    assert set(decisions.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(decisions, (soft[..., 1] > soft[..., 0]).double())
    assert hard_in.grad is not None and soft_in.grad is not None
    torch.testing.assert_close(hard_in.grad, soft_in.grad)
    # Analytically: d soft_1 / d logits = soft_1 * (onehot_1 - soft) / tau, so (-g, +g) with g = c s_0 s_1 / tau.
    g = (weights * soft[..., 0] * soft[..., 1] / 0.7).detach()
    torch.testing.assert_close(hard_in.grad, torch.stack([-g, g], dim=-1))


def test_evaluation_decisions_are_the_argmax_without_noise() -> None:
    logits = torch.tensor([[0.3, -0.2], [-1.0, 2.0], [0.5, 0.5], [-3.0, -2.9]])
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = gumbel_decisions(logits, 5.0, sample=False)
    assert torch.equal(torch.get_rng_state(), state)  # draws nothing
    torch.manual_seed(1)
    second = gumbel_decisions(logits, 5.0, sample=False)
    assert first.tolist() == second.tolist() == [0.0, 1.0, 0.0, 1.0]  # a tie skips


def test_decisions_validate_temperature_and_logits() -> None:
    for temperature in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            gumbel_decisions(torch.zeros(3, 2), temperature, sample=True)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        gumbel_decisions(torch.zeros(3, 3), 1.0, sample=False)


def test_policy_shapes_and_decisions() -> None:
    net = policy(decided=3)
    x = segments(n=2, s=5)
    decisions, logits = net(x, temperature=5.0, sample=True)
    assert decisions.shape == (2, 5, 3) and logits.shape == (2, 5, 3, 2)
    assert set(decisions.unique().tolist()) <= {0.0, 1.0}
    decisions, logits = net(x, temperature=5.0, sample=False)
    assert torch.equal(decisions, (logits[..., 1] > logits[..., 0]).float())
    assert "fc" not in dict(net.backbones["RGB"].named_children())  # the backbones' unused classifiers are gone


def test_policy_lstm_sees_the_previous_segments_logits() -> None:
    net = policy()
    x = segments()
    seen: list[torch.Tensor] = []
    heads: list[torch.Tensor] = []
    net.lstm.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    net.heads[0].register_forward_hook(lambda module, args, output: heads.append(output))
    _, logits = net(x, temperature=1.0, sample=False)
    assert len(seen) == 3 and all(step.shape == (2, JOINT + 4) for step in seen)
    assert not seen[0][:, JOINT:].any()  # zeros before the first segment
    torch.testing.assert_close(seen[1][:, JOINT:], logits[:, 0].flatten(1))
    torch.testing.assert_close(seen[2][:, JOINT:], logits[:, 1].flatten(1))
    # Fed back without detaching: segment 1's LSTM input has a gradient path to head 0's segment-0 logits.
    (path,) = torch.autograd.grad(seen[1][:, JOINT : JOINT + 2].sum(), heads[0], retain_graph=True)
    torch.testing.assert_close(path, torch.ones(2, 2))

    # Behaviourally (eval mode: no batch statistics couple the segments): segment 0 changes segment 1's logits only
    # through the recurrence, and never the other way round.
    changed = {name: t.clone() for name, t in x.items()}
    changed["RGB"][:, 0] += 1.0
    _, other = net(changed, temperature=1.0, sample=False)
    assert not torch.allclose(other[:, 1], logits[:, 1])
    changed = {name: t.clone() for name, t in x.items()}
    changed["Diff"][:, 2] += 1.0
    _, other = net(changed, temperature=1.0, sample=False)
    torch.testing.assert_close(other[:, :2], logits[:, :2])


def test_policy_input_errors_name_the_modality() -> None:
    net = policy()
    x = segments()
    with pytest.raises(ValueError, match="missing input 'Diff'"):
        net({"RGB": x["RGB"]}, temperature=1.0, sample=False)
    with pytest.raises(ValueError, match="unexpected input 'Flow'"):
        net({**x, "Flow": x["RGB"]}, temperature=1.0, sample=False)
    with pytest.raises(ValueError, match="'RGB' must be .* 4 frames x 3 channels = 12"):
        net({**x, "RGB": torch.zeros(2, 3, 24, 32, 32)}, temperature=1.0, sample=False)
    with pytest.raises(ValueError, match=r"differ in \(N, S\)"):
        net({**x, "RGB": x["RGB"][:, :2]}, temperature=1.0, sample=False)


def test_policy_input_keeps_every_other_frame_and_resizes() -> None:
    gen = torch.Generator().manual_seed(0)
    clip = torch.randn(2, 8 * 3, 24, 24, generator=gen)
    view = policy_input(clip, 16, 4, channels=3)
    assert view.shape == (2, 4 * 3, 16, 16)
    frames = clip.reshape(2, 8, 3, 24, 24)
    for k, t in enumerate((0, 2, 4, 6)):
        expected = F.interpolate(frames[:, t], size=(16, 16), mode="bilinear", align_corners=False)
        torch.testing.assert_close(view[:, 3 * k : 3 * (k + 1)], expected)
    # Constant frames stay constant: frame t = t, so the kept frames read 0, 2, 4, 6.
    ramp = torch.arange(8.0).repeat_interleave(3)[None, :, None, None].expand(1, 24, 24, 24)
    assert policy_input(ramp, 8, 4, channels=3)[0, :, 0, 0].tolist() == [0.0] * 3 + [2.0] * 3 + [4.0] * 3 + [6.0] * 3
    # Segments as a leading dimension: (N, S, T*C, H, W).
    assert policy_input(clip.reshape(1, 2, 24, 24, 24), 16, 2, channels=3).shape == (1, 2, 6, 16, 16)


def test_policy_input_validates_divisibility() -> None:
    clip = torch.zeros(1, 8 * 3, 16, 16)
    with pytest.raises(ValueError, match="frames=3 must divide the clip's 8 frames"):
        policy_input(clip, 8, 3, channels=3)
    with pytest.raises(ValueError, match="C=5"):
        policy_input(clip, 8, 4, channels=5)


def test_fusion_weights_start_at_one_over_m_and_sum_to_one() -> None:
    weights = FusionWeights(3)
    assert sum(p.numel() for p in weights.parameters()) == 2
    torch.testing.assert_close(weights(), torch.full((3,), 1 / 3))
    with torch.no_grad():
        weights.free.copy_(torch.tensor([0.9, 0.4]))
    torch.testing.assert_close(weights(), torch.tensor([0.9, 0.4, -0.3]))  # not constrained positive
    assert weights().sum().item() == pytest.approx(1.0)
    assert FusionWeights(1)().tolist() == [1.0]


def test_adaptive_fusion_counts_skipped_segments_as_zeros() -> None:
    logits = torch.tensor(
        [
            [
                [[4.0, 8.0], [100.0, 100.0]],  # segment 0: modality 1 skipped
                [[50.0, 50.0], [60.0, 60.0]],  # segment 1: everything skipped
                [[8.0, 4.0], [4.0, -4.0]],  # segment 2: both used
            ]
        ]
    )
    decisions = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]])
    weights = torch.tensor([0.25, 0.75])
    # segment 0: 0.25 (4, 8) = (1, 2); segment 1: (0, 0); segment 2: 0.25 (8, 4) + 0.75 (4, -4) = (5, -2);
    # mean over all 3 segments: (6, 0) / 3 = (2, 0).
    assert adaptive_fusion(logits, decisions, weights).tolist() == [[2.0, 0.0]]


def test_adaptive_fusion_validates_shapes() -> None:
    logits, decisions, weights = torch.zeros(2, 3, 2, 5), torch.zeros(2, 3, 2), torch.zeros(2)
    with pytest.raises(ValueError, match=r"segment_logits must be \(N, S, M, K\)"):
        adaptive_fusion(logits[0], decisions, weights)
    with pytest.raises(ValueError, match=r"decisions \(2, 3\) must be \(N, S, M\) = \(2, 3, 2\)"):
        adaptive_fusion(logits, decisions[..., 0], weights)
    with pytest.raises(ValueError, match=r"weights \(3,\) must be \(M,\) = \(2,\)"):
        adaptive_fusion(logits, decisions, torch.zeros(3))


# The original's per-segment GFLOPs (RGB and Flow ResNet-50; policy: RGB and RGBDiff MobileNetV2 and the LSTM).
RECOGNITION = (14.136, 16.339)
POLICY = 0.375 + 0.909 + 0.00236


def test_adaptive_gflops_on_the_originals_numbers() -> None:
    # Every modality on every segment without a policy: Supp. Table 2's weighted fusion, 141.36 + 163.39.
    assert adaptive_gflops(RECOGNITION, (1.0, 1.0), 0.0, 10) == pytest.approx(304.75)
    # AdaMML adds its policy on all 10 segments: 304.75 + 12.8636.
    assert adaptive_gflops(RECOGNITION, (1.0, 1.0), POLICY, 10) == pytest.approx(317.6136)
    # Half the segments each: 70.68 + 81.695 + 12.8636.
    assert adaptive_gflops(RECOGNITION, (0.5, 0.5), POLICY, 10) == pytest.approx(165.2386)
    # RGB only: 141.36 + 12.8636.
    assert adaptive_gflops(RECOGNITION, (1.0, 0.0), POLICY, 10) == pytest.approx(154.2236)


def test_adaptive_gflops_validates() -> None:
    with pytest.raises(ValueError, match="2 recognition costs but 1 selection"):
        adaptive_gflops(RECOGNITION, (1.0,), POLICY, 10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adaptive_gflops(RECOGNITION, (1.5, 0.0), POLICY, 10)
    with pytest.raises(ValueError, match="segments must be >= 1"):
        adaptive_gflops(RECOGNITION, (1.0, 0.0), POLICY, 0)


def test_policy_gflops_are_counted_and_grow_with_the_input() -> None:
    net = policy().train()
    small = policy_gflops(net, {"RGB": (12, 32, 32), "Diff": (60, 32, 32)})
    large = policy_gflops(net, {"RGB": (12, 64, 64), "Diff": (60, 64, 64)})
    assert 0 < small < large
    assert net.training  # its mode is restored
    # The convolutions dominate, so 4x the pixels is nearly 4x the count.
    assert large == pytest.approx(4 * small, rel=0.05)


def _adamml_config(method: str = "adamml") -> RunConfig:
    recipe = Recipe(
        segments=2, short_side=48, input_size=32, batch_size=4, epochs=3, lr=0.01, lr_steps=(3,),
        method_settings=(
            AdaMMLSettings(warmup=1, alternations=1, finetune=0, test_regions=4, policy_frames=1, policy_size=16),
        ),
    )  # fmt: skip
    models = (ModelConfig("RGB", "random"), ModelConfig("Flow", "random"))
    return RunConfig(method, models, "tsm_tiny", recipe, "d" * 64, 5, 0)


def test_video_gflops_count_the_selected_segments_and_the_policy_on_every_segment() -> None:
    config = _adamml_config()
    segment = ViewProtocol(dense=4, uniform=0, crops=1)  # the 4 test segments, one clip each
    rgb, flow = (inference_gflops(config, index, segment) for index in range(2))
    branches = [network(config, m.modality) for m in config.models]
    head = METHODS["adamml"].evaluation_heads(config, branches, None)[0]
    # The policy sees 1 frame of each segment at 16 pixels: RGB (3 channels) for RGB, RGBDiff (15) for Flow.
    policy = policy_gflops(head.policy, {"RGB": (3, 16, 16), "Diff": (15, 16, 16)})
    assert policy > 0
    decisions = np.zeros((2, 4, 2), dtype=bool)  # 2 videos x 4 segments x (RGB, Flow)
    decisions[0, :, 0] = True  # RGB on 4 of the 8 segments
    decisions[:, 0, 1] = True  # Flow on 2 of them
    expected = 4 * (0.5 * rgb + 0.25 * flow) + 4 * policy
    assert video_gflops(config, 2, ViewProtocol(), decisions) == pytest.approx(expected, rel=1e-6)
    # The weighted fusion has no policy and runs both networks on every segment.
    assert video_gflops(_adamml_config("weighted_fusion"), 2, ViewProtocol()) == pytest.approx(4 * (rgb + flow))
    # A single model costs each clip of the views: Dense 1 + Uniform 2, 3 crops = 9 clips.
    views = ViewProtocol(dense=1, uniform=2, crops=3)
    assert video_gflops(config, 0, views) == pytest.approx(9 * inference_gflops(config, 0, views))


def test_selection_is_the_share_of_segments_of_a_modality() -> None:
    config = _adamml_config()
    decisions = np.zeros((2, 4, 2), dtype=bool)
    decisions[:, :3, 1] = True
    assert selection_percent(config, 2, decisions, "Flow") == pytest.approx(75.0)
    assert selection_percent(config, 2, decisions, "RGB") == 0.0
    assert selection_percent(config, 2, decisions, "Diff") == 0.0  # not a recognition modality of the run
    assert selection_percent(config, 2, None, "RGB") == 100.0  # a fusion runs every network on every segment
    assert selection_percent(config, 1, None, "RGB") == 0.0 and selection_percent(config, 1, None, "Flow") == 100.0


def test_informative_gap_is_the_use_on_informative_segments_minus_the_use_on_the_others() -> None:
    config = _adamml_config()
    decisions = np.zeros((2, 4, 2), dtype=bool)  # 2 videos x 4 segments x (RGB, Flow)
    informative = np.array([[True, True, False, False], [False, True, False, False]])  # 3 of 8 segments
    decisions[:, :, 0] = True  # RGB everywhere: no preference
    decisions[0, :2, 1] = decisions[1, 2, 1] = True  # Flow on 2 of the 3 informative, 1 of the 5 others
    scores = Scores("adamml/2", np.array(["a", "b"]), np.zeros(2), np.zeros((2, 3)), decisions, informative)
    assert informative_gap(config, scores, "RGB") == 0.0
    assert informative_gap(config, scores, "Flow") == pytest.approx(100 * (2 / 3 - 1 / 5))
    assert math.isnan(informative_gap(config, scores, "Diff"))  # not a recognition modality of the run
    unflagged = dataclasses.replace(scores, informative=None)  # data without informative regions
    assert math.isnan(informative_gap(config, unflagged, "Flow"))
    everywhere = dataclasses.replace(scores, informative=np.ones((2, 4), dtype=bool))
    assert math.isnan(informative_gap(config, everywhere, "Flow"))  # nothing to compare with


def test_the_policy_widths_are_recipe_settings() -> None:
    config = _adamml_config()
    default = METHODS["adamml"].auxiliary(config, [network(config, m.modality) for m in config.models])["policy"]
    assert default.joint[0].out_features == 2048 and default.lstm.hidden_size == 256  # the original's
    small = dataclasses.replace(
        config, recipe=config.recipe.with_settings("adamml", {"policy_width": 16, "policy_hidden": 8})
    )
    policy = METHODS["adamml"].auxiliary(small, [network(small, m.modality) for m in small.models])["policy"]
    assert policy.joint[0].out_features == 16 and policy.lstm.hidden_size == 8
    assert small.run_id != config.run_id  # they enter the AdaMML run's identity
