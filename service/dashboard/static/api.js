// The JSON API as the page sees it: the key lives in sessionStorage (this tab
// only, gone when it closes) and travels in the Authorization header, never in
// a URL where it would end up in history, logs or a Referer.

const KEY_NAME = "parley.apiKey";

export function storedKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_NAME, key.trim());
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function withQuery(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}${path.includes("?") ? "&" : "?"}${text}` : path;
}

export async function apiGet(path, params = {}) {
  const response = await fetch(withQuery(path, params), {
    headers: { Authorization: `Bearer ${storedKey()}`, Accept: "application/json" },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// Lists are {"items": [...], "next": cursor-or-null}; this follows `next` up to a bound.
export async function apiGetAll(path, params = {}, maxPages = 20) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const body = await apiGet(path, { ...params, cursor });
    items.push(...listItems(body));
    cursor = body && body.next;
    if (!cursor) break;
  }
  return items;
}

export function listItems(body) {
  if (Array.isArray(body)) return body;
  return (body && (body.items || body.issues || body.events || body.entries)) || [];
}

export function encodeRef(ref) {
  return encodeURIComponent(ref);
}
