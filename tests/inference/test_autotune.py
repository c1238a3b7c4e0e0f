"""The setting a bundle runs in: the fastest whose answers match plain fp32, measured once and remembered."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drcollab.data.synthetic import generate_fundus
from drcollab.inference import autotune
from drcollab.inference.autotune import REFERENCE, Setting, choose_setting, make_predictor
from drcollab.inference.bundle import bundle_fingerprint, load_bundle


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("DRCOLLAB_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_measure(seconds: list[float], break_index: int | None = None):
    """A stand-in for :func:`autotune.measure`: real predictions, chosen times, one setting's answer changed."""
    calls = []

    def measure(bundle, device, settings):
        calls.append(settings)
        _, preds = real_measure(bundle, device, settings)
        if break_index is not None:
            p = preds[break_index]
            preds[break_index] = replace(p, grade=(p.grade + 1) % 5)
        return seconds[: len(settings)], preds

    return measure, calls


real_measure = autotune.measure


def test_the_chosen_setting_answers_as_fp32_does(tiny_bundle: Path, cache: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    choice = choose_setting(bundle, bundle_fingerprint(bundle), autotune.torch.device("cpu"))
    image = generate_fundus(seed=4, size=96, index=1).image
    fast = make_predictor(bundle, "cpu", choice.setting)
    pre = fast.preprocess(image)
    a = fast.predict_preprocessed([pre])[0]
    b = make_predictor(bundle, "cpu", REFERENCE).predict_preprocessed([pre])[0]
    assert (a.grade, a.dme, a.referable) == (b.grade, b.dme, b.referable)
    assert np.abs(a.lesion_probs - b.lesion_probs).max() <= autotune.MAP_TOLERANCE
    assert np.abs(np.subtract(a.probabilities, b.probabilities)).max() <= autotune.PROB_TOLERANCE


def test_a_faster_setting_whose_answers_differ_is_not_chosen(
    tiny_bundle: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = load_bundle(tiny_bundle)
    settings = autotune.candidates(bundle, autotune.torch.device("cpu"))
    assert settings[0] == REFERENCE and len(settings) >= 2
    seconds = [3.0] + [1.0 + k for k in range(len(settings) - 1)]  # settings[1] fastest
    measure, _ = fake_measure(seconds, break_index=1)
    monkeypatch.setattr(autotune, "measure", measure)
    choice = choose_setting(bundle, "fp-differ", autotune.torch.device("cpu"))
    assert choice.setting != settings[1]  # the fastest gives another grade
    assert "1 did not" in choice.reason


def test_the_choice_is_remembered_per_bundle_and_machine(
    tiny_bundle: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = load_bundle(tiny_bundle)
    settings = autotune.candidates(bundle, autotune.torch.device("cpu"))
    measure, calls = fake_measure([2.0] + [1.0] * (len(settings) - 1))
    monkeypatch.setattr(autotune, "measure", measure)
    first = choose_setting(bundle, "fp-a", autotune.torch.device("cpu"))
    again = choose_setting(bundle, "fp-a", autotune.torch.device("cpu"))
    assert first == again and len(calls) == 1  # measured once
    stored = json.loads(next((cache / "choices").glob("fp-a-*.json")).read_text())
    assert [Setting(**entry["setting"]) for entry in stored.values()] == [first.setting]
    choose_setting(bundle, "fp-b", autotune.torch.device("cpu"))  # another bundle: measured anew
    assert len(calls) == 2


def test_bf16_is_a_candidate_only_where_the_bundle_was_checked_in_it_and_it_is_native(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = load_bundle(tiny_bundle)
    cpu = autotune.torch.device("cpu")

    def precisions() -> set[str]:
        return {s.precision for s in autotune.candidates(bundle, cpu)}

    monkeypatch.setattr(autotune, "resolve_precision", lambda mode, device: replace_dtype(autotune.torch.bfloat16))
    assert precisions() == {"fp32"}  # not checked on real photos in bf16
    bundle.info["bf16"] = True
    assert precisions() == {"fp32", "bf16"}
    monkeypatch.setattr(autotune, "resolve_precision", lambda mode, device: replace_dtype(None))
    assert precisions() == {"fp32"}  # emulated bf16: never a candidate


def replace_dtype(dtype):
    from drcollab.precision import Precision

    return Precision("cpu", dtype, "test")
