"""The Coreset Explorer panel in the real App, driven by headless Chromium.

300 scikit-learn digits (PNGs, PCA embeddings, ZCore and mimic scores; one class is
named 'photo'): every control and button of the panel, with assertions on what the
App draws (plot traces read from the plotly graphs, tick labels, counts) and on
the database. Then the slider latency at 10,000 samples, from the key press to the
updated count, printed with where the time goes.

Needs the Debian ``chromium`` package; skipped without it.
"""

import math
import re
import statistics
import time
import uuid

import numpy as np
import pytest

from app import PANEL, Browser, Clock, kept, needs_chromium, served
from conftest import PLUGIN_NAME

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

N = 300
BIG = 10_000
MOVES = 10
CURVE_RATES = [0, 10, 30, 50, 70, 90]

_PLOTS_JS = """panel => Array.from(panel.querySelectorAll('.js-plotly-plot')).map(p => ({
    title: (p.layout && p.layout.title && p.layout.title.text) || '',
    shapes: ((p.layout && p.layout.shapes) || []).length,
    xaxis: (p.layout && p.layout.xaxis && p.layout.xaxis.type) || '',
    ticks: Array.from(p.querySelectorAll('.xtick text')).map(t => t.textContent),
    traces: (p.data || []).map(t => ({name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || [])})),
    drawn: Array.from(p.querySelectorAll('.trace')).map(t => t.querySelectorAll('.point, path.point').length),
}))"""


def _digits(fo, folder, name, photo="7"):
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    data = load_digits()
    samples = []
    for i, (image, target) in enumerate(zip(data.images[:N], data.target[:N])):
        path = folder / f"digit_{i:04d}.png"
        Image.fromarray((image * (255 / 16)).astype(np.uint8)).resize((64, 64), Image.NEAREST).save(path)
        label = "photo" if str(target) == photo else str(target)
        logits = np.zeros(10, dtype=np.float32)
        samples.append(fo.Sample(
            filepath=str(path), ground_truth=fo.Classification(label=label, logits=logits),
            parity=fo.Classification(label="even" if target % 2 == 0 else "odd"),
        ))
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples(samples, progress=False)
    vectors = PCA(n_components=16, random_state=0).fit_transform(data.data[:N] / 16.0).astype(np.float32)
    dataset.set_values("pca_embeddings", list(vectors))
    dataset.set_values("pca_8d", list(vectors[:, :8].copy()))
    return dataset


@pytest.fixture(scope="module")
def digits(fo, tmp_path_factory):
    """Digits with ZCore scores and newer mimic scores (which must not become the default)."""
    import fiftyone.operators as foo

    dataset = _digits(fo, tmp_path_factory.mktemp("digits"), f"coreset-panel-{uuid.uuid4().hex[:8]}")
    try:
        dataset.take(60, seed=0).tag_samples("trusted")
        foo.get_operator(f"{PLUGIN_NAME}/compute_zcore_scores")(dataset, "pca_embeddings", seed=0)
        foo.get_operator(f"{PLUGIN_NAME}/compute_mimic_scores")(
            dataset, "pca_embeddings", "ground_truth", trusted_tag="trusted"
        )
        yield dataset
    finally:
        dataset.delete()


@pytest.fixture(scope="module")
def app(fo, digits):
    from playwright.sync_api import sync_playwright

    # the Python slider and plots (CORESET_JS_SLIDER=0); the JS slider: test_browser_slider.py
    with served(fo, digits, CORESET_JS_SLIDER=0) as url, sync_playwright() as playwright:
        browser = Browser(playwright, url, Clock(900, "the panel browser tests"), viewport=dict(width=1600, height=2000))
        try:
            yield browser
        finally:
            browser.close()


def _plots(ui, panel):
    return ui.page.evaluate(_PLOTS_JS, panel.element_handle())


def _plot(ui, panel, title_part):
    plots = [p for p in _plots(ui, panel) if title_part in p["title"]]
    return plots[0] if plots else None


def _wait_plot(ui, panel, title_part, cap_s=60):
    """The plot whose title contains ``title_part``, once plotly has drawn it."""
    end = ui.clock.ms(cap_s) / 1000 + time.monotonic()
    while time.monotonic() < end:
        plot = _plot(ui, panel, title_part)
        if plot and plot["traces"]:
            return plot
        ui.page.wait_for_timeout(250)
    pytest.fail(f"no plot titled '{title_part}' within {cap_s} s")


def _until(ui, condition, what, cap_s=60):
    """Polls ``condition()`` until it is true (a redraw the panel has no text for); a plot not drawn yet
    (``_plot`` gives None while the panel computes an order) counts as not yet."""
    end = ui.clock.ms(cap_s) / 1000 + time.monotonic()
    while time.monotonic() < end:
        try:
            if condition():
                return
        except TypeError:
            pass
        ui.page.wait_for_timeout(250)
    pytest.fail(f"{what}: not within {cap_s} s")


def _summary(panel):
    return panel.get_by_text(re.compile(r"pruned [\d,]+ of [\d,]+ scored samples")).first.inner_text()


def _wait_kept(ui, panel, count, cap_s=60):
    panel.get_by_text(f"Kept {count:,}", exact=True).wait_for(timeout=ui.clock.ms(cap_s))


def _dropdown(panel, label):
    return panel.locator(f"xpath=.//p[normalize-space()=\"{label}\"]/following::*[@role='combobox'][1]")


def _choose(ui, panel, label, option):
    _dropdown(panel, label).click(timeout=ui.clock.ms(10))
    ui.page.get_by_role("option", name=option, exact=True).click(timeout=ui.clock.ms(10))


def _focused(ui):
    return ui.page.evaluate("() => document.activeElement && document.activeElement.getAttribute('type')")


def test_every_control_of_the_panel_draws_what_it_says(fo, app, digits, tmp_path):
    import fiftyone.operators as foo

    ui = app
    ui.clock = Clock(420, "the panel walk-through")
    dataset = digits
    page = ui.page
    started = time.monotonic()
    fields, runs = set(dataset.get_field_schema()), dataset.list_runs()

    def _step(name):
        print(f"  [{time.monotonic() - started:6.1f} s] {name}")

    try:
        ui.open_dataset(dataset)
        panel = ui.open_panel()
        _wait_kept(ui, panel, kept(50, N))
        page.locator('[data-cy="looker"] canvas').first.wait_for(timeout=ui.clock.ms(30))

        _step('defaults: the ZCore score (not the new')
        # defaults: the ZCore score (not the newer mimic score), the shared default selection
        from coreset_curation.bridge import DEFAULT_SELECTION

        assert _dropdown(panel, "Score field").inner_text().strip() == "zcore_score"
        assert _dropdown(panel, "Selection").inner_text().strip() == DEFAULT_SELECTION
        assert "Sweeping the whole dataset (300 samples)" in panel.inner_text()
        assert "score threshold" not in _summary(panel)  # coverage-aware selections have no threshold
        histogram = _plot(ui, panel, "histogram")
        assert histogram["shapes"] == 0 and "cut" not in histogram["title"]
        assert [t["name"] for t in histogram["traces"]] == ["kept", "pruned"]
        assert sum(histogram["traces"][0]["y"]) == kept(50, N)
        classes = _plot(ui, panel, "Class balance")
        names = sorted(set(dataset.distinct("ground_truth.label")))
        assert sorted(classes["traces"][0]["x"]) == names and "photo" in names
        assert classes["xaxis"] == "category" and sorted(classes["ticks"]) == names  # every class drawn
        _step('label attributes (ground_truth.logits)')
        # label attributes (ground_truth.logits) are no embeddings
        embeddings = "Embeddings (map, coverage-aware selections, curve)"
        _dropdown(panel, embeddings).click()
        offered = ui.page.get_by_role("option").all_inner_texts()
        page.keyboard.press("Escape")
        assert offered == ["pca_8d", "pca_embeddings"], offered
        ui.shot("01-panel-open.png")

        _step('score field: the histogram follows it;')
        # score field: the histogram follows it; back to ZCore
        _choose(ui, panel, "Score field", "mimic_score")
        _wait_plot(ui, panel, "'mimic_score' histogram")
        _choose(ui, panel, "Score field", "zcore_score")
        _wait_plot(ui, panel, "'zcore_score' histogram")
        _step('label field: the class bars follow it;')
        # label field: the class bars follow it; back to ground_truth
        _choose(ui, panel, "Label field", "parity")
        _until(ui, lambda: sorted(_plot(ui, panel, "Class balance")["ticks"]) == ["even", "odd"], "parity bars")
        _choose(ui, panel, "Label field", "ground_truth")
        _until(ui, lambda: sorted(_plot(ui, panel, "Class balance")["ticks"]) == names, "class bars")
        _step('embeddings: another field gives anothe')
        # embeddings: another field gives another coverage-aware coreset of the same size
        before = _plot(ui, panel, "Class balance")["traces"][1]["y"]
        _choose(ui, panel, embeddings, "pca_8d")
        _until(ui, lambda: _plot(ui, panel, "Class balance")["traces"][1]["y"] != before, "a new coreset")
        _wait_kept(ui, panel, kept(50, N))
        _choose(ui, panel, embeddings, "pca_embeddings")
        _until(ui, lambda: _plot(ui, panel, "Class balance")["traces"][1]["y"] == before, "the first coreset")

        _step('the slider, by keyboard: each key pres')
        # the slider, by keyboard: each key press updates the count, and the slider keeps the focus
        slider = panel.get_by_role("slider")
        slider.focus()
        for rate in (60, 70):
            page.keyboard.press("PageUp")
            _wait_kept(ui, panel, kept(rate, N))
            page.wait_for_timeout(800)  # the App re-creates the slider after the update
            assert _focused(ui) == "range", "the slider lost the keyboard focus"
        assert f"pruned {N - kept(70, N)} of {N} scored samples" in _summary(panel)

        _step('the typed rate moves the slider')
        # the typed rate moves the slider
        typed = ui.field(panel, "or type it (%)")
        assert typed.input_value() == "70"
        typed.fill("75")
        _wait_kept(ui, panel, kept(75, N))
        page.wait_for_timeout(800)
        assert panel.get_by_role("slider").get_attribute("aria-valuenow") == "75"

        _step('top: its threshold and dashed cut; the')
        # top: its threshold and dashed cut; then keep lowest: the cut is the largest kept score
        _choose(ui, panel, "Selection", "top")
        panel.get_by_text(re.compile(r"score threshold -?\d")).first.wait_for(timeout=ui.clock.ms(60))
        histogram = _plot(ui, panel, "histogram")
        assert histogram["shapes"] == 1 and "(cut dashed)" in histogram["title"]
        scores = np.sort(np.array(dataset.values("zcore_score")))
        before = histogram["traces"][0]["y"]
        panel.get_by_text("lowest", exact=True).click()
        _until(ui, lambda: _plot(ui, panel, "histogram")["traces"][0]["y"] != before, "keep lowest")
        _wait_kept(ui, panel, kept(75, N))
        cut = float(re.search(r"score threshold (-?[\d.]+)", _summary(panel)).group(1))
        assert abs(cut - scores[kept(75, N) - 1]) < 1e-3
        panel.get_by_text("highest", exact=True).click()
        _until(ui, lambda: _plot(ui, panel, "histogram")["traces"][0]["y"][-1] > 0, "keep highest")

        _step('stratify: the same count, every class ')
        # stratify: the same count, every class pruned at the same rate
        def stratified():
            classes = _plot(ui, panel, "Class balance")["traces"]
            return all(abs(k - t * 0.25) <= 1.5 for t, k in zip(classes[0]["y"], classes[1]["y"]))

        assert not stratified()
        panel.get_by_text("Stratify by class", exact=True).click()
        _until(ui, stratified, "stratified class bars")
        _wait_kept(ui, panel, kept(75, N))
        panel.get_by_text("Stratify by class", exact=True).click()
        _until(ui, lambda: not stratified(), "unstratified class bars")

        _step('the 2-D map: a spinner first, then the')
        # the 2-D map: a spinner first, then the points (kept in orange)
        ui.watch_for(panel, "Computing the 2-D map")
        panel.get_by_text("Show 2-D map", exact=True).click()
        mapped = _wait_plot(ui, panel, "2-D map of 'pca_embeddings'", cap_s=150)
        assert ui.was_seen("Computing the 2-D map"), "no spinner before the map"
        assert [t["name"] for t in mapped["traces"]] == ["pruned", "kept"]
        assert len(mapped["traces"][1]["x"]) == kept(75, N) and len(mapped["traces"][0]["x"]) == N - kept(75, N)
        # a click on a point shows that sample's image under the map (a kept point may sit on a pruned one)
        plot = panel.locator(".js-plotly-plot").filter(has_text="2-D map").first
        x, y = plot.evaluate("""p => { const t = p.data.findIndex(d => d.name === 'kept'), d = p.data[t];
            const xa = p._fullLayout.xaxis, ya = p._fullLayout.yaxis;
            return [xa._offset + xa.l2p(d.x[0]), ya._offset + ya.l2p(d.y[0])]; }""")
        box = plot.bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        image = panel.locator('img[src^="/media?filepath="]')
        image.wait_for(timeout=ui.clock.ms(30))
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                               timeout=ui.clock.ms(30))
        assert re.search(r"Clicked on the map: sample \w+ · (kept|pruned) at 75 %", ui.text(panel)), ui.text(panel)

        _step('the accuracy curve: a spinner, then traces at the right rates')
        # the accuracy curve: a spinner first, then traces at the right rates
        ui.watch_for(panel, "Estimating accuracy vs pruning rate (")
        panel.get_by_role("button", name="Estimate accuracy vs pruning rate").click()
        curve = _wait_plot(ui, panel, "Estimated accuracy", cap_s=120)
        assert ui.was_seen("Estimating accuracy vs pruning rate ("), "no spinner before the curve"
        assert curve["traces"][0]["x"] == CURVE_RATES
        accuracy = [a for a in curve["traces"][0]["y"] if a is not None]
        assert accuracy and all(0 <= a <= 1 for a in accuracy)
        ui.shot("02-panel-map-curve.png")

        _step('every selection: browsing writes no field and no run')
        # every selection, each drawn: browsing writes nothing to the dataset
        from coreset_curation.bridge import SELECTIONS

        for selection in SELECTIONS:
            _choose(ui, panel, "Selection", selection)
            panel.get_by_text(re.compile(rf"^{selection} uses:")).first.wait_for(timeout=ui.clock.ms(60))
            _wait_kept(ui, panel, kept(75, N))
        dataset.reload()
        assert set(dataset.get_field_schema()) == fields and dataset.list_runs() == runs
        _choose(ui, panel, "Selection", "top")
        panel.get_by_text(re.compile(r"^top uses:")).first.wait_for(timeout=ui.clock.ms(60))

        _step('Show kept / Show pruned: the grid show')
        # Show kept / Show pruned: the grid shows them, the panel keeps sweeping the dataset
        rate = 75
        panel.get_by_role("button", name="Show kept").click()
        page.get_by_text(f"{kept(rate, N)} samples", exact=True).first.wait_for(timeout=ui.clock.ms(60))
        page.wait_for_timeout(1500)
        assert f"pruned {N - kept(rate, N)} of {N} scored" in _summary(panel)
        panel.get_by_role("button", name="Show pruned").click()
        page.get_by_text(f"{N - kept(rate, N)} samples", exact=True).first.wait_for(timeout=ui.clock.ms(60))
        page.wait_for_timeout(1500)
        assert f"pruned {N - kept(rate, N)} of {N} scored" in _summary(panel)

        _step("Sweep the App's current view (the prun")
        # Sweep the App's current view (the pruned samples), then back to the dataset by Refresh + clear
        panel.get_by_role("button", name="Sweep the App's current view").click()
        panel.get_by_text(re.compile(r"Now sweeping the view it was opened on \(225 samples")).wait_for(
            timeout=ui.clock.ms(60)
        )
        _wait_kept(ui, panel, kept(rate, N - kept(rate, N)))
        page.locator('[data-cy="btn-clear-view-bar"]').first.click()
        page.get_by_text(f"{N} samples", exact=True).first.wait_for(timeout=ui.clock.ms(60))
        panel.get_by_role("button", name="Refresh").click()  # the next event sees the App's view change
        panel.get_by_text(re.compile(r"now sweeping the whole dataset \(300 samples\)", re.I)).wait_for(
            timeout=ui.clock.ms(60)
        )
        _wait_kept(ui, panel, kept(rate, N))

        _step('Tag kept')
        # Tag kept
        tag = ui.field(panel, "Tag")
        assert tag.input_value() == "coreset"
        tag.fill("coreset-75")
        panel.get_by_role("button", name="Tag kept").click()
        message = panel.get_by_text(re.compile(rf"Tagged the {kept(rate, N)} kept samples 'coreset-75' \({kept(rate, N)} did not have it\); undo with"))
        message.wait_for(timeout=ui.clock.ms(60))
        # a message shows next to the control that caused it: under the Tag row, above the save row
        tag_button = panel.get_by_role("button", name="Tag kept").bounding_box()
        assert tag_button["y"] < message.bounding_box()["y"] < ui.field(panel, "Saved view name").bounding_box()["y"]
        box, button = ui.field(panel, "Tag").bounding_box(), panel.get_by_role("button", name="Tag kept").bounding_box()
        assert abs((box["y"] + box["height"] / 2) - (button["y"] + button["height"] / 2)) < 20, (box, button)
        assert button["x"] > box["x"] + box["width"] - 5

        # the mouse wheel over a plot is left to the page (it scrolls); the plot does not zoom
        histogram = panel.locator(".js-plotly-plot").first
        histogram.scroll_into_view_if_needed()
        ranges = "p => [p._fullLayout.xaxis.range.slice(), p._fullLayout.yaxis.range.slice()]"
        before = histogram.evaluate(ranges)
        page.evaluate("""() => { window.__wheel = []; window.addEventListener('wheel',
            e => window.__wheel.push(e.defaultPrevented), {passive: true}); }""")
        box = histogram.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(800)
        assert histogram.evaluate(ranges) == before, "the plot zoomed"
        wheel = page.evaluate("() => window.__wheel")
        assert wheel and not any(wheel), "the plot took the wheel event from the page"

        # Save as view, then again under the same name: it asks, then overwrites
        name = ui.field(panel, "Saved view name")
        name.fill("coreset-browser")
        panel.get_by_role("button", name="Save as view").click()
        saved = panel.get_by_text(re.compile(r"Saved view 'coreset-browser': kept 75, pruned 225"))
        saved.wait_for(timeout=ui.clock.ms(60))
        page.wait_for_timeout(1500)  # the App reloads the dataset: the grid redraws
        page.locator('[data-cy="looker"] canvas').first.wait_for(timeout=ui.clock.ms(30))
        ui.shot("03-panel-saved.png")
        slider = panel.get_by_role("slider")
        slider.focus()
        page.keyboard.press("PageDown")
        _wait_kept(ui, panel, kept(65, N))
        panel.get_by_role("button", name="Save as view").click()
        panel.get_by_text(re.compile("A saved view named 'coreset-browser' exists")).wait_for(timeout=ui.clock.ms(60))
        panel.get_by_role("button", name="Overwrite").click()
        panel.get_by_text(re.compile(r"Saved view 'coreset-browser': kept 105, pruned 195")).wait_for(
            timeout=ui.clock.ms(60)
        )
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise

    dataset.reload()
    assert len(dataset.match_tags("coreset-75")) == kept(75, N)
    view = dataset.load_saved_view("coreset-browser")
    assert len(view) == kept(65, N)
    sdk = foo.get_operator(f"{PLUGIN_NAME}/save_coreset_view")
    sdk(dataset, "zcore_score", 0.65, "from-sdk", selection="top")
    assert set(view.values("id")) == set(dataset.load_saved_view("from-sdk").values("id"))


def test_the_typed_rate_is_a_percent_150_is_clamped_visibly_and_0_7_is_0_7_percent(app, digits, tmp_path):
    ui = app
    ui.clock = Clock(240, "the percent input")
    fields = set(digits.get_field_schema())
    try:
        ui.open_dataset(digits)
        panel = ui.open_panel()
        typed = ui.field(panel, "or type it (%)")
        typed.fill("150")
        _wait_kept(ui, panel, kept(99, N))
        message = panel.get_by_text(re.compile(r"150 is above 99 %, the largest rate; used 99 %"))
        message.wait_for(timeout=ui.clock.ms(60))
        # next to the box that caused it: under the rate row, above the Keep choice
        assert typed.bounding_box()["y"] < message.bounding_box()["y"] < panel.get_by_text(
            "highest", exact=True).bounding_box()["y"]
        _until(ui, lambda: panel.get_by_role("slider").get_attribute("aria-valuenow") == "99", "the slider at 99")
        ui.field(panel, "or type it (%)").fill("0.7")
        _wait_kept(ui, panel, kept(0.7, N))  # 0.7 % of 300 prunes 2, not 70 %
        panel.get_by_text(re.compile(r"scored samples at 0\.7 %")).first.wait_for(timeout=ui.clock.ms(30))
        _until(ui, lambda: not message.count(), "the clamp message cleared")
        ui.field(panel, "or keep N samples").fill("120")
        _wait_kept(ui, panel, 120)
    except BaseException:
        ui.failure_shot(tmp_path)
        raise
    digits.reload()
    assert set(digits.get_field_schema()) == fields  # browsing wrote no order


@pytest.fixture(scope="module")
def big(fo, bridge):
    """10,000 samples with a score field and a precomputed coreset order (the default selection)."""
    from harness import fast_dataset

    rng = np.random.default_rng(0)
    dataset = fast_dataset(f"coreset-panel-big-{uuid.uuid4().hex[:6]}", rng.normal(size=(BIG, 16)).astype(np.float32),
                           labels=[str(i % 10) for i in range(BIG)])
    try:
        dataset.set_values("score", rng.random(BIG).tolist())
        bridge.compute_coreset_order(dataset, "score", embeddings_field="emb")
        yield dataset
    finally:
        dataset.delete()


def test_slider_latency_at_10000_samples(app, big, tmp_path):
    """Key press to the updated 'Kept N' text, ``MOVES`` times; prints median and p95 and where time goes."""
    ui = app
    ui.clock = Clock(300, "the latency test")
    try:
        ui.open_dataset(big)
        panel = ui.open_panel()
        _wait_kept(ui, panel, kept(50, BIG))
        ui.page.wait_for_timeout(3000)
        slider = panel.get_by_role("slider")
        slider.focus()
        ui.page.evaluate("""() => {
            if (window.__coresetNet) return;
            window.__coresetNet = [];
            const original = window.fetch;
            window.fetch = async function (input, init) {
                const url = typeof input === 'string' ? input : input.url;
                const start = performance.now();
                const response = await original.apply(this, arguments);
                if (url.includes('/operators/execute')) window.__coresetNet.push([start, performance.now()]);
                return response;
            };
        }""")
        rate, totals, sent, served_ = 50, [], [], []
        for i in range(MOVES):
            key, rate = ("PageUp", rate + 10) if i % 2 == 0 else ("PageDown", rate - 10)
            ui.page.wait_for_timeout(1500)  # let the previous move's echoes settle
            assert _focused(ui) == "range"
            ui.page.evaluate("() => { window.__coresetNet.length = 0; }")
            start, end = ui.page.evaluate(
                """([key, text, panelSelector]) => new Promise(resolve => {
                    const root = document.querySelector(panelSelector);
                    const shown = () => Array.from(root.querySelectorAll('strong, b, p'))
                        .some(el => el.textContent.trim() === text);
                    const start = performance.now();
                    const observer = new MutationObserver(() => {
                        if (shown()) { observer.disconnect(); resolve([start, performance.now()]); }
                    });
                    observer.observe(root, {subtree: true, childList: true, characterData: true});
                    document.activeElement.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
                    setTimeout(() => { observer.disconnect(); resolve([start, -1]); }, 30000);
                })""",
                [key, f"Kept {kept(rate, BIG):,}", PANEL],
            )
            assert end > 0, f"the count never showed Kept {kept(rate, BIG):,}"
            net = ui.page.evaluate("() => window.__coresetNet.slice()")
            totals.append(end - start)
            if net:
                sent.append(net[0][0] - start)
                served_.append(net[0][1] - net[0][0])
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise
    p95 = sorted(totals)[max(0, math.ceil(0.95 * len(totals)) - 1)]
    print(f"\nslider latency at {BIG:,} samples over {MOVES} moves: median {statistics.median(totals):.0f} ms, "
          f"p95 {p95:.0f} ms (target 400 ms); key press to request sent: median {statistics.median(sent):.0f} ms "
          f"(the App waits 250 ms for more changes), request round trip: median {statistics.median(served_):.0f} ms, "
          f"all: {[round(t) for t in totals]}")
    # The App's own share (its 250 ms wait for more input, the spaces sync and page query it
    # sends on every panel-state change, its redraw) is most of it; this guards against the
    # panel's share growing back (a move took 1.0-2.2 s before, 70 s at 100k in prototype).
    assert statistics.median(totals) < 2500, totals
