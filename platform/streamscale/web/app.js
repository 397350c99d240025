// streamscale web UI: the module every page imports. No build step, no framework.
//
// CONVENTIONS (for every page; dashboard.html and moderation.html follow them too)
// - One HTML file per page in streamscale/web/, mounted by PAGES in
//   services/gateway/_web.py (add one line there for a new page). The HTML has no inline
//   script or style (the CSP refuses them): <link rel="stylesheet" href="/static/style.css">
//   and <script type="module" src="/static/<page>.js"></script>.
// - Page skeleton: <body data-page="browse"> <div id="site-header"></div>
//   <main id="main" tabindex="-1"> ... </main>. `await boot()` renders the header and nav,
//   reads the session and returns it ({user, chatUrl}); call it first.
// - API calls go through `api(method, path, body)`: JSON in and out, same-origin cookies,
//   the X-CSRF-Token header on unsafe methods, one retry after refreshing an expired
//   session. Failures throw ApiFailure (status, code, message: the API's one error
//   shape, `{"error": {"code", "message", "request_id"}}`); `explain(err)` turns it into
//   words for people; `showError(el, err)` puts those words into an element with
//   role="alert". Never put tokens in localStorage/sessionStorage: the session is
//   httpOnly cookies; the chat WebSocket token comes from `chatToken()` and lives in a
//   variable only.
// - Build DOM with `h(tag, attrs, ...children)` (text is always text: no innerHTML with
//   data). Status messages go to `notify(text)` (a polite live region, toast style).
// - Forms: a <label for> per input, errors in an element with role="alert", buttons are
//   <button>; everything reachable and visible with the keyboard (style.css keeps focus
//   outlines). Colours come from the CSS variables in style.css (contrast >= 4.5:1).
// - Signed-in pages call `requireUser(session)`: it sends a signed-out visitor to
//   /login?next=<this page>.

export class ApiFailure extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

function cookie(name) {
  for (const part of document.cookie.split("; ")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq) === name) return decodeURIComponent(part.slice(eq + 1));
  }
  return "";
}

export function csrfToken() {
  return cookie("ss_csrf");
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
let refreshing = null;

async function rawFetch(method, path, body) {
  const headers = { Accept: "application/json" };
  if (UNSAFE.has(method)) headers["X-CSRF-Token"] = csrfToken();
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

async function failure(response) {
  let code = "http_" + response.status;
  let message = response.statusText || "request failed";
  let requestId = response.headers.get("X-Request-Id");
  try {
    const data = await response.json();
    if (data && data.error) {
      code = data.error.code || code;
      message = data.error.message || message;
      requestId = data.error.request_id || requestId;
    }
  } catch (_) { /* not JSON */ }
  return new ApiFailure(response.status, code, message, requestId);
}

// Refresh the session cookies once for all callers waiting on it. Tabs take turns (Web
// Locks): a refresh token works once and a reused one signs the login out everywhere,
// so a tab that waited first asks whether another tab has refreshed already.
export async function refreshSession() {
  if (!refreshing) {
    const run = async () => {
      const now = await rawFetch("GET", "/api/session");
      if (now.ok) {
        const data = await now.json();
        if (data.user) return data;
      }
      const r = await rawFetch("POST", "/api/session/refresh");
      if (!r.ok) throw await failure(r);
      return r.json();
    };
    const locked = navigator.locks ? navigator.locks.request("streamscale-session", run) : run();
    refreshing = locked.finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function api(method, path, body) {
  let response = await rawFetch(method, path, body);
  if (response.status === 401 && csrfToken() && !path.startsWith("/api/session")) {
    try {
      await refreshSession();
      response = await rawFetch(method, path, body);
    } catch (_) {
      throw new ApiFailure(401, "session_expired", "Your session expired. Sign in again.");
    }
  }
  if (response.status === 401 && session.user && !path.startsWith("/api/session")) {
    // We were signed in: the cookies lapsed or were revoked (signed out elsewhere).
    session.user = null;
    throw new ApiFailure(401, "session_expired", WORDS.session_expired);
  }
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

const WORDS = {
  session_expired: "Your session expired. Sign in again.",
  unauthorized: "Sign in to do that.",
  invalid_token: "Your session is no longer valid. Sign in again.",
  token_expired: "Your session expired. Sign in again.",
  csrf_failed: "This page is out of date. Reload it and try again.",
  rate_limited: "Too many attempts. Wait a moment and try again.",
  not_found: "Not found.",
};

export function explain(err) {
  if (err instanceof ApiFailure) {
    if (err.code === "rate_limited" || err.status === 429) {
      return WORDS.rate_limited + (err.message ? ` (${err.message})` : "");
    }
    if (err.code === "validation_error" || err.code === "conflict" || err.status === 400 ||
        err.status === 409 || err.status === 403) {
      return err.code === "csrf_failed" ? WORDS.csrf_failed : err.message;
    }
    return WORDS[err.code] || err.message;
  }
  if (err instanceof TypeError) return "Cannot reach the server. Check your connection.";
  return String(err && err.message ? err.message : err);
}

export function showError(el, err) {
  el.textContent = explain(err);
  el.hidden = false;
}

// h("a", {href: "/"}, "text", child, ...): attributes (on* are listeners), children.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let toasts = null;

export function notify(text, { link = null, kind = "info" } = {}) {
  if (!toasts) {
    toasts = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(toasts);
  }
  const item = h("div", { class: `toast toast-${kind}` },
    link ? h("a", { href: link }, text) : text,
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss",
                  onclick: () => item.remove() }, "×"));
  toasts.append(item);
  setTimeout(() => item.remove(), 10000);
  return item;
}

export const session = { user: null, chatUrl: "", refreshable: false };

export async function loadSession() {
  let data = await api("GET", "/api/session");
  if (!data.user && data.refreshable && csrfToken()) {
    try { data = await refreshSession(); } catch (_) { /* signed out */ }
  }
  session.user = data.user;
  session.chatUrl = data.chat_url;
  session.refreshable = data.refreshable;
  return session;
}

export async function signIn(login, password) {
  const data = await api("POST", "/api/session", { login, password });
  session.user = data.user;
  session.chatUrl = data.chat_url;
  return data.user;
}

export async function signOut() {
  await api("DELETE", "/api/session");
  session.user = null;
}

// A short-lived access token for the chat WebSocket join frame: memory only.
export async function chatToken() {
  if (!session.user) return null;
  const data = await api("POST", "/api/session/token");
  return data.token;
}

export function requireUser(s) {
  if (!s.user) {
    const next = location.pathname + location.search;
    location.assign(`/login?next=${encodeURIComponent(next)}`);
    return false;
  }
  return true;
}

export function safeNext(value, fallback = "/") {
  // Only same-site paths: never "//host" or "https://...".
  return value && value.startsWith("/") && !value.startsWith("//") ? value : fallback;
}

export function renderHeader(s = session) {
  const holder = document.getElementById("site-header");
  if (!holder) return;
  const page = document.body.dataset.page || "";
  const link = (href, text, name) => h("li", {},
    h("a", { href, "aria-current": page === name ? "page" : null }, text));
  const items = [link("/", "Browse", "browse"), link("/search", "Search", "search")];
  if (s.user) {
    items.push(link("/dashboard", "Dashboard", "dashboard"),
      link("/moderation", "Moderation", "moderation"),
      link("/account", s.user.display_name || s.user.username, "account"),
      h("li", {}, h("button", { type: "button", id: "sign-out", class: "link-button",
        onclick: async () => {
          try { await signOut(); } finally { location.assign("/"); }
        } }, "Sign out")));
  } else {
    items.push(link("/login", "Sign in", "login"), link("/register", "Register", "register"));
  }
  holder.replaceChildren(
    h("a", { href: "#main", class: "skip-link" }, "Skip to content"),
    h("header", { class: "site-header" },
      h("a", { href: "/", class: "brand" }, "streamscale"),
      h("nav", { "aria-label": "Main" }, h("ul", {}, items))));
}

// Live notifications of followed streamers: server-sent events with the session cookie
// (EventSource sends same-origin cookies). The stream ends with `event: expired` when the
// access token does; we refresh the session and reconnect.
let events = null;
let eventFailures = 0;

function listenForLive() {
  if (events || !session.user) return;
  events = new EventSource("/api/me/notifications");
  events.addEventListener("open", () => {
    eventFailures = 0;
    document.body.dataset.live = "listening";
  });
  events.addEventListener("live", (e) => {
    try {
      const data = JSON.parse(e.data);
      const who = data.streamer.display_name || data.streamer.username;
      notify(`${who} is live: ${data.title}`, { link: `/channel/${data.stream_id}` });
      document.dispatchEvent(new CustomEvent("streamscale:live", { detail: data }));
    } catch (_) { /* malformed event */ }
  });
  // The browser retries dropped connections itself; a refused one (401 when the access
  // cookie lapsed, 429 too many streams, 503) is closed: refresh the session and try
  // again with a growing delay, so a refusal never turns into a tight loop.
  const reconnect = async () => {
    events.close();
    events = null;
    const delay = Math.min(60000, 1000 * 2 ** eventFailures++);
    try { await refreshSession(); } catch (_) { return; }
    setTimeout(listenForLive, delay);
  };
  events.addEventListener("expired", reconnect);
  events.addEventListener("error", () => {
    if (events && events.readyState === EventSource.CLOSED) reconnect();
  });
}

window.addEventListener("pagehide", () => { if (events) events.close(); });

export async function boot({ notifications = true } = {}) {
  try {
    await loadSession();
  } catch (err) {
    session.user = null;
  }
  renderHeader(session);
  if (notifications) listenForLive();
  return session;
}

export function formatViewers(n) {
  return `${n} ${n === 1 ? "viewer" : "viewers"}`;
}

// A stream card (a search result, a live listing item or a recommendation).
export function streamCard(stream, { reason = null } = {}) {
  const who = stream.streamer ? (stream.streamer.display_name || stream.streamer.username) : "";
  return h("li", { class: "card" },
    h("a", { href: `/channel/${stream.id}`, class: "card-title" }, stream.title),
    h("p", { class: "card-meta" },
      who ? `${who} · ` : "", stream.category,
      stream.status && stream.status !== "live" ? ` · ${stream.status}` : "",
      stream.status === "live" || !stream.status ? ` · ${formatViewers(stream.viewer_count)}` : ""),
    reason ? h("p", { class: "card-reason" }, reason) : null);
}
