"""Write one benchmark's table into benchmarks/RESULTS.md, replacing only that benchmark's section."""

from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is rewritten by the script named in it; numbers are from one run on the machine stated.\n"


def machine() -> str:
    """A one-line description of the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def write_section(name: str, title: str, script: str, body: str) -> None:
    """Replace (or append) the section `name` of RESULTS.md with `body`, stamped with machine and date."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    stamp = f"_{script}, {datetime.date.today().isoformat()}, {machine()}_"
    section = f"<!-- section:{name} -->\n## {title}\n\n{stamp}\n\n{body.strip()}\n<!-- /section:{name} -->"
    pattern = re.compile(rf"<!-- section:{re.escape(name)} -->.*?<!-- /section:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def publish(name: str, title: str, script: str, body: str, write: bool = True) -> None:
    """Print a benchmark's table and, unless `write` is False (--no-write), put it into its RESULTS.md section."""
    print(body)
    if write:
        write_section(name, title, script, body)
