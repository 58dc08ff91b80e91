// The chat page: any model or preset the server lists, a system prompt and parameters,
// streamed answers rendered as Markdown (safely), history kept in the page, Stop, and the
// figures of each answer.

import { $, el, getJson, loadModels, readSettings, showFigures, streamChat, withSystem } from "/console/console.js";
import { renderMarkdown } from "/console/markdown.js";

const turns = [];
let running = null;

function status(text) {
  $("status").textContent = text;
}

async function refresh() {
  const key = $("key").value;
  try {
    await loadModels($("model"), key);
    status("");
  } catch (e) {
    status("models: " + e.message);
  }
  // The A/B page exists on the router only.
  try {
    await getJson("/console/variants", key);
    $("ab-link").hidden = false;
  } catch {
    $("ab-link").hidden = true;
  }
}

function setRunning(controller) {
  running = controller;
  $("send").disabled = controller !== null;
  $("stop").disabled = controller === null;
}

async function send() {
  const q = $("q");
  const question = q.value.trim();
  if (!question || running) return;
  let settings;
  try {
    settings = readSettings();
  } catch (e) {
    status(e.message);
    return;
  }
  status("");
  q.value = "";
  const turn = el("section", "turn");
  const answer = el("div", "assistant");
  const figures = el("div", "figures", "waiting for the first token…");
  turn.append(el("div", "user", question), answer, figures);
  $("log").append(turn);
  turn.scrollIntoView({ block: "end" });
  const body = { ...settings, messages: withSystem([...turns, { role: "user", content: question }]) };
  if ($("model").value) body.model = $("model").value;
  setRunning(new AbortController());
  try {
    const result = await streamChat({
      body,
      key: $("key").value,
      signal: running.signal,
      onText: (text) => renderMarkdown(text, answer),
    });
    showFigures(figures, result.figures);
    if (result.figures.stopped) answer.dataset.stopped = "true";
    turns.push({ role: "user", content: question }, { role: "assistant", content: result.text });
  } catch (e) {
    answer.classList.add("error");
    answer.textContent = "error: " + e.message;
    figures.textContent = "";
  }
  answer.dataset.done = "true";
  setRunning(null);
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
$("q").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
$("stop").addEventListener("click", () => running && running.abort());
$("clear").addEventListener("click", () => {
  if (running) running.abort();
  turns.length = 0;
  $("log").replaceChildren();
});
$("key").addEventListener("change", refresh);
// On a phone the settings start folded, so the conversation has the screen.
if (window.matchMedia("(max-width: 40rem)").matches) $("settings").open = false;
refresh();
