// Shared by the chat and A/B pages: the form's settings, the streaming client and the figures.

export const PIN_HEADER = "x-llamafleet-variant";

export function $(id) {
  return document.getElementById(id);
}

// An element with an optional class and text (text, never HTML).
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function headers(key, variant) {
  const h = { "content-type": "application/json" };
  if (key) h.authorization = "Bearer " + key;
  if (variant) h[PIN_HEADER] = variant;
  return h;
}

// "STATUS: message" from an error response of either API flavour.
export async function errorText(res) {
  const text = await res.text();
  try {
    const body = JSON.parse(text);
    const error = body.error;
    return `${res.status}: ${(error && (error.message || error)) || text}`;
  } catch {
    return `${res.status}: ${text}`;
  }
}

export async function getJson(path, key) {
  const res = await fetch(path, { headers: headers(key) });
  if (!res.ok) throw new Error(await errorText(res));
  return res.json();
}

export async function postJson(path, key, body) {
  const res = await fetch(path, { method: "POST", headers: headers(key), body: JSON.stringify(body) });
  if (!res.ok) throw new Error(await errorText(res));
  return res.json();
}

// Fills a <select> with the model names of GET /v1/models (presets included), keeping the
// current choice when it is still listed; `first` is an optional leading [value, label].
export async function loadModels(select, key, first) {
  const list = await getJson("/v1/models", key);
  const keep = select.value;
  const options = list.data.map((m) => {
    const option = el("option", null, m.id);
    option.value = m.id;
    return option;
  });
  if (first) {
    const option = el("option", null, first[1]);
    option.value = first[0];
    options.unshift(option);
  }
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

// The request fields the settings form sets: temperature, max_tokens, seed, and the extra
// fields as typed (refused when they would replace what the page itself sends).
export function readSettings() {
  const body = {};
  const number = (id, name, parse) => {
    const text = $(id).value.trim();
    if (text === "") return;
    const value = parse(text);
    if (!Number.isFinite(value)) throw new Error(`${name}: not a number: ${text}`);
    body[name] = value;
  };
  number("temperature", "temperature", Number);
  number("max-tokens", "max_tokens", (t) => Number.parseInt(t, 10));
  number("seed", "seed", (t) => Number.parseInt(t, 10));
  const extra = $("extra").value.trim();
  if (extra) {
    let fields;
    try {
      fields = JSON.parse(extra);
    } catch (e) {
      throw new Error("extra request fields: not JSON: " + e.message);
    }
    if (!fields || typeof fields !== "object" || Array.isArray(fields)) {
      throw new Error("extra request fields: not a JSON object");
    }
    for (const name of ["messages", "stream", "stream_options"]) {
      if (name in fields) throw new Error(`extra request fields: ${name} is set by the page`);
    }
    Object.assign(body, fields);
  }
  return body;
}

// The messages of a request: the system prompt (when given), then the turns.
export function withSystem(turns) {
  const system = $("system").value.trim();
  return system ? [{ role: "system", content: system }, ...turns] : [...turns];
}

// Streams one chat completion from /v1/chat/completions, calling onText(answer so far) as
// deltas arrive. Returns the answer and its figures; when `signal` aborts (the Stop button)
// the request is cancelled, which frees the server's slot, and what arrived is kept.
export async function streamChat({ body, key, variant, signal, onText }) {
  const started = performance.now();
  const figures = {
    variant: variant || null,
    model: body.model || null,
    ttft_ms: null,
    tokens_per_second: null,
    prompt_tokens: null,
    cached_tokens: null,
    completion_tokens: null,
    duration_ms: null,
    finish_reason: null,
    stopped: false,
  };
  let res;
  try {
    res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(key, variant),
      signal,
      body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    });
  } catch (e) {
    // Stopped before the answer began.
    if (!(signal && signal.aborted)) throw e;
    figures.stopped = true;
    figures.duration_ms = Math.round(performance.now() - started);
    return { text: "", figures };
  }
  if (!res.ok) throw new Error(await errorText(res));
  figures.variant = res.headers.get(PIN_HEADER) || figures.variant;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let text = "";
  let first = null;
  let usage = null;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split("\n\n");
      buffer = events.pop();
      for (const event of events) {
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
          if (chunk.model) figures.model = chunk.model;
          if (chunk.usage) usage = chunk.usage;
          const choice = chunk.choices && chunk.choices[0];
          if (!choice) continue;
          if (choice.finish_reason) figures.finish_reason = choice.finish_reason;
          const piece = choice.delta && choice.delta.content;
          if (piece) {
            if (first === null) first = performance.now();
            text += piece;
            onText(text);
          }
        }
      }
    }
  } catch (e) {
    if (!(signal && signal.aborted)) throw e;
    figures.stopped = true;
  }
  const ended = performance.now();
  figures.duration_ms = Math.round(ended - started);
  if (first !== null) figures.ttft_ms = Math.round(first - started);
  if (usage) {
    figures.prompt_tokens = usage.prompt_tokens;
    figures.completion_tokens = usage.completion_tokens;
    const details = usage.prompt_tokens_details;
    figures.cached_tokens = details && details.cached_tokens !== undefined ? details.cached_tokens : null;
    // Decode speed: the tokens after the first over the time after the first.
    if (first !== null && usage.completion_tokens > 1 && ended > first) {
      const rate = (usage.completion_tokens - 1) / ((ended - first) / 1000);
      figures.tokens_per_second = Math.round(rate * 10) / 10;
    }
  }
  return { text, figures };
}

// One line of figures under an answer.
export function formatFigures(f) {
  const parts = [];
  if (f.variant) parts.push("variant " + f.variant);
  if (f.model) parts.push(f.model);
  if (f.ttft_ms !== null) parts.push(`TTFT ${f.ttft_ms} ms`);
  if (f.tokens_per_second !== null) parts.push(`${f.tokens_per_second} tokens/s`);
  if (f.prompt_tokens !== null) {
    const cached = f.cached_tokens !== null ? ` (${f.cached_tokens} cached)` : "";
    parts.push(`prompt ${f.prompt_tokens}${cached}`);
  }
  if (f.completion_tokens !== null) parts.push(`completion ${f.completion_tokens}`);
  if (f.duration_ms !== null) parts.push(`${(f.duration_ms / 1000).toFixed(1)} s`);
  if (f.stopped) parts.push("stopped");
  else if (f.finish_reason && f.finish_reason !== "stop") parts.push("finish: " + f.finish_reason);
  return parts.join(" · ");
}

// Shows figures under an answer, readable and as data (tests and scripts read data-figures).
export function showFigures(node, figures) {
  node.textContent = formatFigures(figures);
  node.dataset.figures = JSON.stringify(figures);
}
