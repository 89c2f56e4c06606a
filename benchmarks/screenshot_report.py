"""Render an HTML report the way a person sees it: headless Chromium, one PNG screenshot.

    python benchmarks/screenshot_report.py report.html shot.png [--width 1280 --height 1600]

Uses Debian's `chromium` (apt-get install chromium) with no network, no GPU, a throwaway profile.
Look at the PNG (it is what the README shows); a blank or broken page is visible at once.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def screenshot(html: Path, png: Path, width: int, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                        "--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={png.resolve()}",
                        html.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    print(f"wrote {png} ({png.stat().st_size / 1e3:.0f} kB) from {html} ({html.stat().st_size / 1e3:.0f} kB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1600)
    args = parser.parse_args()
    screenshot(args.html, args.png, args.width, args.height)


if __name__ == "__main__":
    main()
