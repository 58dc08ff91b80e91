// Markdown to DOM, safely: the renderer builds elements and text nodes, it never parses HTML,
// so model output such as `<script>` or `<img onerror=...>` is shown as the text it is.
// A small subset, enough for model answers: fenced code, headings, lists, paragraphs, inline
// code, bold, italics, and links to http(s) URLs only. A fence still open (a streaming answer)
// renders as code up to the end.

const BLOCK_START = /^\s*(```|~~~)|^#{1,6}\s|^\s*([-*+]|\d+[.)])\s+/;
const LIST_ITEM = /^\s*([-*+]|\d+[.)])\s+/;
const INLINE =
  /(`+)([^`]|[^`][\s\S]*?[^`])\1|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g;

function el(tag) {
  return document.createElement(tag);
}

// Inline spans of one line into `parent`; plain text goes in as text nodes.
function inline(text, parent) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    if (m[1]) {
      const code = el("code");
      code.textContent = m[2];
      parent.append(code);
    } else if (m[3] !== undefined) {
      const strong = el("strong");
      inline(m[3], strong);
      parent.append(strong);
    } else if (m[4] !== undefined) {
      const em = el("em");
      inline(m[4], em);
      parent.append(em);
    } else {
      const a = el("a");
      a.href = m[6];
      a.rel = "noopener noreferrer nofollow";
      a.target = "_blank";
      a.textContent = m[5];
      parent.append(a);
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

// Replaces the children of `into` with `text` rendered.
export function renderMarkdown(text, into) {
  into.replaceChildren();
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)/);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;
      const pre = el("pre");
      const code = el("code");
      code.textContent = body.join("\n");
      pre.append(code);
      into.append(pre);
      continue;
    }
    if (line.trim() === "") {
      i++;
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      const h = el("h" + Math.min(6, heading[1].length + 2));
      inline(heading[2], h);
      into.append(h);
      i++;
      continue;
    }
    if (LIST_ITEM.test(line)) {
      const list = el(/^\s*\d/.test(line) ? "ol" : "ul");
      while (i < lines.length && LIST_ITEM.test(lines[i])) {
        const li = el("li");
        inline(lines[i++].replace(LIST_ITEM, ""), li);
        list.append(li);
      }
      into.append(list);
      continue;
    }
    const p = el("p");
    do {
      if (p.childNodes.length) p.append(el("br"));
      inline(lines[i++], p);
    } while (i < lines.length && lines[i].trim() !== "" && !BLOCK_START.test(lines[i]));
    into.append(p);
  }
}
