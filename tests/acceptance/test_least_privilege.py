"""The watcher's policy is enough and nothing more (issue 12): on a moto server that
enforces IAM (its INITIAL_NO_AUTH_ACTION_COUNT setting, turned to 0 once the account is
set up), `watcher run` with the credentials of a user holding only the declared
WatcherProvisioning policy checks its plans, sells an instance launched from the launch
template and a scaling pool (its own template, group, policy and alarm), stops both at
their lease's end and removes them after grace, and `watcher audit` is clean; an action
outside the policy is denied. Every action the watcher called is in the policy, and every
action in the policy is one the run called or one named below with its reason."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from web3 import Web3

from tests.chainhelpers import DevChainDriver
from tests.cloudhelpers import AWS_ENV, FaultProxy, MotoServer
from tests.keyhelpers import new_ssh_key
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.dev.devchain import DevChain
from watcher.domain.infra import policy_actions, watcher_policy
from watcher.shared.net import free_port

WATCHER = str(Path(sys.executable).parent / "watcher")
BUYER = dev_account(13)
REGION = "us-east-1"

# In the policy though this run does not call them, each for a reason:
NOT_CALLED_HERE = {
    # Not API calls: AWS checks them for the tags RunInstances, CreateLaunchTemplate and
    # PutMetricAlarm carry, and for the first group of an account.
    "ec2:CreateTags",
    "cloudwatch:TagResource",
    "iam:CreateServiceLinkedRole",
    # The owner's access page reads the host keys from the console (services/host_keys.py).
    "ec2:GetConsoleOutput",
    # A lease extended in grace starts its stopped instance again.
    "ec2:StartInstances",
    # The start-up check of plans that name an image, key pair, security groups or a
    # subnet themselves (this plan takes them all from its launch template).
    "ec2:DescribeImages",
    "ec2:DescribeKeyPairs",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    # Storage is not sold in this run: moto's S3 names actions its own way under IAM
    # (HeadBucket, PutPublicAccessBlock, PutBucketEncryption as CreateBucket), where AWS
    # has s3:ListBucket, s3:PutBucketPublicAccessBlock and s3:PutEncryptionConfiguration;
    # its statements are held to the order buckets' names (tests/unit/test_infra_rules.py).
    *(a for a in policy_actions(watcher_policy()) if a.startswith("s3:")),
}


def client(service: str, url: str, key: tuple[str, str]) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
    )


def user_with(iam: Any, name: str, policy_arn: str | None, inline: dict[str, Any] | None) -> Any:
    iam.create_user(UserName=name)
    if policy_arn is not None:
        iam.attach_user_policy(UserName=name, PolicyArn=policy_arn)
    if inline is not None:
        iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(inline))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def orders(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/orders?payer={BUYER.address}", timeout=10) as got:
        found: list[dict[str, Any]] = json.load(got)
    return found


@pytest.mark.chain
async def test_the_watcher_works_with_its_policy_alone_and_nothing_else_is_allowed(
    devchain: DevChain, w3: Web3, tmp_path: Path
) -> None:
    server = MotoServer().start()
    proxy: FaultProxy | None = None
    run: subprocess.Popen[bytes] | None = None
    try:
        testing = (AWS_ENV["AWS_ACCESS_KEY_ID"], AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        ec2 = client("ec2", server.url, testing)
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        image = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])[0]
        (tmp_path / "watcher.toml").write_text(
            f'[infra]\nsubnet_id = "{subnet}"\nami = "{image}"\n'
            f'public_key = "{new_ssh_key("operator")}"\n'
            # Second-long leases: an instance launched from the declared template...
            '[plans."node"]\nprice = "10"\ninstance_type = "t3.small"\n'
            'launch_template = "TokenizedLaunchTemplate"\n'
            'period = "6s"\ngrace = "3s"\nwarn = ["3s"]\n'
            # ...and a pool of its own.
            f'[plans."pool"]\nprice = "20"\nkind = "scaling_pool"\ninstance_type = "t3.micro"\n'
            f'ami = "{image}"\nsubnet_id = "{subnet}"\nmin_size = 1\nmax_size = 2\n'
            'period = "6s"\ngrace = "3s"\nwarn = ["3s"]\n'
        )
        (tmp_path / "id.pub").write_text(new_ssh_key("buyer") + "\n")
        admin_env = {
            **os.environ,
            **AWS_ENV,
            "WATCHER_AWS_ENDPOINT_URL": server.url,
            "WATCHER_AWS_REGION": REGION,
        }
        applied = subprocess.run(
            [WATCHER, "infra", "apply"], env=admin_env, cwd=tmp_path, capture_output=True,
            text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        iam = client("iam", server.url, testing)
        declared = iam.get_policy_version(
            PolicyArn="arn:aws:iam::123456789012:policy/WatcherProvisioning", VersionId="v1"
        )["PolicyVersion"]["Document"]
        assert declared == watcher_policy()  # what `watcher infra apply` made
        # moto's IAM names CloudWatch's actions by its endpoint, monitoring:, where AWS's
        # IAM says cloudwatch:. The same statements, with moto's word for the service:
        for_moto = json.loads(json.dumps(declared).replace('"cloudwatch:', '"monitoring:'))
        policy_arn = iam.create_policy(
            PolicyName="WatcherProvisioningAsMotoNamesIt", PolicyDocument=json.dumps(for_moto)
        )["Policy"]["Arn"]
        watcher_key = user_with(iam, "watcher", policy_arn, None)
        everything = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        admin_key = user_with(iam, "admin", None, everything)

        # From here on moto checks every request's signature and policies.
        urllib.request.urlopen(
            urllib.request.Request(
                f"{server.url}/moto-api/reset-auth",
                data=b"0",
                method="POST",
                # As a form, werkzeug would take the body away from moto's handler.
                headers={"Content-Type": "text/plain"},
            )
        )
        with pytest.raises(ClientError):  # the old credentials are nobody's
            ec2.describe_instances()
        admin = client("ec2", server.url, admin_key)

        driver = DevChainDriver(w3)
        ctk = driver.token()
        checkout = driver.deploy("Checkout", ctk.address)
        driver.fund(ctk, BUYER, 100)
        proxy = await FaultProxy(server.url, keep_host=True).start()
        port = free_port()
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": watcher_key[0],
            "AWS_SECRET_ACCESS_KEY": watcher_key[1],
            "WATCHER_RPC_URL": devchain.url,
            "WATCHER_TOKEN_ADDRESS": ctk.address,
            "WATCHER_CHECKOUT_ADDRESS": checkout.address,
            "WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "WATCHER_CONFIRMATIONS": "0",
            "WATCHER_START_BLOCK": str(driver.head),
            "WATCHER_POLL_INTERVAL": "0.2",
            "WATCHER_AWS_ENDPOINT_URL": proxy.url,
            "WATCHER_AWS_REGION": REGION,
            "WATCHER_HTTP_PORT": str(port),
            "WATCHER_METRICS_PORT": "0",
        }
        url = f"http://127.0.0.1:{port}"
        log_path = tmp_path / "run.log"
        with log_path.open("w") as log:
            run = subprocess.Popen(
                [WATCHER, "run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
            )
            deadline = time.monotonic() + 30
            while True:
                try:
                    await asyncio.to_thread(orders, url)
                    break
                except OSError:
                    assert run.poll() is None, log_path.read_text()[-2000:]
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
            for plan in ("node", "pool"):
                buying = await asyncio.create_subprocess_exec(
                    WATCHER, "buy", plan, "--ssh-key", str(tmp_path / "id.pub"),
                    "--dev-account", "13", "--json", env=env, cwd=tmp_path,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    stdin=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                out, err = await asyncio.wait_for(buying.communicate(), 120)
                assert buying.returncode == 0, err.decode()[-2000:]
            seen: dict[str, list[str]] = {}
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                found = await asyncio.to_thread(orders, url)
                for order in found:
                    states = seen.setdefault(order["plan"], [])
                    state = order["lease_state"]
                    if state is not None and (not states or states[-1] != state):
                        states.append(state)
                if len(found) == 2 and all(o["lease_state"] == "terminated" for o in found):
                    break
                await asyncio.sleep(0.2)
            run.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(run.wait, 30)
        text = log_path.read_text()
        assert code == 0, text[-2000:]
        assert "AccessDenied" not in text and "UnauthorizedOperation" not in text, text[-2000:]
        for states in seen.values():
            # (The first may be past active: bought while the other was being bought.)
            assert states[0] in ("active", "expiring") and states[-1] == "terminated", seen
            assert "stopped" in states, seen
        (node,) = [o for o in found if o["plan"] == "node"]
        (pool,) = [o for o in found if o["plan"] == "pool"]

        # Launched from the template (its image), with the order's own type and tags.
        # (The thesis's scaling group keeps one instance of its own running beside it.)
        (reservation,) = admin.describe_instances(
            Filters=[{"Name": "tag:OrderId", "Values": [node["order_id"]]}]
        )["Reservations"]
        (instance,) = reservation["Instances"]
        assert instance["ImageId"] == image and instance["InstanceType"] == "t3.small"
        assert instance["State"]["Name"] == "terminated"
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["AllocatedBy"] == "TokenSystem" and tags["OrderId"] == node["order_id"]
        # The pool is gone with its group.
        groups = client("autoscaling", server.url, admin_key).describe_auto_scaling_groups()
        assert [g["AutoScalingGroupName"] for g in groups["AutoScalingGroups"]] == [
            "TokenAutoScalingGroup"
        ], pool

        audit = await asyncio.create_subprocess_exec(
            WATCHER, "audit", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, err = await asyncio.wait_for(audit.communicate(), 120)
        assert audit.returncode == 0, (out + err).decode()[-2000:]
        assert b"audit: clean" in out + err

        # Outside the policy: denied, for the same credentials.
        limited = client("ec2", server.url, watcher_key)
        with pytest.raises(ClientError) as denied:
            limited.modify_instance_attribute(
                InstanceId=instance["InstanceId"], InstanceType={"Value": "t3.2xlarge"}
            )
        assert denied.value.response["Error"]["Code"] in ("UnauthorizedOperation", "AccessDenied")
        with pytest.raises(ClientError) as denied_iam:
            client("iam", server.url, watcher_key).create_user(UserName="intruder")
        assert denied_iam.value.response["Error"]["Code"] == "AccessDenied"
        # ...and what it allows still answers (the denial is the policy's, not a failure).
        assert limited.describe_instances()["Reservations"]

        allowed = policy_actions(watcher_policy())
        # GetCallerIdentity (the storage provider reads its account) needs no permission:
        # AWS answers it whatever the policies say.
        called = set(proxy.actions) - {"sts:GetCallerIdentity"}
        assert "sts:GetCallerIdentity" in proxy.actions
        assert called <= allowed, (called - allowed, proxy.actions)
        assert allowed - called <= NOT_CALLED_HERE, allowed - called - NOT_CALLED_HERE
        assert {
            "ec2:RunInstances",
            "ec2:StopInstances",
            "ec2:TerminateInstances",
            "autoscaling:CreateAutoScalingGroup",
            "autoscaling:UpdateAutoScalingGroup",
            "autoscaling:DeleteAutoScalingGroup",
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DeleteAlarms",
        } <= called
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        if proxy is not None:
            await proxy.stop()
        server.stop()
