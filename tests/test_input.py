"""Input handling (strides, numpy, dtypes, no mutation) and clear errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import CONSTRUCTIONS, check_against_reference, check_critical_pixels

import gpuph

FIELDS = ("pairs", "dim", "batch", "birth_index", "death_index")


def _assert_same(a: gpuph.Diagrams, b: gpuph.Diagrams) -> None:
    for f in FIELDS:
        ta, tb = getattr(a, f), getattr(b, f)
        assert torch.equal(ta.detach(), tb.detach()), f
    assert a.batch_size == b.batch_size
    assert tuple(a.spatial_shape) == tuple(b.spatial_shape)
    assert tuple(a.batch_shape) == tuple(b.batch_shape)


# ---------------------------------------------------------------------------------------------- layouts
def _views():
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 6, (4, 12, 10, 6), generator=g).double()
    base = base + torch.rand(base.shape, generator=g, dtype=torch.float64) * (base > 2)
    return [
        ("transposed", base[0].transpose(0, 1), 2),
        ("transposed-batch", base[..., 0].transpose(1, 2), 2),
        ("permuted-3d", base.permute(0, 3, 1, 2), 3),
        ("strided-slice", base[:, ::2, 1::3, ::2], 3),
        ("negative-flip", base.flip(1)[:, :, :, 0], 2),
        ("column", base[:, :, 3, 2], 1),
        ("expanded-batch", base[:1, :, :, 0].expand(5, 12, 10), 2),
        ("channels-last", base.to(memory_format=torch.channels_last), 2),
        ("channels-last-3d", base[None].to(memory_format=torch.channels_last_3d), 3),
        ("as-strided-overlap", torch.as_strided(base.reshape(-1)[:200], (3, 7, 8), (20, 9, 1)), 2),
    ]


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("name,x,sd", _views(), ids=[v[0] for v in _views()])
def test_non_contiguous_equals_contiguous(name, x, sd, construction):
    for superlevel in (True, False):
        a = gpuph.cubical_persistence(x, spatial_dims=sd, construction=construction, superlevel=superlevel)
        b = gpuph.cubical_persistence(x.contiguous(), spatial_dims=sd, construction=construction,
                                      superlevel=superlevel)
        _assert_same(a, b)
        check_critical_pixels(x, a)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_channels_last_gradients(construction):
    base = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    x = base.to(memory_format=torch.channels_last).requires_grad_()
    y = base.clone().requires_grad_()
    a = gpuph.cubical_persistence(x, spatial_dims=2, construction=construction)
    b = gpuph.cubical_persistence(y, spatial_dims=2, construction=construction)
    _assert_same(a, b)
    a.finite().pairs.sum().backward()
    b.finite().pairs.sum().backward()
    assert torch.equal(x.grad, y.grad)


# ---------------------------------------------------------------------------------------------- numpy
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_input(dtype):
    a = np.random.default_rng(0).random((3, 8, 9)).astype(dtype)
    dgm = gpuph.cubical_persistence(a)
    ref = gpuph.cubical_persistence(torch.from_numpy(a.copy()))
    _assert_same(dgm, ref)
    assert dgm.pairs.dtype == torch.from_numpy(a).dtype


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a.transpose(0, 2, 1),
        lambda a: a[:, ::2, 1::2],
        lambda a: a[:, ::-1],
        lambda a: np.flip(a, axis=2),
        lambda a: a[::-1, ::-2, ::3],
        lambda a: np.asfortranarray(a),
    ],
    ids=["transposed", "strided", "negative-stride", "flip", "negative-mixed", "fortran"],
)
def test_numpy_non_contiguous(view):
    a = np.random.default_rng(1).integers(0, 5, size=(3, 10, 9)).astype(np.float64)
    v = view(a)
    expected = gpuph.cubical_persistence(torch.from_numpy(np.ascontiguousarray(v)))
    _assert_same(gpuph.cubical_persistence(v), expected)


def test_numpy_read_only_input():
    a = np.random.default_rng(2).random((2, 6, 7))
    a.setflags(write=False)
    before = a.copy()
    dgm = gpuph.cubical_persistence(a)
    _assert_same(dgm, gpuph.cubical_persistence(torch.from_numpy(before.copy())))
    assert np.array_equal(a, before)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">f2"])
def test_big_endian_numpy_input_is_read_as_its_values(dtype):
    """torch.from_numpy refuses non-native byte orders: such arrays are copied to native order first (cubical,
    lower-star and point-cloud inputs all take arrays this way)."""
    rng = np.random.default_rng(7)
    a = rng.random((2, 6, 7)).astype(dtype)
    native = torch.from_numpy(a.astype(a.dtype.newbyteorder("=")))
    dgm, ref = gpuph.cubical_persistence(a), gpuph.cubical_persistence(native)
    assert dgm.pairs.dtype == native.dtype
    for name in ("pairs", "dim", "batch", "birth_index", "death_index"):
        assert torch.equal(getattr(dgm, name), getattr(ref, name)), name
    pts = rng.random((9, 2)).astype(dtype)
    got = gpuph.rips_persistence(pts, dims=(0, 1))
    want = gpuph.rips_persistence(torch.from_numpy(pts.astype(pts.dtype.newbyteorder("="))), dims=(0, 1))
    assert torch.equal(got.pairs, want.pairs) and torch.equal(got.dim, want.dim)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.complex128,
                                   np.longdouble])
def test_numpy_bad_dtypes(dtype):
    if np.dtype(dtype).itemsize == 8:  # longdouble is double on some platforms
        pytest.skip("longdouble is float64 here")
    with pytest.raises(TypeError, match="dtype"):
        gpuph.cubical_persistence(np.zeros((2, 4, 4), dtype=dtype))


def test_unsupported_input_type():
    with pytest.raises(TypeError):
        gpuph.cubical_persistence([[1.0, 2.0], [3.0, 4.0]])


def _sparse_coo(x):
    return x.to_sparse()


def _sparse_csr(x):
    return x.to_sparse_csr(dense_dim=x.dim() - 2)


def _nested(x):
    return torch.nested.nested_tensor(list(x))


LAYOUTS = {"sparse_coo": _sparse_coo, "sparse_csr": _sparse_csr, "nested": _nested}


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's notes that sparse CSR and nested tensors are in beta
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_non_dense_layouts_are_named_errors(layout):
    """Sparse and nested tensors get a TypeError that names the layout (torch's reshape or contiguous would fail deep
    inside with an unrelated message), from the cubical and the point-cloud functions, alone or in a list."""
    make, name = LAYOUTS[layout], layout
    grids = torch.rand(3, 5, 5)
    with pytest.raises(TypeError, match=name):
        gpuph.cubical_persistence(make(grids), spatial_dims=2)
    clouds = torch.rand(2, 6, 2)
    with pytest.raises(TypeError, match=name):
        gpuph.rips_persistence(make(clouds))
    with pytest.raises(TypeError, match=name):
        gpuph.weak_alpha_persistence(make(clouds))
    if layout != "nested":
        with pytest.raises(TypeError, match=name):
            gpuph.rips_persistence([clouds[0], make(clouds[1])])
    if layout == "sparse_coo":
        with pytest.raises(TypeError, match=name):
            gpuph.lower_star_persistence(make(torch.rand(4)), [[0, 1], [1, 2], [2, 3]])
        with pytest.raises(TypeError, match=name):
            gpuph.lower_star_persistence(torch.rand(4), make(torch.tensor([[0, 1], [1, 2], [2, 3]])))


def test_vmap_is_a_clear_error_and_the_advice_it_gives_holds():
    """torch.vmap cannot batch diagrams of different sizes: every entry point, and the op itself, raise an error that
    says so and what to do instead; torch.func.grad works (as autograd); a tensor vmap does not batch may still be
    used inside vmap; and the advice holds: the gradient of the sum of per-image losses is each image's own."""
    x = torch.rand(3, 7, 7, dtype=torch.float64)

    def loss(t):
        return gpuph.cubical_persistence(t).finite().lifetimes().pow(2).sum()

    clouds = torch.rand(3, 9, 2)
    for fn, arg in [
        (loss, x),
        (torch.func.grad(loss), x),
        (lambda p: gpuph.rips_persistence(p).pairs.sum(), clouds),
        (lambda p: gpuph.weak_alpha_persistence(p).pairs.sum(), clouds),
        (lambda v: gpuph.lower_star_persistence(v, [[0, 1], [1, 2]]).pairs.sum(), torch.rand(3, 3)),
        (lambda t: torch.ops.gpuph.cubical_pairs(t, 2, 0, True, 3).sum(), x),  # the op's own vmap rule
    ]:
        with pytest.raises(RuntimeError, match="vmap over persistence is not supported"):
            torch.vmap(fn)(arg)
    leaf = x.clone().requires_grad_()
    loss(leaf).backward()
    assert torch.equal(torch.func.grad(loss)(x), leaf.grad)
    fixed = x[0]
    assert torch.allclose(torch.vmap(lambda s: s * loss(fixed))(torch.arange(3.0, dtype=x.dtype)),
                          torch.arange(3.0, dtype=x.dtype) * loss(fixed))
    per_image = torch.stack([torch.func.grad(loss)(x[b : b + 1])[0] for b in range(3)])
    assert torch.equal(per_image, leaf.grad)


def test_meta_tensors_are_a_value_error():
    """A meta tensor has a shape but no values; the diagram (its size too) depends on the values."""
    for fn, x in [
        (gpuph.cubical_persistence, torch.empty(2, 4, 4, device="meta")),
        (gpuph.rips_persistence, torch.empty(5, 2, device="meta")),
        (gpuph.weak_alpha_persistence, torch.empty(5, 2, device="meta")),
    ]:
        with pytest.raises(ValueError, match="meta tensors have no values"):
            fn(x)


# ---------------------------------------------------------------------------------------------- no mutation
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_input_is_not_modified(construction, dtype):
    x = torch.randint(0, 4, (3, 7, 8)).to(dtype)
    x[0, 0, 0] = float("inf")
    x[1, 2, 3] = -float("inf")
    for y in (x, x.transpose(1, 2), x[:, ::2]):
        snapshot = y.clone()
        for superlevel in (True, False):
            gpuph.cubical_persistence(y, construction=construction, superlevel=superlevel)
        assert torch.equal(y, snapshot)
    a = x.float().numpy()
    snap = a.copy()
    gpuph.cubical_persistence(a, construction=construction)
    assert np.array_equal(a, snap)


def test_requires_grad_input_not_modified_and_leaf():
    x = torch.rand(2, 6, 6, requires_grad=True)
    snapshot = x.detach().clone()
    dgm = gpuph.cubical_persistence(x)
    assert x.is_leaf and x.grad is None
    assert dgm.pairs.requires_grad
    assert torch.equal(x.detach(), snapshot)
    check_critical_pixels(x, dgm)


def test_requires_grad_non_leaf_input():
    w = torch.rand(2, 6, 6, requires_grad=True)
    x = w * 2 - 1
    dgm = gpuph.cubical_persistence(x)
    dgm.finite().pairs.sum().backward()
    assert w.grad is not None
    assert torch.all(w.grad % 2 == 0)


def test_spatial_dims_argument_types():
    x = torch.rand(2, 5, 6)
    _assert_same(gpuph.cubical_persistence(x, spatial_dims=np.int64(2)), gpuph.cubical_persistence(x))


@pytest.mark.parametrize("dims", [0, 1, [0], [1], (0, 1), range(2), np.int64(1), [np.int32(0)], {1, 0},
                                  torch.tensor(1), torch.tensor([0, 1])])
def test_dims_argument_types(dims):
    x = torch.rand(2, 5, 6)
    dgm = gpuph.cubical_persistence(x, dims=dims)
    if isinstance(dims, torch.Tensor):
        dims = dims.tolist()
    wanted = {int(dims)} if isinstance(dims, (int, np.integer)) else {int(k) for k in dims}
    assert set(dgm.dim.tolist()) <= wanted
    full = gpuph.cubical_persistence(x)
    keep = torch.isin(full.dim, torch.tensor(sorted(wanted)))
    assert torch.equal(dgm.pairs, full.pairs[keep])


@pytest.mark.parametrize("dims", [0.5, [1.0], [True], True, torch.tensor(0.5), torch.tensor([True]), "01"])
def test_bad_dims_types(dims):
    with pytest.raises(TypeError, match="dims must"):
        gpuph.cubical_persistence(torch.rand(2, 5, 6), dims=dims)


@pytest.mark.parametrize("superlevel", ["no", None, 0, 1.0, torch.tensor(True)])
def test_superlevel_must_be_a_bool(superlevel):
    from gpuph.compat.topologylayer.nn import LevelSetLayer1D, LevelSetLayer2D

    with pytest.raises(TypeError, match="superlevel must be a bool"):
        gpuph.cubical_persistence(torch.rand(2, 5, 6), superlevel=superlevel)
    with pytest.raises(TypeError, match="superlevel must be a bool"):
        gpuph.nn.TopologyLoss(dim=0, superlevel=superlevel)
    with pytest.raises(TypeError, match="sublevel must be a bool"):
        gpuph.lower_star_persistence(torch.rand(3), torch.tensor([[0, 1], [1, 2]]), sublevel=superlevel)
    for layer, size in ((LevelSetLayer2D, (4, 4)), (LevelSetLayer1D, 4)):
        with pytest.raises(TypeError, match="sublevel must be a bool"):
            layer(size, sublevel=superlevel)
    dgm = gpuph.cubical_persistence(torch.rand(2, 5, 6), superlevel=np.bool_(False))
    assert not dgm.superlevel


def test_infinite_values_are_valid():
    x = torch.tensor([[[float("inf"), 0.0, -float("inf")], [1.0, float("inf"), 2.0]]])
    for construction in CONSTRUCTIONS:
        for superlevel in (True, False):
            check_against_reference(x, construction, superlevel)


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("where", [(0, 0, 0), (2, 3, 4), (1, 6, 7)])
def test_nan_is_an_error(dtype, where):
    x = torch.rand(3, 7, 8).to(dtype)
    x[where] = float("nan")
    for construction in CONSTRUCTIONS:
        for superlevel in (True, False):
            with pytest.raises(ValueError, match="NaN"):
                gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)


@pytest.mark.parametrize("dims", [[0], [1], [0, 1]])
def test_nan_is_an_error_whatever_dims(dims):
    x = torch.rand(2, 5, 5)
    x[1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gpuph.cubical_persistence(x, dims=dims)


def test_nan_error_numpy_and_requires_grad_and_views():
    a = np.random.default_rng(0).random((2, 5, 5))
    a[1, 4, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gpuph.cubical_persistence(a)
    x = torch.from_numpy(a).requires_grad_()
    with pytest.raises(ValueError, match="NaN"):
        gpuph.cubical_persistence(x)
    with pytest.raises(ValueError, match="NaN"):
        gpuph.cubical_persistence(x.transpose(1, 2))
    # NaN only in a part of the storage that the view does not cover is not in the input.
    dgm = gpuph.cubical_persistence(torch.from_numpy(a)[:, :4, :4])
    assert dgm.batch_size == 2


def test_nan_in_1d_and_3d():
    for shape in [(2, 9), (2, 3, 4, 5)]:
        x = torch.rand(shape)
        x.view(-1)[-1] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            gpuph.cubical_persistence(x)


@pytest.mark.parametrize(
    "dtype",
    [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.complex64, torch.complex128],
    ids=str,
)
def test_bad_dtypes(dtype):
    x = torch.zeros(2, 4, 4, dtype=dtype)
    with pytest.raises(TypeError, match="dtype"):
        gpuph.cubical_persistence(x)


@pytest.mark.parametrize("shape,sd", [((2, 4, 4), 0), ((2, 2, 2, 2, 2), 4), ((4, 4), 3), ((5,), 2), ((2, 3), -1),
                                      ((2, 4), True), ((2, 4), False)])
def test_bad_spatial_dims(shape, sd):
    with pytest.raises(ValueError, match="spatial_dims"):
        gpuph.cubical_persistence(torch.rand(shape), spatial_dims=sd)


@pytest.mark.parametrize("shape", [(5,), ()])
def test_default_spatial_dims_needs_a_batch_axis(shape):
    # The default spatial_dims is x.dim() - 1: a bare 1D signal (or a scalar) has no grid axes left.
    with pytest.raises(ValueError, match="spatial_dims"):
        gpuph.cubical_persistence(torch.rand(shape))


def test_too_many_default_spatial_dims():
    with pytest.raises(ValueError, match="spatial_dims"):
        gpuph.cubical_persistence(torch.rand(1, 2, 2, 2, 2))


@pytest.mark.parametrize("sd,dims", [(1, 1), (2, 2), (2, [0, 2]), (3, 3), (3, -1), (2, [-1]), (1, [0, 1])])
def test_dims_out_of_range(sd, dims):
    x = torch.rand(2, *([4] * sd))
    with pytest.raises(ValueError, match="dimension"):
        gpuph.cubical_persistence(x, dims=dims)


@pytest.mark.parametrize("construction", ["v", "t", "Freudenthal", "cubical", "", "V "])
def test_unknown_construction(construction):
    with pytest.raises(ValueError, match="construction"):
        gpuph.cubical_persistence(torch.rand(2, 4, 4), construction=construction)
    with pytest.raises(ValueError, match="construction"):
        gpuph.nn.CubicalPersistence(construction=construction)


@pytest.mark.parametrize("shape,sd", [((2, 0), 1), ((2, 0, 5), 2), ((2, 5, 0), 2), ((1, 3, 0, 3), 3), ((0,), 1),
                                      ((0, 0, 4), 2)])
def test_empty_grid(shape, sd):
    with pytest.raises(ValueError, match="empty"):
        gpuph.cubical_persistence(torch.rand(shape), spatial_dims=sd)


@pytest.mark.parametrize(
    "shape,sd",
    [((1, 50000, 50000), 2), ((50000, 50000), 2), ((2, 3, 50000, 50000), 2), ((1, 1300, 1300, 1300), 3),
     ((1, 2**31), 1), ((1, 2**31 - 2), 1), ((1, 2**31 - 3), 1), ((1, 3, 2**30), 2)],
    ids=str,
)
def test_grid_past_index_limit_without_allocating(shape, sd):
    # A zero-stride view of one element: no memory behind it. A check that allocates or copies first would take GBs.
    x = torch.empty(1).expand(*shape)
    assert x.untyped_storage().nbytes() == 4
    with pytest.raises(ValueError, match="index limit"):
        gpuph.cubical_persistence(x, spatial_dims=sd)
    y = torch.empty_strided(shape, (0,) * len(shape))
    with pytest.raises(ValueError, match="index limit"):
        gpuph.cubical_persistence(y, spatial_dims=sd)


def test_index_limit_boundary():
    """The padded grid (a border pixel on each side) may hold 2**31 - 2 pixels, no more, in every dimension."""
    from gpuph.cubical import MAX_PADDED_PIXELS, check_index_limit

    assert MAX_PADDED_PIXELS == 2**31 - 2 == 2 * 3 * 3 * 7 * 11 * 31 * 151 * 331
    for at_limit in [(2**31 - 4,), (42966 - 2, 49981 - 2), (126 - 2, 341 - 2, 49981 - 2)]:
        assert math.prod(s + 2 for s in at_limit) == MAX_PADDED_PIXELS
        check_index_limit(at_limit)
        past = (*at_limit[:-1], at_limit[-1] + 1)
        with pytest.raises(ValueError, match="index limit"):
            check_index_limit(past)
        with pytest.raises(ValueError, match="index limit"):
            gpuph.cubical_persistence(torch.empty(1).expand(1, *past), spatial_dims=len(past))


def test_nan_check_and_index_limit_order():
    # Shape errors are reported before anything reads the data (the expanded tensor holds NaN).
    x = torch.full((1,), float("nan")).expand(1, 50000, 50000)
    with pytest.raises(ValueError, match="index limit"):
        gpuph.cubical_persistence(x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_nan_variants_are_errors(dtype):
    """Negative NaN and NaNs with other payloads are NaN too."""
    int_dtype = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
                 torch.float64: torch.int64}[dtype]
    for fill in ("neg", "payload", "all"):
        x = torch.rand(2, 5, 6).to(dtype)
        if fill == "neg":
            x[1, 3, 3] = -float("nan")
        elif fill == "payload":
            x.view(int_dtype)[0, 4, 5] = -1  # all bits set: a negative NaN with a full payload
        else:
            x[0] = float("nan")
        assert torch.isnan(x).any()
        with pytest.raises(ValueError, match="NaN"):
            gpuph.cubical_persistence(x)


class _DLPackOnly:
    """An array from another library: it only speaks DLPack."""

    def __init__(self, t: torch.Tensor) -> None:
        self._t = t

    def __dlpack__(self, *args, **kwargs):
        return self._t.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._t.__dlpack_device__()


def test_dlpack_input():
    x = torch.randint(0, 4, (3, 6, 7)).float()
    dgm = gpuph.cubical_persistence(_DLPackOnly(x))
    _assert_same(dgm, gpuph.cubical_persistence(x.clone()))


@pytest.mark.parametrize(
    "cuda_message",
    ["CUDA error: no kernel image is available for execution on the device", "CUDA error: invalid device function"],
)
def test_kernels_built_for_other_gpus_say_how_to_rebuild(cuda_message, monkeypatch):
    """A launch that finds no code for the GPU (gpuph built for other architectures) names the GPU, its compute
    capability and the rebuild, and keeps CUDA's message; other errors pass through unchanged."""
    from gpuph.cubical import _missing_kernels_context

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 3090")
    with pytest.raises(RuntimeError) as info:
        with _missing_kernels_context(torch.device("cuda", 1)):
            raise RuntimeError(f"gpuph: error in keys: {cuda_message}")
    message = str(info.value)
    assert message.startswith("gpuph: this build's CUDA kernels hold no code for NVIDIA GeForce RTX 3090 (compute "
                              "capability 8.6)")
    assert 'TORCH_CUDA_ARCH_LIST="8.6"' in message and message.endswith(cuda_message)
    with pytest.raises(RuntimeError, match="^gpuph: error in keys: an illegal memory access was encountered$"):
        with _missing_kernels_context(torch.device("cuda", 1)):
            raise RuntimeError("gpuph: error in keys: an illegal memory access was encountered")


@pytest.mark.parametrize(("shape", "dims", "h1_hint"), [((2, 9, 8, 7), None, True), ((3, 5, 6), (0,), False)])
def test_out_of_memory_names_the_call_and_what_to_do(shape, dims, h1_hint):
    """The allocator's out-of-memory error comes back with the call's batch, grid, dims and construction, advice,
    and the allocator's own message (the CUDA path wraps its kernels in this context)."""
    from gpuph.cubical import _out_of_memory_context

    work = torch.zeros(shape)
    sd = len(shape) - 1
    mask = sum(1 << k for k in (range(sd) if dims is None else dims))
    with pytest.raises(torch.OutOfMemoryError) as info:
        with _out_of_memory_context(work, sd, "freudenthal", mask):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
    message = str(info.value)
    grid = "x".join(str(s) for s in shape[1:])
    assert f"batch of {shape[0]} grids of {grid} float32" in message and "'freudenthal'" in message
    assert "Tried to allocate 3.00 GiB" in message and "one grid alone does not fit" in message
    assert ("leave out H1" in message) == h1_hint
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    with _out_of_memory_context(work, sd, "V", mask):  # other errors pass through unchanged
        pass
    with pytest.raises(ValueError, match="^other$"):
        with _out_of_memory_context(work, sd, "V", mask):
            raise ValueError("other")
