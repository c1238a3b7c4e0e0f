"""``drcollab predict`` never answers wrongly in silence: damaged models, degenerate images, its own outputs,
bad bundles, full disks and Ctrl-C each give a failure with its reason or one line and exit code 2."""

from __future__ import annotations

import csv
import errno
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from predict_inputs import GOOD_SIZES, make_mixed_folder, predict_cli, wide_fundus
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.constants import LESIONS
from drcollab.errors import DataError
from drcollab.inference import batch, outputs
from drcollab.inference.bundle import load_bundle
from drcollab.inference.predictor import Predictor
from drcollab.models.checkpoint import HASH_KEY, file_sha256
from helpers import jpeg_declaring, overwrite_tensor_bytes, png_declaring, record_sha256, write_tiny_bundle


def strict_json(path: Path) -> dict:
    """Parse as strict JSON: a bare NaN or Infinity raises."""
    def refuse(name: str) -> None:
        raise ValueError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def flip_every_997th_byte(path: Path) -> None:
    """Damage a safetensors file as a bad copy would: every 997th byte after the header inverted."""
    data = bytearray(path.read_bytes())
    header = struct.unpack("<Q", data[:8])[0]
    for i in range(8 + header, len(data), 997):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    return make_mixed_folder(tmp_path / "in")


def test_corrupted_grader_weights_fail_every_image_with_a_reason_and_never_grade(
    tiny_bundle: Path, mixed: Path, tmp_path: Path
) -> None:
    flip_every_997th_byte(tiny_bundle / "grader.safetensors")  # finite but absurd weights: NaN probabilities
    _trust_weights(tiny_bundle, "grader")  # as if trained so: the hashes match
    out = tmp_path / "out"
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out)
    assert result.exit_code == 1 and "no image was predicted" in result.output
    summary = strict_json(out / "predictions.json")
    assert summary["predictions"] == [] and not list(out.rglob("result.json"))
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert all("not finite" in reasons[Path(i).name] for i in GOOD_SIZES)
    assert (out / "predictions.csv").read_text().count("\n") == 1  # the header: no "0,no DR,nan" row


def test_non_finite_weights_are_refused_when_the_bundle_loads(tiny_bundle: Path, mixed: Path, tmp_path: Path) -> None:
    weights = load_file(tiny_bundle / "generator.safetensors")
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key].view(-1)[0] = float("nan")
    save_file(weights, tiny_bundle / "generator.safetensors")
    _trust_weights(tiny_bundle, "generator")
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", tmp_path / "out")
    line = one_error_line(result.output)
    assert result.exit_code == 2 and "generator.safetensors" in line and "not finite" in line and key in line
    assert not (tmp_path / "out").exists()


def _trust_weights(bundle: Path, kind: str) -> None:
    """Record the current hash of a part's weights in its checkpoint JSON and in bundle.json."""
    record_sha256(bundle / kind)
    info = json.loads((bundle / "bundle.json").read_text())
    info["parts"][kind]["sha256"] = file_sha256(bundle / f"{kind}.safetensors")
    (bundle / "bundle.json").write_text(json.dumps(info))


@pytest.mark.parametrize("recorded_in", ["bundle.json", "grader.json"])
def test_weights_damaged_with_finite_values_are_refused_naming_the_file(
    tiny_bundle: Path, mixed: Path, tmp_path: Path, recorded_in: str
) -> None:
    if recorded_in == "grader.json":  # a bundle written before bundle.json recorded hashes
        info = json.loads((tiny_bundle / "bundle.json").read_text())
        (tiny_bundle / "bundle.json").write_text(json.dumps({**info, "parts": {
            kind: {"file": kind} for kind in info["parts"]}}))
    overwrite_tensor_bytes(tiny_bundle / "grader.safetensors")
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", tmp_path / "out")
    line = one_error_line(result.output)
    assert result.exit_code == 2, result.output
    assert line == (f"error: {tiny_bundle / 'grader.safetensors'}: sha256 differs from {recorded_in}: the file is "
                    "damaged or was replaced; restore it from a good copy, or "
                    f"{'re-export the bundle' if recorded_in == 'bundle.json' else 'train again'}")
    assert not (tmp_path / "out").exists()


def test_a_bundle_saved_before_hashes_were_recorded_loads_unchecked(tiny_bundle: Path) -> None:
    info = json.loads((tiny_bundle / "bundle.json").read_text())
    (tiny_bundle / "bundle.json").write_text(json.dumps({**info, "parts": {kind: {"file": kind}
                                                                           for kind in info["parts"]}}))
    for kind in info["parts"]:
        meta = json.loads((tiny_bundle / f"{kind}.json").read_text())
        del meta[HASH_KEY]
        (tiny_bundle / f"{kind}.json").write_text(json.dumps(meta))
    bundle = load_bundle(tiny_bundle)
    assert bundle.generator is not None and bundle.grader is not None


DEGENERATE = {
    "dot.png": lambda: Image.new("RGB", (1, 1), (200, 80, 40)),
    "strip.png": lambda: Image.new("RGB", (8000, 100), (200, 80, 40)),
    "thread.png": lambda: Image.new("RGB", (65000, 2), (200, 80, 40)),
}


def test_degenerate_images_are_refused_from_the_header_before_decoding_or_fov_detection(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    for name, make in DEGENERATE.items():
        make().save(folder / name)
    (folder / "one_row.png").write_bytes(png_declaring(7000, 7000, rows=1))  # decodes: 6999 rows of zeros
    Image.fromarray(wide_fundus(0, 96, 128)).save(folder / "good.png")
    decoded, preprocessed = [], []
    real_load, real_preprocess = ImageFile.ImageFile.load, Predictor.preprocess

    def load(self: ImageFile.ImageFile):  # noqa: ANN202
        decoded.append(self.size)
        return real_load(self)

    def preprocess(self: Predictor, image: np.ndarray):  # noqa: ANN202
        preprocessed.append(image.shape[:2])
        return real_preprocess(self, image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    monkeypatch.setattr(Predictor, "preprocess", preprocess)
    out = tmp_path / "out"
    result = predict_cli(folder, "--checkpoint", tiny_bundle, "--out", out)
    assert result.exit_code == 0, result.output
    assert set(decoded) == {(128, 96)} and preprocessed == [(96, 128)]  # only the good image was decoded
    summary = strict_json(out / "predictions.json")
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert set(reasons) == {"one_row.png"} and "cannot hold them" in reasons["one_row.png"]  # a damaged file
    records = {r["id"]: r for r in summary["predictions"]}  # too small or a strip: ungradable, with the reason
    ungradable = {i.split("/")[-1]: "; ".join(r["ungradable_reasons"]) for i, r in records.items() if not r["gradable"]}
    assert set(ungradable) == {"dot.png", "strip.png", "thread.png"}
    assert ungradable["dot.png"].startswith("too small: image is 1x1 px, smaller than the 64 px minimum side")
    assert ungradable["strip.png"].startswith("implausible shape: image is 8000x100 px, an aspect ratio of 80:1")
    assert ungradable["thread.png"].startswith("too small: image is 65000x2 px, smaller than")
    assert all(r["grade"] is None and r["referable"] is None and r["outputs"] == {}
               for i, r in records.items() if not r["gradable"])
    assert (records["odd/thread.png"]["width"], records["odd/thread.png"]["height"]) == (65000, 2)
    assert records["odd/good.png"]["gradable"] and records["odd/good.png"]["grade"] is not None
    maps = sorted(p.name for p in out.rglob("*.png") if p.is_file())
    assert maps == sorted([f"lesion_{k}.png" for k in LESIONS] + ["overlay.png"])  # the good image's only


def test_a_decompression_bomb_or_a_multi_page_tiff_fails_alone_and_the_others_are_graded(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    Image.fromarray(wide_fundus(0, 96, 128)).save(folder / "good.png")
    (folder / "bomb.png").write_bytes(png_declaring(65000, 65000, rows=1))  # 269 bytes
    (folder / "bomb.jpg").write_bytes(jpeg_declaring(65000, 65000))
    page = Image.fromarray(wide_fundus(1, 96, 128))
    page.save(folder / "pages.tif", save_all=True, append_images=[page])
    out = tmp_path / "out"
    result = predict_cli(folder, "--checkpoint", tiny_bundle, "--out", out)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "predicted 1 images" in result.output and "3 failed" in result.output
    summary = strict_json(out / "predictions.json")
    assert [(r["id"], r["gradable"]) for r in summary["predictions"]] == [("odd/good.png", True)]
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert set(reasons) == {"bomb.png", "bomb.jpg", "pages.tif"}
    for bomb in ("bomb.png", "bomb.jpg"):
        assert "declares 65000x65000 px" in reasons[bomb] and "decompression bomb" in reasons[bomb]
        assert f"failed: {folder / bomb}: refused: its header declares 65000x65000 px" in result.output
    assert reasons["pages.tif"].startswith("refused: multi-page TIFF (2 pages)")
    assert sorted(p.parent.name for p in out.rglob("result.json")) == ["good.png"]


def test_min_side_is_a_command_line_value(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    Image.fromarray(wide_fundus(0, 96, 128)).save(folder / "eye.png")
    result = predict_cli(folder, "--checkpoint", tiny_bundle, "--out", tmp_path / "out", "--min-side", "100")
    assert result.exit_code == 0 and "1 ungradable" in result.output
    assert "ungradable: " in result.output and "smaller than the 100 px minimum side (--min-side)" in result.output
    rerun = predict_cli(folder, "--checkpoint", tiny_bundle, "--out", tmp_path / "out")  # a new floor: redone
    assert rerun.exit_code == 0 and "1 now" in rerun.output and "0 ungradable" in rerun.output


def test_an_output_folder_inside_the_input_is_never_read_back(tiny_bundle: Path, mixed: Path) -> None:
    out = mixed / "predictions"
    for _ in range(2):
        result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out)
        assert result.exit_code == 0, result.output
        summary = strict_json(out / "predictions.json")
        assert sorted(r["id"] for r in summary["predictions"]) == sorted(GOOD_SIZES)
        listed = [e["path"] for e in summary["failures"] + summary["skipped"]]
        assert not [p for p in listed if Path(p).is_relative_to(out)]
    assert "0 now, 3 from an earlier run" in result.output
    inside = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", mixed)  # outputs mixed into the input
    assert inside.exit_code == 2 and "choose an --out outside the inputs" in one_error_line(inside.output)


def test_a_dangling_symlink_is_listed_as_a_failure(tiny_bundle: Path, mixed: Path, tmp_path: Path) -> None:
    (mixed / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    out = tmp_path / "out"
    assert predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out).exit_code == 0
    reasons = {Path(f["path"]).name: f["reason"] for f in strict_json(out / "predictions.json")["failures"]}
    assert reasons["gone.jpg"].startswith("broken symbolic link") and "deleted.jpg" in reasons["gone.jpg"]


def test_ctrl_c_says_how_to_continue(tiny_bundle: Path, mixed: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "predict_images", interrupted)
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", tmp_path / "out")
    assert result.exit_code == 130 and "run the same command again" in result.output


def interrupt_after_first_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the second image is being graded (the first image's outputs may still be being written)."""
    real_batch, calls = batch._predict_batch, []

    def predict_batch(engine: object, loaded: list, *args: object) -> None:
        if any(isinstance(res, batch.Ready) for _, res in loaded):
            calls.append(loaded)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real_batch(engine, loaded, *args)

    monkeypatch.setattr(batch, "_predict_batch", predict_batch)


def test_ctrl_c_starts_its_message_on_a_new_line_after_the_progress_bar(
    tiny_bundle: Path, mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupt_after_first_image(monkeypatch)
    result = CliRunner().invoke(app, ["predict", str(mixed), "--checkpoint", str(tiny_bundle), "--out",
                                      str(tmp_path / "out"), "--batch-size", "1"])
    assert result.exit_code == 130 and "predict:" in result.output  # the bar was drawn
    message = [line for line in result.output.splitlines() if "interrupted" in line]
    assert len(message) == 1 and message[0].startswith("interrupted after 1 of 3 images;"), result.output


def test_ctrl_c_lists_the_images_done_and_a_rerun_predicts_the_rest(
    tiny_bundle: Path, mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    interrupt_after_first_image(monkeypatch)
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out, "--batch-size", "1")
    assert result.exit_code == 130 and "run the same command again" in result.output
    summary = strict_json(out / "predictions.json")
    done = [r["id"] for r in summary["predictions"]]
    assert done == ["scans/left/small.png"] and summary["unfinished"] == 2
    assert [r["id"] for r in csv.DictReader((out / "predictions.csv").open())] == done
    assert not list(out.rglob("*.tmp")) and not (out / ".parts").exists()
    monkeypatch.undo()
    rerun = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out)
    assert rerun.exit_code == 0 and "2 now, 1 from an earlier run" in rerun.output
    summary = strict_json(out / "predictions.json")
    assert sorted(r["id"] for r in summary["predictions"]) == sorted(GOOD_SIZES) and summary["unfinished"] == 0


@pytest.mark.parametrize(
    ("code", "advice"), [(errno.ENOSPC, "free some disk space"), (errno.EROFS, "choose a folder you can write to")]
)
def test_a_full_disk_or_read_only_output_is_one_line_naming_the_folder(
    tiny_bundle: Path, mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, advice: str
) -> None:
    def failing_save(array: np.ndarray, path: Path, **kwargs: int) -> Path:
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(outputs, "save_png", failing_save)
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", tmp_path / "out")
    line = one_error_line(result.output)
    assert result.exit_code == 2 and str(tmp_path / "out" / "images") in line and advice in line


def _edit_bundle(bundle: Path, **changes: object) -> None:
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, **changes}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"parts": {"generator": "generator"}}, "parts.generator: Input should be a valid dictionary"),
        ({"parts": ["generator"]}, "parts: Input should be a valid dictionary"),
        ({"tile": -5}, "tile: Input should be greater than or equal to 0"),
        ({"tile": 40}, "tile 40 must be a multiple of 16"),
        ({"tile": 32, "tile_overlap": 32}, "tile_overlap 32 must be smaller than tile 32"),
        ({"preprocess": "512"}, "preprocess: Input should be a valid dictionary"),
        ({"parts": {"generator": {"file": "../outside/generator"}}}, "inside the bundle folder"),
        ({"parts": {"generator": {"file": "/tmp/generator"}}}, "inside the bundle folder"),
        ({"parts": {"generator": {"file": "generator", "sha256": "abc"}}},
         "parts.generator.sha256: must be a sha256 in hex"),
    ],
)
def test_a_malformed_bundle_is_one_line_naming_the_field(
    tiny_bundle: Path, mixed: Path, tmp_path: Path, changes: dict, message: str
) -> None:
    _edit_bundle(tiny_bundle, **changes)
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", tmp_path / "out")
    line = one_error_line(result.output)
    assert result.exit_code == 2 and "bundle.json" in line and message in line, line


def test_bundle_part_paths_are_not_followed_outside_the_bundle(tiny_bundle: Path, mixed: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for suffix in (".safetensors", ".json"):  # a working generator, but outside the bundle folder
        (outside / f"generator{suffix}").write_bytes((tiny_bundle / f"generator{suffix}").read_bytes())
    _edit_bundle(tiny_bundle, parts={"generator": {"file": "../outside/generator"}, "grader": {"file": "grader"}})
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "inside the bundle folder" in one_error_line(result.output)


def test_a_grader_on_gs_statistics_refuses_a_bundle_without_g(tmp_path: Path) -> None:
    root = write_tiny_bundle(tmp_path / "model", grader_mode="ori", lesion_stats=True)
    _edit_bundle(root, parts={"grader": {"file": "grader"}})
    with pytest.raises(DataError, match="grader lesion_stats needs the generator, which is missing"):
        load_bundle(root)
