// The console's shell: sign in, the sections (hash routes), and how failures are shown.

import { ApiError, callJson, session } from "./api.js";
import { h, replace } from "./dom.js";
import { renderAnalytics, renderDocument, renderDocuments, renderWebhooks } from "./views.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");
const problemBanner = document.getElementById("problem");

/** Show a problem (title and detail) above the view. */
function showProblem(error) {
  const title = error instanceof ApiError ? error.title : "Error";
  const detail = error instanceof ApiError ? error.detail : String(error && error.message || error);
  replace(problemBanner, h("strong", { text: title }), detail ? ` ${detail}` : "",
    h("button", { class: "button link dismiss", type: "button", text: "Dismiss",
      on: { click: () => { problemBanner.hidden = true; } } }));
  problemBanner.hidden = false;
}

const ctx = {
  /**
   * A call failed: a refused key (401) signs out and returns to sign in with the problem;
   * anything else is shown, unless the view shows it itself (quiet).
   */
  fail(error, { quiet = false } = {}) {
    if (error instanceof ApiError && error.refusesKey) {
      signOut();
      showProblem(error);
      return;
    }
    if (!quiet) showProblem(error);
  },
};

function signOut() {
  session.signOut();
  route();
}

function renderSignIn() {
  nav.hidden = true;
  signOutButton.hidden = true;
  const key = h("input", { id: "api-key", name: "api-key", type: "password", required: true,
    attrs: { autocomplete: "off", spellcheck: "false", placeholder: "csk_…" } });
  const submit = h("button", { class: "button", type: "submit", text: "Sign in" });
  const form = h("form", { class: "sign-in card", attrs: { "aria-label": "Sign in" } },
    h("h1", { text: "Sign in" }),
    h("p", { class: "muted", text: "Your API key stays in this browser tab only (session storage) and is sent with each request." }),
    h("label", { class: "field" }, h("span", { class: "field-label", text: "API key" }), key),
    submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const presented = key.value.trim();
    if (!presented) return;
    submit.disabled = true;
    try {
      // One cheap authenticated call proves the key before it is kept.
      await callJson("documents", { query: { limit: 1, fields: "key" }, key: presented });
      session.signIn(presented);
      problemBanner.hidden = true;
      if (!location.hash || location.hash === "#sign-in") location.hash = "#documents";
      else route();
    } catch (error) {
      showProblem(error);
      submit.disabled = false;
    }
  });
  replace(main, form);
  key.focus();
}

/** The document key of a "#document/<key>" hash; null when it is not valid percent-encoding. */
function decodedKey(encoded) {
  try {
    return decodeURIComponent(encoded) || null;
  } catch {
    return null;  // a hand-edited hash: back to the documents
  }
}

function route() {
  if (!session.key()) {
    renderSignIn();
    return;
  }
  nav.hidden = false;
  signOutButton.hidden = false;
  const hash = location.hash.slice(1);
  const [section, ...rest] = hash.split("/");
  for (const link of nav.querySelectorAll("a")) {
    const current = link.dataset.section === (section === "document" ? "documents" : section || "documents");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const key = section === "document" ? decodedKey(rest.join("/")) : null;
  if (key) renderDocument(main, ctx, key);
  else if (section === "analytics") renderAnalytics(main, ctx);
  else if (section === "webhooks") renderWebhooks(main, ctx);
  else renderDocuments(main, ctx);
}

signOutButton.addEventListener("click", () => {
  problemBanner.hidden = true;
  signOut();
});
window.addEventListener("hashchange", () => {
  problemBanner.hidden = true;
  route();
});
route();
