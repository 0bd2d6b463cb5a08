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

// A form the server asks to send on (the sign-out hint to the provider); without
// JavaScript its button does the same.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => form.submit());

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
