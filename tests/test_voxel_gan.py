"""The procedural voxel data set and the voxel GAN: what the data claims (shape, values, one 6-connected component,
holes of tori, determinism), the component counts against scipy, the topology loss at work on a fixed generator,
and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import gpuph
from gpuph.apps.voxel_gan import (
    VoxelDiscriminator,
    VoxelGenerator,
    count_components,
    count_pd0_components,
    gan_step,
    load_checkpoint,
    sample_latents,
    save_checkpoint,
    topology_loss,
)
from gpuph.apps.voxel_shapes import CLASSES, VoxelShapes, make_shapes

CROSS = ndimage.generate_binary_structure(3, 1)  # 6-connectivity


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(150, seed=7, return_labels=True)


def test_shapes_values_and_labels(shapes):
    x, labels = shapes
    assert x.shape == (150, 1, 32, 32, 32) and x.dtype == torch.float32
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    assert labels.shape == (150,) and set(labels.tolist()) == set(range(len(CLASSES)))
    filled = x.sum((1, 2, 3, 4))
    assert bool((filled > 100).all())  # no empty or near-empty shape
    # nothing touches the grid's border (so no part was clipped off)
    border = x.clone()
    border[:, :, 1:-1, 1:-1, 1:-1] = 0
    assert border.sum() == 0


def test_every_shape_is_one_6_connected_solid(shapes):
    x, _ = shapes
    counts = [ndimage.label(v, structure=CROSS)[1] for v in x[:, 0].numpy()]
    assert counts == [1] * len(x)
    # the same with gpuph: one superlevel PD0 class (the essential one) per binary grid
    dgm = gpuph.cubical_persistence(x, dims=0, spatial_dims=3)
    assert dgm.counts()[:, 0].tolist() == [1] * len(x)


def _betti(v: np.ndarray) -> tuple[int, int, int]:
    """Betti numbers of a binary grid's solid (6-connectivity; V construction, superlevel: essential classes at
    level 1 are the homology of the solid), via gpuph's bars born at 1 that survive below it."""
    dgm = gpuph.cubical_persistence(torch.from_numpy(v).float(), spatial_dims=3)
    born = (dgm.pairs[:, 0] == 1) & (dgm.pairs[:, 1] < 1)
    return tuple(int(((dgm.dim == k) & born).sum()) for k in range(3))


def test_betti_numbers_tori_one_tunnel_no_shape_a_cavity():
    for v in make_shapes(5, seed=3, classes=["torus"])[:, 0].numpy():
        assert _betti(v) == (1, 1, 0)
    for v in make_shapes(30, seed=4, classes=["blob", "chair", "table", "lamp"])[:, 0].numpy():
        b0, _, b2 = _betti(v)
        assert (b0, b2) == (1, 0)
    for v in make_shapes(10, seed=5, classes=["table"])[:, 0].numpy():
        assert _betti(v) == (1, 0, 0)


def test_determinism_by_seed():
    a, la = make_shapes(12, seed=11, return_labels=True)
    b, lb = make_shapes(12, seed=11, return_labels=True)
    c = make_shapes(12, seed=12)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    ds = VoxelShapes(12, seed=11)
    assert len(ds) == 12 and ds.shapes.dtype == torch.uint8
    item, label = ds[5]
    assert torch.equal(item, a[5]) and label == int(la[5])


def test_class_subset_and_bad_input():
    x, labels = make_shapes(5, seed=0, classes=["torus"], return_labels=True)
    assert x.shape == (5, 1, 32, 32, 32) and labels.tolist() == [0] * 5
    assert make_shapes(0, seed=0).shape == (0, 1, 32, 32, 32)
    with pytest.raises(ValueError, match="classes"):
        make_shapes(3, classes=["sofa"])
    with pytest.raises(ValueError, match="classes"):
        make_shapes(3, classes=[])
    with pytest.raises(TypeError, match=r"e.g. \['torus'\]"):  # not its letters as class names
        make_shapes(3, classes="torus")
    for seed in (2**70, -(2**64), 1.5):
        with pytest.raises(ValueError, match="seed"):
            make_shapes(2, seed=seed)
    with pytest.raises(ValueError, match="n must"):
        make_shapes(-1)


def test_component_counts_match_scipy_and_lifetimes():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(3, 1, 12, 12, 12, generator=g)
    binary = (v > 0.7).float()
    direct = [ndimage.label(b, structure=CROSS)[1] for b in binary[:, 0].numpy()]
    assert count_components(v, level=0.7).tolist() == direct
    # on a binary grid every component is a PD0 class of lifetime 1 (the first one essential)
    assert count_pd0_components(binary, threshold=0.5).tolist() == direct
    # on the raw field, count the classes with lifetime > 0.3 directly from the diagrams
    dgm = gpuph.cubical_persistence(v, dims=0, spatial_dims=3)
    life = (dgm.pairs[:, 0] - dgm.pairs[:, 1]).detach()
    expect = [int(((dgm.batch == b) & (life > 0.3)).sum()) for b in range(3)]
    assert count_pd0_components(v, threshold=0.3).tolist() == expect
    assert count_components(torch.zeros(2, 1, 4, 4, 4)).tolist() == [0, 0]


def test_topology_loss_is_the_energy_of_all_but_the_longest_bar():
    g = torch.Generator().manual_seed(1)
    v = torch.rand(2, 1, 8, 8, 8, generator=g)
    dgm = gpuph.cubical_persistence(v, dims=0, spatial_dims=3)
    expect = []
    for b in range(2):
        p = dgm.pairs[dgm.batch == b].detach().numpy()
        life = np.where(np.isinf(p[:, 1]), p[:, 0] - v[b].min().item(), p[:, 0] - p[:, 1])
        expect.append(np.sort(life)[::-1][1:].sum())
    torch.testing.assert_close(topology_loss(v, reduction="none"), torch.tensor(expect, dtype=torch.float32))


def test_models_shapes_and_errors():
    gen, disc = VoxelGenerator(nz=16, ch=4), VoxelDiscriminator(ch=4)
    with torch.no_grad():
        v = gen(torch.randn(3, 16))
    assert v.shape == (3, 1, 32, 32, 32) and float(v.min()) >= 0 and float(v.max()) <= 1
    assert disc(v).shape == (3,)
    assert VoxelGenerator().nz == 64  # the public defaults another module relies on
    with pytest.raises(ValueError, match="latents"):
        gen(torch.randn(3, 15))
    with pytest.raises(ValueError, match="grids"):
        disc(torch.rand(3, 1, 16, 16, 16))


def test_topology_loss_reduces_components_of_a_fixed_generator():
    torch.manual_seed(0)
    gen = VoxelGenerator(nz=8, ch=4)
    with torch.no_grad():  # a wide output: a noisy field with many components above 0.5
        gen.net[-1].weight.mul_(20)
        gen.net[-1].bias.fill_(-1.0)
    z = sample_latents(2, 8, seed=0)
    opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
    with torch.no_grad():
        v0 = gen(z)
    before, occ_before, loss_before = count_components(v0), (v0 > 0.5).float().mean(), topology_loss(v0)
    assert bool((before > 100).all())
    for _ in range(3):
        loss = topology_loss(gen(z))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        v1 = gen(z)
    after = count_components(v1)
    assert bool((after < 0.8 * before).all()), (before, after)
    assert topology_loss(v1) < 0.8 * loss_before
    assert (v1 > 0.5).float().mean() > 0.5 * occ_before  # fewer components, not an emptied grid


class _Trap:
    """Unpickling it would run _built (what a malicious file does with os.system)."""

    built = False

    def __reduce__(self):
        return (_built, ())


def _built():
    _Trap.built = True


def test_gan_step_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    gen, disc = VoxelGenerator(nz=8, ch=4), VoxelDiscriminator(ch=4)
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    w0 = [p.detach().clone() for p in gen.parameters()]
    log = gan_step(gen, disc, opt_g, opt_d, make_shapes(2, seed=0), torch.randn(2, 8), topo_weight=1.0)
    assert np.isfinite(log["topo"]) and np.isfinite(log["g_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(w0, gen.parameters()))
    save_checkpoint(tmp_path / "ck.pt", gen, disc, step=1)
    wrapped = torch.nn.Module()  # as DistributedDataParallel: the model under .module, its keys not prefixed
    wrapped.module = gen
    save_checkpoint(tmp_path / "wrapped.pt", wrapped, disc, step=1)
    assert load_checkpoint(tmp_path / "wrapped.pt")[0].state_dict().keys() == gen.state_dict().keys()
    gen2, disc2, extra = load_checkpoint(tmp_path / "ck.pt")
    assert extra == {"step": 1} and (gen2.nz, gen2.ch, disc2.ch) == (8, 4, 4)
    gen.eval(), gen2.eval(), disc.eval(), disc2.eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(gen(z), gen2(z))
        x = gen(z)
        assert torch.equal(disc(x), disc2(x))
    # extra: optimizer states come back as they were; objects torch's safe loader refuses come back as text.
    save_checkpoint(tmp_path / "ck2.pt", gen, disc, opt_state={"opt_g": opt_g.state_dict()},
                    args={"out": tmp_path, "shape": torch.Size([2, 3]), "scale": np.float32(0.5)},
                    counts=np.array([3, 4]))
    extra = load_checkpoint(tmp_path / "ck2.pt")[2]
    saved = opt_g.state_dict()
    assert extra["opt_state"]["opt_g"]["param_groups"] == saved["param_groups"]
    for k, st in saved["state"].items():
        assert all(torch.equal(extra["opt_state"]["opt_g"]["state"][k][n], v) for n, v in st.items())
    assert extra["args"] == {"out": str(tmp_path), "shape": (2, 3), "scale": 0.5}
    assert torch.equal(extra["counts"], torch.tensor([3, 4]))
    # A file holding other pickled objects is refused, not unpickled (the object's constructor never runs).
    torch.save({"nz": 8, "ch_g": 4, "ch_d": 4, "gen": {}, "disc": {}, "extra": _Trap()}, tmp_path / "trap.pt")
    _Trap.built = False
    with pytest.raises(ValueError, match="voxel GAN checkpoint"):
        load_checkpoint(tmp_path / "trap.pt")
    assert not _Trap.built
    # Other files: a clear ValueError, not a KeyError or an unpickling error.
    torch.save({"nz": 8}, tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    for name in ("other.pt", "text.pt"):
        with pytest.raises(ValueError, match="voxel GAN checkpoint"):
            load_checkpoint(tmp_path / name)


def test_checkpoint_loads_onto_map_location(tmp_path):
    """map_location places the models and the tensors of extra (the file is read on the CPU, then moved)."""
    gen, disc = VoxelGenerator(nz=4, ch=2), VoxelDiscriminator(ch=2)
    save_checkpoint(tmp_path / "ck.pt", gen, disc, counts=torch.arange(3))
    gen2, disc2, extra = load_checkpoint(tmp_path / "ck.pt", map_location="meta")
    assert {p.device.type for p in [*gen2.parameters(), *disc2.parameters(), extra["counts"]]} == {"meta"}
    gen3, _, extra = load_checkpoint(tmp_path / "ck.pt", map_location=None)
    assert next(gen3.parameters()).device.type == "cpu" and torch.equal(extra["counts"], torch.arange(3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
def test_checkpoint_on_a_missing_cuda_is_not_called_foreign(tmp_path):
    """A good checkpoint asked onto a device this machine lacks: torch's error about the device, not the claim
    that the file is no voxel GAN checkpoint."""
    save_checkpoint(tmp_path / "ck.pt", VoxelGenerator(nz=4, ch=2), VoxelDiscriminator(ch=2))
    with pytest.raises((RuntimeError, AssertionError)) as err:
        load_checkpoint(tmp_path / "ck.pt", map_location="cuda")
    assert "not a voxel GAN checkpoint" not in str(err.value)


def test_checkpoint_whose_sizes_do_not_fit_its_weights_is_a_value_error(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", VoxelGenerator(nz=4, ch=2), VoxelDiscriminator(ch=2))
    state = torch.load(tmp_path / "ck.pt", weights_only=True)
    torch.save({**state, "ch_g": 3}, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match="edited.pt is a damaged voxel GAN checkpoint"):
        load_checkpoint(tmp_path / "edited.pt")


def test_resumed_training_uses_the_learning_rates_it_is_given():
    """train(opt_state=...) keeps Adam's moments but not the saved learning rates: gan_voxels.py --baseline CKPT
    --lr-g X fine-tuned at the baseline's rate, not X."""
    from gpuph.apps.voxel_gan import train

    data = make_shapes(4, seed=0)
    gen, disc = VoxelGenerator(nz=4, ch=2), VoxelDiscriminator(ch=2)
    _, state = train(gen, disc, data, 1, batch_size=2, lr_g=1e-3, lr_d=2e-4, progress=False)
    _, resumed = train(gen, disc, data, 1, batch_size=2, lr_g=5e-5, lr_d=7e-5, opt_state=state, progress=False)
    assert [g["lr"] for g in resumed["opt_g"]["param_groups"]] == [5e-5]
    assert [g["lr"] for g in resumed["opt_d"]["param_groups"]] == [7e-5]
    assert all(int(s["step"]) == 2 for s in resumed["opt_g"]["state"].values())  # the moments carried on


def test_torch_file_helpers(tmp_path):
    """gpuph.apps.checkpoints: what a payload keeps, atomic saves into new folders, and the errors of loading."""
    import argparse
    from pathlib import Path

    from gpuph.apps.checkpoints import load_torch_file, save_torch_file, unwrap_model, weights_only_payload

    w = torch.ones(2, requires_grad=True)
    arr = np.arange(3)
    payload = {"w": w, "arr": arr, "scalar": np.float32(1.5), "n": 3, "path": Path("a/b"), Path("key"): 1, 2: "two",
               "tup": (1, [2, torch.Size([3])]), "version": torch.__version__, "args": argparse.Namespace(a=1)}
    out = weights_only_payload(payload)
    assert torch.equal(out["w"], w.detach()) and not out["w"].requires_grad
    assert isinstance(out["arr"], torch.Tensor) and out["arr"].tolist() == [0, 1, 2]
    arr[0] = 7  # a copy, not a view of the caller's array
    assert out["arr"].tolist() == [0, 1, 2]
    assert type(out["scalar"]) is float and out["scalar"] == 1.5
    assert out["n"] == 3 and out["path"] == str(Path("a/b")) and out["key"] == 1 and out[2] == "two"
    assert type(out["tup"]) is tuple and type(out["tup"][1]) is list and out["tup"][1][1] == (3,)
    assert type(out["version"]) is str and out["args"] == str(argparse.Namespace(a=1))
    # Arrays no tensor holds become lists of their converted items; big-endian numbers become native tensors.
    odd = weights_only_payload({"names": np.array(["a", "b"]), "objs": np.array([Path("p"), 2], dtype=object),
                                "big": np.array([1.5, -2.0], dtype=">f4")})
    assert odd["names"] == ["a", "b"] and odd["objs"] == [str(Path("p")), 2]
    assert odd["big"].dtype == torch.float32 and odd["big"].tolist() == [1.5, -2.0]
    save_torch_file(odd, tmp_path / "odd.pt")
    assert load_torch_file(tmp_path / "odd.pt", "a test file", weights_only=True)["names"] == ["a", "b"]

    path = tmp_path / "new" / "folder" / "x.pt"
    save_torch_file(payload, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.pt"]  # the temporary file was renamed into place
    back = load_torch_file(path, "a test file", weights_only=True)

    def interrupted(obj, f, *args, **kwargs):  # a save cut short: part of the bytes written, then an error
        Path(f).write_bytes(b"partial")
        raise RuntimeError("interrupted")

    saved = path.read_bytes()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "save", interrupted)
        with pytest.raises(RuntimeError, match="interrupted"):
            save_torch_file({"other": 1}, path)
    assert path.read_bytes() == saved  # the file under path is still the whole previous one
    assert back.keys() == out.keys() and torch.equal(back["w"], out["w"]) and back["tup"] == out["tup"]
    # load_kwargs reach torch.load: weights_only=False reads what a weights-only load refuses
    torch.save(argparse.Namespace(a=1), tmp_path / "ns.pt")
    assert load_torch_file(tmp_path / "ns.pt", "a namespace", weights_only=False).a == 1
    with pytest.raises(ValueError, match="is not a namespace"):
        load_torch_file(tmp_path / "ns.pt", "a namespace", weights_only=True)
    with pytest.raises(FileNotFoundError):
        load_torch_file(tmp_path / "missing.pt", "a test file")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="is not a test file"):
        load_torch_file(tmp_path / "cut.pt", "a test file")
    with pytest.raises(ValueError, match="IsADirectoryError"):  # an OSError other than FileNotFoundError
        load_torch_file(tmp_path, "a test file")

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    inner = torch.nn.Linear(2, 2)
    assert unwrap_model(Wrapper(inner)) is inner and unwrap_model(inner) is inner


def _rasterise_one(kind, params, shift):
    from gpuph.apps import voxel_shapes

    one = {k: v if isinstance(v, torch.Tensor) else torch.tensor([v], dtype=torch.float64) for k, v in params.items()}
    out = torch.empty(1, 32**3)
    eye, ones = torch.eye(3, dtype=torch.float64)[None], torch.ones(1, 3, dtype=torch.float64)
    voxel_shapes._rasterise(kind, one, eye, torch.tensor([shift], dtype=torch.float64), ones, out)
    return out.view(32, 32, 32)


def test_rasterised_torus_is_its_formula_at_voxel_centres():
    """A voxel is filled when its centre (index - 15.5 from the grid's centre) lies in (rho - R)^2 + z^2 <= r^2, the
    torus turning about axis 0 (rotation identity, no shift); also for a horn torus (r > R), whose centre is solid."""
    c = torch.arange(32, dtype=torch.float64) - 15.5
    p = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1)
    rho = p[..., 1:].norm(dim=-1)
    for big, small, betti in [(8.0, 2.7, (1, 1, 0)), (3.0, 4.2, (1, 0, 0))]:
        v = _rasterise_one("torus", {"R": big, "r": small}, [0.0, 0.0, 0.0])
        assert torch.equal(v.bool(), (rho - big) ** 2 + p[..., 0] ** 2 <= small * small)
        assert _betti(v.numpy()) == betti


@pytest.mark.parametrize("n_slats", [0, 1, 2, 3])
def test_slatted_chair_back_has_a_window_between_every_two_slats(n_slats):
    """A wide slatted back (inner width 20 - 2 * 2.5 = 15, slats 2.5 wide) keeps a window between every two slats and
    posts: n_slats + 1 tunnels."""
    from gpuph.apps.voxel_shapes import _FLOOR

    params = {"w": 20, "d": 14, "seat_h": 9, "seat_t": 2.5, "leg_t": 3, "leg_round": torch.tensor([False]),
              "leg_inset": 0.5, "back_h": 12, "back_t": 2.5, "slatted": torch.tensor([True]), "post_w": 2.5,
              "rail_h": 2.5, "n_slats": float(n_slats), "slat_w": 2.5}
    v = _rasterise_one("chair", params, [_FLOOR, 0.0, 0.0])
    assert _betti(v.numpy()) == (1, n_slats + 1, 0)
    # One row across the back (layer 16: height 15, in the window; axis-1 index 10: inside the back panel), centres
    # h2 = j - 15.5: the posts fill |h2| in [7.5, 10] (4 voxels, the window's edges +-7.5 open), and a slat at c fills
    # |h2 - c| <= 1.25: c = 0 -> 2 voxels; c = +-2.5 -> 3 each; c = +-3.75 -> 3 each (and 0 -> 2).
    assert int(v[16, 10].sum()) == [4, 6, 10, 12][n_slats]


def test_dataset_items_are_float32():
    item, label = VoxelShapes(2, seed=0)[1]
    assert item.dtype == torch.float32 and item.shape == (1, 32, 32, 32) and isinstance(label, int)


def test_furniture_and_lamps_stand_on_the_floor_layer():
    """Axis 0 is vertical and points up: chairs, tables and lamps stand on layer 1 (one layer of air below)."""
    x = make_shapes(12, seed=2, classes=["chair", "table", "lamp"])[:, 0]
    per_layer = x.sum((2, 3))  # (n, 32) filled voxels per horizontal layer
    assert bool((per_layer[:, 0] == 0).all()) and bool((per_layer[:, 1] > 0).all())
