// Shared by the pages: the API, exact CTK arithmetic with BigInt (never floats), messages.
"use strict";

const DECIMALS = 18n;
const UNIT = 10n ** DECIMALS;

async function api(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

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

function orderRows(orders) {
  if (!orders.length) return '<tr><td colspan="6" class="muted">No orders yet.</td></tr>';
  return orders
    .map(
      (o) => `<tr data-order="${o.order_id}">
        <td class="mono" title="${o.order_id}">${short(o.order_id, 8)}</td>
        <td>${o.plan} <span class="muted">${o.instance_type}</span></td>
        <td><span class="badge ${o.state}">${o.state}${o.reorged ? " (reorged)" : ""}</span></td>
        <td class="mono">${o.instance_id || "—"}</td>
        <td>${o.launched_at ? new Date(o.launched_at).toLocaleString() : "—"}</td>
        <td class="mono" title="${o.tx_hash}">${short(o.tx_hash, 8)}</td>
      </tr>`,
    )
    .join("");
}
