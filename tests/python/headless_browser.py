"""Headless Chromium for the page tests: find (or, as root on Debian, install) it, dump the DOM
after the page's scripts ran, take screenshots, and read PNG files without PIL."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from traffic_anomalies import PROJECT_DIR

ARTIFACTS = PROJECT_DIR / "target" / "test-artifacts"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--disable-dev-shm-usage",
)


def chromium() -> str:
    """The chromium binary; installed with apt-get when missing and we are root, else skip."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium is not installed and cannot be installed here "
                    "(needs root and apt-get: `apt-get install -y chromium`)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        result = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True, text=True)
    found = shutil.which("chromium")
    if result.returncode != 0 or not found:
        pytest.skip(f"could not install chromium with apt-get: {result.stderr[-500:]}")
    return found


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="ta-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout,
        )


def dump_dom(url: str, budget_ms: int = 15000, window: str = "1400,1000") -> str:
    """The DOM after the page's scripts ran for `budget_ms` of virtual time."""
    result = _run([f"--virtual-time-budget={budget_ms}", f"--window-size={window}", "--dump-dom", url])
    assert result.returncode == 0 and result.stdout, f"chromium --dump-dom failed: {result.stderr[-2000:]}"
    return result.stdout


def screenshot(url: str, path: Path, window: str = "1400,1000", budget_ms: int = 15000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    result = _run([f"--virtual-time-budget={budget_ms}", f"--window-size={window}", f"--screenshot={path}", url])
    assert path.exists() and path.stat().st_size > 0, f"chromium wrote no screenshot: {result.stderr[-2000:]}"
    return path


def visible_text(dom: str) -> str:
    """The DOM's text with tags dropped and whitespace collapsed (scripts and styles removed)."""
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG: (width, height, rows of raw pixel bytes)."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat = 8, []
    width = height = bit_depth = colour_type = interlace = None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert bit_depth == 8 and colour_type in (2, 6) and interlace == 0, (bit_depth, colour_type, interlace)
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    offset = 0
    for _ in range(height):
        kind = raw[offset]
        line = bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line if channels == 3 else _drop_alpha(line)))
        previous = line
    return width, height, rows


def _drop_alpha(line: bytearray) -> bytearray:
    out = bytearray()
    for i in range(0, len(line), 4):
        out += line[i:i + 3]
    return out


def colour_stats(path: Path) -> tuple[int, float]:
    """(distinct RGB colours, share of pixels that are not near-white) of a PNG."""
    _, _, rows = read_png(path)
    colours: set[bytes] = set()
    inked = total = 0
    for row in rows:
        for i in range(0, len(row), 3):
            pixel = row[i:i + 3]
            colours.add(pixel)
            total += 1
            if min(pixel) < 235:
                inked += 1
    return len(colours), inked / max(1, total)
