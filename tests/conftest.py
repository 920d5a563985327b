"""Shared fixtures. Tests import the code the way Lambda sees it (see pyproject's pythonpath)."""

import os

# Nothing in the tests may reach AWS: fake credentials and a region, before boto3 is imported anywhere.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
