// Shared by the pages: the API, exact CTK arithmetic with BigInt (never floats), messages.
"use strict";

const DECIMALS = 18n;
const UNIT = 10n ** DECIMALS;

// Function selectors of the token and the Checkout, called by hand (no JS library on the
// pages): tests/unit/test_page_selectors.py checks each is the keccak of the signature
// beside it and in the compiled contracts' ABIs.
const SELECTOR = {
  balanceOf: "0x70a08231", // balanceOf(address)
  transfer: "0xa9059cbb", // transfer(address,uint256)
  nonces: "0x7ecebe00", // nonces(address)
  allowance: "0xdd62ed3e", // allowance(address,address)
  eip712Domain: "0x84b0196e", // eip712Domain()
  approve: "0x095ea7b3", // approve(address,uint256)
  pay: "0xd0ee4de0", // pay(bytes32,uint256)
  payWithPermit: "0x16f107bf", // payWithPermit(bytes32,uint256,uint256,uint8,bytes32,bytes32)
};

// ABI words: an address or bytes32 (hex), and an unsigned integer.
const word = (hex) => hex.replace(/^0x/, "").toLowerCase().padStart(64, "0");
const uint = (value) => word(BigInt(value).toString(16));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The receipt of a sent transaction, once mined (null if not within `seconds`).
async function waitForReceipt(provider, hash, seconds = 300) {
  for (let i = 0; i < seconds; i++) {
    const receipt = await provider.request({ method: "eth_getTransactionReceipt", params: [hash] }).catch(() => null);
    if (receipt) return receipt;
    await sleep(1000);
  }
  return null;
}

async function api(path) {
  return apiSend("GET", path);
}

// A call to the API; the session cookie goes along (same origin). An error carries the
// HTTP status, and the API's one-line `detail` as its message.
async function apiSend(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (error) {
    data = null;
  }
  if (!response.ok) {
    const detail = data && data.detail;
    const error = new Error(typeof detail === "string" ? detail : `the watcher answered ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

// --- the wallet and signing in (EIP-4361, personal_sign) ---

const REJECTED = 4001; // EIP-1193: the user rejected the request

function wallet() {
  return typeof window.ethereum === "object" && window.ethereum !== null ? window.ethereum : null;
}

function hexOf(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

// The signed-in session, or null (signed out, expired, or the watcher unreachable).
async function currentSession() {
  try {
    return await api("/api/auth/session");
  } catch (error) {
    return null;
  }
}

// Sign in as `account`: the server's nonce and terms, the EIP-4361 message, the wallet's
// personal_sign (hardware wallets behind MetaMask sign these too). The message names the
// address with its EIP-55 checksum, which the API writes for us (/api/credit).
async function signIn(provider, account) {
  const [terms, credit] = await Promise.all([apiSend("POST", "/api/auth/nonce"), api(`/api/credit/${account}`)]);
  if (terms.domain !== location.host) {
    throw new Error(`the watcher asks to sign in to ${terms.domain}, but this page is ${location.host}: nothing was signed`);
  }
  const now = new Date();
  const message = [
    `${terms.domain} wants you to sign in with your Ethereum account:`,
    credit.payer,
    "",
    "Sign in to watcher to order and reach cloud resources.",
    "",
    `URI: ${terms.uri}`,
    "Version: 1",
    `Chain ID: ${terms.chain_id}`,
    `Nonce: ${terms.nonce}`,
    `Issued At: ${now.toISOString()}`,
    `Expiration Time: ${new Date(now.getTime() + 5 * 60 * 1000).toISOString()}`,
  ].join("\n");
  const signature = await provider.request({ method: "personal_sign", params: [hexOf(message), account] });
  return apiSend("POST", "/api/auth/sign-in", { message, signature });
}

async function signOut() {
  await apiSend("POST", "/api/auth/sign-out").catch(() => null);
}

function sameAddress(a, b) {
  return Boolean(a && b) && a.toLowerCase() === b.toLowerCase();
}

// How to reach a running order, for its signed-in owner (/api/orders/{id}/access).
// What an order's resource is called in a sentence.
function thing(kind) {
  return { scaling_pool: "pool", s3_bucket: "bucket" }[kind] || "server";
}

function sizeText(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = Number(bytes);
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  // Rounded down: what is left is never shown as more than it is.
  const shown = Number.isInteger(n) ? n : n >= 100 ? Math.floor(n) : Math.floor(n * 10) / 10;
  return `${shown} ${units[i]}`;
}

function commandLine(text) {
  return `<div class="command"><code class="mono">${esc(text)}</code><button class="secondary copy" type="button" data-copy="${esc(text)}">Copy</button></div>`;
}

// A scaling pool: its instances (each with its ssh command), its sizes and its alarm.
function poolBlock(a) {
  const p = a.pool;
  const alarm = { OK: "OK: CPU below the threshold", ALARM: "ALARM: scaling out", INSUFFICIENT_DATA: "waiting for CPU data" };
  const rows = [
    ["Order", `<span class="mono">${esc(a.order_id)}</span>`],
    ["What", `${esc(a.summary)}${a.name ? ` · “${esc(a.name)}”` : ""}`],
    ["Region", esc(a.region || "—")],
    ["Group", `<span class="mono">${esc(p ? p.group : a.instance_id || "—")}</span>`],
  ];
  if (p) {
    const serving = p.instances.filter((m) => m.state === "InService").length;
    const other = p.instances.length - serving;
    rows.push(["Instances", `<span data-pool-size>${serving} running${other ? ` (${other} starting or stopping)` : ""} · ${p.desired_capacity} wanted · at most ${p.max_size}</span>`]);
    rows.push(["CPU alarm", `<span data-alarm>${esc(alarm[p.alarm_state] || p.alarm_state || "none")}</span> <span class="muted">(above ${p.cpu_threshold} % for two minutes adds one)</span>`]);
    rows.push(["SSH user", `<span class="mono">${esc(a.ssh_user || "—")}</span>`]);
  }
  const members = p && p.instances.length
    ? p.instances.map((m) => (m.ssh_command ? commandLine(m.ssh_command) : `<div class="mono">${esc(m.instance_id)} · ${esc(m.state)} · no address yet</div>`)).join("")
    : `<p class="muted">${p ? "No instances now." : "The pool's state is not shown by the cloud right now; this page asks again."}</p>`;
  return `<div class="access" data-access="${esc(a.order_id)}" data-kind="scaling_pool"><p class="next">${esc(a.next_step)}</p>
    <div class="kv">${rows.map(([k, v]) => `<div class="k">${k}</div><div>${v}</div>`).join("")}</div>
    <div class="members" data-pool-members>${members}</div></div>`;
}

// A bucket: what it holds of its quota, an upload form and a download link per file.
function storageBlock(a) {
  const s = a.storage;
  const rows = [
    ["Order", `<span class="mono">${esc(a.order_id)}</span>`],
    ["What", `${esc(a.summary)}${a.name ? ` · “${esc(a.name)}”` : ""}`],
    ["Region", esc(a.region || "—")],
    ["Bucket", `<span class="mono">${esc(s ? s.bucket : a.instance_id || "—")}</span>`],
  ];
  if (!s) {
    return `<div class="access" data-access="${esc(a.order_id)}" data-kind="s3_bucket"><p class="next">${esc(a.next_step)}</p>
      <div class="kv">${rows.map(([k, v]) => `<div class="k">${k}</div><div>${v}</div>`).join("")}</div>
      <p class="muted">What it holds is not shown by the cloud right now; this page asks again.</p></div>`;
  }
  const used = Math.min(100, Math.round((Number(s.used_bytes) / Number(s.quota_bytes)) * 100));
  rows.push(["Used", `<span data-used>${sizeText(s.used_bytes)} of ${sizeText(s.quota_bytes)}</span><div class="meter"><div style="width:${used}%"></div></div>`]);
  const files = s.objects.length
    ? `<ul class="files">${s.objects.map((o) => `<li>${o.url ? `<a href="${esc(o.url)}" rel="noopener" download>${esc(o.key)}</a>` : esc(o.key)} <span class="muted">${sizeText(o.size)}</span></li>`).join("")}</ul>`
    : '<p class="muted">No files yet.</p>';
  const room = Number(s.quota_bytes) - Number(s.used_bytes);
  const upload = s.open && room > 0
    ? `<form class="upload" data-upload="${esc(a.order_id)}" data-room="${room}"><input type="file" name="file" aria-label="File to upload"><button type="submit">Upload</button>
        <span class="muted">up to ${sizeText(room)}; download links last 15 min and are made again</span></form><div class="error-text" data-upload-error="${esc(a.order_id)}" role="alert"></div>`
    : `<p class="muted">${s.open ? "The bucket is full: nothing more can be uploaded. Uploading a file again under the same name replaces it." : "Uploads and downloads open again when its lease runs (extend it below)."}</p>`;
  return `<div class="access" data-access="${esc(a.order_id)}" data-kind="s3_bucket"><p class="next">${esc(a.next_step)}</p>
    <div class="kv">${rows.map(([k, v]) => `<div class="k">${k}</div><div>${v}</div>`).join("")}</div>${upload}${files}</div>`;
}

// An upload goes straight to the bucket with its presigned form (no-cors: S3's answer is
// not readable here), then the listing is read again to see whether the file is there.
document.addEventListener("submit", async (event) => {
  const form = event.target.closest && event.target.closest("form[data-upload]");
  if (!form) return;
  event.preventDefault();
  const id = form.dataset.upload;
  const problem = document.querySelector(`[data-upload-error="${id}"]`);
  const file = form.querySelector("input[type=file]").files[0];
  if (!file) {
    problem.textContent = "Choose a file first.";
    return;
  }
  if (file.size > Number(form.dataset.room)) {
    problem.textContent = `${file.name} is ${sizeText(file.size)}: only ${sizeText(form.dataset.room)} is left in this bucket.`;
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  problem.textContent = "";
  try {
    // A form signed for this one file, capped at what is left now.
    const access = await api(`/api/orders/${id}/access?upload=${encodeURIComponent(file.name)}`);
    const up = access.storage && access.storage.upload;
    if (!up) {
      problem.textContent = access.storage && !access.storage.open ? "The bucket is closed: its lease is not running." : "The bucket is full, or cannot be read right now: try again in a moment.";
      return;
    }
    const body = new FormData();
    Object.entries(up.fields).forEach(([k, v]) => body.append(k, v));
    body.append("file", file, file.name);
    await fetch(up.url, { method: "POST", body, mode: "no-cors" });
  } catch (error) {
    problem.textContent = `The upload did not reach the bucket (${error.message}): try again.`;
    return;
  } finally {
    button.disabled = false;
  }
  if (window.watcherRefresh) await window.watcherRefresh(id, file.name, file.size);
});

function accessBlock(a) {
  if (!a) return "";
  if (a.kind === "scaling_pool") return poolBlock(a);
  if (a.kind === "s3_bucket") return storageBlock(a);
  const spec = [a.summary, a.vcpus ? `${a.vcpus} vCPU` : "", a.memory_gib ? `${a.memory_gib} GiB memory` : ""].filter(Boolean).join(" · ");
  const rows = [
    ["Order", `<span class="mono">${esc(a.order_id)}</span>`],
    ["What", `${esc(spec)}${a.periods ? ` · ${a.periods} ${esc(a.periods === 1 ? a.unit || "hour" : a.units || "hours")}` : ""}${a.name ? ` · “${esc(a.name)}”` : ""}`],
    ["Region", esc(a.region || "—")],
    ["Instance", `<span class="mono">${esc(a.instance_id || "—")}</span>`],
    ["Public IP", `<span class="mono">${esc(a.public_ip || "—")}</span>`],
    ["DNS name", `<span class="mono">${esc(a.public_dns || "—")}</span>`],
    ["SSH user", `<span class="mono">${esc(a.ssh_user || "—")}</span>`],
    ["Your key", `<span class="mono">${esc(a.ssh_key_fingerprint || "—")}</span>`],
  ];
  const command = a.ssh_command
    ? `<div class="command"><code class="mono" data-ssh>${esc(a.ssh_command)}</code><button class="secondary copy" type="button" data-copy="${esc(a.ssh_command)}">Copy</button></div>`
    : "";
  const hostKeys = (a.host_keys || []).length
    ? (a.host_keys || []).map((k) => `<div class="mono">${esc(k.type)} ${esc(k.fingerprint)}</div>`).join("")
    : '<span class="muted">not shown by the cloud yet (its console has them a few minutes after boot); this page asks again</span>';
  rows.push(["Host keys", `<div data-host-keys>${hostKeys}</div>`]);
  return `<div class="access" data-access="${esc(a.order_id)}">${command}<p class="next">${esc(a.next_step)}</p>
    <div class="kv">${rows.map(([k, v]) => `<div class="k">${k}</div><div>${v}</div>`).join("")}</div>
    ${(a.host_keys || []).length ? '<p class="muted">On your first login ssh shows the server\'s key fingerprint: it must be one of the host keys above, or someone is in between.</p>' : ""}</div>`;
}

// Copy buttons anywhere on the page (the ssh command).
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("button[data-copy]");
  if (!button) return;
  const done = () => {
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(button.dataset.copy).then(done, () => (button.textContent = "Select and copy it"));
    return;
  }
  // Not a secure context (plain http off localhost): select the text for the user instead.
  const code = button.parentElement.querySelector("code");
  if (code) window.getSelection().selectAllChildren(code);
  button.textContent = document.execCommand && document.execCommand("copy") ? "Copied" : "Selected: copy it";
});

function formatCtk(units) {
  const value = BigInt(units);
  const whole = value / UNIT;
  const frac = (value % UNIT).toString().padStart(Number(DECIMALS), "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

function short(text, keep = 10) {
  return text && text.length > 2 * keep ? `${text.slice(0, keep)}…${text.slice(-6)}` : text || "";
}

function show(kind, text) {
  const banner = document.getElementById("banner");
  banner.className = `banner show ${kind}`;
  banner.textContent = text;
}

function clearBanner() {
  document.getElementById("banner").className = "banner";
}

// Server text (an AWS error message, a plan name) goes into HTML: escape it.
function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// A reason as a clause of our own sentence: without its final full stop. The API words a
// cloud error "Code: plain words"; the sentence reads better with the words first.
function clause(text) {
  const reason = String(text).replace(/[.\s]+$/, "");
  const coded = /^([A-Z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)*): (.+)$/.exec(reason);
  return coded ? `${coded[2]} (${coded[1]})` : reason;
}

function when(iso) {
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  if (seconds <= 1) return "now";
  if (seconds < 90) return `in ${seconds} s`;
  return `at ${new Date(iso).toLocaleTimeString()}`;
}

function waited(iso) {
  const minutes = Math.max(1, Math.round((Date.now() - new Date(iso).getTime()) / 60000));
  if (minutes < 120) return minutes === 1 ? "1 minute" : `${minutes} minutes`;
  return `${Math.round(minutes / 60)} hours`;
}

// What is going on with an order and what happens next, in plain words: every state a
// payer can meet, including a launch that keeps failing and an order that is stuck.
function orderNote(o) {
  if (o.reorged && !o.tx_hash) {
    return {
      kind: "bad",
      text: "A chain reorganisation took the payments your credit for this order came from. The order is held until your credit covers it again (your next payment does that by itself); the operator has been alerted.",
    };
  }
  if (o.reorged) {
    return {
      kind: "bad",
      text: "The chain undid the payment for this order after its launch had started. An operator has been alerted and will settle it; you do not need to do anything.",
    };
  }
  if (o.state === "running" && o.lease_state && o.lease_state !== "active") {
    const at = (iso) => (iso ? new Date(iso).toLocaleString() : "");
    const text = {
      expiring: `Its paid time ends at ${at(o.paid_until)}; then it is stopped.`,
      stopping: "Its paid time is over: it is being stopped (its disk is kept).",
      stopped: `Stopped: its paid time is over. Its disk is kept until ${at(o.grace_until)}, then it is removed.`,
      starting: "Extended: it is being started again.",
      terminating: "It is being removed.",
      terminated: "Its lease has ended and it has been removed.",
      cancelled: "Cancelled by its owner and removed; what the plan gives back for unused time went back to credit.",
    }[o.lease_state];
    return text ? { kind: o.lease_state === "expiring" ? "warn" : "info", text } : null;
  }
  if (o.state === "running") return null;
  if (o.state === "terminated") {
    return {
      kind: "warn",
      text: `Instance ${o.instance_id || ""} was ended outside the watcher (${clause(o.failure_reason || "no reason was recorded")}). It had been delivered, so its price is not refunded. If you did not end it yourself, give the operator the order id ${o.order_id}.`,
    };
  }
  if (o.state === "failed") {
    return {
      kind: "bad",
      text: `This instance could not be launched: ${clause(o.failure_reason || "no reason was recorded")}. Its price, ${formatCtk(o.amount)} CTK, is back in your credit and counts toward your next payment. Nothing more will happen to this order.`,
    };
  }
  const parts = [];
  if (o.last_error) {
    const next = o.next_attempt_at ? `The watcher tries again ${when(o.next_attempt_at)}` : "The watcher is trying again now";
    const calm = o.overdue ? "" : "; your payment is safe and you do not need to do anything";
    parts.push(`Launch attempt ${o.attempts} failed: ${clause(o.last_error)}. ${next}, by itself${calm}.`);
  } else if (o.state === "queued") {
    parts.push("Paid. Waiting for a free provisioning worker; your instance is launched shortly.");
  } else if (o.state === "launching") {
    parts.push("Launching your instance in the cloud.");
  } else if (o.state === "launched") {
    parts.push(`Instance ${o.instance_id} is starting; it is yours as soon as it is running.`);
  }
  if (o.overdue) {
    parts.push(`This is taking much longer than it should: it has waited ${waited(o.paid_at || o.created_at)}. The service reports itself degraded, so its operator sees it too. Your payment is recorded and nothing is lost: the order goes ahead as soon as launching works again. If it stays like this, give the operator the order id ${o.order_id}.`);
  }
  return { kind: o.overdue ? "bad" : o.last_error ? "warn" : "info", text: parts.join(" ") };
}

// Running and within its paid time (or sold without an end).
function isRunning(o) {
  return o.state === "running" && (!o.lease_state || o.lease_state === "active" || o.lease_state === "expiring");
}

// A lease past "active" says more than the order's "running".
const LEASE_BADGES = {
  expiring: ["retrying", "running · ends soon"],
  stopping: ["launching", "stopping"],
  stopped: ["stuck", "stopped · in grace"],
  starting: ["launching", "starting"],
  terminating: ["terminated", "ending"],
  terminated: ["terminated", "ended"],
  cancelled: ["terminated", "cancelled"],
};

function badge(o) {
  if (o.state === "running" && LEASE_BADGES[o.lease_state]) {
    const [kind, text] = LEASE_BADGES[o.lease_state];
    return `<span class="badge ${kind}">${esc(text)}</span>`;
  }
  if (o.reorged) return `<span class="badge failed">${esc(o.state)} (reorged)</span>`;
  if (o.overdue) return `<span class="badge stuck">${esc(o.state)} · stuck</span>`;
  if (o.last_error && o.state !== "failed") return `<span class="badge retrying">${esc(o.state)} · retrying</span>`;
  return `<span class="badge ${esc(o.state)}">${o.state === "failed" ? "failed · refunded" : esc(o.state)}</span>`;
}

function orderRows(orders) {
  if (!orders.length) return '<tr><td colspan="6" class="muted">No orders yet.</td></tr>';
  return orders
    .map((o) => {
      const note = orderNote(o);
      return `<tr data-order="${esc(o.order_id)}">
        <td class="mono" data-label="Order" title="${esc(o.order_id)}">${esc(short(o.order_id, 8))}</td>
        <td data-label="Plan">${esc(o.plan)} <span class="muted">${esc(o.instance_type)}</span></td>
        <td data-label="State">${badge(o)}</td>
        <td class="mono" data-label="Instance">${esc(o.instance_id || "—")}</td>
        <td data-label="Launched">${o.launched_at ? new Date(o.launched_at).toLocaleString() : "—"}</td>
        <td class="mono" data-label="Payment" title="${esc(o.tx_hash || "bought from credit")}">${o.tx_hash ? esc(short(o.tx_hash, 8)) : "credit"}</td>
      </tr>${note ? `<tr class="note ${note.kind}" data-note="${esc(o.order_id)}"><td colspan="6">${esc(note.text)}</td></tr>` : ""}`;
    })
    .join("");
}
