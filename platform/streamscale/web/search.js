// Search: the form's state lives in the URL (?q=&category=&live=1&sort=), so results
// can be linked and the back button works; "More results" follows the cursor.
import { api, boot, h, showError, streamCard } from "./app.js";

const $ = (id) => document.getElementById(id);
await boot();
const error = $("search-error");
let cursor = null;
let shown = 0;

function fromUrl() {
  const params = new URLSearchParams(location.search);
  $("q").value = params.get("q") || "";
  $("category").value = params.get("category") || "";
  $("live").checked = params.get("live") === "1";
  $("sort").value = ["relevance", "viewers", "recency"].includes(params.get("sort"))
    ? params.get("sort") : "relevance";
}

function query() {
  const params = new URLSearchParams({ limit: "20", sort: $("sort").value });
  const q = $("q").value.trim();
  const category = $("category").value.trim();
  if (q) params.set("q", q);
  if (category) params.set("category", category);
  if ($("live").checked) params.set("live", "true");
  return params;
}

async function run({ more = false } = {}) {
  error.hidden = true;
  const params = query();
  if (more && cursor) params.set("cursor", cursor);
  try {
    const page = await api("GET", `/api/streams/search?${params}`);
    if (!more) { $("results").replaceChildren(); shown = 0; }
    $("results").append(...page.items.map((s) => streamCard(s)));
    shown += page.items.length;
    cursor = page.next_cursor;
    $("more").hidden = !cursor;
    $("search-summary").textContent = shown === 0 ? "No streams match." :
      `${shown} stream${shown === 1 ? "" : "s"} shown` +
      (page.fuzzy ? " (nothing matched exactly; these are close matches)" : "") + ".";
  } catch (err) {
    showError(error, err);
  }
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = query();
  params.delete("limit");
  if (params.get("live")) params.set("live", "1");
  history.pushState(null, "", `/search?${params}`);
  run();
});
$("more").addEventListener("click", () => run({ more: true }));
window.addEventListener("popstate", () => { fromUrl(); run(); });

api("GET", "/api/categories").then((data) => {
  $("category-list").replaceChildren(...data.items.map((c) => h("option", { value: c.category })));
}).catch(() => {});
fromUrl();
await run();
document.body.dataset.ready = "1";
