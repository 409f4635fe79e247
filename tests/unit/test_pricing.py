import pytest
from eth_typing import ChecksumAddress

from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.payment import Payment
from watcher.domain.pricing import Plan, credit_payment, credit_payments, order_id

CTK = 10**18
PLAN = ec2_plan("t3.micro", 10 * CTK, "t3.micro")
ALICE = ChecksumAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")  # type: ignore[arg-type]
BOB = ChecksumAddress("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")  # type: ignore[arg-type]


def pay(
    amount: int, payer: ChecksumAddress = ALICE, log_index: int = 0, tx: str = "0x" + "aa" * 32
) -> Payment:
    return Payment(1337, tx, log_index, 7, "0x" + "bb" * 32, payer, amount)


def test_25_buys_two_and_leaves_5_then_5_buys_a_third() -> None:
    balance, orders = credit_payment(0, pay(25 * CTK), PLAN)
    assert balance == 5 * CTK
    assert [o.unit for o in orders] == [0, 1]
    balance, orders = credit_payment(balance, pay(5 * CTK, log_index=1), PLAN)
    assert balance == 0
    assert len(orders) == 1 and orders[0].payment.log_index == 1


def test_underpayment_stays_as_credit() -> None:
    assert credit_payment(0, pay(1), PLAN) == (1, [])


def test_a_debt_is_paid_off_before_anything_is_bought() -> None:
    balance, orders = credit_payment(-10 * CTK, pay(15 * CTK), PLAN)
    assert (balance, orders) == (5 * CTK, [])


def test_order_ids_are_deterministic_and_distinct() -> None:
    first = order_id(1337, "0x" + "AA" * 32, 3, 0)
    assert first == order_id(1337, "0x" + "aa" * 32, 3, 0)
    assert len(first) == 32
    others = {
        order_id(1337, "0x" + "aa" * 32, 3, 1),
        order_id(1, "0x" + "aa" * 32, 3, 0),
        order_id(1337, "0x" + "aa" * 32, 4, 0),
    }
    assert first not in others and len(others) == 3


def test_credit_pools_per_payer_in_chain_order() -> None:
    result = credit_payments(
        {BOB: 9 * CTK},
        [pay(5 * CTK, ALICE, 0), pay(1 * CTK, BOB, 1), pay(5 * CTK, ALICE, 2)],
        PLAN,
    )
    assert result.balances == {ALICE: 0, BOB: 0}
    assert [(o.payer, o.payment.log_index) for o in result.orders] == [(BOB, 1), (ALICE, 2)]


def test_one_payment_buys_at_most_max_orders_and_the_rest_waits_as_credit() -> None:
    balance, orders = credit_payment(0, pay(1000 * CTK), PLAN, max_orders=3)
    assert (len(orders), balance) == (3, 970 * CTK)
    balance, orders = credit_payment(balance, pay(1, log_index=1), PLAN, max_orders=3)
    assert (len(orders), balance) == (3, 940 * CTK + 1)


def test_a_kept_order_costs_its_own_price_and_keeps_its_unit() -> None:
    """A payment mined again after a reorg pays for the order it bought before at that
    order's price (the plan may have been repriced since), then buys new units."""
    payment = pay(25 * CTK)
    kept_id = order_id(payment.chain_id, payment.tx_hash, payment.log_index + 7, 0)
    balance, orders = credit_payment(0, payment, PLAN, kept={0: (kept_id, 12 * CTK)})
    assert [o.unit for o in orders] == [0, 1]
    assert orders[0].order_id == kept_id  # its id from the first inclusion, kept
    assert orders[1].order_id == order_id(payment.chain_id, payment.tx_hash, payment.log_index, 1)
    assert balance == 25 * CTK - 12 * CTK - PLAN.price


def test_an_order_keeps_its_plan_specification() -> None:
    plan = ec2_plan(
        "big",
        42 * CTK,
        "t3.large",
        ami="ami-0123456789abcdef0",
        key_name="ec2keypair",
        security_group_ids=("sg-0123abcd",),
        subnet_id="subnet-0123abcd",
    )
    assert Plan.from_order("big", 42 * CTK, plan.resource()) == plan
    # Another kind round-trips too: the order keeps whatever its kind's parameters are.
    bucket = Plan.from_order("s3", 1, '{"kind": "s3_bucket", "size_gib": 5, "tags": ["a"]}')
    assert bucket.spec.kind == "s3_bucket" and bucket.spec.get("size_gib") == 5
    assert Plan.from_order("s3", 1, bucket.resource()) == bucket
    with pytest.raises(ValueError, match="not a resource specification"):
        Plan.from_order("x", 1, '{"size": 1}')
