// The auditor's view: the global log in commit order, whether every hash chain
// still recomputes, and the latest signed checkpoint of the Merkle tree.

import { h, replaceChildren, words } from "./dom.js";

function shortHash(hash) {
  return hash ? `${String(hash).slice(0, 12)}…` : "";
}

export function appendEvents(tbody, events) {
  for (const event of events) {
    tbody.append(h("tr", { "data-testid": "event-row", "data-type": event.type },
      h("td", { class: "num", text: event.position }),
      h("td", {}, h("code", { text: event.type })),
      h("td", { title: event.stream_id }, words(event.stream_type), " ", h("code", { text: shortHash(event.stream_id) }), ` v${event.version}`),
      h("td", { text: event.occurred_on }),
      h("td", { text: event.recorded_at ? String(event.recorded_at).replace("T", " ").slice(0, 19) : "" }),
      h("td", { text: event.recorded_by }),
      h("td", { title: event.hash }, h("code", { text: shortHash(event.hash) }))));
  }
}

// The verification report's exact field names belong to the audit routes; read
// the common spellings and show the rest as it came.
export function renderVerify(container, report) {
  const ok = [report.ok, report.valid, report.verified, report.intact].find((v) => typeof v === "boolean");
  const checked = report.events_checked ?? report.checked ?? report.events ?? report.count;
  const mismatch = report.first_mismatch || report.mismatch || null;
  replaceChildren(container,
    h("p", { class: `verdict ${ok === false ? "bad" : ok ? "good" : ""}`, "data-testid": "verify-verdict",
      "data-ok": ok === undefined ? "unknown" : String(ok),
      text: ok === false ? "Mismatch: the record was altered" : ok ? "Every hash recomputes: nothing altered, dropped or reordered"
        : "Verification result" }),
    checked !== undefined ? h("p", { text: `${checked} events checked` }) : null,
    mismatch ? h("pre", { class: "raw", text: JSON.stringify(mismatch, null, 2) }) : null,
    details(report));
}

export function renderCheckpoint(container, checkpoint) {
  const size = checkpoint.tree_size ?? checkpoint.size;
  const root = checkpoint.root_hash ?? checkpoint.root;
  const note = checkpoint.note || checkpoint.text || checkpoint.checkpoint || checkpoint.signed_note;
  replaceChildren(container,
    h("dl", { class: "facts" },
      checkpoint.origin ? [h("dt", { text: "Origin" }), h("dd", {}, h("code", { text: checkpoint.origin }))] : null,
      size !== undefined ? [h("dt", { text: "Tree size" }), h("dd", { "data-testid": "tree-size", text: size })] : null,
      root ? [h("dt", { text: "Root" }), h("dd", {}, h("code", { class: "wrap", text: root }))] : null),
    typeof note === "string" ? h("pre", { class: "raw", "data-testid": "checkpoint-note", text: note }) : null,
    details(checkpoint));
}

function details(body) {
  return h("details", {}, h("summary", { text: "Full response" }),
    h("pre", { class: "raw", text: JSON.stringify(body, null, 2) }));
}

export function renderUnavailable(container, text) {
  replaceChildren(container, h("p", { class: "muted", text }));
}
