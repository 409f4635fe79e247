// The checkout: connect an EIP-1193 wallet, check network and balance, send the CTK
// transfer to the burn address from the user's own wallet, follow the order.
"use strict";

const BALANCE_OF = "0x70a08231"; // balanceOf(address)
const TRANSFER = "0xa9059cbb"; // transfer(address,uint256)
const REJECTED = 4001; // EIP-1193: the user rejected the request

const state = { info: null, plans: [], plan: null, account: null, balance: null, tx: null };

const word = (hex) => hex.replace(/^0x/, "").toLowerCase().padStart(64, "0");

function wallet() {
  return typeof window.ethereum === "object" && window.ethereum !== null ? window.ethereum : null;
}

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
  document.getElementById("pay").disabled = !state.account;
}

async function onRightNetwork(provider) {
  const chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16);
  if (chainId === state.info.chain_id) return true;
  show("error", `Wrong network: your wallet is on chain ${chainId}. Switch it to chain ${state.info.chain_id} to pay.`);
  document.getElementById("switch").hidden = false;
  return false;
}

async function readBalance(provider) {
  const data = BALANCE_OF + word(state.account);
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
  const data = TRANSFER + word(state.info.burn_address) + word(amount.toString(16));
  try {
    state.tx = await provider.request({
      method: "eth_sendTransaction",
      params: [{ from: state.account, to: state.info.token_address, data }],
    });
  } catch (error) {
    show("error", error.code === REJECTED ? "You rejected the payment in your wallet. Nothing was sent." : `The payment failed: ${error.message}`);
    return;
  }
  show("info", `Payment sent (${short(state.tx, 10)}). Waiting for your order…`);
  follow();
}

async function follow() {
  const orders = (await api(`/api/orders?payer=${state.account}`)).filter((o) => o.tx_hash === state.tx);
  if (orders.length) document.getElementById("orders").innerHTML = orderRows(orders);
  const done = orders.length && orders.every((o) => o.state === "running" || o.state === "failed");
  if (!done) {
    setTimeout(follow, 1000);
    return;
  }
  await readBalance(wallet());
  const running = orders.filter((o) => o.state === "running");
  if (running.length === orders.length) {
    show("success", `Your instance${running.length > 1 ? "s are" : " is"} running: ${running.map((o) => o.instance_id).join(", ")}.`);
  } else {
    show("error", "Some instances could not be launched; their price is back in your credit.");
  }
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
