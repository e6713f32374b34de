"""The dashboard in headless Chromium: submit from the page, watch the stage
bars reach 100%, take a screenshot (test-artifacts/dashboard.png)."""

from __future__ import annotations

import shutil

import pytest

from tests.support.gateway import API_KEY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (make system-deps installs it as root)")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def test_submit_from_the_page_and_watch_the_bars_fill(gateway, artifacts_dir):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{gateway.url}/dashboard/")
            page.fill("#api-key", API_KEY)
            page.click("#key-form button")
            expect(page.locator("#ready")).to_have_text("ready", timeout=20_000)
            expect(page.locator("#health tbody tr")).to_have_count(8, timeout=20_000)
            expect(page.locator("#health tbody")).to_contain_text("cpu")
            page.fill("#ai-text", "The dashboard submits this text and follows the four stages live.")
            page.click("#ai-submit")
            expect(page.locator("#submit-message")).to_contain_text("submitted", timeout=20_000)
            pipeline_id = page.locator("#submit-message").inner_text().split()[1]
            box = page.locator(f"#p-{pipeline_id}")
            expect(box.locator(".stage")).to_have_count(4, timeout=20_000)
            expect(box).to_have_attribute("data-state", "SUCCESS", timeout=240_000)
            percents = box.locator(".bar > div").evaluate_all("els => els.map(e => e.dataset.percent)")
            assert percents == ["100"] * 4
            page.wait_for_timeout(500)  # let the width transition finish for the picture
            page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert (artifacts_dir / "dashboard.png").stat().st_size > 10_000
