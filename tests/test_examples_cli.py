"""The command lines of examples/: bad values end in argparse's usage error (exit status 2, the option named) rather
than a traceback from deep in the run, and the edge cases that used to crash (no fine-tuning steps, a test set missing
some digit classes, a .png --out, few fine-tuning iterations in the voxel tables) now work. Every example runs
in-process through its ``main(argv)``, on tiny settings."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_mnist import write_bar_mnist

import gpuph
from gpuph import demo_diagrams
from gpuph.apps import gan
from gpuph.apps.mnist import load_mnist

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
_MODULES: dict[str, object] = {}


def example(name: str):
    """examples/<name>.py as a module (loaded once)."""
    if name not in _MODULES:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ModuleNotFoundError as e:  # matplotlib or tqdm: optional for the library, needed by the examples
            pytest.skip(f"examples/{name}.py needs {e.name}")
        _MODULES[name] = module
    return _MODULES[name]


# ------------------------------------------------------------------------------------------------ bad arguments
BAD = {
    "gan_mnist": [
        (["--steps", "-5"], "--steps"),
        (["--steps", "0"], "--steps"),
        (["--finetune-steps", "-1"], "--finetune-steps"),
        (["--batch-size", "0"], "--batch-size"),
        (["--n-eval", "0"], "--n-eval"),
        (["--wasserstein-samples", "0"], "--wasserstein-samples"),
        (["--epochs", "-1"], "--epochs"),
        (["--lr", "0"], "--lr"),
        (["--nz", "0"], "--nz"),
        (["--topo-weight", "-1"], "--topo-weight"),
        (["--threshold", "0.5", "-0.1"], "--threshold"),
        (["--train-images", "8", "--batch-size", "16"], "--train-images"),
        (["--control"], "--control"),  # there is only --no-control
        (["--batch-size", "1"], "--batch-size"),  # the generator's batch norms need 2 samples
        (["--baseline", "/nonexistent/baseline.pt"], "--baseline"),
        (["--export", "/"], "--export"),  # a folder
        (["--export", "/dev/null/gan.pt"], "--export"),  # below a file
    ],
    "topmodel_attacks": [
        (["--n-attack", "0"], "--n-attack"),
        (["--n-test", "0"], "--n-test"),
        (["--n-train", "1"], "--n-train"),
        (["--epochs", "0"], "--epochs"),
        (["--top-epochs", "-1"], "--top-epochs"),
        (["--steps", "0"], "--steps"),
        (["--step", "0"], "--step"),
        (["--k", "0"], "--k"),
        (["--threads", "-1"], "--threads"),
        (["--threshold", "nan"], "--threshold"),  # every pixel off the digit: all-zero features, silently
    ],
    "gan_voxels": [
        (["--iters", "-3"], "--iters"),
        (["--ft-iters", "-1"], "--ft-iters"),
        (["--batch", "0"], "--batch"),
        (["--eval-n", "0"], "--eval-n"),
        (["--pairs", "0"], "--pairs"),
        (["--threads", "-1"], "--threads"),
        (["--n-train", "4", "--batch", "8"], "--n-train"),
        (["--lr-g", "nan"], "--lr-g"),
        (["--topo-weight", "-0.5"], "--topo-weight"),
        (["--baseline", "/nonexistent/baseline.pt"], "--baseline"),
        (["--level", "nan"], "--level"),
    ],
    "topo_regression": [
        (["--folds", "0"], "--folds"),
        (["--folds", "1"], "--folds"),
        (["--seeds", "0"], "--seeds"),
        (["--steps", "0"], "--steps"),
        (["--n-lambdas", "0"], "--n-lambdas"),
        (["--kinds", "foo"], "--kinds"),
        (["--kinds", "pm1,foo"], "--kinds"),
        (["--penalties", "l1,nope"], "--penalties"),
        (["--ns", "10,0"], "--ns"),
        (["--ns", "10,x"], "--ns"),
        (["--ns", "2", "--folds", "3"], "--ns"),
        (["--threads", "-1"], "--threads"),
    ],
    "point_cloud_shapes": [
        (["--points", "0"], "--points"),
        (["--steps", "-1"], "--steps"),
        (["--lr", "0"], "--lr"),
    ],
}
DEVICES = ("gan_mnist", "topmodel_attacks", "gan_voxels", "topo_regression")
CASES = [(name, argv, option) for name, cases in BAD.items() for argv, option in cases]
CASES += [(name, ["--device", "foo"], "--device") for name in DEVICES]
CASES += [(name, ["--device", "cuda:99"], "--device") for name in DEVICES]


def expect_usage_error(capsys, name: str, argv: list[str], option: str) -> str:
    with pytest.raises(SystemExit) as e:
        example(name).main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "usage:" in err and option in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name,argv,option", CASES, ids=[f"{n}:{' '.join(a)}" for n, a, _ in CASES])
def test_bad_arguments_are_usage_errors(capsys, tmp_path, name, argv, option):
    expect_usage_error(capsys, name, ["--out", str(tmp_path / "out"), *argv], option)
    assert not (tmp_path / "out").exists()  # rejected before anything is written


def _main_of(name: str):
    if name in BAD:
        return example(name).main
    import gpuph.bench.breakdown
    import gpuph.bench.cli
    import gpuph.demo

    return {"gpuph": gpuph.demo.main, "demo_diagrams": demo_diagrams.main, "bench": gpuph.bench.cli.main,
            "breakdown": gpuph.bench.breakdown.main}[name]


@pytest.mark.parametrize("name", [*BAD, "gpuph", "demo_diagrams", "bench", "breakdown"])
def test_an_output_folder_that_is_a_file_is_a_usage_error(capsys, tmp_path, name):
    # Every command line that writes into --out: a file there (or above it) is named in a usage error, not a
    # FileExistsError from mkdir after the run.
    file = tmp_path / "taken"
    file.write_text("")
    for out, words in ((file, "is a file"), (file / "sub", "is below the file")):
        with pytest.raises(SystemExit) as e:
            _main_of(name)(["--out", str(out)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "--out" in err and words in err and "Traceback" not in err, err
    assert file.read_text() == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
@pytest.mark.parametrize("name", DEVICES)
def test_cuda_without_cuda_is_a_usage_error(capsys, name):
    err = expect_usage_error(capsys, name, ["--device", "cuda"], "--device")
    assert "CUDA" in err


def test_gan_mnist_help_names_only_existing_flags(capsys):
    with pytest.raises(SystemExit) as e:
        example("gan_mnist").main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--no-control" in out
    assert "--control" not in out.replace("--no-control", "")


def test_gan_mnist_batch_of_one_a_process_is_a_usage_error(capsys, monkeypatch, tmp_path):
    # Under torchrun with 2 processes, --batch-size 2 leaves each rank one sample: BatchNorm1d raised in training.
    monkeypatch.setenv("WORLD_SIZE", "2")
    expect_usage_error(capsys, "gan_mnist", ["--out", str(tmp_path / "out"), "--batch-size", "2"], "--batch-size")
    assert example("gan_mnist").parse_args(["--out", str(tmp_path / "out"), "--batch-size", "4"]).batch_size == 4


def test_gan_mnist_reads_its_classifier_before_training(fake_mnist, tmp_path, monkeypatch, capsys):
    """A missing --classifier is a usage error, and a file that is not a classifier fails before any training
    (it used to be read for the report, after the whole run)."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "out"
    argv = ["--mnist-dir", str(fake_mnist), "--pretrained", "--finetune-steps", "1", "--batch-size", "16",
            "--n-eval", "16", "--wasserstein-samples", "4", "--out", str(out), "--no-progress", "--device", "cpu"]
    expect_usage_error(capsys, "gan_mnist", [*argv, "--classifier", str(tmp_path / "missing.pt")], "--classifier")
    not_a_classifier = tmp_path / "g.pt"
    gan.save_checkpoint(not_a_classifier, *gan.build_models(gan.GANConfig(8, 4, 4)))
    with pytest.raises(ValueError, match="not a gpuph MNIST classifier"):
        example("gan_mnist").main([*argv, "--classifier", str(not_a_classifier)])
    assert not (out / "topology.pt").exists()


def test_gan_mnist_report_does_not_change_the_training(fake_mnist, tmp_path, monkeypatch):
    """The classifier is read before the training now; building it must not draw from the seeded random state."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("ot")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    tiny = ["--mnist-dir", str(fake_mnist), "--steps", "2", "--nz", "8", "--ngf", "4", "--ndf", "4", "--batch-size",
            "8", "--finetune-steps", "1", "--no-control", "--n-eval", "16", "--wasserstein-samples", "4",
            "--no-progress", "--device", "cpu"]
    example("gan_mnist").main([*tiny, "--out", str(tmp_path / "report")])
    example("gan_mnist").main([*tiny, "--out", str(tmp_path / "plain"), "--no-report"])
    for name in ("baseline.pt", "topology.pt"):
        a, b = (gan.load_checkpoint(tmp_path / run / name)[0].state_dict() for run in ("report", "plain"))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_gan_voxels_checkpoint_folder_that_is_a_file_is_a_usage_error(capsys, tmp_path):
    # It used to be found out when the baseline checkpoint was saved, after the training.
    file = tmp_path / "taken"
    file.write_text("")
    tiny = ["--n-train", "4", "--batch", "2", "--iters", "1", "--ft-iters", "1", "--eval-n", "2", "--pairs", "1",
            "--ch", "2", "--nz", "4", "--no-progress", "--out", str(tmp_path / "out")]
    err = expect_usage_error(capsys, "gan_voxels", [*tiny, "--ckpt-dir", str(file)], "--ckpt-dir")
    assert "is a file" in err and file.read_text() == ""


def test_mnist_folder_with_one_split_is_refused_up_front(tmp_path, capsys, monkeypatch):
    """A folder holding the test split only passed the examples' "MNIST found" check, then load_mnist raised
    FileNotFoundError for the training files: now the missing file is named, without a traceback."""
    from fake_mnist import sample_digits, write_idx

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    write_idx(mnist, "t10k", sample_digits(16), np.arange(16) % 10)
    err = expect_usage_error(capsys, "topmodel_attacks", ["--out", str(tmp_path / "a"), "--mnist", str(mnist)],
                             "--mnist")
    assert "train-images-idx3-ubyte" in err
    assert example("gan_mnist").main(["--out", str(tmp_path / "b"), "--mnist-dir", str(mnist), "--pretrained",
                                      "--no-progress", "--device", "cpu"]) == 2
    assert "train-images-idx3-ubyte" in capsys.readouterr().out
    from gpuph.apps import classifier

    with pytest.raises(SystemExit) as exit_:
        classifier.main(["--mnist-dir", str(mnist), "--epochs", "1"])
    assert exit_.value.code == 2 and "train-images-idx3-ubyte" in capsys.readouterr().err


def test_topo_regression_problem_of_size_n_does_not_depend_on_the_other_sizes(tmp_path):
    """Seed 0's problem of size 10 was drawn with n_max = max(--ns): --ns 10 and --ns 10,30 fitted different data
    (so one column of the published tables could not be rerun alone)."""
    pytest.importorskip("matplotlib")
    tiny = ["--seeds", "1", "--folds", "2", "--steps", "1", "--n-lambdas", "1", "--kinds", "pm1", "--penalties",
            "none", "--threads", "1"]
    mse = []
    for i, ns in enumerate(("10", "10,30")):
        example("topo_regression").main(["--out", str(tmp_path / str(i)), "--ns", ns, *tiny])
        mse.append(json.loads((tmp_path / str(i) / "results.json").read_text())["results"]["pm1"]["none"]["mse_mean"])
    assert mse[0][0] == mse[1][0]


# ------------------------------------------------------------------------------------------------ edge cases
@pytest.mark.parametrize("start", [["--pretrained"], ["--steps", "1", "--nz", "8", "--ngf", "4", "--ndf", "4"]])
def test_gan_mnist_without_finetuning_reports_the_baseline(fake_mnist, tmp_path, monkeypatch, capsys, start):
    pytest.importorskip("ot")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "out"
    argv = ["--mnist-dir", str(fake_mnist), *start, "--finetune-steps", "0", "--batch-size", "16", "--n-eval", "16",
            "--wasserstein-samples", "8", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert example("gan_mnist").main(argv) == 0
    assert "no fine-tuning" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert list(metrics) == ["baseline", "real digits (held out)"]
    assert not (out / "topology.pt").exists() and not (out / "control.pt").exists()
    assert json.loads((out / "summary.json").read_text())["args"]["finetune_steps"] == 0


def test_gan_mnist_finetuning_still_runs(fake_mnist, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "out"
    argv = ["--mnist-dir", str(fake_mnist), "--pretrained", "--finetune-steps", "1", "--batch-size", "16",
            "--no-report", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert example("gan_mnist").main(argv) == 0
    for name in ("topology", "control"):
        assert len(json.loads((out / f"history_{name}.json").read_text())) == 1


def test_topmodel_attacks_with_a_test_set_missing_classes(tmp_path):
    """--n-test 7 keeps the digits 0..6 only: the grids have one row per class present, and the example digit (a 7
    when there is one) falls back to the first test image."""
    write_bar_mnist(tmp_path, 40, 20)
    out = tmp_path / "out"
    example("topmodel_attacks").main(["--out", str(out), "--mnist", str(tmp_path), "--n-test", "7", "--epochs", "1",
                                      "--top-epochs", "1", "--n-attack", "50", "--steps", "1", "--k", "1"])
    result = json.loads((out / "metrics.json").read_text())
    assert result["meta"]["grid_classes"] == list(range(7)) and result["meta"]["n_test"] == 7
    for m in result["models"].values():
        assert m["attacked"] == 7 and 0 <= m["grid_success"] <= 1
    assert "7x10 grid success" in (out / "metrics.md").read_text()
    for name in ("grid_topmodel.png", "grid_mlp.png", "grid_cnn.png", "example.png"):
        assert (out / name).stat().st_size > 0


def test_topmodel_attack_grid_rows_follow_the_classes():
    mod = example("topmodel_attacks")
    y = torch.tensor([3, 1, 3, 8, 1])
    assert mod.grid_classes(y) == [1, 3, 8]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    cells, ok = mod.attack_grid(model, torch.rand(5, 28, 28), y, 0.01, 1, [1, 3, 8])
    assert cells.shape == (3, 10, 28, 28) and ok.shape == (3, 10)


def test_gan_voxels_labels_follow_the_finetuning_iterations(tmp_path):
    mod = example("gan_voxels")
    args = mod.parse_args(["--out", str(tmp_path), "--ft-iters", "2", "--eval-n", "3"])
    assert mod.labels(2)["topo"] == "+2 it. GAN + topology loss"
    rows = {r: {"pd0": [1, 2, 1], "label": [1, 0, 3], "topo_mean": 0.5, "occupancy_mean": 0.1,
                "label_frac_empty": 1 / 3} for r in mod.ROWS}
    mod.write_tables(rows, {"ft_iters": 2}, args)
    md = (tmp_path / "metrics.md").read_text()
    assert "+2 it. GAN loss only" in md and "+2 it. GAN + topology loss" in md and "+20 it." not in md
    # one rendered pair: the projections' axes stay two-dimensional
    v = torch.zeros(1, 1, 32, 32, 32)
    v[0, 0, 10:20, 10:20, 10:20] = 1
    mod.plot_projections(v, v, [0], args)
    assert (tmp_path / "projections.png").stat().st_size > 0


def test_topo_regression_accepts_valid_lists(tmp_path):
    args = example("topo_regression").parse_args(["--kinds", "pm1,sawtooth", "--penalties", "none,top1",
                                                 "--ns", "2,5", "--folds", "2", "--out", str(tmp_path)])
    assert (args.kinds, args.penalties, args.ns, args.folds) == ("pm1,sawtooth", "none,top1", "2,5", 2)


@pytest.mark.parametrize("out,written", [("fig.png", "fig.png"), ("sub/Fig.PNG", "sub/Fig.PNG"),
                                         ("folder", "folder/point_cloud_shapes.png")])
def test_point_cloud_shapes_out_is_a_png_or_a_folder(tmp_path, monkeypatch, out, written):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert example("point_cloud_shapes").main(["--out", out, "--points", "12", "--steps", "1"]) == 0
    assert (tmp_path / written).is_file()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [written]



def test_gan_voxels_resumes_from_its_own_baseline_checkpoint(tmp_path):
    """The baseline checkpoint (with its arguments and optimizer states) loads back through the safe loader."""
    pytest.importorskip("matplotlib")
    mod = example("gan_voxels")
    tiny = ["--n-train", "4", "--batch", "2", "--iters", "1", "--ft-iters", "1", "--eval-n", "2", "--pairs", "1",
            "--ch", "2", "--nz", "4", "--no-progress"]
    assert mod.main(["--out", str(tmp_path / "a"), *tiny]) in (0, None)
    baseline = tmp_path / "a" / "checkpoints" / "baseline.pt"
    assert mod.main(["--out", str(tmp_path / "b"), "--baseline", str(baseline), *tiny]) in (0, None)
    first, second = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab")
    assert first["summary"]["baseline"] == second["summary"]["baseline"]  # the same generator, the same samples
    assert first["histograms"]["baseline"] == second["histograms"]["baseline"]


@pytest.mark.parametrize("source", ["embedded", "mnist-dir"])
def test_diagrams_demo_reports_the_digits_classes(source, fake_mnist, tmp_path, capsys):
    """python -m gpuph --diagrams: the embedded digits or the raw idx files, the classes it prints are gpuph's."""
    argv = ["--out", str(tmp_path), "--digits", "3", "--volume-size", "6"]
    if source == "mnist-dir":
        argv += ["--mnist-dir", str(fake_mnist)]
        images = load_mnist(fake_mnist, "test", limit=3)[0]
    else:
        images = demo_diagrams.load_embedded(3)[0]
    assert demo_diagrams.main(argv) == 0
    printed = re.findall(r"digit (\d): label \d, classes H0=(\d+) H1=(\d+)", capsys.readouterr().out)
    dgm = gpuph.cubical_persistence(torch.from_numpy(images.astype(np.float32) / 255), superlevel=True)
    expected = [(b, *c) for b, c in enumerate(dgm.counts().tolist())]
    assert [(int(b), int(h0), int(h1)) for b, h0, h1 in printed] == expected
    pytest.importorskip("matplotlib")
    assert (tmp_path / "demo_diagrams.png").stat().st_size > 0


def test_diagrams_demo_names_a_folder_without_mnist(tmp_path):
    with pytest.raises(SystemExit, match="no MNIST idx files"):
        demo_diagrams.main(["--out", str(tmp_path), "--mnist-dir", str(tmp_path), "--volume-size", "6"])


@pytest.mark.parametrize("script", ["demo", "gan_mnist", "gan_voxels", "topmodel_attacks", "topo_regression",
                                    "point_cloud_shapes"])
def test_examples_import_the_gpuph_of_their_own_checkout(tmp_path, script):
    """Run from another checkout (a second clone, a worktree), an example uses that checkout's gpuph, not the one
    installed: a stand-in package next to the copied script marks which one it imported."""
    import subprocess
    import sys

    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / f"{script}.py").write_text((EXAMPLES / f"{script}.py").read_text())
    (tmp_path / "gpuph").mkdir()
    (tmp_path / "gpuph" / "__init__.py").write_text("raise SystemExit(42)\n")
    run = subprocess.run([sys.executable, str(tmp_path / "examples" / f"{script}.py"), "--help"], cwd=tmp_path.parent,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 42, run.stderr[-2000:]
