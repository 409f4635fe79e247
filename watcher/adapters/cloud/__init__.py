"""Cloud providers behind watcher/ports/cloud.py: EC2 (ec2.py) and a fake (fake.py)."""
