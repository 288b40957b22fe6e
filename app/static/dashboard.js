// The kaboom-ingest dashboard: the newest jobs with live status, and the
// event timeline of the job that was clicked.
//
// The list comes from GET /api/v1/ingest/jobs. The global event stream
// names the jobs that changed; the page then reads the job JSON again, so the
// server's fold stays the only source of a job's status. The timeline is the
// job's own event stream, which replays its history and then follows it.
"use strict";

const API = "/api/v1/ingest";
const TOKEN_KEY = "kaboom-ingest-token";
const EVENT_TYPES = [
  "created", "started", "progress", "attempt_failed", "completed", "failed", "rerun_requested",
];
const FINAL_EVENT_TYPES = new Set(["completed", "failed"]);
const LIST_LIMIT = 50;

let token = "";
let timelineSource = null;
const rows = new Map();
// Job ids with a status request in flight; true when another event came meanwhile.
const refreshing = new Map();

function readToken() {
  // The fragment never reaches the server, so the token stays out of its logs
  // for the page itself. It is removed from the address bar once stored.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path) {
  const response = await fetch(API + path, { headers: { "X-Ingest-Token": token } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`GET ${path} failed with ${response.status}: ${body.error || ""}`);
  }
  return response.json();
}

function streamUrl(path) {
  // EventSource cannot send headers, so the stream endpoints accept ?token=.
  return `${API}${path}?token=${encodeURIComponent(token)}`;
}

function showError(message) {
  const banner = document.getElementById("error");
  banner.textContent = message;
  banner.hidden = false;
}

function setConnection(state) {
  const badge = document.getElementById("connection");
  badge.dataset.state = state;
  badge.textContent = state;
}

function cell(className) {
  const td = document.createElement("td");
  td.className = className;
  return td;
}

function createRow(jobId) {
  const row = document.createElement("tr");
  row.dataset.jobId = jobId;
  const job = cell("job");
  job.textContent = jobId;
  const progress = cell("progress");
  progress.append(document.createElement("progress"), " ");
  const percent = document.createElement("span");
  percent.className = "percent";
  progress.append(percent);
  row.append(job, cell("status"), progress, cell("message"), cell("created"));
  row.querySelector("progress").max = 100;
  row.addEventListener("click", () => showTimeline(jobId));
  return row;
}

function renderJob(job) {
  let row = rows.get(job.job_id);
  if (!row) {
    row = createRow(job.job_id);
    rows.set(job.job_id, row);
    document.getElementById("jobs").prepend(row);
  }
  row.dataset.status = job.status;
  row.querySelector("td.status").textContent = job.status;
  row.querySelector("progress").value = job.progress;
  row.querySelector(".percent").textContent = `${job.progress}%`;
  row.querySelector("td.message").textContent = job.message;
  row.querySelector("td.created").textContent = job.created_at;
}

async function refreshJob(jobId) {
  // Progress events can come faster than requests complete: keep at most one
  // request per job in flight, and one more if events arrived meanwhile.
  if (refreshing.has(jobId)) {
    refreshing.set(jobId, true);
    return;
  }
  try {
    do {
      refreshing.set(jobId, false);
      renderJob(await api(`/jobs/${encodeURIComponent(jobId)}`));
    } while (refreshing.get(jobId));
  } catch (error) {
    showError(error.message);
  } finally {
    refreshing.delete(jobId);
  }
}

async function loadJobs() {
  const page = await api(`/jobs?limit=${LIST_LIMIT}`);
  // Oldest first, because each new row goes on top.
  for (const job of page.jobs.reverse()) {
    renderJob(job);
  }
}

function followAllJobs() {
  const source = new EventSource(streamUrl("/stream"));
  let loaded = false;
  source.onopen = () => {
    setConnection("live");
    // Loaded once the stream is open, so no job created in between is missed.
    if (!loaded) {
      loaded = true;
      loadJobs().catch((error) => showError(error.message));
    }
  };
  source.onerror = () => setConnection("reconnecting");
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => refreshJob(JSON.parse(message.data).job_id));
  }
  source.addEventListener("stream_error", (message) => {
    showError(JSON.parse(message.data).error);
  });
}

function timelineItem(event) {
  const item = document.createElement("li");
  item.dataset.type = event.type;
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = event.type;
  const delivery = event.delivery ? ` delivery=${JSON.stringify(event.delivery)}` : "";
  item.append(
    `${event.at} `, type,
    ` attempt ${event.attempt} ${JSON.stringify(event.data)}${delivery}`,
  );
  return item;
}

function showTimeline(jobId) {
  if (timelineSource) {
    timelineSource.close();
  }
  for (const [id, row] of rows) {
    row.setAttribute("aria-selected", String(id === jobId));
  }
  document.getElementById("timeline").hidden = false;
  document.getElementById("timeline-job").textContent = jobId;
  const list = document.getElementById("timeline-events");
  list.replaceChildren();

  const source = new EventSource(streamUrl(`/jobs/${encodeURIComponent(jobId)}/stream`));
  timelineSource = source;
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => {
      const event = JSON.parse(message.data);
      list.append(timelineItem(event));
      // The server ends the stream after the final event; closing here keeps
      // EventSource from reconnecting.
      if (FINAL_EVENT_TYPES.has(event.type)) {
        source.close();
      }
    });
  }
  source.addEventListener("stream_error", (message) => {
    showError(JSON.parse(message.data).error);
  });
}

function start() {
  token = readToken();
  if (token) {
    followAllJobs();
    return;
  }
  const form = document.getElementById("token-form");
  form.hidden = false;
  setConnection("no token");
  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    token = document.getElementById("token-input").value;
    sessionStorage.setItem(TOKEN_KEY, token);
    form.hidden = true;
    followAllJobs();
  });
}

start();
