// The checkout: connect an EIP-1193 wallet, check network and balance, send the CTK
// transfer to the burn address from the user's own wallet, follow the order.
"use strict";


// `paying` is set from the first click until the wallet has answered (sent or refused):
// a click meanwhile starts nothing, whatever the button's disabled attribute says.
// `payments` are this page's transactions, newest last, each followed to its orders.
const state = { info: null, plans: [], plan: null, account: null, balance: null, paying: false, payments: [], following: false };
const PAY_LABEL = "Pay with CTK";


function total() {
  const quantity = BigInt(Math.max(1, Math.min(100, Number(document.getElementById("quantity").value) || 1)));
  return state.plan ? BigInt(state.plan.price) * quantity : 0n;
}

function renderPlans() {
  // A payment is a plain transfer, so it cannot say which plan it is for: every wallet buys
  // the default plan. The others are listed, honestly marked, until wallets can pick one.
  const box = document.getElementById("plans");
  box.innerHTML = state.plans
    .map(
      (p) => `<div class="plan ${p.name === state.plan.name ? "selected" : ""} ${p.default ? "" : "unavailable"}" data-plan="${p.name}">
        <div class="name">${p.name}</div><div class="price">${p.price_ctk} CTK</div>
        <div class="type">${p.instance_type} · ${p.default ? "per instance" : "not yet for wallet payments"}</div></div>`,
    )
    .join("");
  box.querySelectorAll(".plan:not(.unavailable)").forEach((el) =>
    el.addEventListener("click", () => {
      state.plan = state.plans.find((p) => p.name === el.dataset.plan);
      renderPlans();
      renderTotal();
    }),
  );
}

function renderTotal() {
  document.getElementById("total").textContent = formatCtk(total());
  renderPay();
}

function renderPay() {
  const button = document.getElementById("pay");
  button.disabled = !state.account || state.paying;
  button.textContent = state.paying ? "Waiting for your wallet…" : PAY_LABEL;
}

async function onRightNetwork(provider) {
  const chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16);
  if (chainId === state.info.chain_id) return true;
  show("error", `Wrong network: your wallet is on chain ${chainId}. Switch it to chain ${state.info.chain_id} to pay.`);
  document.getElementById("switch").hidden = false;
  return false;
}

async function readBalance(provider) {
  const data = SELECTOR.balanceOf + word(state.account);
  const result = await provider.request({ method: "eth_call", params: [{ to: state.info.token_address, data }, "latest"] });
  state.balance = BigInt(result);
  document.getElementById("balance").textContent = `${formatCtk(state.balance)} CTK`;
}

async function connect() {
  clearBanner();
  const provider = wallet();
  if (!provider) {
    show("error", "No wallet found. Install MetaMask (or another Ethereum wallet) in this browser to pay with CTK.");
    return;
  }
  try {
    const accounts = await provider.request({ method: "eth_requestAccounts" });
    state.account = accounts[0];
  } catch (error) {
    show("error", error.code === REJECTED ? "You declined to connect your wallet." : `The wallet did not connect: ${error.message}`);
    return;
  }
  document.getElementById("wallet").hidden = false;
  document.getElementById("account").textContent = state.account;
  const dashboard = document.getElementById("my-dashboard");
  dashboard.href = `/wallet/${state.account}`;
  dashboard.hidden = false;
  if (!(await onRightNetwork(provider))) return;
  await readBalance(provider);
  renderTotal();
  show("info", "Wallet connected. Choose a plan and pay.");
}

async function switchNetwork() {
  const provider = wallet();
  try {
    await provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId: `0x${state.info.chain_id.toString(16)}` }] });
    document.getElementById("switch").hidden = true;
    await connect();
  } catch (error) {
    show("error", `Could not switch the network: ${error.message}. Add chain ${state.info.chain_id} to your wallet first.`);
  }
}

async function pay() {
  // Taken before the first await: a second click (a double click, an impatient one while
  // the wallet prompt is open) must not start a second payment.
  if (state.paying) return renderPay(); // and disabled again, had anything enabled it
  state.paying = true;
  renderPay();
  try {
    await payOnce();
  } finally {
    state.paying = false;
    renderPay();
  }
}

async function payOnce() {
  clearBanner();
  const provider = wallet();
  if (!provider || !state.account) return connect();
  if (!(await onRightNetwork(provider))) return;
  await readBalance(provider);
  const amount = total();
  if (state.balance < amount) {
    show("error", `Not enough CTK: your wallet holds ${formatCtk(state.balance)} CTK and this costs ${formatCtk(amount)} CTK. Nothing was sent.`);
    return;
  }
  const data = SELECTOR.transfer + word(state.info.burn_address) + uint(amount);
  show("info", `Confirm the payment of ${formatCtk(amount)} CTK in your wallet. Nothing is sent until you confirm there.`);
  let hash;
  try {
    hash = await provider.request({
      method: "eth_sendTransaction",
      params: [{ from: state.account, to: state.info.token_address, data }],
    });
  } catch (error) {
    show("error", error.code === REJECTED ? "You rejected the payment in your wallet. Nothing was sent." : `The payment failed: ${error.message}`);
    return;
  }
  state.payments.push({ hash, amount, block: null, status: "pending", orders: [] });
  renderPayments();
  show("info", `Payment sent (${short(hash, 10)}). It is being mined; your order appears below once the watcher has recorded it.`);
  follow();
}

// Each payment of this page, from "sent" to its orders, and what happens next.
function renderPayments() {
  document.getElementById("payments").innerHTML = state.payments
    .map((p) => {
      const what = `Payment <span class="mono" title="${esc(p.hash)}">${esc(short(p.hash, 10))}</span> of ${formatCtk(p.amount)} CTK`;
      const [kind, status, next] = {
        pending: ["", "sent, waiting to be mined.", "Your wallet shows it as pending. Once it is in a block and that block is confirmed, the watcher records it and creates your order here."],
        mined: ["", `mined in block ${p.block}.`, "The watcher records it once the block is confirmed; your order appears below then."],
        reverted: ["bad", `failed on chain in block ${p.block}.`, "The transfer was reverted: no CTK left your wallet and no order was created."],
        recorded: ["ok", `recorded: ${p.orders.length} order${p.orders.length === 1 ? "" : "s"}.`, "Each order is followed below until its instance runs."],
      }[p.status];
      return `<div class="payment ${kind}" data-tx="${esc(p.hash)}">${what} ${status} <span class="next">${next}</span></div>`;
    })
    .join("");
}

async function follow() {
  if (state.following) return; // one loop follows every payment of the page
  state.following = true;
  try {
    while (!(await followStep())) await new Promise((resolve) => setTimeout(resolve, 1000));
  } finally {
    state.following = false;
  }
}

// One look at the payments and their orders; true when every order has ended.
async function followStep() {
  const provider = wallet();
  for (const p of state.payments.filter((p) => p.status === "pending" || p.status === "mined")) {
    if (p.status === "pending" && provider) {
      const receipt = await provider.request({ method: "eth_getTransactionReceipt", params: [p.hash] }).catch(() => null);
      if (receipt) [p.status, p.block] = [receipt.status === "0x0" ? "reverted" : "mined", parseInt(receipt.blockNumber, 16)];
    }
  }
  let mine = [];
  try {
    const hashes = new Set(state.payments.map((p) => p.hash));
    mine = (await api(`/api/orders?payer=${state.account}`)).filter((o) => hashes.has(o.tx_hash));
  } catch (error) {
    show("error", `Cannot reach the watcher to follow your order (${error.message}); trying again.`);
    return false;
  }
  for (const p of state.payments) {
    p.orders = mine.filter((o) => o.tx_hash === p.hash);
    if (p.orders.length) p.status = "recorded";
  }
  renderPayments();
  if (mine.length) document.getElementById("orders").innerHTML = orderRows(mine);
  const waiting = state.payments.some((p) => p.status === "pending" || p.status === "mined");
  const ended = (o) => o.state === "running" || o.state === "failed";
  if (waiting || !mine.every(ended)) {
    const stuck = mine.filter((o) => o.overdue).length;
    const retrying = mine.filter((o) => !ended(o) && o.last_error).length;
    if (stuck) show("error", "Your payment is recorded, but launching is stuck; see below. Nothing is lost: it goes ahead as soon as launching works again.");
    else if (retrying) show("info", "Your payment is recorded. Launching failed for now and is retried automatically; see below.");
    return false;
  }
  if (provider) await readBalance(provider);
  const running = mine.filter((o) => o.state === "running");
  if (!mine.length) {
    show("error", "Your payment failed on chain: nothing was taken and no order was created.");
  } else if (running.length === mine.length) {
    show("success", `Your instance${running.length > 1 ? "s are" : " is"} running: ${running.map((o) => o.instance_id).join(", ")}.`);
  } else {
    show("error", "Some instances could not be launched; their price is back in your credit (see below).");
  }
  return true;
}

async function main() {
  [state.info, state.plans] = await Promise.all([api("/api/payment-info"), api("/api/plans")]);
  state.plan = state.plans.find((p) => p.default) || state.plans[0];
  document.getElementById("burn").textContent = state.info.burn_address;
  document.getElementById("chain").textContent = state.info.chain_id;
  renderPlans();
  renderTotal();
  document.getElementById("connect").addEventListener("click", connect);
  document.getElementById("switch").addEventListener("click", switchNetwork);
  document.getElementById("pay").addEventListener("click", pay);
  document.getElementById("quantity").addEventListener("input", renderTotal);
}

main().catch((error) => show("error", `The page could not load: ${error.message}`));
