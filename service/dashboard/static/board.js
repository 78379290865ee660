// The board: one card per issue, coloured by its status, with each party's
// position, the open proposals and whom they await, ceasefires and corridors,
// and every disputed claim flagged so a contested report never reads as consensus.

import { h, replaceChildren, words } from "./dom.js";

// DESIGN's precedence order, which is also the order of the legend.
export const STATUSES = [
  "dropped", "violated", "withdrawn", "implemented", "implementing", "agreed", "rejected", "partially_agreed",
  "agreed_in_principle", "proposal_on_table", "deadlocked", "under_discussion", "raised",
];

export function renderLegend(list) {
  replaceChildren(list, STATUSES.map((status) =>
    h("li", { class: `badge status-${status}`, "data-status": status, text: words(status) })));
}

export function renderBoard(container, issues, partyNames) {
  if (!issues.length) {
    replaceChildren(container, h("p", { class: "empty", "data-testid": "board-empty",
      text: "No issue was on the table at this point." }));
    return;
  }
  replaceChildren(container, issues.map((issue) => issueCard(issue, partyNames)));
}

function name(partyNames, code) {
  return partyNames.get(code) || code;
}

function issueCard(issue, partyNames) {
  const status = issue.status || "raised";
  const disputes = issue.disputes || [];
  const headingId = `issue-${issue.key}`;
  return h("article", {
    class: `issue status-${status}`, "data-testid": "issue-card", "data-issue": issue.key,
    "data-status": status, "aria-labelledby": headingId,
  },
  h("header", { class: "issue-head" },
    h("h4", { id: headingId, text: issue.title || issue.key }),
    h("span", { class: `badge status-${status}`, "data-testid": "issue-status", text: words(status) })),
  h("p", { class: "meta" },
    h("code", { text: issue.key }), " · ", words(issue.category),
    issue.last_activity_on ? ` · last activity ${issue.last_activity_on}` : ""),
  disputes.length ? h("p", { class: "flag", "data-testid": "issue-disputed",
    text: `${disputes.length} disputed claim${disputes.length > 1 ? "s" : ""}` }) : null,
  positions(issue, partyNames),
  proposals(issue, partyNames),
  agreements(issue, partyNames),
  items(issue),
  linked(issue),
  disputeList(disputes, partyNames));
}

function disputedMark(thing) {
  return thing && thing.disputed ? h("span", { class: "flag", "data-testid": "disputed", text: "disputed" }) : null;
}

function positions(issue, partyNames) {
  const entries = Object.entries(issue.positions || {});
  if (!entries.length) return null;
  return h("section", { class: "block" },
    h("h5", { text: "Positions" }),
    h("dl", { class: "positions" }, entries.map(([code, position]) => [
      h("dt", { "data-party": code }, name(partyNames, code)),
      h("dd", { "data-testid": "position", "data-party": code, "data-stance": position.stance },
        h("span", { class: `stance stance-${position.stance}`, text: words(position.stance) }),
        " ", position.summary || "", " ", disputedMark(position),
        position.conditions && position.conditions.length
          ? h("ul", { class: "conditions" }, position.conditions.map((c) => h("li", { text: c }))) : null),
    ])));
}

function proposals(issue, partyNames) {
  const open = (issue.proposals || []).filter((p) => p.status === "open");
  const closed = (issue.proposals || []).filter((p) => p.status !== "open");
  if (!open.length && !closed.length) return null;
  return h("section", { class: "block" },
    h("h5", { text: open.length ? "Open proposals" : "Proposals" }),
    h("ul", { class: "proposals" },
      open.map((p) => h("li", { "data-testid": "proposal", "data-proposal": p.proposal_id, "data-state": p.status },
        h("strong", { text: name(partyNames, p.by) }), ": ", p.summary || p.proposal_id, " ", disputedMark(p),
        p.awaiting && p.awaiting.length
          ? h("span", { class: "awaiting", "data-testid": "awaiting",
            text: `awaiting ${p.awaiting.map((c) => name(partyNames, c)).join(", ")}` }) : null)),
      closed.map((p) => h("li", { class: "closed", "data-testid": "proposal", "data-proposal": p.proposal_id,
        "data-state": p.status },
        h("strong", { text: name(partyNames, p.by) }), ": ", p.summary || p.proposal_id,
        h("span", { class: "state", text: ` — ${words(p.status)}` }), " ", disputedMark(p)))));
}

function agreements(issue, partyNames) {
  const list = issue.agreements || [];
  if (!list.length) return null;
  return h("section", { class: "block" },
    h("h5", { text: "Agreements" }),
    h("ul", { class: "agreements" }, list.map((a) => agreementItem(a, partyNames))));
}

// One agreement: its latest step, whether it is still in force, how far it is
// implemented, and what happened after the signing (ratifications, withdrawals,
// supersession), so a signed-then-rejected deal never reads as agreed.
export function agreementItem(a, partyNames) {
  const names = (codes) => (codes || []).map((c) => name(partyNames, c)).join(", ");
  const extent = a.implementation ? a.implementation.extent : null;
  const after = [];
  if (a.signed_by && a.signed_by.length) after.push(`signed by ${names(a.signed_by)}`);
  for (const r of a.ratifications || []) {
    const result = r.result && r.result.yes != null ? ` ${r.result.yes}% yes` : "";
    after.push(`${words(r.outcome)} by ${name(partyNames, r.by)} (${words(r.method)}${r.body ? `, ${r.body}` : ""}${result}) on ${r.occurred_on}`);
  }
  if (a.withdrawn_by && a.withdrawn_by.length) after.push(`withdrawn from by ${names(a.withdrawn_by)}`);
  if (a.superseded_by) after.push(`superseded by ${a.superseded_by}`);
  if (a.violations) after.push(`${a.violations} violation${a.violations > 1 ? "s" : ""} reported`);
  return h("li", {
    "data-testid": "agreement", "data-agreement": a.agreement_id, "data-state": a.state,
    "data-in-force": a.in_force === false ? "false" : "true", "data-extent": extent || "",
  },
  h("span", { class: `agreement-state state-${a.state}`, "data-testid": "agreement-state", text: words(a.state) }), " ",
  a.summary || a.agreement_id, " ",
  h("span", { class: "state", text: `(${words(a.level)}; ${names(a.parties)})` }), " ",
  a.in_force === false ? h("span", { class: "flag", "data-testid": "not-in-force", text: "not in force" }) : null,
  extent ? h("span", { class: `extent extent-${extent}`, "data-testid": "extent",
    text: `implemented: ${words(extent)} (${a.implementation.occurred_on})` }) : null,
  " ", disputedMark(a),
  a.issues && a.issues.length > 1 ? h("span", { class: "muted", text: ` covers ${a.issues.join(", ")}` }) : null,
  after.length ? h("ul", { class: "agreement-life" }, after.map((line) => h("li", { text: line }))) : null);
}

function items(issue) {
  const list = issue.items || [];
  if (!list.length) return null;
  return h("section", { class: "block" },
    h("h5", { text: "Ceasefires and corridors" }),
    h("ul", { class: "items" }, list.map((item) => h("li", {
      "data-testid": "item", "data-kind": item.kind, "data-item": item.id, "data-state": item.state,
    },
    h("span", { class: `item-state state-${item.state}`, text: words(item.state) }), " ",
    words(item.kind), " ", itemWhere(item), " ", disputedMark(item)))));
}

function itemWhere(item) {
  if (item.kind === "corridor") {
    const route = [item.from, item.to].filter(Boolean).join(" → ");
    return route || item.id;
  }
  return [item.area, item.scope && `(${item.scope})`].filter(Boolean).join(" ") || item.id;
}

function linked(issue) {
  const list = issue.linked || [];
  if (!list.length) return null;
  return h("p", { class: "linked", "data-testid": "linked" }, "Linked: ",
    list.map((link, i) => [i ? ", " : "", words(link.relation), " ", h("code", { text: link.issue })]));
}

function disputeList(disputes, partyNames) {
  if (!disputes.length) return null;
  return h("section", { class: "block disputes" },
    h("h5", { text: "Disputed claims" }),
    h("ul", {}, disputes.map((d) => h("li", { "data-testid": "dispute" },
      h("strong", { text: name(partyNames, d.by) }), " disputes: ", d.summary || "",
      d.occurred_on ? h("span", { class: "muted", text: ` (${d.occurred_on})` }) : null))));
}
