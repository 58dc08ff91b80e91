// The A/B page: one prompt to two or more variants at once (each pinned with
// x-llamafleet-variant), answers streamed side by side with their figures, and a vote per
// round posted to the router (/console/votes), which counts it on /metrics and keeps it for
// the download.

import { $, el, getJson, headers, errorText, loadModels, postJson, readSettings, showFigures, streamChat, withSystem } from "/console/console.js";
import { renderMarkdown } from "/console/markdown.js";

let controllers = [];

function status(text) {
  $("status").textContent = text;
}

function setRunning(on) {
  $("run").disabled = on;
  $("run-all").disabled = on;
  $("stop").disabled = !on;
}

async function refresh() {
  const key = $("key").value;
  try {
    const { variants } = await getJson("/console/variants", key);
    const box = $("variants");
    const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    box.replaceChildren(
      ...variants.map((v) => {
        const input = el("input");
        input.type = "checkbox";
        input.value = v.name;
        input.checked = checked.size === 0 || checked.has(v.name);
        const label = el("label", "check");
        label.append(input, ` ${v.name} (${v.model}, weight ${v.weight})`);
        return label;
      }),
    );
    await loadModels($("model"), key, ["", "each variant's own model"]);
    status("");
  } catch (e) {
    status("variants: " + e.message);
  }
  await tally();
}

function chosenVariants() {
  return [...$("variants").querySelectorAll("input:checked")].map((i) => i.value);
}

// One round: the prompt to every chosen variant at once, then the vote bar.
async function compare(prompt) {
  const variants = chosenVariants();
  if (variants.length < 2) throw new Error("choose at least two variants");
  const body = { ...readSettings(), messages: withSystem([{ role: "user", content: prompt }]) };
  if ($("model").value) body.model = $("model").value;
  const round = el("section", "round");
  round.append(el("div", "prompt", prompt));
  const columns = el("div", "columns");
  round.append(columns);
  $("rounds").prepend(round);
  const key = $("key").value;
  const runs = variants.map((variant) => {
    const column = el("div", "column");
    const answer = el("div", "assistant");
    const figures = el("div", "figures", "waiting for the first token…");
    column.dataset.variant = variant;
    column.append(el("h3", null, variant), answer, figures);
    columns.append(column);
    const controller = new AbortController();
    controllers.push(controller);
    return streamChat({
      body,
      key,
      variant,
      signal: controller.signal,
      onText: (text) => renderMarkdown(text, answer),
    }).then(
      (result) => {
        showFigures(figures, result.figures);
        answer.dataset.done = "true";
        return result.figures;
      },
      (e) => {
        answer.classList.add("error");
        answer.textContent = "error: " + e.message;
        answer.dataset.done = "true";
        figures.textContent = "";
        return { variant, error: e.message };
      },
    );
  });
  const answers = await Promise.all(runs);
  round.append(voteBar(prompt, answers));
}

function voteBar(prompt, answers) {
  const bar = el("div", "vote");
  const comment = el("input");
  comment.type = "text";
  comment.placeholder = "comment (optional)";
  comment.className = "comment";
  const vote = async (winner) => {
    try {
      await postJson("/console/votes", $("key").value, {
        prompt,
        keep_prompt: $("keep-prompt").checked,
        answers: answers.map(voteFigures),
        winner,
        comment: comment.value.trim() || null,
      });
      bar.replaceChildren(el("span", "voted", winner ? `voted: ${winner} is better` : "voted: a tie"));
      bar.dataset.voted = winner || "tie";
      await tally();
    } catch (e) {
      status("vote: " + e.message);
    }
  };
  for (const a of answers) {
    const button = el("button", null, `${a.variant} is better`);
    button.type = "button";
    button.dataset.winner = a.variant;
    button.addEventListener("click", () => vote(a.variant));
    bar.append(button);
  }
  const tie = el("button", null, "Tie");
  tie.type = "button";
  tie.dataset.winner = "";
  tie.addEventListener("click", () => vote(null));
  bar.append(tie, comment);
  return bar;
}

// What a vote carries of an answer: its figures, no text.
function voteFigures(f) {
  const pick = (name) => (f[name] === undefined ? null : f[name]);
  return {
    variant: f.variant,
    model: pick("model"),
    ttft_ms: pick("ttft_ms"),
    tokens_per_second: pick("tokens_per_second"),
    prompt_tokens: pick("prompt_tokens"),
    cached_tokens: pick("cached_tokens"),
    completion_tokens: pick("completion_tokens"),
    duration_ms: pick("duration_ms"),
    error: pick("error"),
  };
}

async function run(prompts) {
  setRunning(true);
  status("");
  controllers = [];
  try {
    for (const prompt of prompts) {
      await compare(prompt);
      if (controllers.some((c) => c.signal.aborted)) break;
    }
  } catch (e) {
    status(e.message);
  }
  controllers = [];
  setRunning(false);
}

// Saved prompts: JSON lines of {"prompt": ...} when the first line starts with "{", else one
// prompt per line.
function savedPrompts() {
  const lines = $("prompts").value.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  if (lines.length === 0 || !lines[0].startsWith("{")) return lines;
  return lines.map((line, i) => {
    let value;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new Error(`saved prompts, line ${i + 1}: not JSON: ${e.message}`);
    }
    if (typeof value.prompt !== "string") throw new Error(`saved prompts, line ${i + 1}: no "prompt" string`);
    return value.prompt;
  });
}

async function tally() {
  try {
    const summary = await getJson("/console/votes", $("key").value);
    const rows = Object.entries(summary.variants).map(([name, t]) => {
      const row = el("tr");
      row.dataset.variant = name;
      for (const cell of [name, t.wins, t.losses, t.ties]) row.append(el("td", null, String(cell)));
      return row;
    });
    $("tally").tBodies[0].replaceChildren(...rows);
  } catch (e) {
    status("votes: " + e.message);
  }
}

async function download() {
  const res = await fetch("/console/votes.jsonl", { headers: headers($("key").value) });
  if (!res.ok) {
    status("download: " + (await errorText(res)));
    return;
  }
  const url = URL.createObjectURL(await res.blob());
  const a = el("a");
  a.href = url;
  a.download = "llamafleet-votes.jsonl";
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompt = $("q").value.trim();
  if (prompt) run([prompt]);
});
$("run-all").addEventListener("click", () => {
  let prompts;
  try {
    prompts = savedPrompts();
  } catch (e) {
    status(e.message);
    return;
  }
  if (prompts.length) run(prompts);
});
$("prompts-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) $("prompts").value = await file.text();
});
$("stop").addEventListener("click", () => controllers.forEach((c) => c.abort()));
$("tally-refresh").addEventListener("click", tally);
$("download").addEventListener("click", download);
$("key").addEventListener("change", refresh);
// On a phone the settings start folded, so the conversation has the screen.
if (window.matchMedia("(max-width: 40rem)").matches) $("settings").open = false;
refresh();
