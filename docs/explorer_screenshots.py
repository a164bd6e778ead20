"""The explorer's pictures in docs/explorer.md: each panel of `bin/explore` on the shipped
pretrained runs, driven in headless Chromium as a user would drive it.

    uv run python docs/explorer_screenshots.py          # needs chromium and chromium-driver

It starts the explorer in this process, draws a "3" with real pointer events, clicks and
drags on both latent maps, moves two sliders, and plays the conditional DDPM asked for a 7,
then saves one screenshot per panel into docs/images/explorer-*.png.
"""

# ruff: noqa: I001  (mlx_generative loads the fast BLAS before mlx.core)
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "explorer"))  # the WebDriver client the browser test uses

import mlx_generative as mg  # noqa: E402
from webdriver import Browser, chromedriver, chromium  # noqa: E402

IMAGES = ROOT / "docs" / "images"
THREE = [(-60, -80), (0, -95), (55, -70), (50, -25), (0, -5), (60, 25), (55, 75), (0, 95), (-65, 75)]


def main() -> int:
    if chromium() is None or chromedriver() is None:
        print("needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    server = mg.explore(open_browser=False, block=False)
    browser = Browser(width=1300, height=1400)
    try:
        browser.open(server.url)
        browser.wait_for("return document.body.dataset.ready === 'true'", what="the page")
        browser.pointer("#draw-canvas", THREE)
        browser.wait_for("return document.querySelectorAll('#probs .bar').length === 10", what="the probabilities")
        browser.screenshot("#draw-panel", IMAGES / "explorer-draw.png")

        browser.pointer("#map-ae", [(60, -40), (60, -40)])
        browser.pointer("#map-vae", [(-110, 60), (-20, 0), (90, -70)])
        browser.wait_for("return !!document.getElementById('map-vae-strip').getAttribute('src')", what="the strip")
        browser.screenshot("#map-panel", IMAGES / "explorer-latent-map.png")

        browser.pointer("#slider-0", [(80, 0), (80, 0)])
        browser.pointer("#slider-1", [(-70, 0), (-70, 0)])
        browser.screenshot("#slider-panel", IMAGES / "explorer-sliders.png")

        browser.run("const s = document.getElementById('dn-run'); s.value = 'ddpm-conditional';"
                    "s.dispatchEvent(new Event('change')); document.getElementById('dn-label').value = '7';")
        browser.click("#dn-sample")
        browser.wait_for("return document.getElementById('diffusion-panel').dataset.state === 'done'", what="x_0")
        browser.run("const s = document.getElementById('dn-step'); s.value = 3; s.dispatchEvent(new Event('input'));")
        browser.screenshot("#diffusion-panel", IMAGES / "explorer-diffusion.png")
    finally:
        browser.close()
        server.close()
    for name in ("draw", "latent-map", "sliders", "diffusion"):
        print(IMAGES / f"explorer-{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
