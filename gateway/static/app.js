// The xform page: transforms over JSON-RPC 2.0 on the gateway's WebSocket
// (/ws), bundled poems over plain HTTP (/poems). No framework, no build step.

const CLOSE_REASONS = {
  1001: "the gateway is going away",
  1006: "the connection was lost",
  1009: "the last message was too big for the gateway",
  1011: "the gateway hit an error",
};

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 8000;
const HISTORY_ROWS = 8;

/** An error the gateway answered a request with. */
class RemoteError extends Error {
  constructor(error) {
    super(error.message);
    this.code = error.code;
    this.errorName = typeof error.data === "string" ? error.data : null;
  }

  /** The gateway's own sentence, the same on every protocol, as a sentence. */
  get words() {
    const text = this.message || `the gateway refused the request (error ${this.code})`;
    return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
  }
}

/** The connection was not there, or went away before the answer came. */
class ConnectionLost extends Error {
  get words() {
    return this.message;
  }
}

/**
 * A JSON-RPC 2.0 connection that reconnects by itself, waiting longer
 * after each failed attempt (with a little jitter), up to RETRY_MAX_MS.
 */
class RpcConnection {
  constructor(url, { onState, onOpen }) {
    this.url = url;
    this.onState = onState;
    this.onOpen = onOpen;
    this.pending = new Map();
    this.nextId = 1;
    this.attempts = 0;
    this.retryAt = 0;
    this.timer = null;
    this.ticker = null;
    this.connect();
  }

  get isOpen() {
    return this.socket && this.socket.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.onState("connecting", "Connecting…");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) {
        socket.close(); // a newer attempt took over ("Retry now")
        return;
      }
      this.attempts = 0;
      this.onState("open", "Connected");
      this.onOpen();
    });
    socket.addEventListener("message", (event) => {
      if (socket === this.socket) this.receive(event.data);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      if (event.code === 1000 && event.reason === "idle" && this.pending.size === 0) {
        // The gateway closes a connection unused for a while (--ws-idle-timeout):
        // nothing was lost, so connect again at once, without a word.
        this.connect();
        return;
      }
      const why = CLOSE_REASONS[event.code] || `closed with code ${event.code}`;
      this.failPending(`The connection closed before the answer came: ${why}.`);
      this.scheduleReconnect(why);
    });
  }

  scheduleReconnect(why) {
    const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.attempts);
    const delay = base * (0.75 + Math.random() / 2);
    this.attempts += 1;
    this.retryAt = performance.now() + delay;
    const show = () => {
      const seconds = Math.max(0, Math.ceil((this.retryAt - performance.now()) / 1000));
      this.onState("closed", `Disconnected (${why}); retrying in ${seconds} s`);
    };
    show();
    this.ticker = setInterval(show, 1000);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (!this.isOpen) this.connect();
  }

  failPending(message) {
    for (const { reject } of this.pending.values()) reject(new ConnectionLost(message));
    this.pending.clear();
  }

  /** Call a method; resolves to {result, ms}, rejects with RemoteError or ConnectionLost. */
  call(method, params) {
    if (!this.isOpen) {
      return Promise.reject(new ConnectionLost("Not connected to the gateway; reconnecting…"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, started: performance.now() });
      this.socket.send(JSON.stringify({ jsonrpc: "2.0", method, params, id }));
    });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    for (const response of Array.isArray(message) ? message : [message]) {
      const waiting = this.pending.get(response.id);
      if (!waiting) continue;
      this.pending.delete(response.id);
      const ms = performance.now() - waiting.started;
      if (response.error) {
        const error = new RemoteError(response.error);
        error.ms = ms;
        waiting.reject(error);
      } else {
        waiting.resolve({ result: response.result, ms });
      }
    }
  }
}

const $ = (id) => document.getElementById(id);
const els = {
  connection: $("connection"),
  connectionText: $("connection-text"),
  reconnect: $("reconnect"),
  form: $("controls"),
  transform: $("transform"),
  description: $("description"),
  add: $("add"),
  pipeline: $("pipeline"),
  clear: $("clear"),
  steps: $("steps"),
  poemChoice: $("poem-choice"),
  poem: $("poem"),
  poemSize: $("poem-size"),
  run: $("run"),
  error: $("error"),
  original: $("original"),
  result: $("result"),
  resultMeta: $("result-meta"),
  history: $("history"),
};

const transforms = new Map();
const encoder = new TextEncoder();
let latestRun = 0;

function formatMs(ms) {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

function setConnection(state, text) {
  els.connection.dataset.state = state;
  els.connectionText.textContent = text;
  els.reconnect.hidden = state !== "closed";
  els.run.disabled = state !== "open" || transforms.size === 0;
}

const wsURL = new URL("ws", location.href);
wsURL.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const rpc = new RpcConnection(wsURL.href, { onState: setConnection, onOpen: loadTransforms });

async function loadTransforms() {
  let answer;
  try {
    answer = await rpc.call("list_transforms");
  } catch (error) {
    showError(error.words || String(error));
    return;
  }
  const chosen = els.transform.value;
  transforms.clear();
  els.transform.replaceChildren();
  for (const { name, description } of answer.result) {
    transforms.set(name.toLowerCase(), description);
    const option = new Option(name, name);
    option.title = description;
    // "up:*" stands for an upstream's transforms that it does not list:
    // it says why, but is not a name to call.
    option.disabled = name.endsWith(":*");
    els.transform.append(option);
  }
  if (transforms.has(chosen.toLowerCase())) els.transform.value = chosen;
  els.transform.disabled = els.add.disabled = false;
  els.run.disabled = !rpc.isOpen;
  describeChosen();
  renderSteps();
}

/**
 * What the gateway says of a transform name, whatever its case: its own
 * description, or that of its upstream's "prefix:*" entry; undefined for a
 * name it does not know.
 */
function describe(name) {
  const key = name.toLowerCase();
  const colon = key.indexOf(":");
  return transforms.get(key) ?? (colon > 0 ? transforms.get(`${key.slice(0, colon)}:*`) : undefined);
}

function describeChosen() {
  els.description.textContent = describe(els.transform.value) || "\u00a0";
}

function steps() {
  return els.pipeline.value
    .split("|")
    .map((step) => step.trim())
    .filter(Boolean);
}

function renderSteps() {
  els.steps.replaceChildren(
    ...steps().map((name, index, all) => {
      const item = document.createElement("li");
      const known = describe(name) !== undefined;
      item.className = known ? "known" : "unknown";
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = name;
      const what = document.createElement("span");
      what.className = "what";
      what.textContent = known ? describe(name) : "not a transform this gateway knows";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove step ${index + 1}, ${name}`);
      remove.addEventListener("click", () => {
        els.pipeline.value = all.filter((_, i) => i !== index).join(" | ");
        renderSteps();
        els.pipeline.focus();
      });
      item.append(label, what, remove);
      return item;
    }),
  );
}

function updatePoemSize() {
  const bytes = encoder.encode(els.poem.value).length;
  els.poemSize.textContent = `${bytes.toLocaleString("en")} bytes`;
}

async function loadPoemList() {
  try {
    const response = await fetch("poems");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    for (const { name, title } of await response.json()) {
      els.poemChoice.append(new Option(title || name, name));
    }
  } catch (error) {
    showError(`Could not list the bundled poems: ${error.message}.`);
    return;
  }
  if (els.poemChoice.options.length > 1 && !els.poem.value) {
    els.poemChoice.selectedIndex = 1;
    await loadPoem(els.poemChoice.value);
  }
}

async function loadPoem(name) {
  try {
    const response = await fetch(`poems/${encodeURIComponent(name)}`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    els.poem.value = await response.text();
  } catch (error) {
    showError(`Could not load the poem: ${error.message}.`);
    return;
  }
  els.original.textContent = els.poem.value;
  updatePoemSize();
}

function showError(text) {
  els.error.textContent = text;
  els.error.hidden = false;
}

function addHistory(pipeline, outcome, ok, ms) {
  const row = document.createElement("tr");
  const cells = [pipeline, outcome, ms === undefined ? "–" : formatMs(ms)].map((text) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    return cell;
  });
  cells[1].className = ok ? "ok" : "failed";
  cells[2].className = "number";
  row.append(...cells);
  els.history.querySelector("tr.empty")?.remove();
  els.history.prepend(row);
  while (els.history.rows.length > HISTORY_ROWS) els.history.deleteRow(-1);
}

async function run(event) {
  event.preventDefault();
  const pipeline = steps().join("|") || els.transform.value;
  const poem = els.poem.value;
  const runId = ++latestRun;
  els.error.hidden = true;
  els.original.textContent = poem;
  els.result.setAttribute("aria-busy", "true");
  els.resultMeta.textContent = `· ${pipeline} · working…`;
  try {
    const { result, ms } = await rpc.call("transform", { transform: pipeline, poem });
    addHistory(pipeline, "ok", true, ms);
    if (runId !== latestRun) return;
    els.result.textContent = result.poem;
    els.resultMeta.textContent = `· ${pipeline} · ${formatMs(ms)}`;
  } catch (error) {
    const outcome = error instanceof RemoteError ? error.errorName || `error ${error.code}` : "no answer";
    addHistory(pipeline, outcome, false, error.ms);
    if (runId !== latestRun) return;
    els.result.textContent = "";
    els.resultMeta.textContent = `· ${pipeline} · failed`;
    showError(error.words || String(error));
  } finally {
    if (runId === latestRun) els.result.removeAttribute("aria-busy");
  }
}

els.transform.addEventListener("change", describeChosen);
els.add.addEventListener("click", () => {
  els.pipeline.value = [...steps(), els.transform.value].join(" | ");
  renderSteps();
});
els.clear.addEventListener("click", () => {
  els.pipeline.value = "";
  renderSteps();
  els.pipeline.focus();
});
els.pipeline.addEventListener("input", renderSteps);
els.poemChoice.addEventListener("change", () => {
  if (els.poemChoice.value) loadPoem(els.poemChoice.value);
});
els.poem.addEventListener("input", () => {
  els.poemChoice.value = "";
  updatePoemSize();
});
els.form.addEventListener("submit", run);
els.form.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    els.form.requestSubmit();
  }
});
els.reconnect.addEventListener("click", () => rpc.retryNow());

updatePoemSize();
loadPoemList();
