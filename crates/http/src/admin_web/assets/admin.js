// Business Contacts admin dashboard: the only script (the CSP allows no
// inline script). Refreshes the overview's live section, and "select all"
// on the job list. Everything works without it, just without updates.
"use strict";

function refreshLive() {
  const live = document.getElementById("live");
  if (!live) return;
  const url = live.dataset.refresh;
  setInterval(async () => {
    if (document.hidden) return;
    try {
      const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (res.redirected || !res.ok) return; // signed out or failing: keep what is shown
      live.innerHTML = await res.text();
    } catch (_) {
      // The intake restarting: try again next tick.
    }
  }, 5000);
}

function selectAll() {
  const all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('form#bulk input[name="id"]')) box.checked = all.checked;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  refreshLive();
  selectAll();
});
