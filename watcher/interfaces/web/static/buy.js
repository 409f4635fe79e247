// The checkout with the Checkout contract: sign in with the wallet, choose a plan, hours
// and an SSH key, draft the order (a reference and a quote), then pay it: from credit when
// that covers it (no transaction), else the rest through Checkout.payWithPermit (one
// transaction, an EIP-2612 permit instead of an approval). Follow it to a receipt with
// the address and the ssh command.
"use strict";

const UNSUPPORTED = new Set([4200, -32601, -32004]); // the wallet does not know the method
const MAX_PERIODS = 100;
const KEY_TYPES = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) /;

// `paying` is set from the click until the wallet has answered and the order is drafted
// and paid (or refused): a click meanwhile starts nothing, whatever the button says.
const state = {
  info: null,
  plans: [],
  plan: null,
  account: null, // the signed-in address (checksummed), null while signed out
  balance: null,
  credit: 0n,
  paying: false,
  purchase: null, // {draft, via: "credit" | "checkout", tx, status, access, note}
  following: false,
};

const $ = (id) => document.getElementById(id);

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

// --- the form ---

// The chosen plan's words for its period ("hour", "hours"; "15-minute period"...).
const unit = () => (state.plan ? state.plan.unit : "hour");
const units = () => (state.plan ? state.plan.units : "hours");

function periodsProblem(text) {
  const value = text.trim();
  if (value === "") return `Enter how many ${units()} you want, from 1 to 100.`;
  if (!/^[0-9]+$/.test(value)) {
    return /^[0-9]*[.,][0-9]+$/.test(value)
      ? `Whole ${units()} only: ${value} is not a whole number.`
      : `Enter a whole number of ${units()} from 1 to 100, not “${value}”.`;
  }
  const n = Number(value);
  if (n < 1) return `At least 1 ${unit()}.`;
  if (n > MAX_PERIODS) return `At most ${MAX_PERIODS} ${units()} in one order; ${value} is too many.`;
  return null;
}

function keyProblem(text) {
  const value = text.trim();
  if (value === "") return "Paste your SSH public key (the contents of the .pub file).";
  if (/PRIVATE KEY/.test(value)) return "This is a private key: never share it. Paste the public key (the .pub file) instead.";
  if (value.split(/\r?\n/).length > 1) return "Paste one key, on one line.";
  if (!KEY_TYPES.test(value)) return "This is not an OpenSSH public key: it starts with ssh-ed25519, ecdsa-sha2-… or ssh-rsa.";
  return null;
}

function periods() {
  return periodsProblem($("periods").value) ? null : Number($("periods").value.trim());
}

function showProblem(id, text) {
  $(`${id}-error`).textContent = text || "";
  $(id).setAttribute("aria-invalid", text ? "true" : "false");
}

function total() {
  const n = periods();
  return state.plan && n ? BigInt(state.plan.price) * BigInt(n) : null;
}

function renderPlans() {
  const box = $("plans");
  box.innerHTML = state.plans
    .map((p) => {
      const size = [p.vcpus ? `${p.vcpus} vCPU` : "", p.memory_gib ? `${p.memory_gib} GiB memory` : ""].filter(Boolean).join(" · ");
      const selected = p.name === state.plan.name;
      return `<button type="button" class="plan ${selected ? "selected" : ""}" data-plan="${esc(p.name)}" role="radio" aria-checked="${selected}">
        <div class="name">${esc(p.name)}</div><div class="price">${esc(p.price_ctk)} CTK <span class="per">/ ${esc(p.unit)}</span></div>
        <div class="type">${esc(p.instance_type)}${size ? ` · ${esc(size)}` : ""}</div>
        ${p.what ? `<div class="type">${esc(p.what)}</div>` : ""}</button>`;
    })
    .join("");
  box.querySelectorAll(".plan").forEach((el) =>
    el.addEventListener("click", () => {
      state.plan = state.plans.find((p) => p.name === el.dataset.plan);
      renderPlans();
      renderUnits();
      renderSummary();
    }),
  );
}

// The periods field in the chosen plan's words.
function renderUnits() {
  $("periods-label").textContent = units().charAt(0).toUpperCase() + units().slice(1);
  const kind = state.plan.kind || "ec2_instance";
  const ending = {
    ec2_instance: "your server is stopped (its disk kept for a grace period), then removed",
    scaling_pool: "your pool is scaled to zero: its instances and their disks are removed, its settings kept for a grace period to start it again, then removed",
    s3_bucket: "your bucket is closed (its files kept for a grace period), then emptied and removed",
  }[kind];
  $("hours-help").textContent = state.info.leases_enforced
    ? `Paid up front, a ${unit()} at a time. When they run out ${ending}; you are warned before.`
    : `Paid up front, a ${unit()} at a time. (Nothing is stopped when they run out yet.)`;
  const problem = $("periods-error").textContent ? periodsProblem($("periods").value) : null;
  if (problem) showProblem("periods", problem);
}

function renderSummary() {
  const amount = total();
  const box = $("summary");
  if (amount === null) {
    box.innerHTML = `<div class="line"><span>${esc(state.plan.name)}</span><span>— CTK</span></div>`;
  } else {
    const applied = state.account ? (state.credit < amount ? state.credit : amount) : 0n;
    const due = amount - applied;
    box.innerHTML = [
      `<div class="line"><span>${esc(state.plan.name)} · ${plural(periods(), unit(), units())} × ${esc(state.plan.price_ctk)} CTK</span><span>${formatCtk(amount)} CTK</span></div>`,
      applied > 0n ? `<div class="line"><span>Your credit, applied first</span><span>− ${formatCtk(applied)} CTK</span></div>` : "",
      `<div class="line total"><span>To pay now</span><span class="big" id="due">${formatCtk(due)} CTK</span></div>`,
    ].join("");
  }
  renderPay();
}

function renderPay() {
  const button = $("pay");
  const amount = total();
  const applied = amount !== null && state.account ? (state.credit < amount ? state.credit : amount) : 0n;
  // One purchase at a time: while one is followed, its credit and its payment are not
  // settled yet, and a second would be quoted against the same credit.
  button.disabled = state.paying || state.following || !state.plan;
  if (state.paying) button.textContent = "Waiting for your wallet…";
  else if (state.following) button.textContent = "Your order is being followed below…";
  else if (!state.account) button.textContent = "Sign in to pay";
  else if (amount !== null && applied === amount) button.textContent = `Buy with ${formatCtk(amount)} CTK of credit`;
  else button.textContent = amount === null ? "Pay with CTK" : `Pay ${formatCtk(amount - applied)} CTK`;
}

// --- the wallet ---

async function call(provider, to, data) {
  return provider.request({ method: "eth_call", params: [{ to, data }, "latest"] });
}

async function onRightNetwork(provider) {
  const chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16);
  if (chainId === state.info.chain_id) return true;
  show("error", `Wrong network: your wallet is on chain ${chainId}. Switch it to chain ${state.info.chain_id} to sign in and pay.`);
  $("switch").hidden = false;
  return false;
}

async function refreshWallet() {
  const provider = wallet();
  const [credit] = await Promise.all([
    api(`/api/credit/${state.account}`),
    provider
      ? call(provider, state.info.token_address, SELECTOR.balanceOf + word(state.account)).then((hex) => (state.balance = BigInt(hex)))
      : null,
  ]);
  state.credit = BigInt(credit.balance);
  $("balance").textContent = state.balance === null ? "—" : `${formatCtk(state.balance)} CTK`;
  $("credit").textContent = `${formatCtk(state.credit)} CTK`;
  renderSummary();
}

function signedIn(address) {
  state.account = address;
  $("wallet").hidden = false;
  $("account").textContent = address;
  $("connect").hidden = true;
  $("sign-out").hidden = false;
  $("wallet-help").hidden = true;
  const dashboard = $("my-dashboard");
  dashboard.href = `/wallet/${address}`;
  dashboard.hidden = false;
}

async function connect() {
  clearBanner();
  const provider = wallet();
  if (!provider) {
    show("error", "No wallet found. Install MetaMask (or another Ethereum wallet) in this browser to sign in and pay with CTK.");
    return false;
  }
  let account;
  try {
    [account] = await provider.request({ method: "eth_requestAccounts" });
  } catch (error) {
    show("error", error.code === REJECTED ? "You declined to connect your wallet. Nothing was signed." : `The wallet did not connect: ${error.message}`);
    return false;
  }
  if (!(await onRightNetwork(provider))) return false;
  show("info", "Sign the sign-in message in your wallet. It is free: a signature, not a transaction.");
  try {
    const session = await signIn(provider, account);
    signedIn(session.address);
  } catch (error) {
    show("error", error.code === REJECTED ? "You declined to sign in. Nothing was signed; sign in to order." : `Sign-in failed: ${error.message}`);
    return false;
  }
  await refreshWallet();
  await refreshOrders();
  show("success", "Signed in. Choose a plan and how long, paste your SSH public key, and pay.");
  return true;
}

async function switchNetwork() {
  try {
    await wallet().request({ method: "wallet_switchEthereumChain", params: [{ chainId: `0x${state.info.chain_id.toString(16)}` }] });
    $("switch").hidden = true;
    await connect();
  } catch (error) {
    show("error", `Could not switch the network: ${error.message}. Add chain ${state.info.chain_id} to your wallet first.`);
  }
}

async function leave() {
  await signOut();
  location.reload();
}

// --- paying ---

async function pay(event) {
  event.preventDefault();
  // Taken before the first await: a second click (a double click, an impatient one while
  // the wallet prompt is open, Enter in a field) must not start a second payment.
  if (state.paying) return renderPay();
  state.paying = true;
  renderPay();
  try {
    await payOnce();
  } catch (error) {
    show("error", `Something went wrong before anything was paid: ${error.message}`);
  } finally {
    state.paying = false;
    renderPay();
  }
}

function checkForm() {
  const problems = { periods: periodsProblem($("periods").value), "ssh-key": keyProblem($("ssh-key").value) };
  for (const [id, text] of Object.entries(problems)) showProblem(id, text);
  return !problems.periods && !problems["ssh-key"];
}

async function payOnce() {
  clearBanner();
  if (!checkForm()) {
    show("error", "Check the order: see the messages under the fields. Nothing was sent.");
    return;
  }
  if (!state.account && !(await connect())) return;
  const provider = wallet();
  if (!provider) return connect();
  if (!(await onRightNetwork(provider))) return;
  let draft;
  try {
    draft = await apiSend("POST", "/api/drafts", {
      plan: state.plan.name,
      periods: $("periods").value.trim(),
      ssh_key: $("ssh-key").value.trim(),
      name: $("name").value.trim() || null,
    });
  } catch (error) {
    if (error.status === 401) {
      state.account = null;
      show("error", "Your session has ended: sign in again, then pay. Nothing was sent.");
      $("connect").hidden = false;
      return;
    }
    const field = /periods/.test(error.message) ? "periods" : /key/i.test(error.message) ? "ssh-key" : null;
    if (field) showProblem(field, error.message);
    show("error", `The order was not accepted: ${error.message}. Nothing was sent.`);
    return;
  }
  const due = BigInt(draft.due);
  if (due === 0n) {
    const outcome = await buyFromCredit(draft);
    if (outcome !== "refused") startPurchase({ draft, via: "credit", tx: null, status: outcome, applied: BigInt(draft.price) });
    return;
  }
  await refreshWallet();
  if (state.balance < due) {
    show("error", `Not enough CTK: your wallet holds ${formatCtk(state.balance)} CTK and this costs ${formatCtk(due)} CTK. Nothing was sent.`);
    return;
  }
  const hash = await sendPayment(provider, draft, due);
  if (hash) startPurchase({ draft, via: "checkout", tx: hash, status: "pending", amount: due, applied: BigInt(draft.credit_applied) });
}

// One request, asked again when it got no answer (it may have placed the order: the
// draft's reference makes asking again safe, and "already paid" then means it did).
// "placed", "refused" (said why, nothing taken) or "unconfirmed" (the receipt keeps
// checking the draft).
async function buyFromCredit(draft) {
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      await apiSend("POST", `/api/drafts/${draft.reference}/buy-from-credit`);
      return "placed";
    } catch (error) {
      if (error.status && error.status < 500) {
        if (attempt > 0 && error.status === 409 && /already paid/.test(error.message)) return "placed";
        show("error", `Buying from credit was refused: ${error.message}. Nothing was taken.`);
        return "refused";
      }
      await sleep(1000 * 2 ** attempt);
    }
  }
  show("error", "The watcher did not answer, so it is not known yet whether the order was bought from your credit. The receipt below keeps checking: do not buy again until it says.");
  return "unconfirmed";
}

// Checkout.payWithPermit with an EIP-2612 permit (one transaction); where the wallet does
// not sign typed data, an approval, then Checkout.pay. Returns the payment's hash, or null
// after saying why nothing was paid.
async function sendPayment(provider, draft, due) {
  const checkout = state.info.checkout_address;
  const token = state.info.token_address;
  let approved = false;
  const rejected = () =>
    approved ? "You rejected the payment in your wallet. The approval was sent (no CTK moved); nothing was paid." : "You rejected the payment in your wallet. Nothing was sent.";
  let data;
  try {
    const allowance = BigInt(await call(provider, token, SELECTOR.allowance + word(state.account) + word(checkout)));
    if (allowance >= due) {
      data = SELECTOR.pay + word(draft.reference) + uint(due);
    } else {
      const deadline = Math.min(Math.floor(new Date(draft.expires_at).getTime() / 1000), Math.floor(Date.now() / 1000) + 1800);
      show("info", `Sign the permit for ${formatCtk(due)} CTK in your wallet (free), then confirm the payment. Nothing is sent until you confirm.`);
      const signature = await permit(provider, due, deadline);
      if (signature) {
        const sig = signature.replace(/^0x/, "");
        const v = parseInt(sig.slice(128, 130), 16);
        data =
          SELECTOR.payWithPermit + word(draft.reference) + uint(due) + uint(deadline) + uint(v < 27 ? v + 27 : v) + sig.slice(0, 64) + sig.slice(64, 128);
      } else {
        show("info", `Your wallet cannot sign a permit: approve ${formatCtk(due)} CTK for the Checkout first (no CTK moves), then confirm the payment.`);
        const approval = await provider.request({ method: "eth_sendTransaction", params: [{ from: state.account, to: token, data: SELECTOR.approve + word(checkout) + uint(due) }] });
        approved = true;
        show("info", "Approval sent. Waiting for it to be mined before asking for the payment…");
        const mined = await waitForReceipt(provider, approval);
        if (!mined || mined.status === "0x0") {
          show("error", `The approval ${mined ? "failed on chain" : "was not mined within 5 minutes"}: nothing was paid. Try again.`);
          return null;
        }
        data = SELECTOR.pay + word(draft.reference) + uint(due);
      }
    }
  } catch (error) {
    show("error", error.code === REJECTED ? rejected() : `The payment was not sent: ${error.message}`);
    return null;
  }
  show("info", `Confirm the payment of ${formatCtk(due)} CTK in your wallet. Nothing is sent until you confirm there.`);
  try {
    return await provider.request({ method: "eth_sendTransaction", params: [{ from: state.account, to: checkout, data }] });
  } catch (error) {
    // Anything but a refusal may come after the wallet broadcast it: never "nothing sent".
    show(
      "error",
      error.code === REJECTED
        ? rejected()
        : `Your wallet reported an error (${error.message}). The payment may still have been sent: check your wallet's activity and “My orders” before paying again.`,
    );
    return null;
  }
}

// The permit's signature, or null where the wallet cannot sign typed data.
async function permit(provider, value, deadline) {
  const token = state.info.token_address;
  const [nonce, domain] = await Promise.all([call(provider, token, SELECTOR.nonces + word(state.account)), call(provider, token, SELECTOR.eip712Domain)]);
  const typed = {
    types: {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
        { name: "verifyingContract", type: "address" },
      ],
      Permit: [
        { name: "owner", type: "address" },
        { name: "spender", type: "address" },
        { name: "value", type: "uint256" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    primaryType: "Permit",
    domain: { name: abiString(domain, 1), version: abiString(domain, 2), chainId: state.info.chain_id, verifyingContract: token },
    message: { owner: state.account, spender: state.info.checkout_address, value: value.toString(), nonce: BigInt(nonce).toString(), deadline: deadline.toString() },
  };
  try {
    return await provider.request({ method: "eth_signTypedData_v4", params: [state.account, JSON.stringify(typed)] });
  } catch (error) {
    if (UNSUPPORTED.has(error.code)) return null;
    throw error;
  }
}

// The string at head slot `slot` of an ABI-encoded answer (eip712Domain's name, version).
function abiString(hex, slot) {
  const data = hex.replace(/^0x/, "");
  const at = Number(BigInt("0x" + data.slice(slot * 64, slot * 64 + 64))) * 2;
  const length = Number(BigInt("0x" + data.slice(at, at + 64)));
  const bytes = data.slice(at + 64, at + 64 + length * 2).match(/../g) || [];
  return new TextDecoder().decode(new Uint8Array(bytes.map((b) => parseInt(b, 16))));
}

// --- following the purchase to its receipt ---

function startPurchase(purchase) {
  purchase.checks = 0;
  state.purchase = purchase;
  // Kept for a reload while it is followed (the orders list comes from the API anyway).
  sessionStorage.setItem(
    "purchase",
    JSON.stringify({ reference: purchase.draft.reference, via: purchase.via, tx: purchase.tx, amount: String(purchase.amount || 0n), applied: String(purchase.applied || 0n) }),
  );
  $("receipt-card").hidden = false;
  renderReceipt();
  $("receipt-card").scrollIntoView({ behavior: "smooth", block: "start" });
  follow();
}

function txLink(hash) {
  const shown = `<span class="mono" title="${esc(hash)}">${esc(short(hash, 10))}</span>`;
  return state.info.explorer_url ? `<a href="${esc(state.info.explorer_url)}/tx/${esc(hash)}" target="_blank" rel="noopener">${shown}</a>` : shown;
}

// What the purchase is at and what happens next, for every state it can be in.
function receiptStatus(p) {
  const d = p.draft;
  if (p.status === "reverted") return ["bad", "The payment failed on chain.", "It was reverted: no CTK left your wallet and nothing was bought. Check your balance and pay again."];
  if (p.note) return ["bad", "Your payment became credit instead.", `${p.note}. Nothing is lost: the credit is applied first to your next order.`];
  if (d.state === "open" && /reorg/.test(d.note || "")) {
    return p.via === "credit"
      ? ["warn", "Undone by a chain reorganisation.", "The payments your credit came from were taken by a reorganisation of the chain; your credit is back as far as the chain still holds it. Buy again when you are ready."]
      : ["warn", "Your payment was undone by a chain reorganisation.", "It is usually mined again within a few blocks; this page keeps following and the order is placed again when it is."];
  }
  if (p.status === "not-bought") return ["bad", "It was not bought.", "The watcher has no order for it, and nothing was taken from your credit. You can buy again."];
  if (p.status === "unconfirmed" && !d.order_id) return ["warn", "Not confirmed yet.", "The watcher did not answer the purchase; this page keeps checking whether it went through. Do not buy again until it says."];
  if (p.late && !d.order_id) return ["bad", "Your payment was mined after the quote ran out.", "It becomes credit, applied first to your next order: nothing is lost. Draft the order again for a fresh quote."];
  if (p.access) {
    const a = p.access;
    const noun = thing(a.kind);
    if (a.state === "running") return ["ok", a.kind === "s3_bucket" ? "Your bucket is ready." : `Your ${noun} is running.`, a.ssh_command ? "Log in with the ssh command below and the key you gave." : a.next_step];
    if (a.state === "failed") return ["bad", `Your ${noun} could not be started.`, `Its price, ${formatCtk(d.price)} CTK, is back in your credit and is applied first to your next order.`];
    if (a.state === "terminated") return ["warn", `The ${noun} has ended.`, a.next_step];
    return ["", `Paid: your ${noun} is being made.`, a.kind === "s3_bucket" ? "Its upload form appears here when it is ready, usually within seconds." : "How to log in appears here when it runs, usually within a minute."];
  }
  if (d.state === "expired" && p.status !== "mined") return ["bad", "The quote ran out before the payment was mined.", "If it is mined now, it becomes credit, applied first to your next order. Nothing is lost."];
  if (p.via === "credit") return ["", "Bought from your credit.", "Your server is being started."];
  if (p.status === "pending") return ["", "Payment sent, waiting to be mined.", "Your wallet shows it as pending. Once it is in a block and that block is confirmed, the watcher places your order."];
  return ["", "Payment mined.", "The watcher places your order once the block is confirmed; this page follows it."];
}

function renderReceipt() {
  const p = state.purchase;
  if (!p) return;
  const d = p.draft;
  const [kind, headline, next] = receiptStatus(p);
  const paid =
    p.via === "credit"
      ? `${formatCtk(d.price)} CTK from your credit (no transaction)`
      : `${formatCtk(p.amount)} CTK in ${txLink(p.tx)}${p.applied > 0n ? `, plus ${formatCtk(p.applied)} CTK of your credit` : ""}`;
  $("receipt").innerHTML = `<div class="payment ${kind}" data-receipt-state="${esc(headline)}"><strong>${esc(headline)}</strong> <span class="next">${esc(next)}</span></div>
    <div class="kv">
      <div class="k">Order</div><div class="mono">${esc(d.order_id || (p.access && p.access.order_id) || "placed once paid")}</div>
      <div class="k">Reference</div><div class="mono" title="${esc(d.reference)}">${esc(short(d.reference, 10))}</div>
      <div class="k">What</div><div>${esc(d.plan)}${d.summary !== d.plan ? ` · ${esc(d.summary)}` : ""} · ${plural(d.periods, d.unit, d.units)}${d.name ? ` · “${esc(d.name)}”` : ""}</div>
      <div class="k">Price</div><div>${formatCtk(d.price)} CTK</div>
      <div class="k">Paid</div><div>${paid}</div>
      <div class="k">Your key</div><div class="mono">${esc(d.ssh_fingerprint)}</div>
    </div>${p.access && p.access.state === "running" ? accessBlock(p.access) : ""}`;
}

// After an upload from the receipt's form: read the bucket again.
window.watcherRefresh = async (id, name, size) => {
  const p = state.purchase;
  if (!p || !p.access || p.access.order_id !== id) return;
  p.access = await api(`/api/orders/${id}/access`);
  renderReceipt();
  const listed = p.access.storage && p.access.storage.objects.some((o) => o.key === name && o.size === size);
  if (listed) show("success", `Uploaded ${name}.`);
  else show("error", `${name} is not in the bucket: the upload was refused (too big, or the form ran out). Try again.`);
};

async function follow() {
  if (state.following) return; // one loop follows the page's purchase
  state.following = true;
  renderPay();
  try {
    while (!(await followStep())) await sleep(1000);
  } finally {
    state.following = false;
    renderPay();
  }
  hostKeysLater();
}

// The host keys come minutes after the address (from the instance's console): ask for
// them now and then for a while after the order runs, without holding the page.
async function hostKeysLater() {
  const p = state.purchase;
  for (let i = 0; i < 60 && p && p.access && p.access.state === "running" && !(p.access.host_keys || []).length; i++) {
    await sleep(10000);
    if (state.purchase !== p) return;
    try {
      p.access = await api(`/api/orders/${p.access.order_id}/access`);
      renderReceipt();
    } catch (error) {
      return;
    }
  }
}

// One look at the purchase; true once it has an outcome that no longer changes by itself.
async function followStep() {
  const p = state.purchase;
  const provider = wallet();
  try {
    if (p.tx && p.status === "pending" && provider) {
      const receipt = await provider.request({ method: "eth_getTransactionReceipt", params: [p.tx] }).catch(() => null);
      if (receipt) {
        p.status = receipt.status === "0x0" ? "reverted" : "mined";
        const block = await provider.request({ method: "eth_getBlockByNumber", params: [receipt.blockNumber, false] }).catch(() => null);
        p.late = Boolean(block) && parseInt(block.timestamp, 16) * 1000 >= new Date(p.draft.expires_at).getTime();
      }
    }
    p.draft = await api(`/api/drafts/${p.draft.reference}`);
    if (p.draft.order_id && p.status === "unconfirmed") p.status = "placed";
    // Still no order long after an unanswered purchase: it did not go through.
    if (p.status === "unconfirmed" && !p.draft.order_id && ++p.checks > 30) p.status = "not-bought";
    if (!p.draft.order_id) p.access = null; // undone by a reorg: no order any more
    const note = p.draft.note || "";
    p.note = p.draft.state !== "placed" && note.endsWith("credited to the payer") ? note.replace(/: credited to the payer$/, "") : null;
    if (p.draft.order_id) p.access = await api(`/api/orders/${p.draft.order_id}/access`);
  } catch (error) {
    if (error.status === 401) {
      show("error", "Your session has ended: sign in again to follow your order. Your payment is safe.");
      return true;
    }
    show("error", `Cannot reach the watcher to follow your order (${error.message}); trying again. Your payment is safe.`);
    return false;
  }
  renderReceipt();
  const undoneCredit = p.via === "credit" && p.draft.state === "open" && /reorg/.test(p.draft.note || "");
  const ended = p.access && ["running", "failed", "terminated"].includes(p.access.state);
  const done = p.status === "reverted" || p.status === "not-bought" || p.note || undoneCredit || ended;
  if (done) {
    sessionStorage.removeItem("purchase");
    await refreshWallet().catch(() => null);
    await refreshOrders();
    if (p.access && p.access.state === "running") show("success", `Your ${thing(p.access.kind)} is ready: the receipt below says how to use it.`);
    else clearBanner();
  } else if (p.tx) {
    show("info", "Payment sent. This page follows it to your running server; you can also close it and come back.");
  }
  return Boolean(done);
}

async function refreshOrders() {
  if (!state.account) return;
  try {
    const orders = await api(`/api/orders?payer=${state.account}`);
    $("orders").innerHTML = orderRows(orders);
  } catch (error) {
    show("error", `Cannot load your orders: ${error.message}`);
  }
}

// --- start ---

async function resume() {
  // Signed in before (the session cookie) and the wallet still on the same account.
  const session = await currentSession();
  const provider = wallet();
  if (!session || !provider) return;
  const accounts = await provider.request({ method: "eth_accounts" }).catch(() => []);
  if (!accounts.some((a) => sameAddress(a, session.address))) return;
  signedIn(session.address);
  await refreshWallet().catch(() => null);
  await refreshOrders();
  const saved = JSON.parse(sessionStorage.getItem("purchase") || "null");
  if (saved) {
    try {
      const draft = await api(`/api/drafts/${saved.reference}`);
      startPurchase({ draft, via: saved.via, tx: saved.tx, status: saved.tx ? "pending" : "placed", amount: BigInt(saved.amount), applied: BigInt(saved.applied) });
    } catch (error) {
      sessionStorage.removeItem("purchase");
    }
  }
}

async function main() {
  [state.info, state.plans] = await Promise.all([api("/api/payment-info"), api("/api/plans")]);
  state.plan = state.plans.find((p) => p.default) || state.plans[0];
  $("checkout-address").textContent = state.info.checkout_address;
  renderUnits();
  $("chain").textContent = state.info.chain_id;
  renderPlans();
  renderSummary();
  $("connect").addEventListener("click", connect);
  $("switch").addEventListener("click", switchNetwork);
  $("sign-out").addEventListener("click", leave);
  $("order").addEventListener("submit", pay);
  $("periods").addEventListener("input", () => {
    showProblem("periods", periodsProblem($("periods").value));
    renderSummary();
  });
  $("ssh-key").addEventListener("change", () => showProblem("ssh-key", keyProblem($("ssh-key").value)));
  // A field shown wrong is checked again as it is typed in, so that a fixed one clears.
  $("ssh-key").addEventListener("input", () => {
    if ($("ssh-key").getAttribute("aria-invalid") === "true") showProblem("ssh-key", keyProblem($("ssh-key").value));
    if (!periodsProblem($("periods").value) && !keyProblem($("ssh-key").value) && $("banner").classList.contains("error")) clearBanner();
  });
  await resume();
}

main().catch((error) => show("error", `The page could not load: ${error.message}`));
