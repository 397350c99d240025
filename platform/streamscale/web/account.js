// Account: edit the profile (email and password changes need the current password) and
// delete the account (password confirmed; the session cookies are cleared after).
import { api, boot, renderHeader, requireUser, session, showError } from "./app.js";

const $ = (id) => document.getElementById(id);
const s = await boot();
if (requireUser(s)) {
  const fill = (user) => {
    $("username").value = user.username;
    $("display-name").value = user.display_name || "";
    $("bio").value = user.bio || "";
    $("email").value = user.email || "";
  };
  fill(await api("GET", "/api/users/me"));

  $("profile-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("profile-error").hidden = true;
    $("profile-saved").hidden = true;
    const body = { bio: $("bio").value };
    if ($("display-name").value.trim()) body.display_name = $("display-name").value.trim();
    if ($("email").value.trim() !== (session.user.email || "")) body.email = $("email").value.trim();
    if ($("new-password").value) body.password = $("new-password").value;
    if ($("current-password").value) body.current_password = $("current-password").value;
    try {
      const user = await api("PATCH", "/api/users/me", body);
      session.user = user;
      fill(user);
      renderHeader();
      $("new-password").value = "";
      $("current-password").value = "";
      $("profile-saved").hidden = false;
    } catch (err) {
      showError($("profile-error"), err);
    }
  });

  $("delete-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("delete-error").hidden = true;
    const password = $("delete-password").value;
    if (!password) {
      $("delete-error").textContent = "Enter your password to confirm.";
      $("delete-error").hidden = false;
      return;
    }
    try {
      await api("DELETE", "/api/users/me", { password });
      try { await api("DELETE", "/api/session"); } catch (_) { /* already void */ }
      location.assign("/?deleted=1");
    } catch (err) {
      showError($("delete-error"), err);
    }
  });
}
document.body.dataset.ready = "1";
