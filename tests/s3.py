"""A real S3 endpoint for tests: moto's standalone server on loopback, buckets and clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import boto3
import pytest
from moto.server import ThreadedMotoServer

from media.storage import S3Storage

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

REGION: Final = "eu-west-1"
ACCESS_KEY: Final = "testing-access-key"
SECRET_KEY: Final = "testing-secret-key"


class _Closable(Protocol):
    def close(self) -> None: ...


# Clients keep pooled sockets to the server open; they are closed when the server stops, so that
# no socket is left for the garbage collector to find (and warn about) during a later test.
_open_clients: list[_Closable] = []


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server in a thread on a free loopback port; its base URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        while _open_clients:
            _open_clients.pop().close()
        server.stop()


def isolate_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from this machine's AWS configuration reaches the clients."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def client(endpoint: str) -> S3Client:
    """A plain boto3 client on the endpoint, to set up and inspect buckets."""
    s3 = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    _open_clients.append(s3)
    return s3


def new_bucket(s3: S3Client, *, cors_origin: str | None = None) -> str:
    """A fresh bucket; with `cors_origin`, GETs from that web origin are allowed (for players)."""
    name = f"encore-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    if cors_origin:
        s3.put_bucket_cors(
            Bucket=name,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [cors_origin],
                        "AllowedMethods": ["GET", "HEAD"],
                        "AllowedHeaders": ["*"],
                        "MaxAgeSeconds": 600,
                    }
                ]
            },
        )
    return name


def storage(endpoint: str, bucket: str, **kwargs: str) -> S3Storage:
    """Encore's S3 storage on the endpoint."""
    store = S3Storage(
        bucket=bucket,
        region=REGION,
        endpoint_url=endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        **kwargs,
    )
    _open_clients.append(store)
    return store


def settings_env(endpoint: str, bucket: str) -> dict[str, str]:
    """The environment that points an Encore process at this bucket."""
    return {
        "MEDIA_BACKEND": "s3",
        "S3_BUCKET": bucket,
        "S3_REGION": REGION,
        "S3_ENDPOINT_URL": endpoint,
        "S3_ACCESS_KEY_ID": ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": SECRET_KEY,
    }
