// Shared page behaviour: the fetch wrapper that every call to /api goes through, and sign-out.
"use strict";

/** fetch for /api: same-origin cookies plus the anti-forgery header the BFF requires. */
window.bffFetch = function (input, init) {
  const options = Object.assign({ credentials: "same-origin" }, init || {});
  const headers = new Headers(options.headers || {});
  headers.set("X-CSRF", "1");
  options.headers = headers;
  return fetch(input, options);
};

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-signout]");
  if (!button) return;
  button.disabled = true;
  try {
    const res = await window.bffFetch("/api/auth/logout", { method: "POST" });
    const body = await res.json();
    if (body.method === "POST" && Array.isArray(body.fields)) {
      // The provider wants id_token_hint: it goes in a form body, never in a URL.
      const form = document.createElement("form");
      form.method = "POST";
      form.action = body.redirect_to;
      for (const [name, value] of body.fields) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = value;
        form.appendChild(input);
      }
      document.body.appendChild(form);
      form.submit();
      return;
    }
    window.location.assign(body.redirect_to || "/");
  } catch (e) {
    window.location.assign("/");
  }
});

// Unix timestamps rendered by the server, shown in the reader's local time.
document.querySelectorAll("time[data-unix]").forEach((t) => {
  t.textContent = new Date(Number(t.dataset.unix) * 1000).toLocaleString();
});

// The sessions page: end one session.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-end-session]");
  if (!button) return;
  button.disabled = true;
  const res = await window.bffFetch("/api/auth/sessions/" + encodeURIComponent(button.dataset.endSession), { method: "DELETE" });
  if (res.status === 204) window.location.reload();
  else button.disabled = false;
});
