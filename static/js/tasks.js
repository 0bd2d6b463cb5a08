// Task forms in place: a form or link marked `data-api="METHOD /api/remote/…"` is sent to
// the backend through the BFF (bffFetch adds X-CSRF), then the page's live regions are
// re-rendered from the server's own HTML, so the server stays the one renderer. When the
// request cannot be sent at all, or the BFF answers 401, the plain form is submitted (or
// the link followed) and the server-rendered page takes over; a failure after the request
// was sent is told in place instead (posting again could add the task twice). Changes the
// assistant makes refresh the lists too.
"use strict";

(function () {
  const status = document.getElementById("live-status");

  let clearTimer = null;
  function announce(text) {
    if (!status || !text) return;
    status.textContent = "";
    clearTimeout(clearTimer);
    // A fresh text node is announced even when the words repeat.
    setTimeout(() => { status.textContent = text; }, 30);
    clearTimer = setTimeout(() => { status.textContent = ""; }, 6000);
  }

  /** Where focus was, in words that survive re-rendering: an id, or a task (and its
   * place in the list) and a class. */
  function focusMark() {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const task = el.closest("[data-task]");
    if (task) {
      const rows = Array.from(document.querySelectorAll("#task-list [data-task]"));
      return { task: task.dataset.task, cls: el.classList[0], index: rows.indexOf(task) };
    }
    return el.id ? { id: el.id } : null;
  }

  function restoreFocus(mark) {
    const now = document.activeElement;
    if (!mark || (now && now !== document.body && now.isConnected)) return;
    let el = mark.id ? document.getElementById(mark.id) : null;
    if (mark.task) {
      // The row itself, or (when it left the list: completed, deleted) the one now in its place.
      const rows = Array.from(document.querySelectorAll("#task-list [data-task]"));
      const row = document.getElementById("task-" + mark.task) || rows[Math.min(mark.index, rows.length - 1)];
      el = row ? row.querySelector("." + mark.cls) || row.querySelector("a") : document.getElementById("task-list");
    }
    if (el) {
      if (!el.matches("a, button, input, select, textarea")) el.tabIndex = -1;
      el.focus({ preventScroll: true });
    }
  }

  // Refreshes may overlap (two quick ticks): only the latest one's answer is used.
  let latest = 0;

  /** Re-renders every `[data-live]` region of this page from a fresh copy of it. */
  async function refresh(mark) {
    const mine = ++latest;
    const url = new URL(location.href);
    url.searchParams.delete("notice");
    const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (res.redirected || !res.ok) return;
    const html = await res.text();
    if (mine !== latest) return;
    const doc = new DOMParser().parseFromString(html, "text/html");
    for (const region of document.querySelectorAll("[data-live][id]")) {
      const fresh = doc.getElementById(region.id);
      if (fresh) region.replaceWith(document.importNode(fresh, true));
    }
    // A notice from an earlier form would now be stale.
    const notice = document.getElementById("notice");
    if (notice) notice.remove();
    restoreFocus(mark);
  }

  /** Shows field messages beside their fields; true when one was shown there. */
  function showErrors(form, fields) {
    let first = null;
    for (const p of form.querySelectorAll(".field-error[data-field]")) {
      const message = fields[p.dataset.field] || "";
      p.textContent = message;
      const input = form.querySelector(`[name="${p.dataset.field}"]`);
      if (input) {
        if (message) input.setAttribute("aria-invalid", "true");
        else input.removeAttribute("aria-invalid");
        if (message && !first) first = input;
      }
    }
    const summary = document.getElementById("form-errors");
    if (summary && form.id === "task-form") summary.hidden = !first;
    if (first) first.focus();
    // Messages without a field here (a hidden project, say) are read out all the same.
    const all = Object.values(fields).join(" ");
    if (all) announce(all);
    return first !== null;
  }

  /** Field errors the browser already knows: a date typed only in part reads as empty,
   * and sending it would clear the date. */
  function browserErrors(form) {
    const fields = {};
    for (const input of form.querySelectorAll("input[type=date]")) {
      if (input.validity && input.validity.badInput) fields[input.name] = "Enter a complete date, or clear the field.";
    }
    return fields;
  }

  /** The form's fields as the API's JSON (empty date or project: none). */
  function body(form) {
    const data = {};
    for (const [k, v] of new FormData(form)) {
      if (k === "form_token" || k === "back") continue;
      data[k] = (k === "due_date" || k === "project_id") && v === "" ? null : v;
    }
    if (typeof data.project_id === "string" && /^\d+$/.test(data.project_id)) data.project_id = Number(data.project_id);
    return data;
  }

  /** Sends `method url`: "done", "invalid" (told beside the fields), "failed" (told in
   * place) or "fallback" (let the server-rendered page handle it). */
  async function send(el, method, url, payload, mark) {
    let res;
    try {
      const init = { method, headers: { Accept: "application/json" } };
      if (payload !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(payload);
      }
      res = await window.bffFetch(url, init);
    } catch (err) {
      return "fallback";
    }
    if (res.status === 401) return "fallback";
    if (res.status === 422 && el.tagName === "FORM") {
      const err = await res.json().catch(() => ({}));
      showErrors(el, err.fields || {});
      return "invalid";
    }
    // Deleting what is already gone is done.
    const gone = method === "DELETE" && res.status === 404;
    if (!res.ok && !gone) {
      const err = await res.json().catch(() => ({}));
      announce((err.message ? err.message.charAt(0).toUpperCase() + err.message.slice(1) + ". " : "") + "Nothing was changed; try again.");
      return "failed";
    }
    if (el.tagName === "FORM") showErrors(el, {});
    if (el.hasAttribute("data-reset")) el.reset();
    announce(el.dataset.doneMessage);
    await refresh(mark).catch(() => {});
    return "done";
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-api]");
    if (!form) return;
    event.preventDefault();
    if (form.dataset.busy) return;
    const known = browserErrors(form);
    if (Object.keys(known).length) {
      showErrors(form, known);
      return;
    }
    const [method, url] = form.dataset.api.split(" ");
    const mark = focusMark();
    form.dataset.busy = "1";
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    const outcome = await send(form, method, url, body(form), mark);
    buttons.forEach((b) => { b.disabled = false; });
    delete form.dataset.busy;
    if (outcome === "fallback") form.submit();
    else if (outcome === "done" && form.hasAttribute("data-reset")) {
      const first = form.querySelector("input:not([type=hidden])");
      if (first) first.focus();
    }
  });

  document.addEventListener("click", async (event) => {
    const link = event.target.closest("a[data-api]");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    if (link.dataset.busy) return;
    if (link.dataset.confirm && !window.confirm(link.dataset.confirm)) return;
    const [method, url] = link.dataset.api.split(" ");
    link.dataset.busy = "1";
    const outcome = await send(link, method, url, undefined, focusMark());
    delete link.dataset.busy;
    if (outcome === "fallback") location.href = link.href;
  });

  // On a small screen the filters fold away (unless some are set): the list comes first.
  const filters = document.getElementById("filter-box");
  if (filters && !filters.hasAttribute("data-active") && window.matchMedia("(max-width: 480px)").matches) {
    filters.open = false;
  }

  document.addEventListener("taskflow:effect", (event) => {
    if (event.detail && event.detail.name === "tasks.changed") refresh(null).catch(() => {});
  });
})();
