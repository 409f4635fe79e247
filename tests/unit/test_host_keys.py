"""Host key fingerprints from an instance's console, as cloud-init prints them."""

from __future__ import annotations

from watcher.domain.host_keys import HostKey, from_json, parse_console, to_json

ED = "SHA256:" + "9fTq" * 10 + "aQk"
EC = "SHA256:" + "Yj2x" * 10 + "k0Z"
RSA = "SHA256:" + "Rr0a" * 10 + "b1c"

# Amazon Linux 2 (the thesis's image family): "ec2: " before every line.
AMAZON = f"""[   12.345678] cloud-init[2301]: Cloud-init v. 19.3 running 'modules:final'
ec2: #############################################################
ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----
ec2: 256 {EC} no comment (ECDSA)
ec2: 256 {ED} no comment (ED25519)
ec2: 2048 {RSA} no comment (RSA)
ec2: -----END SSH HOST KEY FINGERPRINTS-----
ec2: #############################################################
"""

# Ubuntu: plain lines with the host's name as the comment.
UBUNTU = f"""-----BEGIN SSH HOST KEY FINGERPRINTS-----
256 {EC} root@ip-172-31-5-9 (ECDSA)
256 {ED} root@ip-172-31-5-9 (ED25519)
3072 {RSA} root@ip-172-31-5-9 (RSA)
-----END SSH HOST KEY FINGERPRINTS-----
"""


def test_amazon_linux_and_ubuntu_blocks() -> None:
    expected = (HostKey("ECDSA", EC, 256), HostKey("ED25519", ED, 256))
    assert parse_console(AMAZON)[:2] == expected
    assert parse_console(AMAZON)[2] == HostKey("RSA", RSA, 2048)
    assert parse_console(UBUNTU) == (*expected, HostKey("RSA", RSA, 3072))


def test_nothing_without_a_complete_block_or_outside_it() -> None:
    assert parse_console("Linux version 2.6.16-xenU\nBIOS-provided physical RAM map:\n") == ()
    cut = UBUNTU.split("-----END")[0]  # the console is read while it is being written
    assert parse_console(cut) == ()
    outside = f"256 {ED} root@evil (ED25519)\n"
    assert parse_console(outside) == ()
    assert parse_console(outside + UBUNTU) == parse_console(UBUNTU)
    # A line inside the block without the shape (the instance prints what it likes).
    odd = UBUNTU.replace(f"256 {ED} root@ip-172-31-5-9 (ED25519)", "256 SHA256:short (ED25519)")
    assert [k.type for k in parse_console(odd)] == ["ECDSA", "RSA"]


def test_the_last_complete_block_counts_and_json_round_trips() -> None:
    later = UBUNTU.replace(ED, "SHA256:" + "Zz9y" * 10 + "x8w")
    keys = parse_console(UBUNTU + later)
    assert keys == parse_console(later) != parse_console(UBUNTU)
    assert from_json(to_json(keys)) == keys


async def test_a_failed_look_shows_none_and_is_tried_again_later_not_at_once() -> None:
    import dataclasses

    from watcher.adapters.cloud.fake import FakeProvider, Fault
    from watcher.adapters.ledger.queries import OrderAccess
    from watcher.domain.kinds.ec2_instance import ec2_plan
    from watcher.ports.cloud import Cloud
    from watcher.services.host_keys import HostKeys

    fake = FakeProvider()
    fake.fail("console_output", Fault.PERMANENT, times=None)
    now = [100.0]
    keys = HostKeys(None, Cloud(fake), look_every=20, clock=lambda: now[0])  # type: ignore[arg-type]
    order = OrderAccess(
        "o1", "0xA", "running", "p", ec2_plan("p", 1, "t3.micro").resource(),
        1, None, "i-0123456789abcdef0", None, None, None, None,
    )  # fmt: skip
    assert await keys.of(order) == ()
    assert await keys.of(order) == ()  # within 20 s: no second look
    assert fake.calls["console_output"] == 1
    now[0] += 21
    assert await keys.of(order) == ()
    assert fake.calls["console_output"] == 2
    stopped = dataclasses.replace(order, state="launched")
    now[0] += 21
    assert await keys.of(stopped) == () and fake.calls["console_output"] == 2
