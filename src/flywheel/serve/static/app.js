// Flywheel web chat: plain JavaScript, no build step. Talks to the same REST API as any client.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("flywheel-key") || "", me: null, messages: [] };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.key}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.error) message = body.error.message + (body.error.hint ? ` — ${body.error.hint}` : "");
    } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

// --- sign in ---------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key.trim();
  $("signin-error").textContent = "";
  try {
    state.me = await (await api("/me")).json();
  } catch (error) {
    state.key = "";
    sessionStorage.removeItem("flywheel-key");
    $("signin-error").textContent = error.status === 401 ? "That key is unknown or revoked." : error.message;
    return;
  }
  sessionStorage.setItem("flywheel-key", state.key);
  $("whoami").textContent = `${state.me.user} · ${state.me.groups.join(", ")}${state.me.is_admin ? " · admin" : ""}`;
  $("signout").hidden = false;
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  const select = $("program");
  select.replaceChildren(el("option", { value: "flywheel", textContent: "default" }),
    ...state.me.programs.map((name) => el("option", { value: name, textContent: name })));
  const groups = $("upload-groups");
  groups.replaceChildren(el("legend", { textContent: "Share with" }));
  state.me.groups.forEach((group) => {
    const input = el("input", { type: "checkbox", name: "groups", value: group, id: `group-${group}` });
    input.checked = group === state.me.groups.find((g) => g !== "everyone");
    groups.append(el("label", { htmlFor: input.id }, input, ` ${group}`));
  });
  loadDocuments();
  $("question").focus();
}

function signOut() {
  sessionStorage.removeItem("flywheel-key");
  location.reload();
}

// --- chat ------------------------------------------------------------------------------------

function addMessage(role, text) {
  const body = el("div", { className: "text", textContent: text });
  const node = el("div", { className: `msg ${role}` }, body);
  $("messages").append(node);
  $("messages").scrollTop = $("messages").scrollHeight;
  return node;
}

function showPassage(citation) {
  $("passage").hidden = false;
  $("passage-citation").textContent = citation.citation || citation.tool || "source";
  $("passage-text").textContent = citation.text || JSON.stringify(citation, null, 2);
}

function renderExtras(node, extra) {
  const citations = extra.citations || [];
  if (citations.length) {
    const list = el("div", { className: "citations" }, "Sources: ");
    citations.forEach((citation, i) => {
      const label = citation.citation || [citation.tool, citation.record].filter(Boolean).join(" ") || "source";
      const button = el("button", { type: "button", className: "link citation", textContent: `[${i + 1}] ${label}` });
      button.addEventListener("click", () => showPassage(citation));
      list.append(button);
    });
    node.append(list);
  }
  if (extra.trace_id) {
    const rate = el("div", { className: "rate" });
    for (const rating of ["up", "down"]) {
      const button = el("button", { type: "button", className: `rate-${rating}`,
        title: rating === "up" ? "Helpful" : "Not helpful" }, thumbIcon(rating));
      button.setAttribute("aria-label", button.title);
      button.dataset.rating = rating;
      button.addEventListener("click", () => sendFeedback(extra.trace_id, { rating }, rate, button));
      rate.append(button);
    }
    const correct = el("button", { type: "button", className: "link correct", textContent: "Correct this answer" });
    rate.append(correct, el("span", { className: "feedback-status" }));
    const form = el("form", { className: "correction", hidden: true });
    const box = el("textarea", { className: "correction-text", rows: 3,
      placeholder: "What should the answer have said?" });
    box.setAttribute("aria-label", "Correction");
    form.append(box, el("button", { type: "submit", className: "send-correction", textContent: "Send correction" }));
    correct.addEventListener("click", () => { form.hidden = !form.hidden; if (!form.hidden) box.focus(); });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (box.value.trim()) sendFeedback(extra.trace_id, { correction: box.value.trim() }, rate, null, form);
    });
    node.append(rate, form);
  }
}

// Thumbs as inline SVG: renders in every browser, with or without an emoji font.
const THUMB_PATH = "M2 21h4V9H2v12zm20-11c0-1.1-.9-2-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6" +
  "C6.2 8 6 8.5 6 9v10c0 1.1.9 2 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z";

function thumbIcon(rating) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("icon", `thumb-${rating}`);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", THUMB_PATH);
  path.setAttribute("fill", "currentColor");
  if (rating === "down") path.setAttribute("transform", "rotate(180 12 12)");
  svg.append(path);
  return svg;
}

async function sendFeedback(traceId, fields, container, button, form = null) {
  const status = container.querySelector(".feedback-status");
  try {
    await api("/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ trace_id: traceId }, fields)) });
    if (button) {
      container.querySelectorAll("button[data-rating]").forEach((b) => b.classList.remove("chosen"));
      button.classList.add("chosen");
    }
    if (form) form.hidden = true;
    status.textContent = fields.correction ? "Thanks: correction saved" : "Thanks for the feedback";
  } catch (error) {
    status.textContent = error.message;
  }
}

async function ask(question) {
  $("chat-error").textContent = "";
  state.messages.push({ role: "user", content: question });
  addMessage("user", question);
  const node = addMessage("assistant", "…");
  const text = node.querySelector(".text");
  $("ask").disabled = true;
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: $("program").value, messages: state.messages, stream: true }),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", answer = "", extra = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 2);
        if (!event.startsWith("data:")) continue;
        const data = event.slice(5).trim();
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
        if (delta.content) { answer += delta.content; text.textContent = answer; }
        if (chunk.flywheel) extra = chunk.flywheel;
      }
    }
    text.textContent = answer || "(no answer)";
    node.dataset.traceId = extra.trace_id || "";
    state.messages.push({ role: "assistant", content: answer });
    renderExtras(node, extra);
  } catch (error) {
    state.messages.pop();
    node.remove();
    $("chat-error").textContent = error.message;
  } finally {
    $("ask").disabled = false;
  }
}

// --- documents -------------------------------------------------------------------------------

async function loadDocuments() {
  try {
    const { documents } = await (await api("/documents")).json();
    $("documents").querySelector("tbody").replaceChildren(...documents.map((doc) => el("tr", {},
      el("td", { textContent: doc.title || doc.source, title: doc.source }),
      el("td", { textContent: doc.groups.join(", ") }),
      el("td", { className: `status status-${doc.status}`, textContent: doc.status }))));
  } catch (error) {
    $("upload-status").textContent = error.message;
  }
}

async function upload() {
  const files = $("files").files;
  const groups = [...document.querySelectorAll("#upload-groups input:checked")].map((i) => i.value);
  if (!files.length) return;
  if (!groups.length) { $("upload-status").textContent = "Choose at least one group."; return; }
  const form = new FormData();
  for (const file of files) form.append("files", file);
  for (const group of groups) form.append("groups", group);
  $("upload-button").disabled = true;
  $("upload-status").textContent = `Ingesting ${files.length} file(s)…`;
  try {
    const { results } = await (await api("/documents", { method: "POST", body: form })).json();
    $("upload-status").textContent = results.map((r) => `${r.source}: ${r.status}` +
      (r.chunks ? ` (${r.chunks} chunks)` : "") + (r.error ? ` — ${r.error}` : "")).join("; ");
    $("upload-form").reset();
  } catch (error) {
    $("upload-status").textContent = error.message;
  } finally {
    $("upload-button").disabled = false;
    loadDocuments();
  }
}

// --- wiring ----------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("api-key").value); });
$("signout").addEventListener("click", signOut);
$("ask-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("question").value = "";
  ask(question);
});
$("new-chat").addEventListener("click", () => { state.messages = []; $("messages").replaceChildren(); });
$("passage-close").addEventListener("click", () => { $("passage").hidden = true; });
$("upload-form").addEventListener("submit", (e) => { e.preventDefault(); upload(); });
if (state.key) signIn(state.key);
