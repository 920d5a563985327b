"""Offline stand-ins for the AWS Lambda Python 3.13 base images, for machines that cannot reach a container registry.

``sam local invoke --skip-pull-image`` looks for ``public.ecr.aws/lambda/python:3.13-<arch>`` on the local Docker
daemon. Where that image cannot be pulled (air-gapped CI), ``python -m lambda_image`` builds one from Debian's archive
and PyPI alone: a Debian minbase root filesystem with Debian's CPython 3.13, AWS's runtime interface client
(awslambdaric) and boto3 in ``/var/runtime``, and the same bootstrap, entry point and environment as the real image.
It is Debian, not Amazon Linux 2023: see docs/sam-local.md for what that changes.
"""
