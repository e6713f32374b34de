"""The dashboard in headless Chromium against the real stack: submit from the
page and watch the stage bars fill; open a resume and read its stages and
chunk count; open a failed pipeline and read its error, retry it through the
confirmation dialog; filter and page the history. Screenshots of each view:
test-artifacts/dashboard-*.png."""

from __future__ import annotations

import re
import shutil
import time

import httpx
import pytest

from svc_parser.model import sample_pdf
from tests.support.keys import API_KEY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium not installed (make system-deps installs it as root)"
)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 1000}
CORRUPT_PDF = b"%PDF-1.4\n1 0 obj garbage\n%%EOF"  # passes the upload check, fails in parse_pdf


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(chromium, gateway):
    """A fresh page on the dashboard with the key entered; fails the test on any script error."""
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{gateway.url}/dashboard/")
    page.fill("#api-key", API_KEY)
    page.click("#key-form button")
    expect(page.locator("#ready")).to_have_text("ready", timeout=20_000)
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def api(gateway, path: str) -> dict:
    with gateway.client() as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait_state(gateway, pipeline_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api(gateway, f"/api/v1/pipelines/{pipeline_id}")
        if status["overall_state"] in states and all(t["ready"] for t in status["tasks"]):
            return status
        time.sleep(0.5)
    raise AssertionError(f"pipeline {pipeline_id} not in {states} after {timeout} s: {status['overall_state']}")


def failed_records(gateway, pipeline_id: str, count: int = 1, timeout: float = 30) -> list[dict]:
    """The pipeline's FAILURE task rows once tracking has written `count` of them (the status
    can show a failure from the live hash a moment before)."""
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in api(gateway, f"/api/v1/pipelines/{pipeline_id}/tasks") if r["status"] == "FAILURE"]
        if len(records) >= count or time.monotonic() > deadline:
            assert len(records) >= count, f"{pipeline_id}: {len(records)} failed rows tracked, wanted {count}"
            return records
        time.sleep(0.3)


def upload_from_page(page, pipeline: str, name: str, data: bytes, mime: str) -> str:
    from playwright.sync_api import expect

    page.select_option("#file-pipeline", pipeline)
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": mime, "buffer": data}])
    page.click("#file-submit")
    expect(page.locator("#submit-message")).to_contain_text("submitted", timeout=20_000)
    return page.locator("#submit-message").get_attribute("data-pipeline-id")


def shown_seconds(value: float) -> str:
    """A duration as the page writes it (dom.js seconds())."""
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s" if value < 120 else f"{int(value // 60)} min"


def shot(page, artifacts_dir, name: str) -> None:
    page.wait_for_timeout(500)  # let bar transitions finish for the picture
    path = artifacts_dir / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def test_submit_from_the_page_and_watch_the_bars_fill(page, gateway, artifacts_dir):
    from playwright.sync_api import expect

    expect(page.locator("#health tbody tr")).to_have_count(8, timeout=20_000)
    expect(page.locator("#health tbody")).to_contain_text("cpu")
    # The summary strip: every service with its device and replicas, the queues.
    services = page.locator("#sum-service-list li")
    expect(services).to_have_count(4, timeout=20_000)
    for name in ("parser", "embedder", "llm", "stt"):
        expect(page.locator(f'#sum-service-list li[data-service="{name}"]')).to_contain_text(re.compile(r"cpu.*1/1 up"))
    expect(page.locator('#sum-queue-list li[data-queue="cpu_queue"]')).to_be_visible(timeout=20_000)
    expect(page.locator('#sum-queue-list li[data-queue="gpu_queue"]')).to_be_visible()
    # The upload form offers the registry's pipelines that take a file.
    expect(page.locator("#file-pipeline option")).to_have_count(3, timeout=10_000)
    offered = page.locator("#file-pipeline option").evaluate_all("els => els.map(e => e.value)")
    assert sorted(offered) == ["document", "interview-answer", "resume"]

    page.fill("#ai-text", "The dashboard submits this text and follows the four stages live.")
    page.click("#ai-submit")
    expect(page.locator("#submit-message")).to_contain_text("submitted", timeout=20_000)
    pipeline_id = page.locator("#submit-message").get_attribute("data-pipeline-id")
    box = page.locator(f"#p-{pipeline_id}")
    expect(box.locator(".stage")).to_have_count(4, timeout=20_000)
    expect(box).to_have_attribute("data-state", "SUCCESS", timeout=240_000)
    percents = box.locator(".bar > div").evaluate_all("els => els.map(e => e.dataset.percent)")
    assert percents == ["100"] * 4

    # The durations chart: labelled axes in seconds, a dot per finished task (refreshed every 10 s).
    expect(page.locator("#chart circle").first).to_be_attached(timeout=30_000)
    axis_titles = page.locator("#chart .axis-title").all_text_contents()
    assert axis_titles == ["runtime (seconds)", "finished at (local time)"]
    assert page.locator("#chart .axis text").count() >= 6  # tick labels on both axes
    # The summary's numbers once there is history: a success rate, p95 for the AI pipeline's stages.
    expect(page.locator("#sum-success-rate")).to_have_text(re.compile(r"^\d+(\.\d)?%$"), timeout=20_000)
    ai_p95 = page.locator('#sum-p95 tr[data-pipeline="ai_pipeline"]')
    expect(ai_p95).to_contain_text(re.compile(r"\d s"), timeout=20_000)
    shot(page, artifacts_dir, "overview")


def test_open_a_resume_from_the_list_and_read_its_stages_and_chunks(page, gateway, artifacts_dir):
    from playwright.sync_api import expect

    pdf = sample_pdf(
        ["Kim Minji. Backend engineer. Celery, Redis and PostgreSQL.", "Built gRPC model services on GPUs."],
        title="Kim Minji",
    )
    pipeline_id = upload_from_page(page, "resume", "kim.pdf", pdf, "application/pdf")
    page.locator(f"#p-{pipeline_id} a.open").click()  # open it from the live list
    expect(page).to_have_url(re.compile(f"#/pipelines/{pipeline_id}$"))
    expect(page.locator("#pipeline-view")).to_be_visible()
    expect(page.locator("#overview-view")).to_be_hidden()
    expect(page.locator("#pipeline-title")).to_have_text("resume")
    expect(page.locator("#pipeline-state")).to_have_text("SUCCESS", timeout=120_000)

    rows = page.locator("#stages tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator("th")).to_have_text(["parse_pdf", "generate_embeddings", "store_chunks"])
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.status)") == ["SUCCESS"] * 3
    status = api(gateway, f"/api/v1/pipelines/{pipeline_id}")
    for row, task in zip(rows.all(), status["tasks"], strict=True):
        cells = row.locator("td").all_inner_texts()
        # #, status, progress, queue, worker, queued, started, finished, runtime / p95, retries
        assert cells[3] == task["queue"] and cells[4] == task["worker"], cells
        assert all(re.fullmatch(r"\d\d:\d\d:\d\d", c) for c in cells[5:8]), cells  # queued, started, finished
        assert cells[8].startswith(shown_seconds(task["runtime"])), cells
        assert cells[9] == str(task["retries"])

    # The result as a resume's: its chunk count, title and pages, as the API says.
    result = api(gateway, f"/api/v1/pipelines/{pipeline_id}/result")["result"]
    chunks = page.locator('#result-body [data-field="chunks"]')
    expect(chunks).to_have_text(str(result["chunks"]), timeout=20_000)
    assert result["chunks"] >= 1
    expect(page.locator('#result-body [data-field="title"]')).to_have_text("Kim Minji")
    expect(page.locator('#result-body [data-field="page_count"]')).to_have_text("2")
    expect(page.locator("#retry-button")).to_be_disabled()
    expect(page.locator("#cancel-button")).to_be_disabled()
    expect(page.locator("#failure")).to_be_hidden()
    shot(page, artifacts_dir, "pipeline")


def test_a_failed_pipeline_shows_its_error_and_retries_through_the_dialog(page, gateway, artifacts_dir):
    from playwright.sync_api import expect

    pipeline_id = upload_from_page(page, "resume", "broken.pdf", CORRUPT_PDF, "application/pdf")
    wait_state(gateway, pipeline_id, {"FAILURE"})
    page.goto(f"{gateway.url}/dashboard/#/pipelines/{pipeline_id}")  # a linked pipeline opens directly
    expect(page.locator("#pipeline-state")).to_have_text("FAILURE", timeout=20_000)
    rows = page.locator("#stages tbody tr")
    expect(rows).to_have_count(3)
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.status)") == ["FAILURE", "SKIPPED", "SKIPPED"]
    expect(page.locator("#stages-note")).to_contain_text("2 stages after the failure never ran")

    # The error as tracking recorded it: type, message, traceback.
    failed = failed_records(gateway, pipeline_id)[0]
    # the tracked row's version (the page shows the status's summary until tracking has written it)
    failure = page.locator(f'#failure article[data-task-id="{failed["task_id"]}"]:not([data-source])')
    expect(failure).to_be_visible()
    message = failed["error_message"].removeprefix(f"{failed['error_type']}: ")  # the type is shown once, above it
    expect(failure.locator(".error-message")).to_have_text(message)
    expect(failure.locator("strong")).to_have_text(f"{failed['error_type']}: ")
    assert "corrupt" in failed["error_message"].lower() or "pdf" in failed["error_message"].lower()
    expect(failure.locator("pre.traceback")).to_contain_text("Traceback")
    expect(page.locator("#cancel-button")).to_be_disabled()
    expect(page.locator("#retry-button")).to_be_enabled()
    shot(page, artifacts_dir, "failure")

    # Retry asks first; Escape (the dialog's keyboard way out) retries nothing.
    page.click("#retry-button")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-no")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#retry-button")).to_be_focused()
    page.wait_for_timeout(500)
    assert api(gateway, f"/api/v1/pipelines/{pipeline_id}")["tasks"][0]["task_id"] == failed["task_id"]

    page.click("#retry-button")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("parse_pdf")
    shot(page, artifacts_dir, "retry-dialog")
    page.click("#confirm-yes")
    expect(page.locator("#action-message")).to_contain_text("Retry accepted", timeout=20_000)
    expect(page.locator("#action-message")).to_contain_text("3 stages queued again")
    retried = api(gateway, f"/api/v1/pipelines/{pipeline_id}")
    assert retried["tasks"][0]["task_id"] != failed["task_id"]
    # The page follows the new run (it fails the same way) and shows the new stage and both errors.
    first_row = page.locator("#stages tbody tr").first
    expect(first_row).to_have_attribute("data-task-id", retried["tasks"][0]["task_id"], timeout=20_000)
    expect(page.locator("#pipeline-state")).to_have_text("FAILURE", timeout=60_000)
    expect(page.locator("#failure article:not([data-source])")).to_have_count(2, timeout=20_000)
    expect(page.locator("#failure article.earlier")).to_have_count(1)
    expect(first_row.locator("td").nth(9)).to_have_text(re.compile(r"^0\s*\+1 earlier run$"))
    shot(page, artifacts_dir, "retried")

    # A refusal is shown as the gateway's error, not swallowed (the 409 body, in the API's error shape).
    refusal = {"success": False, "error": {"code": "FAILED_PRECONDITION", "message": "pipeline is PROGRESS"}}
    page.route(f"**/api/v1/pipelines/{pipeline_id}/retry", lambda route: route.fulfill(status=409, json=refusal))
    page.click("#retry-button")
    page.click("#confirm-yes")
    expect(page.locator("#action-message")).to_have_text("Retry refused: FAILED_PRECONDITION: pipeline is PROGRESS")
    expect(page.locator("#action-message")).to_have_class(re.compile(r"\berror\b"))


def test_history_filters_paging_and_links(page, gateway, artifacts_dir):
    from playwright.sync_api import expect

    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=30) as client:
        ids = []
        for _ in range(3):
            response = client.post(
                "/api/v1/pipelines/resume", files={"file": ("bad.pdf", CORRUPT_PDF, "application/pdf")}
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["data"]["pipeline_id"])
    for pipeline_id in ids:
        wait_state(gateway, pipeline_id, {"FAILURE"})
        failed_records(gateway, pipeline_id)  # in tracking, so in the history

    page.click("nav a[data-view=history]")
    expect(page).to_have_url(re.compile("#/history$"))
    expect(page.locator("nav a[data-view=history]")).to_have_attribute("aria-current", "page")
    expect(page.locator("#history-table tbody tr").first).to_be_visible(timeout=20_000)
    # The filters the API has: hours, status (the statuses it serves), pipeline, task name.
    offered = page.locator("#history-status option").evaluate_all("els => els.map(e => e.value)")
    assert offered == ["", *api(gateway, "/api/v1/states")["task_statuses"]]
    page.select_option("#history-hours", "1")
    page.select_option("#history-status", "FAILURE")
    page.select_option("#history-pipeline", "resume")
    expect(page.locator("#history-task option")).to_have_count(4)  # any + resume's three stages
    page.select_option("#history-task", "tasks.resume_pipeline.parse_pdf")
    page.click("#history-apply")
    expect(page).to_have_url(
        re.compile(r"#/history\?hours=1&status=FAILURE&pipeline=resume&task_name=tasks\.resume_pipeline\.parse_pdf$")
    )
    rows = page.locator("#history-table tbody tr")
    expect(rows.first).to_be_visible(timeout=20_000)
    expect(page.locator("#history-message")).to_contain_text("FAILURE, resume")
    expected = api(
        gateway,
        "/api/v1/tasks/history?hours=1&status=FAILURE&pipeline=resume&task_name=tasks.resume_pipeline.parse_pdf&limit=50",
    )["items"]
    expect(rows).to_have_count(len(expected))
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.status)") == ["FAILURE"] * len(expected)
    shown = rows.evaluate_all("rs => rs.map(r => r.dataset.pipelineId)")
    assert shown == [t["pipeline_id"] for t in expected]
    assert set(ids) <= set(shown)
    shot(page, artifacts_dir, "history")

    # Paging with next_cursor (two a page, from the URL): older, then back to newer.
    page.goto(f"{gateway.url}/dashboard/#/history?hours=1&status=FAILURE&pipeline=resume&limit=2")
    expect(rows).to_have_count(2, timeout=20_000)
    first_page = rows.evaluate_all("rs => rs.map(r => r.dataset.pipelineId)")
    assert first_page == [t["pipeline_id"] for t in expected[:2]]
    expect(page.locator("#history-older")).to_be_enabled()
    expect(page.locator("#history-newer")).to_be_disabled()
    page.click("#history-older")
    expect(page.locator("#history-page")).to_have_text("page 2")
    expect(rows.first).not_to_have_attribute("data-pipeline-id", first_page[0])
    second_page = rows.evaluate_all("rs => rs.map(r => r.dataset.pipelineId)")
    assert second_page == [t["pipeline_id"] for t in expected[2:4]]
    page.click("#history-newer")
    expect(page.locator("#history-page")).to_have_text("page 1")
    expect(rows.first).to_have_attribute("data-pipeline-id", first_page[0])

    # A row opens its pipeline.
    rows.first.locator("a").click()
    expect(page).to_have_url(re.compile(f"#/pipelines/{first_page[0]}$"))
    expect(page.locator("#pipeline-state")).to_have_text("FAILURE", timeout=20_000)
    # Reset clears the filters.
    page.click("nav a[data-view=history]")
    page.click("#history-reset")
    expect(page).to_have_url(re.compile("#/history$"))
    expect(page.locator("#history-status")).to_have_value("")


def test_an_interview_answer_shows_its_score_breakdown(page, gateway, interview_speech, artifacts_dir):
    from playwright.sync_api import expect

    audio = interview_speech["ml-serving-strong"]
    pipeline_id = upload_from_page(page, "interview-answer", "answer.wav", audio, "audio/wav")
    page.goto(f"{gateway.url}/dashboard/#/pipelines/{pipeline_id}")
    expect(page.locator("#pipeline-state")).to_have_text("SUCCESS", timeout=240_000)
    evaluation = api(gateway, f"/api/v1/pipelines/{pipeline_id}/result")["result"]["evaluation"]
    expect(page.locator('#result-body [data-field="score"]')).to_contain_text(
        f"{evaluation['score']}/10", timeout=20_000
    )
    rows = page.locator('#result-body [data-field="breakdown"] tbody tr')
    expect(rows.locator("th")).to_have_text(list(evaluation["breakdown"]["signals"]))
    # No question and no resume were given: relevance and grounding cannot be measured, and say so.
    expect(rows.filter(has_text="relevance")).to_contain_text("not measured")
    expect(page.locator('#result-body [data-field="notes"] li')).to_have_text(evaluation["notes"])
    shot(page, artifacts_dir, "interview")
