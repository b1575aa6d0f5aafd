"""NVIDIA's real TensorRT Python bindings on a machine without TensorRT: wheels cached outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STUBS = HERE / "stubs"

# NVIDIA's TensorRT Python bindings without the engine libraries: PyPI wheels (cp310, cp311) whose
# tensorrt_bindings/tensorrt.so imports once placeholder libraries with the sonames it links are found.
BINDING_VERSIONS = ("10.3.0", "10.12.0.36", "11.4.0.106")  # JetPack 6; BuilderFlag.FP16 deprecated; removed
PLACEHOLDERS = {  # library -> C entry points tensorrt.so imports from it (readelf/nm -D of the 10.3-11.4 wheels)
    "libnvinfer": ["createInferBuilder_INTERNAL", "createInferRuntime_INTERNAL", "createInferRefitter_INTERNAL",
                   "getPluginRegistry", "getBuilderPluginRegistry"],
    "libnvonnxparser": ["createNvOnnxParser_INTERNAL", "createNvOnnxParserRefitter_INTERNAL", "getNvOnnxParserVersion"],
    "libnvinfer_plugin": ["initLibNvInferPlugins"],
}


def bindings_cache() -> Path:
    """Outside the repository, kept between runs: $EDGE_TEST_CACHE, else ~/.cache/edge-tests."""
    base = os.environ.get("EDGE_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edge-tests")
    return Path(base) / "tensorrt-bindings"


def tensorrt_bindings(version: str) -> dict[str, str]:
    """Environment (PYTHONPATH, LD_LIBRARY_PATH) importing the real `tensorrt_bindings` of `version`; skip where
    no wheel exists for this Python. Downloads the wheel and compiles the placeholders once."""
    if sys.platform != "linux" or sys.version_info[:2] not in ((3, 10), (3, 11)):
        pytest.skip(f"tensorrt-cu12-bindings has wheels for CPython 3.10/3.11 on Linux only, not {sys.version.split()[0]}"
                    f" on {sys.platform}")
    root = bindings_cache() / f"{version}-cp{sys.version_info[0]}{sys.version_info[1]}"
    done = root / ".ready"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        (root / "wheel").mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--dest", str(root), f"tensorrt-cu12-bindings=={version}"], check=True, timeout=300)
        wheel = next(root.glob("tensorrt_cu12_bindings-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(root / "wheel")
        soname = version.split(".")[0]
        (root / "lib").mkdir()
        for lib, symbols in PLACEHOLDERS.items():
            source = root / f"{lib}.c"
            source.write_text("".join(f"int {s}(void) {{ return 0; }}\n" for s in symbols))
            subprocess.run(["cc", "-shared", "-fPIC", f"-Wl,-soname,{lib}.so.{soname}", "-o",
                            str(root / "lib" / f"{lib}.so.{soname}"), str(source)], check=True, timeout=120)
        done.touch()
    return {"PYTHONPATH": os.pathsep.join([str(root / "wheel"), str(HERE), str(STUBS), str(REPO)]),
            "LD_LIBRARY_PATH": str(root / "lib")}


# NVIDIA's cuda-python runtime bindings import without a GPU (calls then return an error code).
CUDA_BINDINGS = {"12": "cuda-bindings>=12.6,<13", "13": "cuda-bindings>=13,<14"}  # JetPack 6's pin; CUDA 13


def cuda_bindings(major: str) -> dict[str, str]:
    """Environment (PYTHONPATH) importing the real `cuda.bindings` of that major version, cached like the above."""
    if sys.platform != "linux":
        pytest.skip("the cuda-bindings wheels tested here are Linux ones")
    root = bindings_cache().parent / f"cuda-bindings-{major}-cp{sys.version_info[0]}{sys.version_info[1]}"
    done = root / ".ready"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        (root / "site").mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--dest", str(root), CUDA_BINDINGS[major], "cuda-pathfinder"], check=True, timeout=300)
        for wheel in root.glob("*.whl"):
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(root / "site")
        done.touch()
    return {"PYTHONPATH": os.pathsep.join([str(root / "site"), str(HERE), str(REPO)])}
