// A petition page, enhanced: the counter moves live, the signer sees whether they signed (when
// the page could not say it: intake did not answer the catalogue in time), and signing happens
// without leaving the page. Without JavaScript the page shows the count it was served with and
// the sign form posts to the catalogue, which answers with a page.
(() => {
  "use strict";
  const root = document.querySelector("[data-petition]");
  if (!root) return;
  const api = `/api/petitions/${encodeURIComponent(root.dataset.petition)}`;
  const format = new Intl.NumberFormat("fr-FR");
  const number = document.getElementById("compteur-nombre");
  const progress = document.getElementById("compteur-progression");
  const announcement = document.getElementById("compteur-annonce");
  const goal = Number(root.dataset.goal);
  // Screen readers hear the count at most every 20 seconds, not at every signature.
  const ANNOUNCE_EVERY_MS = 20000;
  let announcedAt = 0;

  function showCount(signatures) {
    number.textContent = format.format(signatures);
    progress.value = Math.min(signatures, goal);
    progress.textContent = `${format.format(signatures)} / ${format.format(goal)}`;
    const now = Date.now();
    if (now - announcedAt >= ANNOUNCE_EVERY_MS) {
      announcedAt = now;
      announcement.textContent = `${format.format(signatures)} signatures`;
    }
  }

  if (root.dataset.open === "true" && "EventSource" in window) {
    announcedAt = Date.now(); // the page already says the count it was served with
    const source = new EventSource(`${api}/count/stream`);
    source.addEventListener("count", (event) => {
      const body = JSON.parse(event.data);
      if (typeof body.signatures === "number") showCount(body.signatures);
    });
  }

  const form = document.getElementById("form-signature");
  if (!form) return;
  const signed = document.getElementById("deja-signe");
  const failure = document.getElementById("erreur-signature");
  const failureText = document.getElementById("erreur-signature-texte");
  const button = form.querySelector("button[type=submit]");

  function markSigned() {
    failure.hidden = true;
    signed.hidden = false;
    form.hidden = true;
  }

  function showFailure(text) {
    failureText.textContent = text;
    failure.hidden = false;
  }

  // The page says it already when intake answered the catalogue in time.
  if (root.dataset.signatureKnown !== "true") {
    fetch(`${api}/signatures/me`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((answer) => (answer.ok ? answer.json() : null))
      .then((body) => { if (body && body.signed) markSigned(); })
      .catch(() => {});
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      const answer = await fetch(`${api}/signatures`, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (answer.status === 202 || answer.status === 200) {
        markSigned();
      } else if (answer.status === 401) {
        // The sign-in expired: the FranceConnect button, through the page without JavaScript.
        form.submit();
      } else {
        const problem = await answer.json().catch(() => ({}));
        showFailure(problem.detail || "Votre signature n'a pas pu être enregistrée : merci de réessayer.");
      }
    } catch {
      showFailure("Votre signature n'a pas pu être envoyée : vérifiez votre connexion et réessayez.");
    } finally {
      button.disabled = false;
    }
  });
})();
