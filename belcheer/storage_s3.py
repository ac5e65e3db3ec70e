"""The S3 product store (``BELCHEER_STORAGE=s3://BUCKET/PREFIX``), on boto3 and GDAL's /vsis3/.

Configured by the names boto3, the AWS CLI and GDAL read: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN`` for temporary keys), ``AWS_REGION`` (or
``AWS_DEFAULT_REGION``; default us-east-1), the endpoint of an S3-compatible server as
``AWS_ENDPOINT_URL=http://host:port`` or GDAL's ``AWS_S3_ENDPOINT=host:port`` with ``AWS_HTTPS=NO``,
and ``AWS_VIRTUAL_HOSTING=FALSE`` for path-style addressing (SeaweedFS, MinIO; the default TRUE
puts the bucket into the host name, as AWS itself does).

Writes are boto3 managed uploads (multipart above :data:`MULTIPART_BYTES`): S3 makes an object
visible only once its upload completes, and a failed multipart upload is aborted, so readers never
see a part. Reads by GDAL (rasterio, rio-tiler) go through ``/vsis3/bucket/key`` with HTTP range
requests, inside a ``rasterio.Env`` that allows exactly that one name (belcheer's GDAL refuses
every URL otherwise, see :mod:`belcheer.gdalenv`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from belcheer.catalog_url import mask_url
from belcheer.errors import ConfigError, ProductMissingError, StorageError
from belcheer.storage import ObjectInfo, cached_download, default_cache_dir

#: objects larger than this are uploaded in parts of this size, bytes
MULTIPART_BYTES = 64 * 1024**2
#: seconds to wait for a connection to the S3 server
CONNECT_TIMEOUT_S = 5
_TRUE = {"1", "true", "yes", "on"}


def _boto():
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:  # pragma: no cover - boto3 is in the s3 and dev extras
        raise ConfigError("BELCHEER_STORAGE=s3://… needs boto3: pip install 'belcheer[s3]'") from e
    return boto3, Config


class S3Store:
    """Products as objects below ``s3://bucket/prefix``. Safe to share between threads."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str = "us-east-1", access_key: str | None = None,
                 secret_key: str | None = None, session_token: str | None = None,
                 path_style: bool = False, check: bool = True) -> None:
        if not bucket:
            raise ConfigError("BELCHEER_STORAGE=s3://… names no bucket; use s3://BUCKET/PREFIX")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint_url, self.region, self.path_style = endpoint_url, region, path_style
        self._access, self._secret, self._token = access_key, secret_key, session_token
        self.url = mask_url(f"s3://{bucket}/{self.prefix}".rstrip("/"))
        boto3, Config = _boto()
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, aws_session_token=session_token,
            config=Config(s3={"addressing_style": "path" if path_style else "auto"},
                          connect_timeout=CONNECT_TIMEOUT_S, read_timeout=60,
                          retries={"max_attempts": 3, "mode": "standard"}))
        if check:
            self.check()

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] | None = None, check: bool = True) -> S3Store:
        """The store ``s3://bucket/prefix`` names, configured from the AWS environment variables."""
        env = os.environ if environ is None else environ
        parts = urlsplit(url)
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if not endpoint and env.get("AWS_S3_ENDPOINT"):
            host = env["AWS_S3_ENDPOINT"]
            https = env.get("AWS_HTTPS", "YES").lower() in _TRUE
            endpoint = host if "://" in host else f"{'https' if https else 'http'}://{host}"
        return cls(parts.hostname or "", parts.path, endpoint_url=endpoint,
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                   access_key=env.get("AWS_ACCESS_KEY_ID"), secret_key=env.get("AWS_SECRET_ACCESS_KEY"),
                   session_token=env.get("AWS_SESSION_TOKEN"),
                   path_style=env.get("AWS_VIRTUAL_HOSTING", "TRUE").lower() not in _TRUE, check=check)

    def __repr__(self) -> str:
        return f"S3Store({self.url!r}, endpoint={self.endpoint_url!r})"

    # -- errors ---------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.url} (endpoint {mask_url(self.endpoint_url or 'AWS default')})"

    def _fail(self, what: str, exc: Exception, config: bool = False) -> Exception:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            detail = f"{err.get('Code', 'error')}: {err.get('Message') or exc}"
        else:
            detail = str(exc)
        if self._secret:
            detail = detail.replace(self._secret, "***")
        cls = ConfigError if config else StorageError
        return cls(f"cannot {what} in the product store {self._where()}: {detail}; check "
                   "BELCHEER_STORAGE, AWS_ENDPOINT_URL, the credentials (AWS_ACCESS_KEY_ID, "
                   "AWS_SECRET_ACCESS_KEY) and that the server is running")

    def check(self) -> None:
        """Reach the bucket with the configured credentials (HEAD bucket); ConfigError if not."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as e:  # noqa: BLE001 - every botocore failure becomes one clear error
            raise self._fail("reach the bucket", e, config=True) from None

    # -- names ----------------------------------------------------------------------------
    def key(self, uri: str) -> str:
        """The object key of ``uri`` (StorageError if the URI is not in this store)."""
        parts = urlsplit(uri)
        key = parts.path.lstrip("/")
        if parts.scheme != "s3" or parts.hostname != self.bucket or not self._inside(key):
            raise StorageError(f"{uri} is outside the product store {self.url}")
        return key

    def _inside(self, key: str) -> bool:
        return not self.prefix or key.startswith(self.prefix + "/")

    def uri(self, key: str) -> str:
        if any(p in ("", ".", "..") for p in key.split("/")):
            raise StorageError(f"{key!r} is not a usable object key")
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{key}"

    def owns(self, uri: str) -> bool:
        try:
            self.key(uri)
        except StorageError:
            return False
        return True

    # -- writing --------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, uri: str) -> Iterator[Path]:
        self.key(uri)
        tmp = Path(tempfile.mkdtemp(prefix="belcheer-put-"))
        try:
            path = tmp / Path(urlsplit(uri).path).name
            yield path
            self.put(path, uri)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def put(self, local: Path, uri: str, *, keep: bool = False) -> ObjectInfo:
        from boto3.s3.transfer import TransferConfig

        key = self.key(uri)
        cfg = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES)
        try:
            self._client.upload_file(str(local), self.bucket, key, Config=cfg,
                                     ExtraArgs={"ContentType": _content_type(key)})
        except Exception as e:  # noqa: BLE001
            raise self._fail(f"upload {uri}", e) from None
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                Path(local).unlink()
        return self.stat(uri)

    # -- reading --------------------------------------------------------------------------
    def stat(self, uri: str) -> ObjectInfo:
        key = self.key(uri)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except Exception as e:  # noqa: BLE001
            if _missing(e):
                raise ProductMissingError(f"{uri} is missing from the product store {self.url}",
                                          uri=uri) from None
            raise self._fail(f"read {uri}", e) from None
        return ObjectInfo(uri=uri, size=int(head["ContentLength"]), etag=head["ETag"].strip('"'),
                          last_modified=head["LastModified"].astimezone(UTC))

    def open(self, uri: str, byte_range: tuple[int, int] | None = None) -> BinaryIO:
        key = self.key(uri)
        extra = {} if byte_range is None else {"Range": f"bytes={int(byte_range[0])}-{int(byte_range[1])}"}
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        except Exception as e:  # noqa: BLE001
            if _missing(e):
                raise ProductMissingError(f"{uri} is missing from the product store {self.url}",
                                          uri=uri) from None
            raise self._fail(f"read {uri}", e) from None

    def delete(self, uri: str) -> None:
        key = self.key(uri)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as e:  # noqa: BLE001
            if not _missing(e):
                raise self._fail(f"delete {uri}", e) from None

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        full = (self.prefix + "/" if self.prefix else "") + prefix
        out = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    out.append(ObjectInfo(uri=f"s3://{self.bucket}/{obj['Key']}", size=int(obj["Size"]),
                                          etag=obj["ETag"].strip('"'),
                                          last_modified=obj["LastModified"].astimezone(UTC)))
        except Exception as e:  # noqa: BLE001
            raise self._fail(f"list {full or '/'}", e) from None
        return sorted(out, key=lambda o: o.uri)

    def gdal_path(self, uri: str) -> str:
        return f"/vsis3/{self.bucket}/{self.key(uri)}"

    def gdal_options(self, uri: str) -> dict[str, Any]:
        """GDAL config options (besides the credentials) for reading ``uri`` through /vsis3/."""
        endpoint = urlsplit(self.endpoint_url) if self.endpoint_url else None
        opts: dict[str, Any] = {
            # belcheer's GDAL refuses every URL (gdalenv); this one object only is allowed
            "CPL_VSIL_CURL_ALLOWED_FILENAME": self.gdal_path(uri),
            "GDAL_HTTP_PROXY": "", "GDAL_HTTPS_PROXY": "",  # "" = no proxy (not the dead one)
            "GDAL_HTTP_CONNECTTIMEOUT": str(CONNECT_TIMEOUT_S), "GDAL_HTTP_MAX_RETRY": "2",
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            # blocks of a replaced object must not outlive the handle that read them
            "CPL_VSIL_CURL_NON_CACHED": f"/vsis3/{self.bucket}/{self.prefix}",
            "AWS_VIRTUAL_HOSTING": "FALSE" if self.path_style else "TRUE",
            "AWS_REGION": self.region,
        }
        if endpoint is not None:
            opts["AWS_S3_ENDPOINT"] = endpoint.netloc
            opts["AWS_HTTPS"] = "YES" if endpoint.scheme == "https" else "NO"
        return opts

    def gdal_env(self, uri: str) -> contextlib.AbstractContextManager[object]:
        import rasterio
        from rasterio.session import AWSSession

        opts = self.gdal_options(uri)
        session = AWSSession(aws_access_key_id=self._access, aws_secret_access_key=self._secret,
                             aws_session_token=self._token, region_name=self.region,
                             endpoint_url=opts.get("AWS_S3_ENDPOINT"))
        return rasterio.Env(session=session, **opts)

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        yield cached_download(self, uri, default_cache_dir())


def _missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in {"404", "NoSuchKey", "NotFound"} or status == 404


def _content_type(key: str) -> str:
    if key.endswith((".tif", ".tiff")):
        return "image/tiff; application=geotiff; profile=cloud-optimized"
    return "application/octet-stream"
