"""Dragging the panel's JS slider in the real App and timing it: shared by the browser test and bench/drag_latency.py.

A real mouse drag (playwright's pointer events) over the range input; in the
page, each ``input`` event's time is paired with the first frame after it in
which the panel shows that rate's kept count ("Kept N"): that difference is the
drag-to-update latency. The release time is kept too, to time what follows it.
"""

import math

RANGE = '[data-cy="coreset-rate-range"]'
SUMMARY = '[data-cy="coreset-kept-summary"]'

_INSTALL = """([range, summary, watch]) => {
    const input = document.querySelector(range);
    const probe = window.__coresetDrag = {inputs: [], shown: [], released: null, watched: null, net: []};
    if (!window.__coresetFetch) {  // where the time after the release goes: the page's requests
        window.__coresetFetch = window.fetch;
        window.fetch = async function (resource, init) {
            const url = typeof resource === 'string' ? resource : resource.url;
            const start = performance.now();
            const response = await window.__coresetFetch.apply(this, arguments);
            const p = window.__coresetDrag;
            let what = url.split('?')[0].split('/').slice(-2).join('/');
            try {
                const body = JSON.parse((init && init.body) || '{}');
                const op = /(query|mutation|subscription)\s+(\w+)/.exec(body.query || '');
                what += ' ' + (body.operator_uri || (op && op[2]) || '').split('/').pop()
                    + (body.params && body.params.__method__ ? '#' + body.params.__method__ : '');
            } catch (e) {}
            if (p) p.net.push([what, start, performance.now()]);
            return response;
        };
    }
    if (watch) {  // the first time, after the release, that the page's text matches ``watch``
        const re = new RegExp(watch);
        const body = new MutationObserver(() => {
            if (probe.released !== null && re.test(document.body.innerText)) {
                probe.watched = performance.now(); body.disconnect();
            }
        });
        body.observe(document.body, {subtree: true, childList: true, characterData: true});
    }
    input.addEventListener('input', e => probe.inputs.push([performance.now(), Number(e.target.value)]), true);
    input.addEventListener('pointerup', () => { probe.released = performance.now(); }, true);
    const watched = document.querySelector(summary);
    const observer = new MutationObserver(() => {
        const text = watched.textContent;
        requestAnimationFrame(() => probe.shown.push([performance.now(), text]));
    });
    observer.observe(watched, {subtree: true, childList: true, characterData: true});
    probe.stop = () => observer.disconnect();
}"""


def kept(rate, n):
    return n - math.floor(rate / 100 * n)


def drag(page, start_rate, end_rate, n, steps=30, pause_ms=40, watch=None, watch_ms=30_000):
    """Drags the thumb from ``start_rate`` to ``end_rate``; returns (latencies in ms, last rate, ms from
    the release until the page's text matched ``watch`` (a JS regex; -1 if it did not)).

    Each latency pairs one input event with the first frame that shows its kept count;
    input events whose count a later one overtook before it was drawn are left out.
    """
    box = page.locator(RANGE).bounding_box()
    page.evaluate(_INSTALL, [RANGE, SUMMARY, watch])

    def x_of(rate):  # the thumb's centre: chromium insets the track by half a thumb (~8 px)
        return box["x"] + 8 + (box["width"] - 16) * rate / 99

    y = box["y"] + box["height"] / 2
    page.mouse.move(x_of(start_rate), y)
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(x_of(start_rate + (end_rate - start_rate) * i / steps), y)
        page.wait_for_timeout(pause_ms)
    page.mouse.up()
    page.wait_for_timeout(300)
    if watch:
        page.wait_for_function("() => window.__coresetDrag.watched !== null", timeout=watch_ms)
    probe = page.evaluate("() => { window.__coresetDrag.stop(); const p = window.__coresetDrag;"
                          " return {inputs: p.inputs, shown: p.shown, released: p.released, watched: p.watched, net: p.net}; }")
    latencies = []
    for t, rate in probe["inputs"]:
        text = f"Kept {kept(rate, n):,}"
        after = [s for s, shown in probe["shown"] if s >= t and shown.startswith(text + " ")]
        if after:
            latencies.append(after[0] - t)
    last = probe["inputs"][-1][1] if probe["inputs"] else None
    after_release = probe["watched"] - probe["released"] if probe["watched"] and probe["released"] else -1
    if probe["released"]:  # the requests after the release, in ms from it: (what, sent, answered)
        drag.requests = [(u, round(a - probe["released"]), round(b - probe["released"])) for u, a, b in probe["net"]
                         if a >= probe["released"] - 5]
    return latencies, last, after_release
