"""The benchmark suite (gpuph.bench): an end-to-end --quick run on tiny cases, the result files' pinned fields, the
correctness check (it must catch a wrong diagram), the time cap, and the small helpers."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import gpuph
from gpuph.bench import Budget, Config, parse_case, run_suite
from gpuph.bench.agreement import canonical, compare, from_negated_sublevel, gpuph_canonical
from gpuph.bench.cases import make_field, run_order
from gpuph.bench.cli import main
from gpuph.bench.goals import check_goals
from gpuph.bench.libraries import BACKWARD, FORWARD, Runner
from gpuph.bench.suite import add_ratios
from gpuph.bench.timing import Deadline

ROW_FIELDS = {
    "library": str, "device": str, "case": str, "field": str, "mode": str, "median_ms": (float, type(None)),
    "min_ms": (float, type(None)), "max_ms": (float, type(None)), "repeats": int, "pairs": (int, type(None)),
    "agrees_with_gpuph": (bool, type(None)), "ratio_vs_gpuph": (float, type(None)), "note": str,
}
TINY = ["6x9x9", "2x6^3"]


def tiny_config(tmp_path, **kw) -> Config:
    base = dict(
        cases=[parse_case(c) for c in TINY],
        budget=Budget(max_repeats=2, min_repeats=1, budget_s=0.02, cap_s=5.0),
        out_dir=tmp_path,
        progress=False,
        plots=False,
        cuda=False,
    )
    base.update(kw)
    return Config(**base)


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch-topological's numpy 2 warnings, where installed
def test_quick_cli_end_to_end(tmp_path, capsys):
    status = main(["--quick", "--cases", *TINY, "--budget", "0.01", "--repeats", "2", "--out", str(tmp_path),
                   "--no-progress", "--no-cuda"])
    assert status == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "results.json").read_text())  # valid JSON (no NaN/inf literals)
    meta, rows = doc["meta"], doc["rows"]
    for key in ("versions", "date", "machine", "cuda", "gpu"):
        assert key in meta
    for lib in ("python", "torch", "gpuph", "numpy", "gudhi", "cripser"):
        assert lib in meta["versions"]
    assert meta["machine"]["cpu_count"] >= 1
    assert meta["cases"] == ["6x9x9", "2x6x6x6"]
    assert rows
    for r in rows:
        for key, typ in ROW_FIELDS.items():
            assert isinstance(r[key], typ), (key, r)
        assert r["device"] == "cpu"
        assert r["mode"] in ("forward", "forward+backward")
        if r["median_ms"] is not None:
            assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"]
            assert r["repeats"] >= 1
            assert r["agrees_with_gpuph"] is not False, r  # every importable library is right on these inputs
    # every case, field and both modes of gpuph; the reference libraries that CI installs ran and agreed
    got = {(r["library"], r["case"], r["field"], r["mode"], r["construction"]) for r in rows}
    for case in ("6x9x9", "2x6x6x6"):
        for field in ("noise", "smooth"):
            for mode in ("forward", "forward+backward"):
                assert ("gpuph-cpu", case, field, mode, "V") in got
            assert ("gudhi", case, field, "forward", "V") in got
            assert ("cripser", case, field, "forward", "V") in got
        assert ("gudhi-fast2d", "6x9x9", field, "forward", "V") in got
    assert not any(r["library"] == "gudhi-fast2d" and r["ndim"] == 3 for r in rows)
    agreed = [r for r in rows if r["agrees_with_gpuph"] is True]
    assert {r["library"] for r in agreed} >= {"gudhi", "gudhi-fast2d", "cripser", "cripser-torch", "gpuph-cpu"}
    # ratios: gpuph's median over the library's, same case/field/mode/construction
    med = {(r["library"], r["case"], r["field"], r["mode"], r["construction"]): r["median_ms"] for r in rows}
    for r in rows:
        if r["library"] != "gpuph-cpu" and r["median_ms"]:
            ref = med[("gpuph-cpu", r["case"], r["field"], r["mode"], r["construction"])]
            assert r["ratio_vs_gpuph"] == pytest.approx(ref / r["median_ms"], rel=1e-3)
    md = (tmp_path / "results.md").read_text()
    assert "| case | field |" in md and "gudhi-fast2d" in md
    assert "topologylayer" in json.dumps(meta["skipped"]) or "topologylayer" in json.dumps(meta["libraries"])
    assert len(list(tmp_path.glob("time-*.png"))) == 4  # noise/smooth x forward/forward+backward


# ---------------------------------------------------------------------------------------------- the check
def _gpuph_runner(wrong: bool) -> Runner:
    """gpuph's V diagrams, with one death value moved when ``wrong`` (a deliberately broken library)."""

    def diagrams(out, _):
        dg = gpuph_canonical(out)
        if wrong:
            img = dg[1]
            finite = np.flatnonzero(np.isfinite(img[:, 2]))
            img[finite[0], 2] -= 0.25
            dg[1] = canonical(img[:, 0], img[:, 1], img[:, 2])
        return dg

    return Runner("planted", "V", FORWARD, prepare=torch.from_numpy, run=gpuph.cubical_persistence,
                  diagrams=diagrams, note="gpuph, with one death moved" if wrong else "gpuph again")


@pytest.mark.parametrize("wrong", [True, False])
def test_check_catches_a_wrong_diagram(tmp_path, wrong):
    cfg = tiny_config(tmp_path, cases=[parse_case("3x7x7")], libraries=("gpuph",), fields=("noise",))
    res = run_suite(cfg, extra_runners=[_gpuph_runner(wrong)])
    (row,) = [r for r in res.rows if r["library"] == "planted"]
    if wrong:
        assert row["agrees_with_gpuph"] is False
        assert "image 1" in row["mismatch"] and "DISAGREES" in row["note"]
        assert (tmp_path / row["mismatch_input"]).exists()
        np.testing.assert_array_equal(np.load(tmp_path / row["mismatch_input"]), make_field(parse_case("3x7x7"),
                                                                                           "noise")[1])
        assert any("planted" in f for f in res.failures)
        assert "NO" in (tmp_path / "results.md").read_text()
    else:
        assert row["agrees_with_gpuph"] is True and not res.failures


def test_compare_unit():
    rng = np.random.default_rng(0)
    b = rng.random(6)
    d = b - rng.random(6) * 0.5
    ref = [canonical([0, 0, 0, 1, 1, 1], b, d)]
    shuffled = np.random.default_rng(1).permutation(6)
    assert compare(ref, [canonical(np.array([0, 0, 0, 1, 1, 1])[shuffled], b[shuffled], d[shuffled])]).agrees
    # zero-length pairs are not canonical: dropped on both sides
    assert compare(ref, [canonical([0, 0, 0, 1, 1, 1, 1], np.r_[b, 0.3], np.r_[d, 0.3])]).agrees
    missing = compare(ref, [canonical([0, 0, 0, 1, 1], b[:5], d[:5])])
    assert missing.agrees is False and missing.dims == (1,) and missing.image == 0
    moved = d.copy()
    moved[0] -= 1e-7
    ag = compare(ref, [canonical([0, 0, 0, 1, 1, 1], b, moved)])
    assert ag.agrees is False and ag.dims == (0,) and ag.only_in((0,)) and not ag.only_in((1,))
    assert compare(ref, [ref[0], ref[0]]).agrees is False  # wrong number of images
    assert compare(ref, None).agrees is None


def test_negated_sublevel_units():
    # GUDHI/cripser see -x: (b, d) there is (-b, -d) here; infinite or DBL_MAX deaths are essential (-inf here)
    got = from_negated_sublevel([0, 0, 1], [-0.9, -0.5, -0.4], [np.inf, -0.2, np.finfo(np.float64).max])
    expected = canonical([0, 0, 1], [0.9, 0.5, 0.4], [-np.inf, 0.2, -np.inf])
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------------------------------- the time cap
def _sleeper(seconds_per_pixel: float) -> Runner:
    def run(x):
        time.sleep(x.size * seconds_per_pixel)
        return None

    return Runner("sleeper", "V", FORWARD, prepare=lambda x: x, run=run, diagrams=lambda out, _: None, note="sleeps")


def test_cap_skips_predicted_slow_cells(tmp_path):
    # 2x10x10: 200 pixels -> 20 ms a call; 16x10x10 -> predicted 160 ms, over the 80 ms cap: skipped, with the reason
    cfg = tiny_config(tmp_path, cases=[parse_case("16x10x10"), parse_case("2x10x10")], libraries=("gpuph",),
                      fields=("noise",), budget=Budget(max_repeats=2, min_repeats=1, budget_s=0.01, cap_s=0.08))
    res = run_suite(cfg, extra_runners=[_sleeper(1e-4)])
    small, big = [r for r in res.rows if r["library"] == "sleeper"]
    assert small["case"] == "2x10x10" and small["median_ms"] >= 20
    assert big["median_ms"] is None and big["repeats"] == 0
    assert big["note"].startswith("skipped: one call predicted") and "2x10x10" in big["note"]


def test_slow_warmup_is_the_only_measurement(tmp_path):
    cfg = tiny_config(tmp_path, cases=[parse_case("1x10x10")], libraries=("gpuph",), fields=("noise",),
                      budget=Budget(max_repeats=5, min_repeats=3, budget_s=10, cap_s=0.01))
    res = run_suite(cfg, extra_runners=[_sleeper(2e-4)])
    (row,) = [r for r in res.rows if r["library"] == "sleeper"]
    assert row["repeats"] == 1 and "one call only" in row["note"]


def test_deadline_passes_after_its_limit():
    assert not Deadline(600).passed() and not Deadline(None).passed()
    d = Deadline(0.01)
    time.sleep(0.02)
    assert d.passed() and d.note == "not run: the run's time limit of 0.01 s was reached"
    with pytest.raises(ValueError, match="positive"):
        Deadline(0)


class _PassesAtSecondCheck(Deadline):
    """The run's deadline, passing at its second check whatever the clock says (the test below must not depend on
    how fast the machine runs gpuph's cells)."""

    def passed(self) -> bool:
        self.checks = getattr(self, "checks", 0) + 1
        return self.checks > 1


def test_time_limit_stops_the_other_libraries_but_not_gpuph(tmp_path, monkeypatch):
    # The limit passes after the first input's sleeper cell (first check): later inputs keep their gpuph rows but not
    # the sleeper's. The files were written after each input (incomplete), and at the end.
    from gpuph.bench import report, suite

    monkeypatch.setattr(suite, "Deadline", _PassesAtSecondCheck)
    written = []
    real = report.write_json
    monkeypatch.setattr(report, "write_json", lambda path, obj: written.append(obj["meta"]["complete"])
                        or real(path, obj))
    cases = [parse_case(c) for c in ("1x6x6", "2x6x6", "3x6x6")]
    cfg = tiny_config(tmp_path, cases=cases, libraries=("gpuph",), fields=("noise",), modes=("forward",),
                      budget=Budget(max_repeats=1, min_repeats=1, budget_s=0.01, cap_s=5.0), time_limit_s=0.1)
    res = run_suite(cfg, extra_runners=[_sleeper(0.08 / 36)])
    by = {(r["library"], r["case"]): r for r in res.rows}
    assert by[("sleeper", "1x6x6")]["median_ms"] >= 80
    for case in ("2x6x6", "3x6x6"):
        assert by[("sleeper", case)]["median_ms"] is None
        assert by[("sleeper", case)]["note"].startswith("not run: the run's time limit of 0.1 s")
        assert by[("gpuph-cpu", case)]["median_ms"] is not None
    assert written == [False, False, False, True]
    meta = json.loads((tmp_path / "results.json").read_text())["meta"]
    assert meta["complete"] is True and meta["time_limit_s"] == 0.1
    assert "time limit (0.1 s) was reached" in (tmp_path / "results.md").read_text()
    with pytest.raises(SystemExit):
        main(["--time-limit", "0", "--out", str(tmp_path)])


@pytest.mark.parametrize("argv", [["--budget", "-1"], ["--cap", "-1"], ["--cap", "0"], ["--repeats", "0"],
                                  ["--min-repeats", "0"], ["--min-repeats", "5", "--repeats", "1"],
                                  ["--time-limit", "-3"]], ids=" ".join)
def test_timing_options_out_of_range_are_usage_errors(argv, tmp_path, capsys):
    # A negative cap skipped every other library and a --min-repeats above --repeats was cut silently.
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and argv[0] in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_gpu_only_case_is_left_out_without_a_gpu(tmp_path):
    cfg = tiny_config(tmp_path, cases=[parse_case("4x5x5"), parse_case("1x129^3")], libraries=("gpuph",),
                      fields=("noise",), modes=("forward",))
    res = run_suite(cfg)
    assert {r["case"] for r in res.rows} == {"4x5x5"}
    assert any("1x129x129x129" in k for k in res.meta["skipped"])


# ---------------------------------------------------------------------------------------------- helpers
def test_config_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="libraries"):
        tiny_config(tmp_path, libraries=("gpuph", "ripser"))
    with pytest.raises(ValueError, match="modes"):
        tiny_config(tmp_path, modes=("backward",))
    with pytest.raises(TypeError):
        tiny_config(tmp_path, cases=["4x8x8"])


def test_parse_case():
    c = parse_case("64x32^3")
    assert (c.batch, c.grid, c.name, c.ndim, c.pixels) == (64, (32, 32, 32), "64x32x32x32", 3, 64 * 32**3)
    assert parse_case("256x28x28") == parse_case(" 256 x 28 x 28 ")
    assert parse_case("1x30x20").grid == (30, 20)
    assert parse_case("1x256^3").gpu_only and not parse_case("1x128^3").gpu_only
    for bad in ("28x28x28x28x28", "x28", "0x28x28", "4x28", "4x28x28^3", "4x28^4", "abc"):
        with pytest.raises(ValueError):
            parse_case(bad)
    order = run_order([parse_case(c) for c in ("1x64^3", "64x64x64", "256x28x28", "64x64x64")])
    assert [c.name for c in order] == ["256x28x28", "64x64x64", "1x64x64x64"]


def test_fields_are_seeded_float32_and_smooth_is_smoother():
    case = parse_case("3x32x32")
    noise, smooth = make_field(case, "noise"), make_field(case, "smooth")
    assert noise.dtype == smooth.dtype == np.float32 and noise.shape == (3, 32, 32)
    np.testing.assert_array_equal(noise, make_field(case, "noise"))
    assert not np.array_equal(noise, make_field(case, "noise", seed=1))
    # each image smoothed on its own: the first image equals smoothing it alone
    from scipy.ndimage import gaussian_filter

    np.testing.assert_allclose(smooth[0], gaussian_filter(noise[0], 2.0), rtol=1e-6, atol=1e-7)
    assert np.abs(np.diff(smooth, axis=-1)).mean() < 0.2 * np.abs(np.diff(noise, axis=-1)).mean()
    with pytest.raises(ValueError):
        make_field(case, "stripes")


def test_ratios_prefer_cuda_and_keep_cpu():
    def row(lib, ms, mode="forward"):
        return {"library": lib, "case": "1x8x8", "field": "noise", "mode": mode, "construction": "V", "median_ms": ms}

    rows = [row("gpuph-cpu", 10.0), row("gpuph-cuda", 1.0), row("cripser", 40.0), row("cripser", None, BACKWARD)]
    add_ratios(rows)
    assert rows[0]["ratio_vs_gpuph"] == 0.1 and rows[0]["gpuph_reference"] == "gpuph-cuda"
    assert "ratio_vs_gpuph" not in rows[1]
    assert rows[2]["ratio_vs_gpuph"] == 0.025 and rows[2]["ratio_vs_gpuph_cpu"] == 0.25
    assert "ratio_vs_gpuph" not in rows[3]



def test_goals_report_the_cuda_forward_v_rows_they_name():
    from gpuph.bench.cli import config_from_args, parse_args
    from gpuph.bench.goals import GOALS, goal_cases
    from gpuph.bench.meta import default_out_dir
    from gpuph.bench.report import goals_section

    def row(lib, case, field, ms, mode="forward", construction="V"):
        return {"library": lib, "device": "NVIDIA H100 80GB HBM3", "case": case, "field": field, "mode": mode,
                "construction": construction, "median_ms": ms}

    rows = [row("gpuph-cuda", "256x28x28", "noise", 0.25), row("gpuph-cuda", "256x28x28", "smooth", 0.6),
            row("gpuph-cuda", "64x256x256", "noise", 1.0),  # the goal names the smooth field only
            row("gpuph-cuda", "64x256x256", "smooth", 4.5), row("gpuph-cpu", "1x1024x1024", "noise", 5.0),
            row("gpuph-cuda", "1x1024x1024", "noise", 9.0, mode=BACKWARD),
            row("gpuph-cuda", "64x32x32x32", "noise", 4.0, construction="T"),
            row("gpuph-cuda", "1x128x128x128", "noise", None), row("gpuph-cuda", "1x256x256x256", "smooth", 300.0)]
    got = [(g["case"], g["field"], g["met"], g["times_goal"]) for g in check_goals(rows)]
    assert got == [("256x28x28", "noise", True, 0.833), ("256x28x28", "smooth", False, 2.0),
                   ("64x256x256", "smooth", False, 1.5), ("1x256x256x256", "smooth", True, 1.0)]
    text = "\n".join(goals_section(rows))
    assert "H100" in text and "no: 2x the goal" in text and "no: 1.5x the goal" in text
    assert check_goals(rows[4:5]) == [] and goals_section(rows[4:5]) == []  # CPU rows meet no goal
    assert len(goal_cases()) == len(GOALS) and all(parse_case(c).name == c for c in goal_cases())
    args = parse_args(["--goals", "--libraries", "gudhi", "--budget", "1"])
    assert [c.name for c in args.cases] == goal_cases() and args.libraries == ["gpuph"]
    assert (args.modes, args.constructions, args.budget) == (["forward"], ["V"], 1.0)
    cfg = config_from_args(args, [])
    assert cfg.out_dir is None and default_out_dir(False, cfg.out_suffix).name.endswith("-goals")
    assert config_from_args(parse_args(["--goals", "--out", "x"]), []).out_dir == Path("x")


def test_cuda_timing_path_with_fake_events(monkeypatch):
    """The CUDA branch of measure() (events, synchronisation, warm-up count) on a machine without a GPU."""
    from gpuph.bench import timing

    calls = {"sync": 0, "fn": 0}

    class FakeEvent:
        def __init__(self, enable_timing):
            assert enable_timing

        def record(self):
            self.t = time.perf_counter()

        def synchronize(self):
            calls["sync"] += 1

        def elapsed_time(self, end):
            return (end.t - self.t) * 1e3

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.__setitem__("sync", calls["sync"] + 1))

    def fn():
        calls["fn"] += 1
        time.sleep(0.002)
        return calls["fn"]

    m = timing.measure(fn, Budget(max_repeats=4, min_repeats=2, budget_s=1.0, cap_s=5.0, cuda_warmup=3), cuda=True)
    assert m.output == 1  # the first warm-up call's output is kept for the check
    assert calls["fn"] == 3 + 4 and len(m.times_ms) == 4
    assert calls["sync"] == 2 * calls["fn"]  # drained before, waited for after every call
    assert all(t >= 2.0 for t in m.times_ms)


def test_breakdown_chirp_field_needs_many_relaxed_iterations():
    """The breakdown's chirp field is the input for the relaxed union-find's cap: the same image in every slot, and
    far more relaxed iterations than noise of its size needs (over 32, the first value of the learned cap)."""
    from gpuph.bench.breakdown import make_breakdown_field
    from gpuph.bench.cases import parse_case

    case = parse_case("2x512x512")
    chirp, noise = (torch.from_numpy(make_breakdown_field(case, f)) for f in ("chirp", "noise"))
    assert chirp.dtype == torch.float32 and chirp.shape == (2, 512, 512) and torch.equal(chirp[0], chirp[1])
    ops = torch.ops.gpuph
    mode, cap = ops._union_find_mode(3), ops._relaxed_iterations(4096)
    try:
        fields = {"chirp": chirp, "noise": noise}
        iterations = {f: ops._merge_tree_stats(x[:1], 2, 0, True, 3)[2] for f, x in fields.items()}
    finally:
        ops._union_find_mode(mode)
        ops._relaxed_iterations(cap)
    assert iterations["chirp"] > 32 > 2 * iterations["noise"], iterations


def test_breakdown_default_folder_takes_the_suffix(tmp_path, monkeypatch):
    """Without --out, the breakdown writes to bench/results/<device>-<date><suffix>/ (the GPU session's union-find
    and large-volume stages name their folders by --out-suffix, so that every folder carries the device)."""
    from gpuph.bench import meta
    from gpuph.bench.breakdown import main as breakdown

    (tmp_path / "bench").mkdir()
    monkeypatch.setattr(meta, "REPO", tmp_path)
    args = ["--emulate", "--cases", "1x6x6", "--fields", "noise", "--repeats", "1"]
    assert breakdown([*args, "--out-suffix=-union-find-x"]) == 0
    assert breakdown(args) == 0
    made = sorted(p.name for p in (tmp_path / "bench" / "results").iterdir())
    tag = f"{meta.device_tag(False)}-{datetime.date.today().isoformat()}"
    assert made == [f"{tag}-breakdown", f"{tag}-union-find-x"]
    assert all((tmp_path / "bench" / "results" / m / "breakdown.json").is_file() for m in made)


def test_breakdown_of_the_pipeline_emulation(tmp_path, capsys):
    """The kernel-level breakdown (gpuph.bench.breakdown) on the device pipeline's CPU emulation: every stage of the
    merge trees and of H1 of 3D is found and timed, and the files are written; without a GPU or --emulate it says
    so and does nothing."""
    from gpuph.bench.breakdown import main as breakdown

    out = tmp_path / "bd"
    assert breakdown(["--emulate", "--cases", "2x9^3", "--fields", "noise", "--repeats", "1", "--out", str(out)]) == 0
    doc = json.loads((out / "breakdown.json").read_text())
    (row,) = doc["rows"]
    assert row["case"] == "2x9x9x9" and row["median_ms"] > 0 and doc["meta"]["versions"]["torch"]
    stages = {e["name"]: e for e in row["entries"] if e["kind"] == "stage"}
    for name in ("ranks", "cells", "apparent_rows", "residual_rounds", "residual_rows"):
        assert stages[f"gpuph::h1::{name}"]["calls_per_call"] == 1, name
    for name in ("keys", "merge_trees", "sync", "tree_rows", "pinned_order"):
        assert stages[f"gpuph::{name}"]["calls_per_call"] == 1, name
    assert "gpuph::h1::residual_rounds" in (out / "breakdown.md").read_text()
    # Each case with each named union-find, in that order, each stage timed.
    out = tmp_path / "modes"
    assert breakdown(["--emulate", "--cases", "1x70x70", "--fields", "noise", "--repeats", "1", "--out", str(out),
                      "--union-find", "serial", "relaxed"]) == 0
    rows = json.loads((out / "breakdown.json").read_text())["rows"]
    assert [r["union_find"] for r in rows] == ["serial", "relaxed"]
    for r in rows:
        assert {e["name"] for e in r["entries"]} >= {"gpuph::merge_trees", "gpuph::merge_trees::union_find"}
    assert torch.ops.gpuph._union_find_mode(0) == 0  # restored
    for r in rows:  # small 2D images: their rows ordered by rank, no pinned_order stage
        assert "gpuph::pinned_order" not in {e["name"] for e in r["entries"]}
    # The A/Bs of the choices made by size, each forced (the pinned order by the sorts; the candidates by the
    # double-buffer radix sort), then the built-in value restored; the row records it and the other stays null.
    # The pinned relaxed cap likewise (1: the sequential fallback of every call).
    settings = {"ranked_order_limit": (0, {"gpuph::tree_rows", "gpuph::pinned_order"}),
                "buffer_sort_cells": (0, {"gpuph::merge_trees::candidates"}),
                "relaxed_iterations": (1, {"gpuph::merge_trees::union_find"})}
    for name, (value, stages) in settings.items():
        op = getattr(torch.ops.gpuph, f"_{name}")
        default = op(value)
        op(default)
        out = tmp_path / name
        assert breakdown(["--emulate", "--cases", "3x30x30", "--fields", "noise", "--repeats", "1", "--out", str(out),
                          "--union-find", "relaxed", f"--{name.replace('_', '-')}", str(value)]) == 0
        (row,) = json.loads((out / "breakdown.json").read_text())["rows"]
        assert row[name] == value and all(row[other] is None for other in settings if other != name)
        assert {e["name"] for e in row["entries"] if e["kind"] == "stage"} >= stages
        assert op(default) == default  # restored
    for flag, bad in (("--ranked-order-limit", "-1"), ("--buffer-sort-cells", "-1"), ("--relaxed-iterations", "-1"),
                      ("--relaxed-iterations", "4097"), ("--fields", "ramp")):
        with pytest.raises(SystemExit):
            breakdown(["--emulate", flag, bad])
    if not torch.cuda.is_available():
        assert breakdown(["--cases", "1x8^3", "--out", str(tmp_path / "none")]) == 2
        assert not (tmp_path / "none").exists()


def test_breakdown_writes_its_files_after_every_row(tmp_path, monkeypatch):
    """A breakdown stopped from outside (a GPU call's time limit) keeps the rows it measured: the files are rewritten
    after each one, marked incomplete until the end."""
    from gpuph.bench import breakdown

    written = []
    real = breakdown.write_json

    def spy(path, doc):
        written.append((len(doc["rows"]), doc["meta"]["complete"]))
        return real(path, doc)

    monkeypatch.setattr(breakdown, "write_json", spy)
    out = tmp_path / "bd"
    assert breakdown.main(["--emulate", "--cases", "1x12x12", "2x5^3", "--fields", "noise", "--repeats", "1",
                           "--out", str(out)]) == 0
    assert written == [(1, False), (2, False), (2, True)]
    assert "Incomplete" not in (out / "breakdown.md").read_text()


def test_gpuph_canonical_takes_superlevel_diagrams_only():
    x = torch.tensor([[[0.0, 1.0, 0.0], [0.5, 0.2, 0.9]], [[0.3, 0.3, 0.1], [0.0, 0.4, 0.8]]])
    sup = gpuph.cubical_persistence(x)
    per_image = gpuph_canonical(sup)
    assert len(per_image) == 2
    for b in range(2):
        ref = from_negated_sublevel(*_gudhi_v_sublevel(-x[b].double().numpy()))
        np.testing.assert_array_equal(per_image[b], ref)
    with pytest.raises(ValueError, match="superlevel"):  # sublevel values are in other units (deaths at +inf)
        gpuph_canonical(gpuph.cubical_persistence(x, superlevel=False))


def _gudhi_v_sublevel(a):
    gudhi = pytest.importorskip("gudhi")
    cc = gudhi.CubicalComplex(vertices=a)
    cc.compute_persistence(homology_coeff_field=2)
    per = [np.asarray(cc.persistence_intervals_in_dimension(k), np.float64).reshape(-1, 2) for k in range(a.ndim)]
    dims = np.concatenate([np.full(len(p), k) for k, p in enumerate(per)])
    iv = np.concatenate(per)
    return dims, iv[:, 0], iv[:, 1]


def test_only_in_explains_a_difference_confined_to_the_given_dims():
    from gpuph.bench.agreement import Agreement

    ref = [canonical([0, 1, 1], [0.9, 0.6, 0.5], [-np.inf, 0.2, 0.1])]
    h1 = compare(ref, [canonical([0, 1, 1], [0.9, 0.6, 0.5], [-np.inf, 0.2, 0.3])])
    assert h1.dims == (1,) and h1.only_in((1,)) and h1.only_in((1, 2))
    assert "only in gpuph [(1.0, 0.5, 0.1)]; only in library [(1.0, 0.5, 0.3)]" in h1.message
    both = compare(ref, [canonical([0, 1, 1], [0.8, 0.6, 0.5], [-np.inf, 0.2, 0.3])])
    assert both.dims == (0, 1) and not both.only_in((1,))  # an H0 difference is never the coefficient field's
    # a wrong number of images names no dimension: nothing explains it
    assert not compare(ref, [ref[0], ref[0]]).only_in((0, 1))
    assert not Agreement(True).only_in((0, 1)) and not Agreement(None).only_in((0, 1))


def test_gudhi_runner_computes_over_z2_as_gpuph():
    """On this 12^3 grid GUDHI's default field Z/11 gives another H1 diagram than Z/2: the runner must ask for Z/2."""
    gudhi = pytest.importorskip("gudhi")
    from gpuph.bench.libraries.gudhi_runner import runners

    (runner,) = runners((FORWARD,), ("V",), "gudhi")
    x = np.random.default_rng(372).random((1, 12, 12, 12)).astype(np.float32)
    prepared = runner.prepare(x)
    ref = gpuph_canonical(gpuph.cubical_persistence(torch.from_numpy(x), spatial_dims=3))
    assert compare(ref, runner.diagrams(runner.run(prepared), prepared)).agrees is True
    cc = gudhi.CubicalComplex(vertices=prepared[0])
    cc.compute_persistence(homology_coeff_field=11)
    z11 = runner.diagrams([[cc.persistence_intervals_in_dimension(k) for k in range(3)]], prepared)
    assert compare(ref, z11).dims == (1,)  # the test still tells the fields apart


def test_nothing_to_compare_is_neither_agreement_nor_disagreement(tmp_path):
    cfg = tiny_config(tmp_path, cases=[parse_case("1x10x10")], libraries=("gpuph",), fields=("noise",))
    res = run_suite(cfg, extra_runners=[_sleeper(0.0)])  # its diagrams are None
    (row,) = [r for r in res.rows if r["library"] == "sleeper"]
    assert row["agrees_with_gpuph"] is None and row["pairs"] is None and not res.failures
