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

// Times are rendered on the server (relative, with the UTC date as a tooltip); the
// tooltip becomes the reader's local time.
document.querySelectorAll("time[datetime]").forEach((t) => {
  const d = new Date(t.getAttribute("datetime"));
  if (!Number.isNaN(d.getTime())) t.title = d.toLocaleString();
});

// Signing out forgets this tab's chat state (the next user of the tab starts clean).
document.addEventListener("submit", (event) => {
  if (event.target.matches("form[action='/signout']")) {
    for (const key of Object.keys(sessionStorage)) {
      if (key.startsWith("taskflow.chat.")) sessionStorage.removeItem(key);
    }
  }
});
