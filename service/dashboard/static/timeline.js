// The timeline in world time, and the stops of the time slider taken from it.

import { h, replaceChildren, words } from "./dom.js";

export function entryText(entry) {
  return entry.line || entry.text || entry.description || entry.summary || entry.sentence || words(entry.type);
}

export function entryRecordedAt(entry) {
  return entry.recorded_at || (entry.event && entry.event.recorded_at) || null;
}

// World-time days sort as text; an instant's first ten characters are its day.
export function worldDay(value) {
  return value ? String(value).slice(0, 10) : null;
}

function addDays(day, count) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + count);
  return date.toISOString().slice(0, 10);
}

// The slider's stops on each axis, oldest first. World time: every day from the
// first to the last occurred_on (a day covers all of itself, see DESIGN's as_of).
// Record time: each distinct instant something was recorded, because a record
// grows in bursts (an import, a demo) that calendar days would not separate.
export function timeStops(entries, axis) {
  if (axis === "known_at") {
    return [...new Set(entries.map(entryRecordedAt).filter(Boolean))]
      .sort((a, b) => Date.parse(a) - Date.parse(b));
  }
  const days = entries.map((e) => worldDay(e.occurred_on)).filter(Boolean).sort();
  if (!days.length) return [];
  const stops = [];
  for (let day = days[0]; day <= days[days.length - 1] && stops.length < 3660; day = addDays(day, 1)) {
    stops.push(day);
  }
  return stops;
}

// Whether an entry is beyond the point the board is showing (drawn dimmed).
export function isLater(entry, axis, point) {
  if (!point) return false;
  if (axis === "known_at") {
    const recorded = entryRecordedAt(entry);
    return recorded ? Date.parse(recorded) > Date.parse(point) : false;
  }
  return worldDay(entry.occurred_on) > point;
}

export function renderTimeline(list, entries, axis, point) {
  if (!entries.length) {
    replaceChildren(list, h("li", { class: "empty", text: "Nothing recorded yet." }));
    return;
  }
  replaceChildren(list, entries.map((entry) => {
    const later = isLater(entry, axis, point);
    const source = entry.source || {};
    return h("li", {
      class: `entry${later ? " later" : ""}${entry.retracted ? " retracted" : ""}`,
      "data-testid": "timeline-entry", "data-type": entry.type, "data-later": later ? "true" : "false",
    },
    h("time", { datetime: entry.occurred_on, text: entry.occurred_on }),
    h("span", { class: "what" }, entryText(entry),
      entry.issue ? [" ", h("code", { text: entry.issue })] : null,
      entry.disputed ? [" ", h("span", { class: "flag", text: "disputed" })] : null,
      entry.retracted ? [" ", h("span", { class: "flag", text: "retracted" })] : null,
      later ? h("span", { class: "sr-only", text: " (after the point shown)" }) : null),
    source.outlet || source.url ? h("span", { class: "source" }, "source: ",
      source.url && /^https?:\/\//.test(source.url)
        ? h("a", { href: source.url, rel: "noopener noreferrer", text: source.outlet || source.url })
        : (source.outlet || source.url),
      source.speaker ? `, ${source.speaker}` : "") : null);
  }));
}
