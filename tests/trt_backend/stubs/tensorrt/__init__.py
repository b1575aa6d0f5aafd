"""Test stub, NOT TensorRT: the slice of TensorRT 10's Python API that `edge build` and backend selection call.

It lets CI exercise our build flow (cache keys, stale engines, --rebuild, FP16 flag vs strongly typed
network by version, timing cache, progress) without NVIDIA's libraries. It proves nothing about
TensorRT itself. Each builder call is appended as a JSON line to $STUB_TRT_LOG.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__version__ = os.environ.get("STUB_TRT_VERSION", "10.3.0")


def _log(**event: object) -> None:
    if os.environ.get("STUB_TRT_LOG"):
        with open(os.environ["STUB_TRT_LOG"], "a") as f:
            f.write(json.dumps(event) + "\n")


class Logger:
    WARNING = 2

    def __init__(self, severity: int = WARNING) -> None:
        self.severity = severity


class NetworkDefinitionCreationFlag:
    STRONGLY_TYPED = 5


class BuilderFlag:
    FP16 = 0


class MemoryPoolType:
    WORKSPACE = 0


class TensorIOMode:
    INPUT = 1
    OUTPUT = 2


class IProgressMonitor:
    def __init__(self) -> None:
        pass


class _Network:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.onnx = ""


class OnnxParser:
    def __init__(self, network: _Network, logger: Logger) -> None:
        self.network = network
        self.num_errors = 0

    def parse_from_file(self, path: str) -> bool:
        self.network.onnx = path
        return Path(path).is_file()


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data + b"+"


class _Config:
    def __init__(self) -> None:
        self.flags: list[int] = []
        self.cache: _TimingCache | None = None
        self.progress_monitor: IProgressMonitor | None = None

    def set_flag(self, flag: int) -> None:
        self.flags.append(flag)

    def set_memory_pool_limit(self, pool: int, size: int) -> None:
        pass

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache(bytes(data))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self.cache = cache
        return True

    def get_timing_cache(self) -> _TimingCache:
        return self.cache


class Builder:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> _Network:
        return _Network(flags)

    def create_builder_config(self) -> _Config:
        return _Config()

    def build_serialized_network(self, network: _Network, config: _Config) -> bytes:
        monitor = config.progress_monitor
        monitor.phase_start("Building engine", None, 2)
        for step in range(2):
            monitor.step_complete("Building engine", step)
        monitor.phase_finish("Building engine")
        typed = bool(network.flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        _log(onnx=network.onnx, strongly_typed=typed, fp16_flag=BuilderFlag.FP16 in config.flags,
             timing_cache=len(config.cache.data))
        return f"stub-engine {network.onnx}".encode()


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger
