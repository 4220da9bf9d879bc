// Porthole portal: small enhancements; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "Who can reach this tunnel": ask the gateway while the patterns change.
  const groups = document.querySelector("[data-preview]");
  if (groups) {
    const out = document.getElementById(groups.dataset.preview);
    let timer;
    groups.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const resp = await fetch("/tunnels/preview?userGroups=" + encodeURIComponent(groups.value),
          { credentials: "same-origin", headers: { "Accept": "text/html" } });
        if (resp.ok) out.innerHTML = await resp.text();
      }, 250);
    });
  }
  // Copy buttons for connection strings.
  for (const b of document.querySelectorAll("button.copy[data-copy]")) {
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(b.dataset.copy);
        b.textContent = "Copied";
      } catch (e) {
        b.textContent = "Select and copy";
      }
      setTimeout(() => { b.textContent = "Copy"; }, 1500);
    });
  }
});
