"""A scaling pool and a storage bucket through `watcher run` (issue 12), on the Hardhat node
and moto's server over HTTP, with second-long leases: paid, provisioned (the group with
its instances, template, policy and alarm; the private bucket with its lifecycle),
warned, stopped at the end of paid time (scaled to zero; closed by its policy, its data
kept), removed after the grace (group, template and alarm deleted; bucket emptied and
deleted), and `watcher audit` clean while it runs and after it is gone."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from web3 import Web3

from tests.acceptance.test_lease_expiry import WATCHER, api_up, orders, run_env
from tests.chainhelpers import CTK, DevChainDriver
from tests.cloudhelpers import AWS_ENV
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.cloud.storage import STOPPED_SID
from watcher.dev.devchain import DevChain
from watcher.shared.net import free_port

BUYER = dev_account(12)


def aws(url: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def audit(env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [WATCHER, "audit"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit: clean" in result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("kind", ["scaling_pool", "s3_bucket"])
def test_a_pool_and_a_bucket_live_through_their_lease(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path, kind: str
) -> None:
    moto.reset()
    subnet = aws(moto.url, "ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    driver = DevChainDriver(w3)
    ctk = driver.token()
    driver.fund(ctk, BUYER, 100)
    lease = 'period = "6s"\ngrace = "4s"\nwarn = ["3s"]\n'
    plan = (
        f'kind = "scaling_pool"\ninstance_type = "t3.micro"\nami = "{moto_ami}"\n'
        f'subnet_id = "{subnet}"\nmin_size = 1\ndesired_capacity = 2\nmax_size = 4\n'
        if kind == "scaling_pool"
        else 'kind = "s3_bucket"\nquota = "1MiB"\nexpire_days = 30\n'
    )
    (tmp_path / "watcher.toml").write_text(f'[plans."it"]\nprice = "10"\n{plan}{lease}')
    port = free_port()
    env = run_env(devchain, ctk, driver.head, moto.url, port, tmp_path, leases="true")
    url = f"http://127.0.0.1:{port}"
    asg, cw, s3 = aws(moto.url, "autoscaling"), aws(moto.url, "cloudwatch"), aws(moto.url, "s3")
    log_path = tmp_path / "run.log"
    seen: list[str] = []

    def lease_state_becomes(state: str, within: float = 40) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = orders(url)
            current = found[0]["lease_state"] if found else None
            if current is not None and (not seen or seen[-1] != current):
                seen.append(current)
            if current == state:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"not {state} but {seen}: {log_path.read_text()[-2000:]}")

    with log_path.open("w") as log:
        run = subprocess.Popen(
            [WATCHER, "run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            api_up(url, run)
            driver.pay(ctk, BUYER, 10 * CTK)
            order = lease_state_becomes("active")
            assert order["state"] == "running"
            resource = order["instance_id"]
            if kind == "scaling_pool":
                (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[resource])[
                    "AutoScalingGroups"
                ]
                assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (1, 2, 4)
                assert len(group["Instances"]) == 2
                tags = {t["Key"]: t["Value"] for t in group["Tags"]}
                assert tags["OrderId"] == order["order_id"]
                (policy,) = asg.describe_policies(AutoScalingGroupName=resource)["ScalingPolicies"]
                assert (policy["AdjustmentType"], policy["ScalingAdjustment"]) == (
                    "ChangeInCapacity",
                    1,
                )
                (alarm,) = cw.describe_alarms(AlarmNames=[f"{resource}-cpu"])["MetricAlarms"]
                assert alarm["AlarmActions"] == [policy["PolicyARN"]]
                assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (60.0, 2)
            else:
                tags = {
                    t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=resource)["TagSet"]
                }
                assert tags["OrderId"] == order["order_id"]
                assert s3.get_public_access_block(Bucket=resource)[
                    "PublicAccessBlockConfiguration"
                ]["BlockPublicPolicy"]
                rules = s3.get_bucket_lifecycle_configuration(Bucket=resource)["Rules"]
                assert {"Days": 30} in [r.get("Expiration") for r in rules]
                s3.put_object(Bucket=resource, Key="results.csv", Body=b"kept through grace")
            audit(env, tmp_path)  # running: ledger, chain and cloud agree

            lease_state_becomes("stopped")
            if kind == "scaling_pool":
                (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[resource])[
                    "AutoScalingGroups"
                ]
                assert (group["DesiredCapacity"], group["MaxSize"], group["Instances"]) == (
                    0,
                    0,
                    [],
                )
            else:
                assert STOPPED_SID in s3.get_bucket_policy(Bucket=resource)["Policy"]
                # Closed: nothing is read (a link given out before is worth nothing)...
                with pytest.raises(ClientError) as closed:
                    s3.get_object(Bucket=resource, Key="results.csv")
                assert closed.value.response["Error"]["Code"] in ("403", "AccessDenied")
                # ...and what it holds is kept through the grace.
                listing = s3.list_objects_v2(Bucket=resource)["Contents"]
                assert [(o["Key"], o["Size"]) for o in listing] == [("results.csv", 18)]

            lease_state_becomes("terminated")
        finally:
            run.terminate()
            code = run.wait(30)
    assert code == 0, log_path.read_text()[-2000:]
    assert "expiring" in seen, seen
    if kind == "scaling_pool":
        assert (
            asg.describe_auto_scaling_groups(AutoScalingGroupNames=[resource])["AutoScalingGroups"]
            == []
        )
        assert cw.describe_alarms(AlarmNames=[f"{resource}-cpu"])["MetricAlarms"] == []
        templates = aws(moto.url, "ec2").describe_launch_templates()["LaunchTemplates"]
        assert resource not in [t["LaunchTemplateName"] for t in templates]
    else:
        assert resource not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    audit(env, tmp_path)  # removed: still clean
