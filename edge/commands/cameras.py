"""`edge cameras`: what OpenCV can open here (indices, /dev/video*), with default size, rate and format.

Also says whether this OpenCV can open GStreamer pipelines, which Jetson CSI cameras need (JetPack's OpenCV can;
the pip wheel cannot). Use what it prints for a robot file's `cameras:` entry.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `cameras`."""
    return subparsers.add_parser("cameras", help="list the cameras OpenCV can open here",
                                 description=__doc__.split("\n\n")[0])


def run(args: argparse.Namespace) -> int:
    """Probe each device once and print one line per camera found."""
    from edge.robot.cameras import list_cameras

    found, gstreamer = list_cameras()
    for cam in found:
        print(f"{cam['source']}: {cam['width']}x{cam['height']} at {cam['fps']:g} fps, fourcc {cam['fourcc'] or '?'} "
              f"({cam['backend']})")
    if not found:
        print("no camera could be opened (none connected, or no permission on /dev/video*)")
    print("GStreamer pipelines (Jetson CSI cameras): " + ("supported by this OpenCV" if gstreamer else
          "NOT supported by this OpenCV (the pip wheel lacks GStreamer; use JetPack's system OpenCV)"))
    return 0
