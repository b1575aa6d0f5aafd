"""Serving policy packages from NVIDIA Triton Inference Server (extra [serve]): `edge serve`."""
