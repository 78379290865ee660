// The dashboard's glue: key handling, which negotiation is open, the time
// slider, and the auditor's panel. Views live in board.js, timeline.js, audit.js.

import { ApiError, apiGet, apiGetAll, encodeRef, forgetKey, listItems, storedKey, storeKey } from "./api.js";
import { appendEvents, renderCheckpoint, renderUnavailable, renderVerify } from "./audit.js";
import { renderBoard, renderLegend } from "./board.js";
import { h, replaceChildren, words } from "./dom.js";
import { renderTimeline, timeStops } from "./timeline.js";

const $ = (id) => document.getElementById(id);

const state = {
  ref: null, // id or slug of the open negotiation
  negotiation: null,
  timeline: [],
  axis: "as_of",
  stops: [],
  boardRequest: 0, // only the latest board request may draw (the slider fires many)
  eventsCursor: null,
};

function say(text, kind = "info") {
  const message = $("message");
  message.textContent = text;
  message.dataset.kind = kind;
}

function explain(error) {
  if (error instanceof ApiError) {
    if (error.status === 401) return "The API key was not accepted: check it, or make one with `parley keys create`.";
    if (error.status === 403) return `This key may not do that: ${error.message}`;
    return `The API answered ${error.status}: ${error.message}`;
  }
  return `Could not reach the API: ${error.message}`;
}

// --- the key ---------------------------------------------------------------

function onKeySubmit(event) {
  event.preventDefault();
  const input = $("api-key");
  if (!input.value.trim()) {
    say("Type an API key first.", "error");
    return;
  }
  storeKey(input.value);
  input.value = "";
  start();
}

function onForgetKey() {
  forgetKey();
  state.ref = null;
  $("negotiation").hidden = true;
  $("audit").hidden = true;
  replaceChildren($("negotiation-list"));
  say("Key forgotten. Type a key to read the record.");
}

// --- negotiations ----------------------------------------------------------

async function loadNegotiations() {
  const list = $("negotiation-list");
  const negotiations = await apiGetAll("/negotiations");
  if (!negotiations.length) {
    replaceChildren(list, h("li", { class: "empty", text: "No negotiation recorded yet. `parley demo` records an example." }));
    return negotiations;
  }
  replaceChildren(list, negotiations.map((n) => {
    const ref = n.slug || n.id;
    return h("li", {},
      h("a", { href: `#/negotiations/${encodeRef(ref)}`, "data-testid": "negotiation-link", "data-ref": ref },
        h("strong", { text: n.title || ref })),
      " ", h("span", { class: `pill negotiation-${n.status}`, text: words(n.status) }),
      n.last_activity_on ? h("span", { class: "muted", text: ` · last activity ${n.last_activity_on}` }) : null);
  }));
  return negotiations;
}

function refFromLocation() {
  const match = /^#\/negotiations\/(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

async function openNegotiation(ref) {
  state.ref = ref;
  const section = $("negotiation");
  section.hidden = false;
  try {
    const [negotiation, timeline] = await Promise.all([
      apiGet(`/negotiations/${encodeRef(ref)}`),
      apiGetAll(`/negotiations/${encodeRef(ref)}/timeline`, { limit: 500 }),
    ]);
    if (state.ref !== ref) return;
    state.negotiation = negotiation;
    state.timeline = timeline;
    $("negotiation-title").textContent = negotiation.title || ref;
    resetSlider();
    await loadBoard();
    say("");
  } catch (error) {
    say(explain(error), "error");
  }
}

function partyNames(negotiation) {
  const names = new Map();
  for (const p of [...(negotiation.parties || []), ...(negotiation.mediators || [])]) names.set(p.code, p.name || p.code);
  return names;
}

function renderSummary(negotiation) {
  const parties = (negotiation.parties || []).map((p) => p.name || p.code).join(", ");
  replaceChildren($("negotiation-summary"),
    h("span", { class: `pill negotiation-${negotiation.status}`, "data-testid": "negotiation-status", text: words(negotiation.status) }),
    parties ? ` ${parties}` : "",
    negotiation.outcome ? ` · outcome: ${negotiation.outcome}` : "",
    negotiation.last_activity_on ? ` · last activity ${negotiation.last_activity_on}` : "");
}

function renderParties(negotiation) {
  const everyone = [...(negotiation.parties || []), ...(negotiation.mediators || [])];
  replaceChildren($("parties"), everyone.length ? h("ul", { class: "party-list" }, everyone.map((p) =>
    h("li", { "data-party": p.code, class: p.active === false ? "left" : "" },
      h("strong", { text: p.name || p.code }), ` (${p.code}) — ${words(p.role || "party")}`,
      p.active === false ? " (left)" : "",
      p.disputed ? h("span", { class: "flag", text: "disputed" }) : null))) : null);
  const rounds = negotiation.rounds || [];
  replaceChildren($("rounds"), rounds.map((r) => h("li", { "data-testid": "round", "data-state": r.state },
    h("time", { datetime: r.occurred_on, text: r.occurred_on }), " ",
    h("strong", { text: [r.venue, r.country].filter(Boolean).join(", ") || r.round_id }),
    ` — ${words(r.state)}`, r.level ? `, ${words(r.level)} level` : "", r.format ? `, ${words(r.format)}` : "",
    r.summary ? h("span", { class: "muted", text: `: ${r.summary}` }) : null,
    r.disputed ? h("span", { class: "flag", text: "disputed" }) : null)));
}

// --- time travel -----------------------------------------------------------

function resetSlider() {
  state.stops = timeStops(state.timeline, state.axis);
  const slider = $("time-slider");
  // One position per stop plus a last one, "now": the board as it stands.
  slider.max = String(state.stops.length);
  slider.value = String(state.stops.length);
  slider.disabled = state.stops.length === 0;
  $("time-slider-label").textContent = state.axis === "known_at" ? "Show the record as it stood at" : "Show the world as of";
  showPoint();
}

function selectedPoint() {
  const index = Number($("time-slider").value);
  return index < state.stops.length ? state.stops[index] : null;
}

// A record grows in bursts, often several entries a second: record-time stops
// show milliseconds and their rank, so neighbouring stops read differently.
function recordTimeLabel(point) {
  const index = state.stops.indexOf(point);
  const instant = new Date(point).toISOString().replace("T", " ").replace("Z", " UTC");
  return `${instant} (entry ${index + 1} of ${state.stops.length})`;
}

function showPoint() {
  const point = selectedPoint();
  const text = point ? (state.axis === "known_at" ? recordTimeLabel(point) : point) : "now (latest)";
  const slider = $("time-slider");
  $("time-value").textContent = text;
  slider.setAttribute("aria-valuetext", text);
}

function timeParams() {
  const point = selectedPoint();
  return point ? { [state.axis]: point } : {};
}

async function fullIssues(ref, summaries, params) {
  // The list route may serve summaries; the board needs full views (positions, proposals).
  if (summaries.every((issue) => issue.positions !== undefined)) return summaries;
  return Promise.all(summaries.map((issue) =>
    apiGet(`/negotiations/${encodeRef(ref)}/issues/${encodeRef(issue.key)}`, params)));
}

async function loadBoard() {
  const ref = state.ref;
  const request = ++state.boardRequest;
  const params = timeParams();
  const board = $("board");
  board.dataset.state = "loading";
  try {
    const [negotiation, issuesBody] = await Promise.all([
      apiGet(`/negotiations/${encodeRef(ref)}`, params),
      apiGet(`/negotiations/${encodeRef(ref)}/issues`, params),
    ]);
    const issues = await fullIssues(ref, listItems(issuesBody), params);
    if (request !== state.boardRequest) return; // a later slider move owns the board now
    renderSummary(negotiation);
    renderParties(negotiation);
    renderBoard(board, issues, partyNames(state.negotiation || negotiation));
    renderTimeline($("timeline"), state.timeline, state.axis, selectedPoint());
    board.dataset.axis = state.axis;
    board.dataset.point = selectedPoint() || "now";
    board.dataset.state = "ready";
  } catch (error) {
    if (request !== state.boardRequest) return;
    board.dataset.state = "error";
    say(explain(error), "error");
  }
}

let sliderTimer = null;
function onSliderInput() {
  showPoint();
  clearTimeout(sliderTimer);
  sliderTimer = setTimeout(loadBoard, 120);
}

function onAxisChange(event) {
  state.axis = event.target.value;
  resetSlider();
  loadBoard();
}

function onNow() {
  $("time-slider").value = $("time-slider").max;
  showPoint();
  loadBoard();
}

// --- the auditor's view ----------------------------------------------------

async function loadAudit() {
  const section = $("audit");
  let first;
  try {
    first = await apiGet("/events", { limit: 50 });
  } catch (error) {
    // A reader or recorder key: the auditor's view is simply not offered.
    section.hidden = true;
    if (!(error instanceof ApiError) || (error.status !== 403 && error.status !== 404)) say(explain(error), "error");
    return;
  }
  section.hidden = false;
  const tbody = $("event-log").querySelector("tbody");
  tbody.replaceChildren();
  appendEvents(tbody, listItems(first));
  setEventsCursor(first.next);
  const [verify, checkpoint] = await Promise.allSettled([apiGet("/audit/verify"), apiGet("/ledger/checkpoints/latest")]);
  if (verify.status === "fulfilled") renderVerify($("verify-result"), verify.value);
  else renderUnavailable($("verify-result"), explain(verify.reason));
  if (checkpoint.status === "fulfilled") renderCheckpoint($("checkpoint"), checkpoint.value);
  else renderUnavailable($("checkpoint"), checkpoint.reason instanceof ApiError && checkpoint.reason.status === 404
    ? "No checkpoint has been signed yet." : explain(checkpoint.reason));
}

function setEventsCursor(cursor) {
  state.eventsCursor = cursor || null;
  $("more-events").hidden = !state.eventsCursor;
}

async function onMoreEvents() {
  try {
    const page = await apiGet("/events", { limit: 50, cursor: state.eventsCursor });
    appendEvents($("event-log").querySelector("tbody"), listItems(page));
    setEventsCursor(page.next);
  } catch (error) {
    say(explain(error), "error");
  }
}

// --- start -----------------------------------------------------------------

async function start() {
  if (!storedKey()) {
    say("Type an API key to read the record.");
    return;
  }
  say("Loading…");
  try {
    const negotiations = await loadNegotiations();
    say("");
    const ref = refFromLocation() || (negotiations.length === 1 ? negotiations[0].slug || negotiations[0].id : null);
    await Promise.all([ref ? openNegotiation(ref) : null, loadAudit()]);
  } catch (error) {
    say(explain(error), "error");
  }
}

function onHashChange() {
  const ref = refFromLocation();
  if (ref && storedKey()) openNegotiation(ref);
}

renderLegend($("status-legend"));
$("key-form").addEventListener("submit", onKeySubmit);
$("forget-key").addEventListener("click", onForgetKey);
$("time-slider").addEventListener("input", onSliderInput);
$("time-now").addEventListener("click", onNow);
for (const radio of document.querySelectorAll('input[name="axis"]')) radio.addEventListener("change", onAxisChange);
$("more-events").addEventListener("click", onMoreEvents);
$("home-link").addEventListener("click", () => { location.hash = ""; });
window.addEventListener("hashchange", onHashChange);
start();
