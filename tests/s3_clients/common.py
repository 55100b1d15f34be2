"""What every S3 client script of tests/s3.rs shares: a boto3 client for the
daemon under test (S3_ENDPOINT, S3_CA; the key the test wrote), and `code`,
the S3 error code a call fails with."""
import hashlib
import os
import ssl

import boto3
import botocore
from botocore.config import Config

ENDPOINT = os.environ["S3_ENDPOINT"]
CA = os.environ.get("S3_CA")
KEY_ID = "AKIDTEST"
SECRET = "secret/key+1"


def client(secret=SECRET, **config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        verify=CA if CA else True,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


def content(name, size):
    """`size` bytes made from `name`: what a load script writes, and its check expects."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def body(pieces):
    """The bytes of pieces `[name, size]` one after the other."""
    return b"".join(content(name, size) for name, size in pieces)


def code(call):
    """The error code `call` fails with (an HTTP status for errors without a body)."""
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("the call succeeded")


def tls_context():
    return ssl.create_default_context(cafile=CA) if CA else None
