// A wallet's dashboard: balance, credit and orders (public, as the chain is), and for the
// wallet's owner, signed in, how to reach each running order.
"use strict";

const address = decodeURIComponent(location.pathname.split("/").pop());
const view = { session: null, access: new Map(), asked: new Map(), shownFor: undefined, problem: false };
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
    box.innerHTML = `<p class="muted">Signed in as this wallet: the address and ssh command of each running order are below. <button type="button" class="secondary" id="sign-out">Sign out</button></p>`;
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
    // Asked again until it has everything: the host keys come minutes after the address.
    if (!known || (due && (!known.ssh_command || !(known.host_keys || []).length))) {
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
  document.getElementById("access").innerHTML = shown.length
    ? shown.map((a) => accessBlock(a)).join("")
    : '<p class="muted">No running orders yet: access details appear here when one runs.</p>';
}

async function refresh(again = true) {
  try {
    const [balance, credit, orders] = await Promise.all([
      api(`/api/balance/${address}`).catch((error) => ({ error })),
      api(`/api/credit/${address}`),
      api(`/api/orders?payer=${address}`),
    ]);
    document.getElementById("balance").textContent = balance.error ? "unavailable" : `${formatCtk(balance.balance)} CTK`;
    document.getElementById("credit").textContent = `${formatCtk(credit.balance)} CTK`;
    const running = orders.filter(isRunning).length;
    document.getElementById("count").textContent = running;
    document.getElementById("count-detail").textContent = `running, of ${orders.length} ordered`;
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

async function main() {
  document.getElementById("address").textContent = address;
  view.session = await currentSession();
  await refresh();
}

main();
