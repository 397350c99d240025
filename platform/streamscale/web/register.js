import { api, boot, showError, signIn } from "./app.js";

const $ = (id) => document.getElementById(id);
const session = await boot({ notifications: false });
if (session.user) location.replace("/");

$("register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("register-form").querySelector("button");
  const error = $("register-error");
  error.hidden = true;
  const body = {
    username: $("username").value.trim(),
    email: $("email").value.trim(),
    password: $("password").value,
  };
  const display = $("display-name").value.trim();
  if (display) body.display_name = display;
  button.disabled = true;
  try {
    await api("POST", "/api/users/register", body);
    await signIn(body.username, body.password);
    location.assign("/");
  } catch (err) {
    showError(error, err);
    button.disabled = false;
  }
});
document.body.dataset.ready = "1";
