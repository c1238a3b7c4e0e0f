"""The demo job end to end at toy scale: synthetic data -> every stage -> evaluation, then a re-run."""

from pathlib import Path

from drcollab.demo import DemoData, run_demo, summary_lines

CONFIG = Path(__file__).resolve().parents[1] / "configs/demo.yaml"
TOY = [
    "data.preprocess.size=64", "generator.widths=[4, 8, 8, 16, 16]", "discriminator.widths=[4, 8, 8, 16, 16]",
    "grader.att_channels=8", "seg_pretrain.epochs=1", "seg_pretrain.augment.crop=32", "grade_pretrain.epochs=1",
    "joint.epochs=1", "joint.max_steps_per_epoch=2", "runtime.cpu_processes=1", "runtime.progress=false",
    "data.workers=0",
]


def test_demo_runs_every_step_and_a_rerun_reuses_them(tmp_path):
    data = DemoData(n_train=20, n_test=4, pixel_fraction=0.5)
    metrics = run_demo(CONFIG, tmp_path, data, TOY)
    assert metrics["grading"]["n"] == 4 and set(metrics["segmentation"]) == {"MA", "HE", "EX", "SE"}
    for path in ("data/train/contact_sheet.png", "run/model/bundle.json", "eval/report.md", "eval/curves.png"):
        assert (tmp_path / path).is_file(), path
    text = "\n".join(summary_lines(metrics, tmp_path))
    assert "kappa" in text and "AUC-PR" in text and str(tmp_path / "eval/report.md") in text

    stamp = (tmp_path / "run/model/bundle.json").stat().st_mtime_ns
    again = run_demo(CONFIG, tmp_path, data, TOY)
    assert (tmp_path / "run/model/bundle.json").stat().st_mtime_ns == stamp  # trained once
    assert again["grading"] == metrics["grading"]
