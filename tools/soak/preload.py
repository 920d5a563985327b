"""Imported once by the container fork server, so every container starts with the handlers' modules loaded (the
sender's, the webhook's and the publisher's).

What a fresh Lambda execution environment pays for imports is paid here once; each container still builds its own
runtime (settings, boto3 session and clients, the NXCloud pool) on its first invocation, as a cold start does.
"""

import aws_lambda_powertools.utilities.parameters  # noqa: F401
import boto3  # noqa: F401
import botocore.session  # noqa: F401

import api  # noqa: F401
import app  # noqa: F401
import delivery  # noqa: F401
import planner  # noqa: F401
import publisher  # noqa: F401
import sqs_trigger  # noqa: F401
import webhook  # noqa: F401
from local_stack import lambda_events  # noqa: F401
