import { api, boot, h, showError, streamCard } from "./app.js";

const $ = (id) => document.getElementById(id);
const session = await boot();
const error = $("browse-error");
let liveCursor = null;

async function loadLive() {
  const query = new URLSearchParams({ limit: "20" });
  if (liveCursor) query.set("cursor", liveCursor);
  const page = await api("GET", `/api/streams/live?${query}`);
  $("live-list").append(...page.items.map((s) => streamCard(s)));
  liveCursor = page.next_cursor;
  $("live-more").hidden = !liveCursor;
  $("live-empty").hidden = $("live-list").children.length > 0;
}

async function loadCategories() {
  const data = await api("GET", "/api/categories");
  $("categories").replaceChildren(...data.items.map((c) => h("li", {},
    h("a", { href: `/search?category=${encodeURIComponent(c.category)}&live=1&sort=viewers` },
      `${c.category} (${c.live_streams} live, ${c.viewers} watching)`))));
  $("cat-empty").hidden = data.items.length > 0;
}

async function loadFollowing() {
  const data = await api("GET", "/api/me/following/live");
  $("following-list").replaceChildren(...data.items.map((s) => streamCard(s)));
  $("following").hidden = data.items.length === 0;
}

async function loadRecommendations() {
  const data = await api("GET", "/api/me/recommendations");
  const items = [...data.because_you_follow, ...data.popular_in_categories_you_watch];
  $("recs-list").replaceChildren(...items.map((r) => streamCard(r.stream, { reason: r.reason })));
  $("recs").hidden = items.length === 0;
}

$("live-more").addEventListener("click", () => loadLive().catch((e) => showError(error, e)));
document.addEventListener("streamscale:live", () => {
  if (session.user) loadFollowing().catch(() => {});
});

const loads = [loadLive(), loadCategories()];
if (session.user) loads.push(loadFollowing(), loadRecommendations());
for (const result of await Promise.allSettled(loads)) {
  if (result.status === "rejected") showError(error, result.reason);
}
document.body.dataset.ready = "1";
