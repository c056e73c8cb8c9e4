// The console's only script: confirmations before steering actions, and fragments that
// refresh themselves (data-poll) so progress and the overview update without a reload.
"use strict";
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener("change", (event) => {
  if (event.target.matches("[data-autosubmit]")) event.target.form.requestSubmit();
});
for (const region of document.querySelectorAll("[data-poll]")) {
  const every = Number(region.dataset.every || 10000);
  setInterval(async () => {
    if (document.hidden || region.contains(document.activeElement)) return;
    const response = await fetch(region.dataset.poll, { credentials: "same-origin" });
    if (response.ok) region.innerHTML = await response.text();
    else if (response.redirected || response.status === 401) window.location.reload();
  }, every);
}
