// The status vocabulary as the gateway serves it (GET /api/v1/states): the server's
// own sets, not a copy kept here. app.js loads it once before the views read it
// (again after a key is entered, while it could not be read without one).

import { api, auth } from "./api.js";

export const TASK_STATUSES = []; // every status a tracked task can hold (history's filter)
export const PIPELINE_TERMINAL = new Set(); // the overall states a pipeline ends in

let loading = null;
let loadingWith = null; // the key the read in flight (or done) was sent with

// Resolves with the vocabulary; a failed read (no key yet) is tried again on the next call,
// and a key entered while a read without it is in flight starts a read of its own.
export function loadStates() {
  if (loading && loadingWith === auth.key) return loading;
  loadingWith = auth.key;
  const attempt = api("/api/v1/states").then((states) => {
    TASK_STATUSES.splice(0, TASK_STATUSES.length, ...states.task_statuses);
    PIPELINE_TERMINAL.clear();
    states.pipeline_terminal.forEach((s) => PIPELINE_TERMINAL.add(s));
    return states;
  }, (err) => {
    if (loading === attempt) loading = null;
    throw err;
  });
  loading = attempt;
  return attempt;
}
