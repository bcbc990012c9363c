"""The Coreset Explorer panel in the real App, driven by headless Chromium.

Builds 300 scikit-learn digits (PNGs, PCA embeddings, ZCore scores), launches the
App, opens the panel, moves the pruning-rate slider, turns on the 2-D map, saves
the coreset as a view and checks the saved view from Python. Screenshots of each
step go to docs/screenshots/ (shown in the README).

Needs the Debian ``chromium`` package (/usr/bin/chromium, installed by
scripts/setup.sh); skipped without it. Never uses ``playwright install``.
"""

import math
import os
import re
import socket
import time
import uuid

import numpy as np
import pytest

from conftest import PLUGIN_NAME, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "docs" / "screenshots"
N_SAMPLES = 300
START_RATE, TARGET_RATE = 50, 70  # two PageUp presses on the slider (10 steps each)
BUDGET_S = 220  # the whole test, App start included, stays under 4 minutes
VIEWPORT = dict(width=1600, height=2200)  # the whole panel (slider, histogram, map, message) at once

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} not found: install the Debian 'chromium' package (scripts/setup.sh does)",
    ),
]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kept(rate, n=N_SAMPLES):
    return n - math.floor(rate / 100 * n)


@pytest.fixture
def digits(fo, tmp_path):
    """300 digit PNGs with labels, PCA embeddings and ZCore scores (persistent, deleted after)."""
    import fiftyone.operators as foo
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    data = load_digits()
    images, targets = data.images[:N_SAMPLES], data.target[:N_SAMPLES]
    samples = []
    for i, (image, label) in enumerate(zip(images, targets)):
        path = tmp_path / f"digit_{i:04d}.png"
        Image.fromarray((image * (255 / 16)).astype(np.uint8)).resize((64, 64), Image.NEAREST).save(path)
        samples.append(fo.Sample(filepath=str(path), ground_truth=fo.Classification(label=str(label))))
    dataset = fo.Dataset(f"coreset-browser-{uuid.uuid4().hex[:8]}", persistent=True)
    try:
        dataset.add_samples(samples, progress=False)
        vectors = PCA(n_components=16, random_state=0).fit_transform(data.data[:N_SAMPLES] / 16.0)
        dataset.set_values("pca_embeddings", list(vectors.astype(np.float32)))
        foo.execute_operator(
            f"{PLUGIN_NAME}/compute_zcore_scores",
            ctx=dict(
                view=dataset.view(),
                params=dict(embeddings_field="pca_embeddings", n_samples=20000, seed=0),
            ),
        )
        assert len(dataset.exists("zcore_score")) == N_SAMPLES
        yield dataset
    finally:
        if not dataset.deleted:
            dataset.delete()


class _Clock:
    def __init__(self, budget_s):
        self.end = time.monotonic() + budget_s

    def ms(self, cap_s):
        """A wait timeout (ms): ``cap_s`` or what is left of the budget, whichever is less."""
        left = self.end - time.monotonic()
        if left <= 1:
            pytest.fail(f"browser test ran over its {BUDGET_S} s budget")
        return int(min(cap_s, left) * 1000)


def _dismiss_popups(page):
    """Closes the App's pop-ups (Enterprise teaser, analytics prompt) if they are showing."""
    for name in ("Dismiss", "Disable"):
        button = page.get_by_role("button", name=name, exact=True)
        for i in range(button.count()):
            try:
                if button.nth(i).is_visible():
                    button.nth(i).click(timeout=2000)
            except Exception:  # it went away on its own
                pass


def _shot(page, name):
    _dismiss_popups(page)
    page.wait_for_timeout(800)  # let plotly finish its transition
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def test_panel_sweeps_maps_and_saves_a_view_in_the_app(fo, digits, tmp_path):
    from playwright.sync_api import sync_playwright

    clock = _Clock(BUDGET_S)
    dataset = digits
    view_name = "coreset-browser-70"
    port = _free_port()
    errors = []
    session = fo.launch_app(dataset, remote=True, address="127.0.0.1", port=port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.on("console", lambda m: errors.append(m.text) if "Operator Error" in m.text else None)
                page.on("pageerror", lambda e: errors.append(str(e)) if "Operator" in str(e) else None)
                # Pop-ups may show up at any time: close them before any action.
                for name in ("Dismiss", "Disable"):
                    page.add_locator_handler(
                        page.get_by_role("button", name=name, exact=True), lambda b: b.click(), no_wait_after=True
                    )

                page.goto(f"http://127.0.0.1:{port}/datasets/{dataset.name}", timeout=clock.ms(90))
                page.get_by_text(f"{N_SAMPLES} samples").first.wait_for(timeout=clock.ms(90))
                try:  # the Enterprise teaser comes a little after the grid
                    page.get_by_role("button", name="Dismiss", exact=True).wait_for(timeout=clock.ms(10))
                except Exception:
                    pass
                _dismiss_popups(page)

                # Open the panel from the '+' beside the Samples tab.
                panel = page.locator('[data-cy="panel-content-coreset_explorer"]')
                page.locator('[data-cy="new-panel-btn"]').first.click(timeout=clock.ms(30))
                page.get_by_text("Coreset Explorer", exact=True).first.click(timeout=clock.ms(30))
                panel.get_by_text(f"Kept {_kept(START_RATE)}", exact=True).wait_for(timeout=clock.ms(90))
                panel.locator(".js-plotly-plot").first.wait_for(timeout=clock.ms(30))
                slider = panel.get_by_role("slider")
                assert slider.get_attribute("aria-valuenow") == str(START_RATE)
                try:  # thumbnails, for the screenshots only
                    page.locator('[data-cy="looker"] canvas[canvas-loaded="true"]').first.wait_for(timeout=clock.ms(20))
                except Exception:
                    pass
                _shot(page, "01-panel-open.png")

                # Move the slider with the keyboard; each key press commits one value. The
                # slider is re-created after each render, so focus it again every time.
                rate = START_RATE
                while rate < TARGET_RATE:
                    slider.focus()
                    page.keyboard.press("PageUp")
                    rate += 10
                    panel.get_by_text(f"Kept {_kept(rate)}", exact=True).wait_for(timeout=clock.ms(60))
                assert slider.get_attribute("aria-valuenow") == str(TARGET_RATE)
                summary = panel.get_by_text(re.compile(r"pruned \d+ of \d+ scored samples")).first.inner_text()
                assert f"pruned {N_SAMPLES - _kept(TARGET_RATE)} of {N_SAMPLES}" in summary

                # The 2-D map (UMAP runs on the server: allow some time).
                panel.get_by_label("Show 2-D map").check(timeout=clock.ms(30))
                plots = panel.locator(".js-plotly-plot")
                plots.nth(2).wait_for(timeout=clock.ms(120))  # histogram, classes, then the map
                titles = " | ".join(panel.locator(".js-plotly-plot .gtitle").all_text_contents())
                assert "2-D map of 'pca_embeddings'" in titles and "histogram" in titles, titles
                _shot(page, "02-slider-histogram-map.png")

                # Save the coreset as a view. The text box sends its value after a short
                # debounce: if the click beat it, the panel asks for a name; click again.
                name_box = panel.locator("xpath=//p[normalize-space()='Saved view name']/following::input[1]")
                name_box.fill(view_name, timeout=clock.ms(30))
                page.wait_for_timeout(1500)
                saved = panel.get_by_text(f"Saved view '{view_name}'")
                for _ in range(3):
                    panel.get_by_role("button", name="Save as view").click(timeout=clock.ms(30))
                    try:
                        saved.wait_for(timeout=clock.ms(30))
                        break
                    except Exception:
                        if not panel.get_by_text("Enter a name for the saved view").count():
                            raise
                saved.wait_for(timeout=clock.ms(5))
                assert f"kept {_kept(TARGET_RATE)}, pruned {N_SAMPLES - _kept(TARGET_RATE)}" in saved.inner_text()
                _shot(page, "03-saved-view.png")
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"))
                print(f"browser test failed: screenshot at {tmp_path / 'failure.png'}")
                raise
            finally:
                browser.close()
    finally:
        session.close()

    assert not errors, f"the App reported errors: {errors}"

    # The saved view, read back from the database by this process.
    dataset.reload()
    assert dataset.has_saved_view(view_name)
    coreset = dataset.load_saved_view(view_name)
    assert len(coreset) == _kept(TARGET_RATE) == 90
    kept_ids = set(coreset.values("id"))
    ids, scores = dataset.values(["id", "zcore_score"])
    kept_scores = [s for i, s in zip(ids, scores) if i in kept_ids]
    pruned_scores = [s for i, s in zip(ids, scores) if i not in kept_ids]
    assert min(kept_scores) >= max(pruned_scores)  # keep="highest": no pruned sample outscores a kept one
