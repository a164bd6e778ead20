"""The explorer in a real headless Chromium, driven through chromedriver with real pointer
events: draw a digit, click the latent map, play the diffusion chain. Each panel's
screenshot is saved (EXPLORER_SHOTS=DIR keeps them there; else the test's tmp folder).
Skips where Debian's chromium and chromium-driver are not installed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from webdriver import Browser, chromedriver, chromium

pytestmark = pytest.mark.skipif(chromium() is None or chromedriver() is None,
                                reason="no Chromium/chromedriver here (Debian: apt-get install chromium chromium-driver)")

SRC = "return document.getElementById(arguments[0]).getAttribute('src')"
PROBS = "Array.from(document.querySelectorAll('#probs .bar')).map(b => Number(b.dataset.p))"
HAS_SRC = "return !!document.getElementById(arguments[0]).getAttribute('src')"


@pytest.fixture(scope="module")
def browser(explorer):
    browser = Browser()
    browser.open(explorer.url)
    browser.wait_for("return document.body.dataset.ready === 'true'", what="the page to load its models")
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("EXPLORER_SHOTS") or tmp_path_factory.mktemp("explorer-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shot(browser: Browser, css: str, path: Path) -> np.ndarray:
    browser.screenshot(css, path)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 300 and pixels.std() > 10  # something is drawn
    return pixels


def test_drawing_a_stroke_shows_reconstructions_and_probabilities(browser, shots):
    assert browser.run(SRC, "draw-ae") is None  # nothing before the first stroke
    browser.pointer("#draw-canvas", [(0, -90), (0, -40), (2, 10), (4, 60), (5, 95)])  # a "1"
    browser.wait_for(HAS_SRC, "draw-vae", what="the VAE's reconstruction")
    browser.wait_for(f"return ({PROBS}).length === 10", what="the class probabilities")
    first = (browser.run(SRC, "draw-ae"), browser.run(SRC, "draw-vae"), browser.run(f"return {PROBS}"))
    assert all(first[:2]) and abs(sum(first[2]) - 1) < 0.01
    _shot(browser, "#draw-panel", shots / "draw-1.png")

    browser.pointer("#draw-canvas", [(-70, -40), (-20, -80), (40, -60), (50, -10), (-60, 80), (70, 85)])  # a "2" over it
    browser.wait_for("return document.getElementById('draw-ae').getAttribute('src') !== arguments[0]", first[0],
                     what="the AE's reconstruction to change")
    browser.wait_for(f"return JSON.stringify({PROBS}) !== JSON.stringify(arguments[0])", first[2],
                     what="the probabilities to change")
    assert browser.run(SRC, "draw-vae") != first[1]
    _shot(browser, "#draw-panel", shots / "draw-2.png")


def test_clicking_the_latent_map_decodes_that_point(browser, shots):
    for model in ("ae", "vae"):
        browser.run(f"document.getElementById('map-{model}-decoded').removeAttribute('src')")
        browser.pointer(f"#map-{model}", [(30, -20), (30, -20)])  # press and release in place: a click
        browser.wait_for(HAS_SRC, f"map-{model}-decoded", what=f"the {model} decoding")
    browser.pointer("#map-vae", [(-100, -100), (0, 0), (100, 100)])  # a drag: the strip between
    browser.wait_for(HAS_SRC, "map-vae-strip", what="the interpolation strip")
    _shot(browser, "#map-panel", shots / "latent-map.png")


def test_the_sliders_decode_as_they_move(browser, shots):
    browser.wait_for(HAS_SRC, "slider-image", what="the centre image")
    centre = browser.run(SRC, "slider-image")
    browser.pointer("#slider-0", [(-120, 0), (-120, 0)])  # click near the left end: about -2.8 sd
    browser.wait_for("return document.getElementById('slider-image').getAttribute('src') !== arguments[0]", centre,
                     what="the slider's image to change")
    _shot(browser, "#slider-panel", shots / "sliders.png")


def test_the_diffusion_player_plays_to_the_end(browser, shots):
    browser.run("const s = document.getElementById('dn-run'); s.value = 'ddpm';"
                "s.dispatchEvent(new Event('change'));")
    browser.run("const s = document.getElementById('dn-sampler'); s.value = 'ddim';"
                "s.dispatchEvent(new Event('change')); document.getElementById('dn-steps').value = 6;")
    browser.click("#dn-sample")
    browser.wait_for("return document.getElementById('diffusion-panel').dataset.state === 'done'",
                     timeout=30, what="the player to reach x_0")
    assert browser.run("return document.getElementById('dn-step').value") == "6"
    assert browser.run("return document.getElementById('dn-step-name').textContent").startswith("x_0")
    assert browser.run("return document.getElementById('dn-error').textContent") == ""
    _shot(browser, "#diffusion-panel", shots / "diffusion.png")
