"""Driving the real FiftyOne App in headless Chromium: shared by the browser tests.

The App is served by ``fo.launch_app(remote=True)`` (its own server process, the
test's private MongoDB); the browser is the Debian ``chromium`` package driven by
playwright (never ``playwright install``). Helpers here open the operator
browser, fill forms, execute, read what the App shows, and take screenshots for
the README (``docs/screenshots/``).

Nothing here imports fiftyone or playwright at module level.
"""

import contextlib
import json
import math
import os
import pathlib
import re
import socket
import tempfile
import time

import pytest

from harness import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The README's walk-through is made of these runs' screenshots: ``CORESET_UPDATE_SCREENSHOTS=1``
#: writes them into docs/screenshots; other runs keep them out of the working tree.
SHOTS = ROOT / "docs" / "screenshots" if os.environ.get("CORESET_UPDATE_SCREENSHOTS") else \
    pathlib.Path(tempfile.gettempdir()) / "coreset-screenshots"
VIEWPORT = dict(width=1600, height=1100)
PANEL = '[data-cy="panel-content-coreset_explorer"]'

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} not found: install the Debian 'chromium' package (scripts/setup.sh does)",
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kept(rate, n):
    """Samples a coreset keeps at ``rate`` percent of ``n`` scored samples."""
    return n - math.floor(rate / 100 * n)


class Clock:
    """One time budget for a test: every wait gets what is left, at most its own cap."""

    def __init__(self, budget_s, what="browser test"):
        self.budget_s = budget_s
        self.what = what
        self.end = time.monotonic() + budget_s

    def ms(self, cap_s):
        left = self.end - time.monotonic()
        if left <= 1:
            pytest.fail(f"{self.what} ran over its {self.budget_s} s budget")
        return int(min(cap_s, left) * 1000)


@contextlib.contextmanager
def environment(**values):
    """Sets environment variables for what starts inside the block (the App server)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def served(fo, dataset, **env):
    """The App's server on a free loopback port, started with ``env`` in its environment."""
    port = free_port()
    with environment(**{"CORESET_MAP_WARM_UP": "1", **env}):
        session = fo.launch_app(dataset, remote=True, address="127.0.0.1", port=port, auto=False)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        session.close()


class Browser:
    """One headless Chromium page on the App, with helpers that wait for what a person sees."""

    def __init__(self, playwright, url, clock, viewport=VIEWPORT):
        self.url = url
        self.clock = clock
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport=viewport)
        self.errors = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.streams = []  # responses of generator executions: what the server streamed to the App
        self.page.on(
            "response",
            lambda r: self.streams.append(r) if r.url.endswith("/operators/execute/generator") else None,
        )
        # Pop-ups (Enterprise teaser, analytics prompt) may come at any time: close them first.
        for name in ("Dismiss", "Disable"):
            self.page.add_locator_handler(
                self.page.get_by_role("button", name=name, exact=True), lambda b: b.click(), no_wait_after=True
            )

    def close(self):
        self.browser.close()

    # -- pages -----------------------------------------------------------------------

    def open_dataset(self, dataset, cap_s=120):
        """Loads the App on ``dataset`` and waits for its sample count."""
        self.page.goto(f"{self.url}/datasets/{dataset.name}", timeout=self.clock.ms(cap_s))
        self.page.get_by_text(f"{len(dataset):,} samples").first.wait_for(timeout=self.clock.ms(cap_s))
        self.dismiss_popups()

    def dismiss_popups(self):
        for name in ("Dismiss", "Disable"):
            button = self.page.get_by_role("button", name=name, exact=True)
            for i in range(button.count()):
                with contextlib.suppress(Exception):  # it went away on its own
                    if button.nth(i).is_visible():
                        button.nth(i).click(timeout=2000)

    def shot(self, name, locator=None):
        """A screenshot for the README (the page, or one element of it)."""
        self.dismiss_popups()
        self.page.wait_for_timeout(600)  # let plotly finish its transition
        SHOTS.mkdir(parents=True, exist_ok=True)
        (locator or self.page).screenshot(path=str(SHOTS / name))

    def failure_shot(self, folder):
        path = folder / "failure.png"
        with contextlib.suppress(Exception):
            self.page.screenshot(path=str(path), full_page=True)
        print(f"browser test failed: screenshot at {path}")

    # -- the operator browser and forms ----------------------------------------------

    def open_operator(self, label, search, cap_s=90):
        """Opens an operator's form from the operator browser (the '`' key), like a person would."""
        page = self.page
        page.keyboard.press("Escape")
        page.locator("body").click(position=dict(x=5, y=5))  # focus the page, not a field
        page.keyboard.press("`")
        box = page.get_by_placeholder("Search operations by name...")
        box.wait_for(timeout=self.clock.ms(30))
        box.fill(search)
        page.get_by_text(label, exact=True).first.click(timeout=self.clock.ms(30))
        dialog = page.get_by_role("dialog")
        dialog.get_by_text(label, exact=True).first.wait_for(timeout=self.clock.ms(cap_s))
        return dialog

    @staticmethod
    def field(scope, label):
        """The input of the form field titled ``label``."""
        return scope.locator(f"xpath=.//p[normalize-space()=\"{label}\"]/following::input[1]")

    def settle(self, ms=1500):
        """Lets the App re-resolve a form after a change (it waits for typing to pause)."""
        self.page.wait_for_timeout(ms)

    def submit(self, dialog, choice="Execute"):
        """Clicks Execute (or Schedule), picking it from the button's menu when it is not the default."""
        main = dialog.locator("button.MuiButtonGroup-grouped").first
        main.wait_for(timeout=self.clock.ms(30))
        if main.inner_text().strip() != choice:
            dialog.locator("button.MuiButtonGroup-grouped").nth(1).click(timeout=self.clock.ms(10))
            self.page.get_by_role("menuitem").filter(has_text=re.compile(f"^{choice}")).first.click(
                timeout=self.clock.ms(10)
            )
            main = dialog.locator("button.MuiButtonGroup-grouped").first
            assert main.inner_text().strip() == choice
        self.page.wait_for_function(
            "b => !b.disabled", arg=main.element_handle(), timeout=self.clock.ms(30)
        )
        main.click(timeout=self.clock.ms(10))

    def execute_button(self, dialog):
        return dialog.locator("button.MuiButtonGroup-grouped").first

    def watch_progress(self, dialog, pattern, done, cap_s=240, every_ms=250, shot=None):
        """Polls the dialog while an operator runs; returns the progress texts seen, in order.

        Ends when ``done`` (a regex) matches the dialog's text. With ``shot``, the page is
        photographed the first time a percentage above 0 shows.
        """
        seen = []
        end = time.monotonic() + self.clock.ms(cap_s) / 1000
        while time.monotonic() < end:
            text = self.text(dialog)
            for match in re.findall(pattern, text):
                if not seen or seen[-1] != match:
                    seen.append(match)
                    if shot and re.search(r"\b[1-9]\d?%", match):
                        SHOTS.mkdir(parents=True, exist_ok=True)
                        self.page.screenshot(path=str(SHOTS / shot))
                        shot = None
            if re.search(done, text):
                return seen, text
            self.page.wait_for_timeout(every_ms)
        pytest.fail(f"no end of the run within {cap_s} s; progress seen: {seen}")

    def streamed_progress(self):
        """The progress labels the server streamed to the App in this page's generator runs.

        A run shorter than the dialog's redraw shows its progress too briefly to read it off
        the screen; what the App was sent is read from the streamed response instead.
        """
        labels = []
        for response in self.streams:
            with contextlib.suppress(Exception):  # a stream the page aborted
                for line in response.text().splitlines():
                    body = (json.loads(line) if line.strip() else {}).get("body") or {}
                    if str(body.get("operator_uri", "")).endswith("set_progress"):
                        labels.append((body.get("params") or {}).get("label"))
        return labels

    @staticmethod
    def text(locator):
        try:
            return locator.inner_text(timeout=2000)
        except Exception:
            return ""

    def close_dialog(self):
        for name in ("Done", "Close", "Cancel"):
            button = self.page.get_by_role("dialog").get_by_role("button", name=name, exact=True)
            if button.count() and button.first.is_visible():
                button.first.click(timeout=self.clock.ms(10))
                self.page.get_by_role("dialog").wait_for(state="hidden", timeout=self.clock.ms(30))
                return

    # -- the sidebar ------------------------------------------------------------------

    def sidebar_field(self, name):
        return self.page.locator(f'[data-cy="sidebar-field-{name}"]')

    # -- the panel --------------------------------------------------------------------

    def open_panel(self, cap_s=120):
        """Opens the Coreset Explorer from the '+' beside the Samples tab."""
        page = self.page
        panel = page.locator(PANEL)
        page.locator('[data-cy="new-panel-btn"]').first.click(timeout=self.clock.ms(30))
        page.get_by_text("Coreset Explorer", exact=True).first.click(timeout=self.clock.ms(30))
        panel.get_by_text(re.compile(r"^Kept [\d,]+$")).first.wait_for(timeout=self.clock.ms(cap_s))
        return panel

    def watch_for(self, scope, text):
        """Records, from now on, whether ``text`` shows in ``scope`` even for a moment (see :meth:`was_seen`)."""
        self.page.evaluate(
            """([root, text]) => {
                window.__seen = window.__seen || {};
                window.__seen[text] = false;
                const check = () => { if (root.innerText.includes(text)) { window.__seen[text] = true; observer.disconnect(); } };
                const observer = new MutationObserver(check);
                observer.observe(root, {subtree: true, childList: true, characterData: true});
            }""",
            [scope.element_handle(), text],
        )

    def was_seen(self, text):
        return self.page.evaluate("text => !!(window.__seen && window.__seen[text])", text)
