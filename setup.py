"""Build of gpuph: a torch C++ extension (CPU sources always; CUDA sources when torch has CUDA and nvcc is found).

Install into an environment that already has torch:  pip install --no-build-isolation -e .
Set GPUPH_NO_CUDA=1 to skip the CUDA sources on a machine with CUDA torch, GPUPH_DEBUG=1 to keep debug information.
"""

import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(HERE, "kernels")

cpu_sources = sorted(glob.glob(os.path.join("gpuph", "csrc", "*.cpp")))
cuda_sources = sorted(glob.glob(os.path.join("kernels", "*.cu")))
use_cuda = (
    torch.version.cuda is not None
    and CUDA_HOME is not None
    and os.environ.get("GPUPH_NO_CUDA", "0") != "1"
)


def default_cuda_arches(cuda: str) -> str:
    """The GPU architectures to build for where TORCH_CUDA_ARCH_LIST is unset and no GPU is visible (a container or
    build host): torch would take the visible GPUs' and fail on none. Turing (T4) to Blackwell as far as this CUDA
    compiles them (sm_80 code runs on 8.6 and 8.9 too), and PTX of the newest, which later GPUs compile when loading."""
    version = tuple(int(v) for v in cuda.split(".")[:2])
    arches = ["7.5", "8.0"] + (["9.0"] if version >= (11, 8) else []) + (["10.0", "12.0"] if version >= (12, 8) else [])
    return ";".join(arches) + "+PTX"


if use_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST") and torch.cuda.device_count() == 0:
    os.environ["TORCH_CUDA_ARCH_LIST"] = default_cuda_arches(torch.version.cuda)
    print(f"gpuph: no GPU visible and TORCH_CUDA_ARCH_LIST unset: building the kernels for "
          f"{os.environ['TORCH_CUDA_ARCH_LIST']} (set TORCH_CUDA_ARCH_LIST to choose)")

cxx_flags = ["-O3", "-fopenmp"]  # at::parallel_for is inline: without OpenMP here it would run serially
if os.environ.get("GPUPH_DEBUG", "0") != "1":
    # Python's own CFLAGS carry -g: without it the CPU build takes 40% less time and 1.4 MB instead of 45.
    cxx_flags.append("-g0")
if use_cuda:
    extension = CUDAExtension(
        "gpuph._C",
        cpu_sources + cuda_sources,
        include_dirs=[KERNELS],
        define_macros=[("GPUPH_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
        extra_link_args=["-fopenmp"],
    )
else:
    extension = CppExtension(
        "gpuph._C",
        cpu_sources,
        include_dirs=[KERNELS],
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
    )

setup(
    name="gpuph",
    version="0.1.0",
    description="Exact, batched, differentiable persistent homology of images and voxel grids for PyTorch",
    packages=find_packages(include=["gpuph", "gpuph.*"]),
    package_data={"gpuph": ["data/*.npz", "data/*.md", "data/*.pt"]},
    python_requires=">=3.9",
    install_requires=["torch>=2.1", "numpy"],
    extras_require={
        "test": ["pytest", "pytest-xdist", "hypothesis", "gudhi", "cripser", "scipy", "pot", "ripser", "matplotlib",
                 "tqdm"],
        "distances": ["scipy"],  # bottleneck_distance
        "pointcloud": ["scipy"],  # weak_alpha_persistence (Delaunay)
        "demo": ["matplotlib", "tqdm", "scipy"],
        "bench": ["gudhi", "cripser", "scipy", "matplotlib", "tqdm", "giotto-ph", "torch-topological"],
    },
    ext_modules=[extension],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
