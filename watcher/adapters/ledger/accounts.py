"""Credit balances: the only module that writes the `credits` table.

A payer's credit is paid CTK not (yet) spent on an order. These move it, all through this
module: a payment (the follower prices it and sets the new balance, which may also fund
an order its owner bought from credit that a reorg had left unfunded), a reorg (orphaned
payments leave, undone orders give their price back, orders bought from credit are paid
again from what is left), a refund (a failed order's price comes back) and a purchase
from credit (ledger.Ledger.spend_credit: a draft's quote leaves it). Everything else
reads it. With one writer, the money invariant (`totals` below: every
paid base unit is in credit or in an order that holds a resource or was delivered) has
one place to be kept and one to be checked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from watcher.adapters.ledger.schema import CreditRecord, OrderRecord, PaymentRecord
from watcher.domain.order import OrderState
from watcher.shared.logs import fields

log = logging.getLogger("watcher.adapters.ledger")


async def balances(conn: AsyncConnection, chain_id: int, payers: Sequence[str]) -> dict[str, int]:
    """The payers' balances (payers without a row are left out), in chunks of 500 so a
    batch of many payers stays within SQLite's limit on bound parameters."""
    found: dict[str, int] = {}
    for start in range(0, len(payers), 500):
        rows = await conn.execute(
            select(CreditRecord.payer, CreditRecord.balance).where(
                CreditRecord.chain_id == chain_id,
                CreditRecord.payer.in_(payers[start : start + 500]),
            )
        )
        found.update((payer, balance) for payer, balance in rows.all())
    return found


async def set_balances(
    conn: AsyncConnection, chain_id: int, balances: Mapping[str, int], now: datetime
) -> None:
    """Store the payers' new balances (after pricing their payments)."""
    if not balances:
        return
    _check(chain_id, balances)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(CreditRecord)
    await conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["chain_id", "payer"],
            set_={"balance": upsert.excluded.balance, "updated_at": upsert.excluded.updated_at},
        ),
        [
            {"chain_id": chain_id, "payer": payer, "balance": balance, "updated_at": now}
            for payer, balance in balances.items()
        ],
    )


async def apply(
    conn: AsyncConnection,
    chain_id: int,
    changes: Mapping[str, int],
    now: datetime,
    *,
    drop_empty: bool = False,
) -> dict[str, int]:
    """Add `changes` to the payers' balances; return the new balances. With `drop_empty`,
    a payer left with nothing and no payment (a reorg took all of them) leaves no row."""
    payers = [payer for payer, change in changes.items() if change or drop_empty]
    if not payers:
        return {}
    found = await balances(conn, chain_id, payers)
    paying: set[str] = set()
    if drop_empty:
        paying = set(
            (
                await conn.execute(
                    select(PaymentRecord.payer)
                    .where(PaymentRecord.chain_id == chain_id, PaymentRecord.payer.in_(payers))
                    .distinct()
                )
            ).scalars()
        )
    updated = {payer: found.get(payer, 0) + changes[payer] for payer in payers}
    _check(chain_id, updated)
    for payer, balance in updated.items():
        where = (CreditRecord.chain_id == chain_id, CreditRecord.payer == payer)
        if drop_empty and balance == 0 and payer not in paying:
            await conn.execute(delete(CreditRecord).where(*where))
        elif payer not in found:
            await set_balances(conn, chain_id, {payer: balance}, now)
        elif changes[payer]:
            await conn.execute(
                update(CreditRecord).where(*where).values(balance=balance, updated_at=now)
            )
    return updated


async def refund(
    conn: AsyncConnection, chain_id: int, payer: str, amount: int, now: datetime
) -> int:
    """Give a failed order's price back to its payer; return the new balance."""
    return (await apply(conn, chain_id, {payer: amount}, now))[payer]


def _check(chain_id: int, balances: Mapping[str, int]) -> None:
    # Credit is never negative by construction (a reorg flags orders unfunded rather than
    # leaving a debt); a negative balance means a bug or a hand edit: say so loudly, but do
    # not stop following the chain over it (`watcher audit` shows the whole picture).
    for payer, balance in balances.items():
        if balance < 0:
            log.critical(fields("credit_negative", chain_id=chain_id, payer=payer, balance=balance))


@dataclass(frozen=True)
class Totals:
    """Where every paid base unit is. paid == credit + spent must hold: an order's price is
    spent while it is funded and not failed (a failed order's price is back in credit; an
    unfunded order, whose payment a reorg took, is in no payment)."""

    paid: int
    credit: int
    spent: int
    unfunded: int

    @property
    def balanced(self) -> bool:
        return self.paid == self.credit + self.spent


async def totals(conn: AsyncConnection, chain_id: int) -> Totals:
    paid = sum(
        (
            await conn.execute(
                select(PaymentRecord.amount).where(PaymentRecord.chain_id == chain_id)
            )
        ).scalars()
    )
    credit = sum(
        (
            await conn.execute(
                select(CreditRecord.balance).where(CreditRecord.chain_id == chain_id)
            )
        ).scalars()
    )
    spent = unfunded = 0
    rows = await conn.execute(
        select(OrderRecord.amount, OrderRecord.reorged).where(
            OrderRecord.chain_id == chain_id, OrderRecord.state != OrderState.FAILED.value
        )
    )
    for amount, reorged in rows.all():
        if reorged:
            unfunded += amount
        else:
            spent += amount
    return Totals(paid, credit, spent, unfunded)


async def imbalances(conn: AsyncConnection) -> dict[int, int]:
    """Per chain the ledger follows: paid - (credit + spent), which must be 0. Production
    checks it (the `watcher_money_imbalance` gauge, `watcher audit` per payer), not only
    the tests."""
    from watcher.adapters.ledger.schema import ChainCursor

    chains = (await conn.execute(select(ChainCursor.chain_id))).scalars().all()
    found: dict[int, int] = {}
    for chain_id in chains:
        t = await totals(conn, chain_id)
        found[chain_id] = t.paid - t.credit - t.spent
    return found
