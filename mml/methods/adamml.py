"""AdaMML (Panda et al., ICCV 2021): a light policy decides, per video segment, which modalities to run, trading
accuracy against computation; and its baseline, the weighted fusion of the same recognition networks.

A run's models are the recognition networks, one per modality, each started from a run in the store (the suite's
own unimodal models). A video is split into C equal regions, one clip each (`adamml.regions` in training; at test
the `adamml.test_regions` dense views, uniformly spaced). The policy (`mml.models.adaptive.PolicyNetwork`, stored
as the auxiliary module `policy`) sees every segment at reduced size and frame count, Flow through its cheap proxy
RGBDiff; the recognition side runs Flow only where the policy asks for it. The video's logits are the mean over the
C segments of the decision-weighted per-modality logits, combined with learned weights (`fusion`), skipped
segments contributing zero (`adaptive_fusion`).

Training follows the official code's stages, one trainer epoch each: `adamml.warmup` epochs of the recognition
networks with the policy frozen, `adamml.alternations` pairs of one recognition epoch and one policy epoch (CE plus
the efficiency loss, the Gumbel temperature decayed after each pair), then `adamml.finetune` recognition epochs with
the policy frozen. The phase and the temperature are functions of the epoch alone, so a resumed run trains as an
uninterrupted one. Departures from the official code (listed in docs/deviations.md): decisions at test are the
argmax, not samples; fine-tuning starts from the last alternating epoch, not the best one on validation; the
policy's backbones are small TSM ResNets, not ImageNet MobileNetV2s.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mml.flops import forward_gflops
from mml.init_source import RunModel, parse_init
from mml.losses import efficiency_loss
from mml.methods.base import Method, Training, parameter_groups
from mml.methods.settings import MethodSettings
from mml.models.adaptive import FusionWeights, PolicyNetwork, adaptive_fusion, policy_input
from mml.models.tsm import ARCHS

if TYPE_CHECKING:
    from mml.models.i3d import I3DResNet
    from mml.models.tsm import TSMResNet
    from mml.spec import Recipe
    from mml.store import RunConfig

LOG = logging.getLogger(__name__)
POLICY, FUSION = "policy", "fusion"
# What the policy looks at for each recognition modality: Flow through RGBDiff, its cheap stand-in (Supp. §D).
POLICY_VIEW = {"RGB": "RGB", "Flow": "Diff", "Diff": "Diff"}
CHANNELS = {"RGB": 3, "Flow": 10, "Diff": 15}  # per frame, as `mml.data.modalities` builds them
WARMUP, MAIN, POLICY_PHASE, FINETUNE = "warmup", "recognition", "policy", "finetune"


@dataclass(frozen=True)
class AdaMMLSettings(MethodSettings):
    """AdaMML's settings (Panda et al., ICCV 2021; defaults: the official code's README): C training regions and C'
    test segments; the stages in epochs (warm-up with the policy frozen, alternating pairs of a recognition and a
    policy epoch, fine-tuning with the policy frozen); the policy's Adam lr; the Gumbel temperature and its decay per
    pair; γ and λ of the efficiency loss, λ the same for every modality (`hand`) or scaled by each modality's GFLOPs
    (`gflops`); the policy's backbone and its input frames and size (the original's 4 x 160 x 160), the width of its
    joint MLP and its LSTM's hidden size (the original's 2048 and 256). The weighted fusion reads the regions only."""

    namespace = "adamml"
    choices = {"lambda_from": ("hand", "gflops"), "policy_arch": tuple(ARCHS)}
    limits = {
        "policy_lr": (lambda v: v > 0, "must be positive"),
        "temperature": (lambda v: v > 0, "must be positive"),
        "temperature_decay": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    }
    zero_allowed = frozenset({"warmup", "alternations", "finetune"})  # a stage of 0 epochs is left out
    regions: int = 5
    test_regions: int = 10
    warmup: int = 5
    alternations: int = 20
    finetune: int = 10
    policy_lr: float = 0.01
    temperature: float = 5.0
    temperature_decay: float = 0.965
    gamma: float = 10.0
    lambda_: float = 1.0
    lambda_from: str = "hand"
    policy_arch: str = "tsm_tiny"
    policy_frames: int = 4
    policy_size: int = 160
    policy_width: int = 2048
    policy_hidden: int = 256


def policy_modalities(config: RunConfig) -> list[str]:
    """The modalities the policy sees, in the order of the recognition modalities they stand for."""
    return list(dict.fromkeys(POLICY_VIEW[model.modality] for model in config.models))


def phase(recipe: Recipe, epoch: int) -> tuple[str, int]:
    """The stage of (0-based) epoch `epoch` and how many alternating pairs are complete before it."""
    settings = recipe.settings(AdaMMLSettings)
    warmup, pairs = settings.warmup, settings.alternations
    if epoch < warmup:
        return WARMUP, 0
    if epoch < warmup + 2 * pairs:
        done = (epoch - warmup) // 2
        return (MAIN if (epoch - warmup) % 2 == 0 else POLICY_PHASE), done
    return FINETUNE, pairs


def stage_epochs(recipe: Recipe) -> int:
    """The epochs of an AdaMML run: warm-up, two per alternating pair, fine-tuning."""
    settings = recipe.settings(AdaMMLSettings)
    return settings.warmup + 2 * settings.alternations + settings.finetune


def temperature(recipe: Recipe, epoch: int) -> float:
    """The Gumbel temperature of an epoch: τ0 decayed once after each completed alternating pair (the original
    decays at the end of each alternating epoch and keeps it through fine-tuning)."""
    settings = recipe.settings(AdaMMLSettings)
    return settings.temperature * settings.temperature_decay ** phase(recipe, epoch)[1]


def segment_logits(
    models: Sequence[Callable[[Tensor], Tensor]], modalities: Sequence[str], inputs: Mapping[str, Tensor]
) -> Tensor:
    """Per-segment logits (N, C, M, K) of each recognition model on its modality's (N, C, T*ch, H, W) clips."""
    logits = []
    for model, modality in zip(models, modalities, strict=True):
        clips = inputs[modality]
        logits.append(model(clips.flatten(0, 1)).view(*clips.shape[:2], -1))
    return torch.stack(logits, dim=2)


class AdaptiveNetwork(nn.Module):
    """The whole AdaMML network at test: `forward` takes every modality's C segment clips of a batch of videos and
    returns the video logits (N, K) and the decisions (N, C, M). `per_video`: the evaluation passes whole videos."""

    per_video = True

    def __init__(
        self,
        config: RunConfig,
        models: Sequence[nn.Module],
        policy: PolicyNetwork | None,
        fusion: FusionWeights,
    ) -> None:
        super().__init__()
        self.config = config
        self.models = nn.ModuleList(models)
        self.policy = policy
        self.fusion = fusion
        self.modalities = [model.modality for model in config.models]

    def policy_shapes(self) -> dict[str, tuple[int, int, int]]:
        """The per-segment input shape (frames * channels, size, size) of each modality the policy sees."""
        settings = self.config.recipe.settings(AdaMMLSettings)
        frames, size = settings.policy_frames, settings.policy_size
        return {m: (frames * CHANNELS[m], size, size) for m in policy_modalities(self.config)}

    def forward(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits = segment_logits(list(self.models), self.modalities, inputs)
        if self.policy is None:
            decisions = logits.new_ones(logits.shape[:3])
        else:
            recipe = self.config.recipe
            seen = {m: _policy_view(self.config, m, inputs[m]) for m in policy_modalities(self.config)}
            decisions, _ = self.policy(seen, temperature(recipe, recipe.epochs), sample=False)
        return adaptive_fusion(logits, decisions, self.fusion()), decisions


def _policy_view(config: RunConfig, modality: str, clips: Tensor) -> Tensor:
    """The policy's cheap view (N, C, frames*ch, size, size) of a modality's segment clips."""
    settings = config.recipe.settings(AdaMMLSettings)
    return policy_input(clips, settings.policy_size, settings.policy_frames, channels=CHANNELS[modality])


@dataclass(frozen=True)
class AdaMMLMethod(Method):
    """AdaMML (`policy`) or the weighted fusion of the same recognition networks, every modality on every segment
    (no policy; trained for the recipe's epochs)."""

    min_models: int = 2
    max_models: int | None = None
    single_label: bool = True
    torchrun: bool = False
    extra_heads: int = 1
    policy: bool = True

    def check_models(
        self, modalities: Sequence[str], loaded: bool, inits: Sequence[str] = ()
    ) -> tuple[str, str] | None:
        if len(modalities) < 2 or len(set(modalities)) != len(modalities):
            return "models", f"method {self.name} selects among two or more distinct modalities, got {list(modalities)}"
        unseen = [m for m in modalities if m not in POLICY_VIEW]
        if unseen:
            return "models", f"the policy of method {self.name} cannot see modality {unseen[0]}"
        if loaded:
            return "checkpoints", f"a {self.name} run is trained, not loaded from checkpoint files"
        for index, init in enumerate(inits):
            if not isinstance(parse_init(init), RunModel):
                reason = f"method {self.name} starts from trained recognition runs (run:<name>/<index>), got {init!r}"
                return f"models[{index}].init", reason
        return None

    def regions(self, config: RunConfig) -> int:
        return config.recipe.settings(AdaMMLSettings).regions

    def extra_inputs(self, config: RunConfig) -> list[str]:
        if not self.policy:
            return []
        return [m for m in policy_modalities(config) if m not in {model.modality for model in config.models}]

    def auxiliary(self, config: RunConfig, models: Sequence[TSMResNet | I3DResNet]) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {FUSION: FusionWeights(len(config.models))}
        if self.policy:
            settings = config.recipe.settings(AdaMMLSettings)
            seen = {m: CHANNELS[m] for m in policy_modalities(config)}
            modules[POLICY] = PolicyNetwork(
                seen,
                len(config.models),
                settings.policy_frames,
                settings.policy_arch,
                joint_width=settings.policy_width,
                hidden=settings.policy_hidden,
            )
        return modules

    def auxiliary_groups(self, name: str, module: nn.Module) -> list[dict]:
        if name == FUSION:  # two numbers, trained with the recognition networks, no weight decay (as the original)
            return [{"params": list(module.parameters()), "lr_mult": 1, "decay_mult": 0, "name": FUSION}]
        return parameter_groups(name, module, lr_mult=1)

    def auxiliary_optimizer(self, name: str, groups: list[dict], config: RunConfig) -> torch.optim.Optimizer | None:
        """The policy trains with Adam at `adamml.policy_lr` (the original's optimiser); the rest with SGD."""
        if name != POLICY:
            return None
        recipe = config.recipe
        policy_lr = recipe.settings(AdaMMLSettings).policy_lr
        for group in groups:
            group["lr_mult"] = policy_lr / recipe.lr
        return torch.optim.Adam(groups, lr=policy_lr, weight_decay=recipe.weight_decay)

    def training_recipe(self, recipe: Recipe) -> Recipe:
        """An AdaMML run trains for its stages, warm-up + 2 x alternations + fine-tuning epochs, whatever the
        recipe's `epochs` (those of the recognition runs it starts from); the recipe's lr steps are stretched to
        them as a pretraining's are (none: a constant rate, as the official code's in effect)."""
        if not self.policy:
            return recipe
        return recipe.stretched(stage_epochs(recipe))

    def check_recipe(self, config: RunConfig) -> tuple[str, str] | None:
        """(recipe key, reason) when the policy's view does not fit the recipe's clips."""
        recipe = config.recipe
        if not self.policy:
            return None
        settings = recipe.settings(AdaMMLSettings)
        if recipe.segments % settings.policy_frames:
            return "adamml.policy_frames", f"must divide segments {recipe.segments}"
        if settings.policy_size > recipe.input_size:
            return "adamml.policy_size", f"exceeds input_size {recipe.input_size}"
        return None

    def before_epoch(self, training: Training, epoch: int) -> None:
        recipe = training.config.recipe
        stage = phase(recipe, epoch)[0] if self.policy else MAIN
        for model in training.models:
            model.requires_grad_(stage != POLICY_PHASE)
        training.auxiliary[FUSION].requires_grad_(stage != POLICY_PHASE)
        if self.policy:
            training.auxiliary[POLICY].requires_grad_(stage == POLICY_PHASE)
        costs = cost_weights(training.config, training.models) if self.policy else []
        training.state["adamml"] = {"stage": stage, "temperature": temperature(recipe, epoch), "costs": costs}
        if self.policy:
            selection = training.state.setdefault("adamml_selection", [])
            if selection:
                _log_selection(training.config, selection[-1])
            modalities = len(training.config.models)
            selection.append({"epoch": epoch + 1, "stage": stage, "segments": 0, "used": [0] * modalities})

    def step(self, training: Training, inputs: Mapping[str, Tensor], labels: Tensor) -> list[Tensor]:
        config = training.config
        nets = [_logits_of(net) for net in training.nets]
        logits = segment_logits(nets, [m.modality for m in config.models], inputs)
        weights = training.auxiliary[FUSION]()
        if not self.policy:
            loss = F.cross_entropy(adaptive_fusion(logits, logits.new_ones(logits.shape[:3]), weights), labels)
            training.record_cross_entropy(_cross_entropy_terms(logits, loss, labels))
            return [loss]
        state = training.state["adamml"]
        seen = {m: _policy_view(config, m, inputs[m]) for m in policy_modalities(config)}
        decisions, _ = training.auxiliary[POLICY](seen, state["temperature"], sample=True)
        _count_selection(training.state["adamml_selection"][-1], decisions)
        video = adaptive_fusion(logits, decisions, weights)
        loss = F.cross_entropy(video, labels)
        training.record_cross_entropy(_cross_entropy_terms(logits, loss, labels))
        if state["stage"] == POLICY_PHASE:
            correct = video.detach().argmax(dim=1) == labels
            loss = loss + efficiency_loss(
                decisions, correct, state["costs"], config.recipe.settings(AdaMMLSettings).gamma
            )
        return [loss]

    def head_views(self, config: RunConfig, views: Any) -> Any:
        """The C' test segments: `adamml.test_regions` dense views spread uniformly over the video, centre crop (the
        original's 10 uniformly spaced 8-frame clips)."""
        return dataclasses.replace(views, dense=config.recipe.settings(AdaMMLSettings).test_regions, uniform=0, crops=1)

    def evaluation_heads(
        self,
        config: RunConfig,
        models: Sequence[TSMResNet | I3DResNet],
        weights: Callable[[str], dict[str, Tensor]] | None,
    ) -> list[nn.Module]:
        modules = self.auxiliary(config, models)
        if weights is not None:
            for name, module in modules.items():
                module.load_state_dict(weights(name))
        policy, fusion = modules.get(POLICY), modules[FUSION]
        assert isinstance(policy, PolicyNetwork | None) and isinstance(fusion, FusionWeights)  # built by `auxiliary`
        return [AdaptiveNetwork(config, models, policy, fusion)]


def _cross_entropy_terms(logits: Tensor, video_loss: Tensor, labels: Tensor) -> list[Tensor]:
    """The cross-entropy of each recognition network's mean logits over the segments (N, C, M, K), then the video
    logits' `video_loss`: the terms of model indices 0 .. M (`Training.record_cross_entropy`)."""
    means = logits.detach().mean(dim=1)
    return [*(F.cross_entropy(means[:, index], labels) for index in range(means.shape[1])), video_loss]


def _count_selection(epoch: dict[str, Any], decisions: Tensor) -> None:
    """Add a batch's sampled decisions (N, S, M) to its epoch's record: training segments seen and used per
    modality (in metrics.json as `adamml_selection`, one record per epoch, to see how the policy's choices move)."""
    epoch["segments"] += decisions.shape[0] * decisions.shape[1]
    used = decisions.detach().sum(dim=(0, 1)).tolist()
    epoch["used"] = [before + int(now) for before, now in zip(epoch["used"], used, strict=True)]


def _log_selection(config: RunConfig, epoch: dict[str, Any]) -> None:
    """Log the % of training segments that ran each modality in a finished epoch."""
    shares = ", ".join(
        f"{model.modality} {100 * used / max(epoch['segments'], 1):.1f} %"
        for model, used in zip(config.models, epoch["used"], strict=True)
    )
    LOG.info("%s epoch %d (%s): training segments used: %s", config.run_id, epoch["epoch"], epoch["stage"], shares)


def _logits_of(net: nn.Module) -> Callable[[Tensor], Tensor]:
    """The logits of a trainer's `(features, logits)` network."""
    return lambda clips: net(clips)[1]


def cost_weights(config: RunConfig, models: Sequence[nn.Module]) -> list[float]:
    """λ_m of the efficiency loss: `adamml.lambda` for every modality (`hand`, the original's RGB + Flow setting
    1, 1), or scaled by each recognition model's share of the largest GFLOPs of one training segment (`gflops`)."""
    recipe = config.recipe
    settings = recipe.settings(AdaMMLSettings)
    if settings.lambda_from == "hand":
        return [settings.lambda_] * len(config.models)
    size, segments = recipe.input_size, recipe.segments
    costs = [
        forward_gflops(model, next(model.parameters()).new_zeros(1, segments * CHANNELS[spec.modality], size, size))
        for model, spec in zip(models, config.models, strict=True)
    ]
    return [settings.lambda_ * cost / max(costs) for cost in costs]


ADAMML = AdaMMLMethod("adamml", settings=AdaMMLSettings, reads=AdaMMLSettings.names())
WEIGHTED_FUSION = AdaMMLMethod(
    "weighted_fusion", settings=AdaMMLSettings, reads=("regions", "test_regions"), policy=False
)
