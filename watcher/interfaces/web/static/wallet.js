// A wallet's dashboard: balance, credit and orders (public, as the chain is), and for the
// wallet's owner, signed in, how to reach each running order.
"use strict";

const address = decodeURIComponent(location.pathname.split("/").pop());
const view = { session: null, info: null, plans: [], credit: 0n, access: new Map(), asked: new Map(), shownFor: undefined, problem: false, html: "" };
// An order's access details are asked again (for its host keys, which come minutes after
// the address) at most this often; the server reads the console less often still.
const ACCESS_EVERY = 20000;

// Whether the owner is signed in; the sign-in prompt or the sign-out button, drawn again
// only when that changes (not at every refresh, which would swallow a click).
function accessState() {
  const owner = Boolean(view.session && sameAddress(view.session.address, address));
  const key = view.session ? view.session.address : null;
  if (view.shownFor === key) return owner;
  view.shownFor = key;
  const box = document.getElementById("access-state");
  if (owner) {
    box.innerHTML = `<p class="muted">Signed in as this wallet: how to reach and use each running order is below. <button type="button" class="secondary" id="sign-out">Sign out</button></p>`;
    document.getElementById("sign-out").addEventListener("click", async () => {
      await signOut();
      location.reload();
    });
    return true;
  }
  const other = view.session ? ` You are signed in as <span class="mono">${esc(view.session.address)}</span>, another wallet.` : "";
  box.innerHTML = `<p>Sign in to see access details: only the wallet that paid sees an order's address and ssh command.${other}</p>
    <button type="button" id="sign-in">Sign in with this wallet</button>`;
  document.getElementById("sign-in").addEventListener("click", signInHere);
  document.getElementById("access").innerHTML = "";
  return false;
}

async function signInHere() {
  clearBanner();
  const provider = wallet();
  if (!provider) {
    show("error", "No wallet found. Install MetaMask (or another Ethereum wallet) in this browser to sign in.");
    return;
  }
  try {
    const [account] = await provider.request({ method: "eth_requestAccounts" });
    if (!sameAddress(account, address)) {
      show("error", `Your wallet is on ${account}, not ${address}: switch to this account in your wallet to see its access details.`);
      return;
    }
    view.session = await signIn(provider, account);
  } catch (error) {
    show("error", error.code === REJECTED ? "You declined to sign in. Nothing was signed." : `Sign-in failed: ${error.message}`);
    return;
  }
  show("success", "Signed in.");
  await refresh(false);
}

async function loadAccess(orders) {
  const running = orders.filter(isRunning);
  for (const o of running) {
    const known = view.access.get(o.order_id);
    const due = Date.now() - (view.asked.get(o.order_id) || 0) >= ACCESS_EVERY;
    // Asked again until it has everything: the host keys come minutes after the address;
    // a pool's members and a bucket's links are live, so asked again all along.
    const live = known && known.kind && known.kind !== "ec2_instance";
    if (!known || (due && (live || !known.ssh_command || !(known.host_keys || []).length))) {
      view.asked.set(o.order_id, Date.now());
      try {
        view.access.set(o.order_id, await api(`/api/orders/${o.order_id}/access`));
      } catch (error) {
        if (error.status === 401) view.session = null;
        return;
      }
    }
  }
  const shown = running.map((o) => view.access.get(o.order_id)).filter(Boolean);
  // Leases the owner can still act on: running, or stopped in grace (extend to restart).
  const leased = view.info && view.info.leases_enforced ? orders.filter((o) => o.state === "running" && LIVE_LEASES.has(o.lease_state)) : [];
  const html =
    (shown.length ? shown.map((a) => accessBlock(a)).join("") : '<p class="muted">No running orders yet: access details appear here when one runs.</p>') +
    leased.map(leaseControls).join("");
  // Drawn again only when something changed: a refresh must not wipe what is being typed.
  if (html !== view.html) {
    document.getElementById("access").innerHTML = html;
    view.html = html;
  }
  document.querySelectorAll("[data-left]").forEach((el) => (el.textContent = timeLeft(el.dataset.left)));
}

const LIVE_LEASES = new Set(["active", "expiring", "stopping", "stopped", "starting"]);

function timeLeft(iso) {
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  if (seconds <= 0) return "over";
  if (seconds < 120) return `${seconds} s left`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min left`;
  return `${Math.round(seconds / 3600)} h left`;
}

// Extend, auto-renew and cancel for one lease of the signed-in owner.
function leaseControls(o) {
  const id = esc(o.order_id);
  const plan = (view.plans || []).find((p) => p.name === o.plan);
  const [one, many] = plan ? [plan.unit, plan.units] : ["period", "periods"];
  const periodPrice = BigInt(o.amount) / BigInt(o.periods || 1);
  const stopped = o.lease_state === "stopped" || o.lease_state === "stopping";
  const lasts = periodPrice > 0n ? view.credit / periodPrice : 0n;
  const renewal = o.auto_renew
    ? `Renewed from your credit a ${one} at a time: your credit (${formatCtk(view.credit)} CTK) pays for ${lasts} more ${lasts === 1n ? one : many}.`
    : `Your credit, ${formatCtk(view.credit)} CTK, pays for ${lasts} ${lasts === 1n ? one : many}.`;
  const when = stopped
    ? `Stopped: its paid time is over. Its disk is kept until ${new Date(o.grace_until).toLocaleString()}, then it is removed. Extend to start it again.`
    : `Paid until ${new Date(o.paid_until).toLocaleString()} (<span data-left="${esc(o.paid_until)}"></span>).`;
  return `<div class="lease" data-lease="${id}">
    <div class="lease-head"><span class="mono">${esc(short(o.order_id, 8))}</span> · ${esc(o.plan)} · ${when}</div>
    <div class="row">
      <label>${esc(many.charAt(0).toUpperCase() + many.slice(1))} <input type="text" inputmode="numeric" value="1" data-periods="${id}" data-units="${esc(many)}" aria-label="${esc(many)} to add"></label>
      <button type="button" data-extend="${id}">Extend from credit</button>
      ${stopped ? "" : `<label class="check"><input type="checkbox" data-renew="${id}" ${o.auto_renew ? "checked" : ""}> Renew automatically</label>`}
      <button type="button" class="secondary" data-cancel="${id}">Cancel…</button>
    </div>
    <p class="muted">${renewal} ${formatCtk(periodPrice)} CTK a ${esc(one)}.</p>
    <div class="error-text" data-lease-error="${id}" role="alert"></div>
  </div>`;
}

// The owner's lease actions: one request per click, the button held until it is answered.
document.addEventListener("click", async (event) => {
  const button = event.target.closest && event.target.closest("button[data-extend], button[data-cancel]");
  if (!button || button.disabled) return;
  const id = button.dataset.extend || button.dataset.cancel;
  const problem = document.querySelector(`[data-lease-error="${id}"]`);
  problem.textContent = "";
  button.disabled = true;
  try {
    if (button.dataset.extend) {
      const field = document.querySelector(`[data-periods="${id}"]`);
      const text = field.value.trim();
      if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > 100) {
        problem.textContent = `Enter whole ${field.dataset.units} from 1 to 100, not “${text}”.`;
        return;
      }
      const lease = await apiSend("POST", `/api/orders/${id}/extend`, { periods: Number(text) });
      show("success", `Extended: paid until ${new Date(lease.paid_until).toLocaleString()}; ${formatCtk(lease.charged)} CTK from your credit.${lease.lease_state === "starting" ? " It is being started again." : ""}`);
    } else {
      const quote = await api(`/api/orders/${id}/cancel`);
      const back = quote.unused_periods
        ? `${quote.refund_ctk} CTK (${quote.unused_periods} unused ${quote.unused_periods === 1 ? "period" : "periods"}) comes back to your credit`
        : quote.rule === "none"
          ? "nothing comes back (this plan refunds nothing)"
          : "nothing comes back (no whole period is left unused)";
      if (!window.confirm(`Cancel this order? Its server is removed for good and ${back}.`)) return;
      const lease = await apiSend("POST", `/api/orders/${id}/cancel`, { expected_refund: quote.refund });
      show("success", `Cancelled: the server is being removed; ${lease.refunded_ctk} CTK back to your credit.`);
    }
    await refresh(false);
  } catch (error) {
    problem.textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

document.addEventListener("change", async (event) => {
  const box = event.target.closest && event.target.closest("input[data-renew]");
  if (!box) return;
  const id = box.dataset.renew;
  box.disabled = true;
  try {
    const lease = await apiSend("POST", `/api/orders/${id}/auto-renew`, { on: box.checked });
    show("success", lease.auto_renew ? "Auto-renew is on: a period at a time from your credit, near the end." : "Auto-renew is off.");
    await refresh(false);
  } catch (error) {
    box.checked = !box.checked;
    document.querySelector(`[data-lease-error="${id}"]`).textContent = error.message;
  } finally {
    box.disabled = false;
  }
});

async function refresh(again = true) {
  try {
    const [balance, credit, orders] = await Promise.all([
      api(`/api/balance/${address}`).catch((error) => ({ error })),
      api(`/api/credit/${address}`),
      api(`/api/orders?payer=${address}`),
    ]);
    document.getElementById("balance").textContent = balance.error ? "unavailable" : `${formatCtk(balance.balance)} CTK`;
    document.getElementById("credit").textContent = `${formatCtk(credit.balance)} CTK`;
    view.credit = BigInt(credit.balance);
    const running = orders.filter(isRunning).length;
    document.getElementById("count").textContent = running;
    document.getElementById("count-detail").textContent = `orders running, of ${orders.length} ordered`;
    document.getElementById("orders").innerHTML = orderRows(orders);
    if (accessState()) await loadAccess(orders);
    const open = orders.filter((o) => o.state !== "running" && o.state !== "failed");
    const stuck = open.filter((o) => o.overdue).length;
    const retrying = open.filter((o) => o.last_error).length;
    const problem = stuck
      ? ["error", `${stuck} of your orders ${stuck === 1 ? "is" : "are"} stuck; see below. Your payments are recorded and nothing is lost.`]
      : retrying
        ? ["info", `Launching ${retrying === 1 ? "one of your orders" : `${retrying} of your orders`} failed for now and is retried automatically; see below.`]
        : balance.error
          ? ["error", `The wallet's CTK balance cannot be read right now (${balance.error.message}); the rest is up to date.`]
          : null;
    if (problem) show(...problem);
    else if (view.problem) clearBanner();
    view.problem = Boolean(problem);
  } catch (error) {
    show("error", `${error.message}; trying again.`);
    view.problem = true;
  }
  if (again) setTimeout(refresh, 2000);
}

// After an upload (common.js), the order's access is asked again to see whether the
// bucket lists the file.
window.watcherRefresh = async (id, name, size) => {
  try {
    const access = await api(`/api/orders/${id}/access`);
    view.access.set(id, access);
    view.asked.set(id, Date.now());
    view.html = "";
    await refresh(false);
    // There, and of the file's size (a refused upload under a name already there would
    // otherwise read as done).
    const listed = access.storage && access.storage.objects.some((o) => o.key === name && o.size === size);
    const problem = document.querySelector(`[data-upload-error="${id}"]`);
    if (listed) show("success", `Uploaded ${name}.`);
    else if (problem) problem.textContent = `${name} is not in the bucket: the upload was refused (too big, or the form ran out). Try again.`;
  } catch (error) {
    show("error", `The bucket could not be read after the upload (${error.message}); the page tries again.`);
  }
};

async function main() {
  document.getElementById("address").textContent = address;
  [view.info, view.plans] = await Promise.all([api("/api/payment-info").catch(() => null), api("/api/plans").catch(() => [])]);
  view.session = await currentSession();
  await refresh();
}

main();
