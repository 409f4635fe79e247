"""A scaling pool and a storage bucket through `watcher run` (issue 12), on the Hardhat node
and moto's server over HTTP, with second-long leases, both bought in one run through the
Checkout (`watcher buy`): paid, provisioned (the group with its instances, template,
policy and alarm; the private bucket with its lifecycle), warned, stopped at the end of
paid time (scaled to zero; closed by its policy, its data kept), removed after the grace
(group, template and alarm deleted; bucket emptied and deleted), and `watcher audit`
clean while they run and after they are gone."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from web3 import Web3

from tests.acceptance.test_lease_expiry import WATCHER, api_up, orders, run_env
from tests.chainhelpers import DevChainDriver
from tests.cloudhelpers import aws_client
from tests.keyhelpers import new_ssh_key
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.cloud.storage import STOPPED_SID
from watcher.dev.devchain import DevChain
from watcher.shared.net import free_port

BUYER = dev_account(12)


def audit(env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run(
        [WATCHER, "audit"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit: clean" in result.stdout + result.stderr


@pytest.mark.chain
def test_a_pool_and_a_bucket_live_through_their_lease(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    moto.reset()
    subnet = aws_client(moto.url, "ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    driver = DevChainDriver(w3)
    ctk = driver.token()
    checkout = driver.deploy("Checkout", ctk.address)
    driver.fund(ctk, BUYER, 100)
    lease = 'period = "10s"\ngrace = "4s"\nwarn = ["3s"]\n'
    (tmp_path / "watcher.toml").write_text(
        f'[plans."pool"]\nprice = "20"\nkind = "scaling_pool"\ninstance_type = "t3.micro"\n'
        f'ami = "{moto_ami}"\nsubnet_id = "{subnet}"\nmin_size = 1\ndesired_capacity = 2\n'
        f"max_size = 4\n{lease}"
        f'[plans."box"]\nprice = "5"\nkind = "s3_bucket"\nquota = "1MiB"\nexpire_days = 30\n'
        f"{lease}"
    )
    (tmp_path / "id.pub").write_text(new_ssh_key("buyer") + "\n")
    port = free_port()
    env = run_env(
        devchain, ctk, driver.head, moto.url, port, tmp_path,
        checkout_address=checkout.address, leases="true",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    asg, cw, s3 = (
        aws_client(moto.url, "autoscaling"),
        aws_client(moto.url, "cloudwatch"),
        aws_client(moto.url, "s3"),
    )
    log_path = tmp_path / "run.log"
    seen: dict[str, list[str]] = {}

    def leases_become(*states: str, within: float = 40) -> dict[str, dict[str, Any]]:
        """Until both orders' leases are in one of `states`; the orders by plan."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = {o["plan"]: o for o in orders(url)}
            for plan, order in found.items():
                history = seen.setdefault(plan, [])
                if order["lease_state"] and (not history or history[-1] != order["lease_state"]):
                    history.append(order["lease_state"])
            if len(found) == 2 and all(o["lease_state"] in states for o in found.values()):
                return found
            time.sleep(0.1)
        raise AssertionError(f"not {states} but {seen}: {log_path.read_text()[-2000:]}")

    with log_path.open("w") as log:
        run = subprocess.Popen(
            [WATCHER, "run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            api_up(url, run)
            for plan in ("pool", "box"):
                bought = subprocess.run(
                    [WATCHER, "buy", plan, "--ssh-key", str(tmp_path / "id.pub"),
                     "--dev-account", "12", "--json"],
                    env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
                assert bought.returncode == 0, bought.stderr
                access = json.loads(bought.stdout)["access"]
                assert access["kind"] == {"pool": "scaling_pool", "box": "s3_bucket"}[plan]
            running = leases_become("active", "expiring")
            group, bucket = running["pool"]["instance_id"], running["box"]["instance_id"]
            (found,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
                "AutoScalingGroups"
            ]
            assert (found["MinSize"], found["DesiredCapacity"], found["MaxSize"]) == (1, 2, 4)
            assert len(found["Instances"]) == 2
            tags = {t["Key"]: t["Value"] for t in found["Tags"]}
            assert tags["OrderId"] == running["pool"]["order_id"]
            (policy,) = asg.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]
            assert (policy["AdjustmentType"], policy["ScalingAdjustment"]) == (
                "ChangeInCapacity",
                1,
            )
            (alarm,) = cw.describe_alarms(AlarmNames=[f"{group}-cpu"])["MetricAlarms"]
            assert alarm["AlarmActions"] == [policy["PolicyARN"]]
            assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (60.0, 2)
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
            assert tags["OrderId"] == running["box"]["order_id"]
            block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
            assert block["BlockPublicPolicy"] and block["RestrictPublicBuckets"]
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
            assert {"Days": 30} in [r.get("Expiration") for r in rules]
            s3.put_object(Bucket=bucket, Key="results.csv", Body=b"kept through grace")
            audit(env, tmp_path)  # running: ledger, chain and cloud agree

            leases_become("stopped")
            (found,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
                "AutoScalingGroups"
            ]
            assert (found["DesiredCapacity"], found["MaxSize"], found["Instances"]) == (0, 0, [])
            assert STOPPED_SID in s3.get_bucket_policy(Bucket=bucket)["Policy"]
            # Closed: nothing is read (a link given out before is worth nothing)...
            with pytest.raises(ClientError) as closed:
                s3.get_object(Bucket=bucket, Key="results.csv")
            assert closed.value.response["Error"]["Code"] in ("403", "AccessDenied")
            # ...and what it holds is kept through the grace.
            listing = s3.list_objects_v2(Bucket=bucket)["Contents"]
            assert [(o["Key"], o["Size"]) for o in listing] == [("results.csv", 18)]

            leases_become("terminated", within=60)
        finally:
            run.terminate()
            code = run.wait(30)
    assert code == 0, log_path.read_text()[-2000:]
    for history in seen.values():
        assert "expiring" in history and "stopped" in history, seen
    assert (
        asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"] == []
    )
    assert cw.describe_alarms(AlarmNames=[f"{group}-cpu"])["MetricAlarms"] == []
    templates = aws_client(moto.url, "ec2").describe_launch_templates()["LaunchTemplates"]
    assert group not in [t["LaunchTemplateName"] for t in templates]
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    audit(env, tmp_path)  # removed: still clean
