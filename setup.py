"""Onboard policy runtime: LeRobot policies exported to ONNX/TensorRT, run torch-free on a Dynamixel arm.

The one home of the metadata (version included); pyproject.toml only names the build backend.
"""

from setuptools import find_packages, setup

setup(
    name="edge-policy-runtime",
    version="0.1.0",
    description="Run LeRobot ACT / Diffusion / VQ-BeT policies on an embedded arm without PyTorch",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["edge", "edge.*", "export", "export.*",
                                    "firmware_bridge", "firmware_bridge.*",
                                    "calibration", "calibration.*"]),
    # Listed by kind, so nothing a checkout accumulates (engines, caches) rides along; tests/test_packaging.py
    # checks every file the bundled manifests name is in the wheel.
    package_data={"edge": ["data/demo_*/*.json", "data/demo_*/*.onnx", "data/demo_*/*.npz", "data/tensorrt/*.json",
                           "data/robots/*.yaml"]},
    install_requires=[
        "numpy>=1.23",
        # Not on a Jetson (aarch64 with a "-tegra" kernel, e.g. 5.15.136-tegra): it keeps NVIDIA's onnxruntime-gpu,
        # which `onnxruntime` would overwrite (both write the same module); there `edge` names the one command that
        # installs onnxruntime-gpu for its JetPack. Every other machine, aarch64 included (Raspberry Pi, Graviton),
        # gets PyPI's CPU build. tests/test_packaging.py evaluates the marker on the three kinds of machine.
        "onnxruntime>=1.17; platform_machine != 'aarch64' or 'tegra' not in platform_release",
        "onnx>=1.15",  # reading graphs for the TensorRT compatibility check (edge check, edge build)
        "pyserial>=3.5",
        "dynamixel-sdk>=3.7.31",
        "pyyaml>=5.4",
    ],
    extras_require={
        # Workstation side. Install `torch==2.13.0` first to get the CPU build.
        "export": ["torch>=2.1", "onnx>=1.15", "onnxscript>=0.1", "safetensors>=0.4"],
        # TensorRT itself comes with JetPack on a Jetson (python3-libnvinfer); cuda-python 13 targets CUDA 13,
        # JetPack 6 ships CUDA 12.6. Install `cuda-python>=13` yourself on a CUDA 13 machine.
        "tensorrt": ["tensorrt>=10.3", "cuda-python>=12.6,<13"],
        "plot": ["matplotlib>=3.5"],
        # Cameras in the robot file. A robot whose image already has OpenCV (JetPack's, built with GStreamer for
        # CSI cameras) needs nothing: `import cv2` working is enough.
        "camera": ["opencv-python-headless>=4.5"],
        # `edge serve`: PyTriton ships tritonserver with its Python backend (manylinux_2_35 x86_64/aarch64); it needs
        # numpy < 2, so give the server a venv of its own. The robot side (`edge run --server`) needs only [remote].
        "serve": ["nvidia-pytriton>=0.7,<0.8", "numpy<2", "tritonclient[grpc]>=2.40"],
        "remote": ["tritonclient[grpc]>=2.40"],
        # `edge run --record`: LeRobot datasets v3.0 (parquet + MP4), torch-free; both have cp310 aarch64 wheels.
        "record": ["pyarrow>=14", "av>=14"],
        # `edge run --display`: LeRobot's rerun pin; the viewer's version must match (docs/recording.md).
        "display": ["rerun-sdk>=0.26,<0.27"],
        "test": ["pytest>=7", "safetensors>=0.4", "diffusers>=0.27", "onnx>=1.15", "scipy>=1.7", "matplotlib>=3.5",
                 "opencv-python-headless>=4.5", "pyarrow>=14", "av>=14", "rerun-sdk>=0.26,<0.27",
                 "packaging>=22",  # tests/test_packaging.py evaluates the onnxruntime marker
                 "tritonclient[grpc]>=2.40",  # the robot side of tests/serve
                 "setuptools>=61", "wheel"],  # tests/test_packaging.py builds the wheel without build isolation
    },
    entry_points={
        "console_scripts": [
            "edge=edge.cli:main",
            "edge-export=export.cli:main",
        ],
    },
)
