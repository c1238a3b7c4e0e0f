"""Validated configuration objects, one per component (pydantic), stored as YAML.

Every component takes its config in its constructor and every checkpoint stores it, so a
checkpoint alone rebuilds its model. Resolution order: defaults -> YAML file -> ``key=value``
command-line overrides (dotted keys, values parsed as YAML).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


T = TypeVar("T", bound=BaseModel)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per bad field, naming the field path, e.g. ``train.stage2.epochs``."""
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  {field}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=3", "c=true"]`` into a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return tree


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build ``cls`` from defaults, then a YAML file, then ``key=value`` overrides.

    Raises:
        ConfigError: naming the file and every invalid field.
    """
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(tree).__name__}")
        source = str(path)
    if overrides:
        tree = deep_merge(tree, parse_overrides(overrides))
    try:
        return cls.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from err


def dump_config(config: BaseModel) -> str:
    """YAML text of a config, every default written out."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


