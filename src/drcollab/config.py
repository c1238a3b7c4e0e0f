"""Validated configuration objects, one per component (pydantic), stored as YAML.

Every component takes its config in its constructor and every checkpoint stores it, so a
checkpoint alone rebuilds its model. Resolution order: defaults -> YAML file -> ``key=value``
command-line overrides (dotted keys, values parsed as YAML).
"""

from __future__ import annotations

import difflib
import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drcollab.constants import NUM_DME, NUM_GRADES, NUM_LESIONS
from drcollab.errors import ConfigError


class StrictModel(BaseModel):
    """Base for every config: unknown keys are refused, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PreprocessConfig(StrictModel):
    """Field-of-view crop, resize and contrast normalisation (see ``data/preprocess.py``)."""

    size: int = Field(512, ge=32, le=8192, description="Side of the square output image, in pixels.")
    fov_threshold: float = Field(
        0.1, gt=0, lt=1, description="FOV = pixels whose red channel exceeds this fraction of its 99th percentile."
    )
    normalise: bool = Field(True, description="Apply the van Grinsven / Graham contrast normalisation.")
    sigma_fraction: float = Field(
        1 / 30, gt=0, le=1, description="Gaussian sigma of the normalisation, as a fraction of the FOV radius."
    )
    mask_threshold: float = Field(
        0.0, ge=0, lt=1, description="A resized mask pixel is set when more than this fraction of its area was set."
    )
    background: int = Field(128, ge=0, le=255, description="Grey level written outside the FOV after normalisation.")


T = TypeVar("T", bound=BaseModel)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config classes a field's type holds: ``X``, ``X | None``, ``list[X]``, ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, list, tuple, dict, Annotated):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def nearest_key(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The valid key nearest to the unknown key at ``loc`` (e.g. ``("joint", "epoch")`` -> ``"epochs"``), if any."""
    models = [model]
    for part in loc[:-1]:
        inner = [m for parent in models if part in parent.model_fields
                 for m in _models_in(parent.model_fields[part].annotation)]
        models = inner or models  # a list index keeps the element's class
    keys = sorted({key for m in models for key in m.model_fields})
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
    return close[0] if close else None


def format_validation_error(err: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    """One line per bad field, naming the field path, e.g. ``train.stage2.epochs``; with ``model``, an unknown key
    names the nearest valid one."""
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            near = nearest_key(model, e["loc"]) if model is not None and e["loc"] else None
            hint = f"; did you mean {near!r}?" if near else ""
            lines.append(f"  {field}: unknown key{hint} (got {e.get('input')!r})")
        else:
            lines.append(f"  {field}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=3", "c=true"]`` into a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(err)}); "
                              "quote it, e.g. key='text'") from err
        _set_dotted(tree, key.strip(), value)
    return tree


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _expand_env(text: str, path: Path) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` with environment values (e.g. dataset roots)."""

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(f"{path}: environment variable {name} is not set and has no default (${{{name}:-...}})")
        return default

    return _ENV.sub(value, text)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``line L, column C: what is wrong`` of a YAML syntax error, on one line (where it began, then where it broke)."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return str(err).replace("\n", " ")
    parts = []
    for mark, text in ((err.context_mark, err.context), (err.problem_mark, err.problem)):
        if text:
            parts.append(f"line {mark.line + 1}, column {mark.column + 1}: {text}" if mark is not None else text)
    return "; ".join(parts)


def read_yaml(path: Path, expand_env: bool = False) -> Any:
    """Parse a YAML file (``${VAR:-default}`` expanded first with ``expand_env``); a syntax error is one line
    naming the file and the line."""
    try:
        text = path.read_text()
        return yaml.safe_load(_expand_env(text, path) if expand_env else text)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file ({err.reason} at byte {err.start}); a config is YAML text") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from err


def read_yaml_tree(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config as a dict, with ``${VAR:-default}`` expanded and ``base:`` files merged underneath.

    ``base: other.yaml`` (relative to the file) names a config this one only changes; bases may
    have bases of their own.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: 'base' files form a cycle")
    tree = read_yaml(path, expand_env=True) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(tree).__name__}")
    base = tree.pop("base", None)
    if base is not None:
        tree = deep_merge(read_yaml_tree(path.parent / base, (*_seen, path.resolve())), tree)
    return tree


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build ``cls`` from defaults, then a YAML file (and its ``base:`` files), then ``key=value`` overrides.

    Raises:
        ConfigError: naming the file and every invalid field.
    """
    tree = read_yaml_tree(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    if overrides:
        tree = deep_merge(tree, parse_overrides(overrides))
        source += " and the command-line key=value overrides"
    try:
        return cls.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, cls)) from err


def changed_fields(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` of every field that differs between two config trees, sorted."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [change for key in sorted(set(old) | set(new))
                for change in changed_fields(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def dump_config(config: BaseModel) -> str:
    """YAML text of a config, every default written out."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


# ---- models and losses (see models/, losses/ and docs/method.md) ----

Width = Annotated[int, Field(ge=1, le=8192)]


class GeneratorConfig(StrictModel):
    """Multi-lesion mask generator G, the Xception U-Net of Sec. 3.2 (``models/generator.py``)."""

    variant: Literal["xception", "conv"] = Field(
        "xception", description="xception = the paper's CE2; conv = CE1, the same network with normal 3x3 convs."
    )
    widths: tuple[Width, Width, Width, Width, Width] = Field(
        (64, 128, 256, 512, 1024), description="Channels of the encoder tuples x0..x4; the decoder mirrors them."
    )
    upsample: Literal["bilinear", "transpose"] = Field(
        "bilinear", description="bilinear x2 (no weights) or U-Net's 2x2 transposed 'up-convolution'."
    )
    in_channels: int = Field(3, ge=1, description="Image channels.")
    num_lesions: int = Field(NUM_LESIONS, ge=1, description="L, the number of output mask logits.")
    head_prior: tuple[float, ...] | None = Field(
        None, description="Start each lesion's output at this probability (head bias logit(p), head weights "
        "N(0, 0.01), as RetinaNet does for rare classes): one value per lesion, or null for PyTorch's default "
        "initialisation (the paper, p ~ 0.5)."
    )

    @model_validator(mode="after")
    def _prior_per_lesion(self) -> GeneratorConfig:
        if self.head_prior is not None:
            if len(self.head_prior) != self.num_lesions:
                raise ValueError(f"head_prior needs {self.num_lesions} values (one per lesion), got "
                                 f"{len(self.head_prior)}")
            if not all(0 < p < 1 for p in self.head_prior):
                raise ValueError(f"head_prior values must lie in (0, 1), got {list(self.head_prior)}")
        return self


class DiscriminatorConfig(StrictModel):
    """Multi-lesion discriminator D of Sec. 3.2 (``models/discriminator.py``)."""

    widths: tuple[Width, Width, Width, Width, Width] = Field(
        (32, 64, 128, 256, 512), description="Channels of the five conv tuples."
    )
    in_channels: int = Field(3, ge=1, description="Image channels; D sees in_channels + num_lesions.")
    sees_image: bool = Field(
        True, description="D sees the image beside the masks (the paper). false = the masks alone, so D cannot tell "
        "its branches apart by the images themselves (X^P and X^I are different image sets) and judges only masks."
    )
    num_lesions: int = Field(NUM_LESIONS, ge=1, description="L, the number of mask channels.")


class GraderConfig(StrictModel):
    """Lesion-attentive DR grader of Sec. 3.3 (``models/grader.py``)."""

    mode: Literal["ori", "pretrained", "attention"] = Field(
        "attention",
        description="ori = no masks (baseline and stage-1 model); pretrained = G's masks weight f_low directly; "
        "attention = the full model of Eqs. 4-6.",
    )
    backbone: str = Field("resnet18", description="timm model name; features_only must give a FeatureListNet.")
    pretrained: bool = Field(False, description="Load timm's ImageNet weights (downloads them once).")
    low_stage: int = Field(1, ge=0, description="Index into the backbone's feature_info of the f_low stage.")
    att_channels: int = Field(64, ge=1, description="C_att, channels of f_low_att and of the f_high context vector.")
    attention_init: Literal["random", "masks"] = Field(
        "random",
        description="random = PyTorch's default initialisation (the paper); masks = the attention starts as a copy "
        "of G's masks, alpha_l = sigmoid(gain * (m_l - 0.5)), and learns refinements from there.",
    )
    attention_gain: float = Field(10.0, gt=0, description="Slope of the 'masks' initialisation.")
    num_lesions: int = Field(NUM_LESIONS, ge=1, description="L, the number of lesion branches.")
    num_grades: int = Field(NUM_GRADES, ge=2, description="Number of severity grades.")
    head: Literal["softmax", "ordinal"] = Field(
        "softmax",
        description="DR grade head: softmax = a linear layer, one logit per grade (the paper); ordinal = a "
        "cumulative-logit head, one score and G - 1 ordered thresholds, whose logits are log P(grade = k) "
        "(models/ordinal.py; docs/method.md, 'A stronger grader'). The DME head stays a linear layer.",
    )
    dme: bool = Field(
        False, description="A second linear head on the same pooled features predicts the risk of macular edema "
        "(0, 1, 2; docs/method.md, 'DME and referable'); false = the paper's grader, DR only."
    )
    lesion_stats: bool = Field(
        False, description="Join per-lesion statistics of G's masks (area and blob count in the macula's disc and "
        "the four quadrants, models/lesion_stats.py) to the pooled features before the DR and DME heads, in every "
        "mode (ori too); G's masks then come from the one mask path (models/mask_path.py). false = the paper."
    )


# Test-time flips prediction averages over (inference/predictor.py): none, the mirror image, or also the vertical flips.
Tta = Literal["none", "hflip", "flips"]

# What predicted lesion maps say outside the field of view (inference/predictor.py): zero, or G's raw outputs.
OutsideFov = Literal["zero", "keep"]


class ReferableConfig(StrictModel):
    """Who is referred: DR grade >= dr_min or DME risk >= dme_min (``inference/referable.py``); programmes differ."""

    dr_min: int = Field(2, ge=1, le=NUM_GRADES - 1, description="Lowest referable DR grade (2 = moderate NPDR).")
    dme_min: int = Field(1, ge=1, le=NUM_DME - 1, description="Lowest referable DME risk (1 = any hard exudate); "
                         "used only by a grader with a DME head.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Referable flag = P(referable) >= this.")


class LossConfig(StrictModel):
    """Loss weights: focal loss for grading (and DME), Eq. 3 for segmentation (``losses/``)."""

    focal_gamma: float = Field(2.0, ge=0, description="Focal loss focusing parameter; 0 gives cross-entropy.")
    focal_alpha: tuple[float, float, float, float, float] | None = Field(
        None, description="Optional per-grade weights alpha_t of the focal loss."
    )
    dme_loss: Literal["focal", "ce"] = Field(
        "focal", description="Loss of the DME head (grader.dme): focal (with focal_gamma, no alpha) or cross-entropy; "
        "images without a DME label are left out of it."
    )
    dme_weight: float = Field(1.0, ge=0, description="Weight of the DME loss beside the DR grade's focal loss.")
    lambda_ce: float = Field(10.0, ge=0, description="lambda of Eq. 3: L_seg = L_adv + lambda * L_CE.")
    adv_weight: float = Field(
        1.0, ge=0, description="Weight of G's adversarial term in Eq. 3 (the paper: 1): L_seg = adv_weight * L_adv + "
        "lambda * L_CE. Unlike a larger lambda_ce it leaves the grading loss's pull on G where it is."
    )
    mask_loss: Literal["bce", "bce_dice"] = Field(
        "bce", description="L_CE of Eq. 3: bce = the paper's pixel BCE; bce_dice adds dice_weight x soft Dice."
    )
    dice_weight: float = Field(1.0, ge=0, description="Weight of the soft Dice term of mask_loss bce_dice.")
    mask_fov: bool = Field(
        True, description="G's mask losses (stage 1a, stage 2's X^P and pseudo masks) count only the pixels inside "
        "the field of view; false = the paper: every pixel of the image or crop."
    )
    pos_weight: tuple[float, float, float, float] | None = Field(
        None, description="Per-lesion weights of the positive pixels in the BCE (MA, HE, EX, SE); null = 1."
    )
