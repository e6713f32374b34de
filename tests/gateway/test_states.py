"""GET /api/v1/states serves the status vocabulary of orchestrator/tracking/states.py,
the one place it is written; the dashboard and the CLI read it from there."""

from __future__ import annotations

import itertools

import httpx

from orchestrator.tracking import states


def test_the_route_serves_exactly_the_modules_sets(client):
    response = client.get("/api/v1/states")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["data"] == {
        "task_statuses": list(states.RECORDED),
        "task_terminal": [s for s in states.RECORDED if s in states.TERMINAL],
        "pipeline_states": list(states.PIPELINE_STATES),
        "pipeline_terminal": [s for s in states.PIPELINE_STATES if s in states.PIPELINE_TERMINAL],
    }
    assert set(body["data"]["task_terminal"]) == states.TERMINAL
    assert set(body["data"]["pipeline_terminal"]) == states.PIPELINE_TERMINAL


def test_it_needs_the_key_like_every_api_route(gateway):
    response = httpx.get(f"{gateway.url}/api/v1/states")
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_pipeline_states_are_what_overall_state_returns():
    """Every value overall_state gives for up to four stages, over every status a stage can show."""
    shown = (*states.RECORDED, states.PROGRESS)
    given = {states.overall_state(combo) for n in range(5) for combo in itertools.product(shown, repeat=n)}
    assert given == set(states.PIPELINE_STATES)
    assert states.PIPELINE_TERMINAL < given
