import { boot, safeNext, showError, signIn } from "./app.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const next = safeNext(params.get("next"));
const session = await boot({ notifications: false });
if (session.user) location.replace(next);

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = event.submitter || $("login-form").querySelector("button");
  const error = $("login-error");
  error.hidden = true;
  if (!$("login").value || !$("password").value) {
    error.textContent = "Enter your username or email and your password.";
    error.hidden = false;
    return;
  }
  button.disabled = true;
  try {
    await signIn($("login").value.trim(), $("password").value);
    location.assign(next);
  } catch (err) {
    showError(error, err);
    button.disabled = false;
  }
});
if (params.get("expired")) {
  $("login-error").textContent = "Your session expired. Sign in again.";
  $("login-error").hidden = false;
}
document.body.dataset.ready = "1";
