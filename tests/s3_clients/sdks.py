"""Three more S3 clients against the daemon at S3_ENDPOINT, each as its users
drive it, in its own bucket:
- the MinIO Python SDK (`minio`): its bucket-region lookup, streamed and
  multipart puts of unknown length, metadata, stat, ranges, copies, listings,
  batch removal and presigned URLs;
- Apache Arrow's S3 file system (`pyarrow.fs`, the AWS SDK for C++), as
  data tools use it: Parquet datasets written and read back, directories,
  file info, streaming output of several parts, moves, deletes;
- `obstore` (Rust's `object_store`, as DataFusion, Polars and delta-rs use
  it): puts (with a conditional create), multipart, gets with ranges,
  listings with a delimiter, copies, renames, deletes.
Prints "ok" when every check holds."""
import datetime
import hashlib
import io
import os
import urllib.parse
import urllib.request

from common import ENDPOINT, KEY_ID, SECRET, content

HOST = urllib.parse.urlsplit(ENDPOINT).netloc


def check_minio():
    from minio import Minio
    from minio.commonconfig import CopySource
    from minio.deleteobjects import DeleteObject
    from minio.error import S3Error

    m = Minio(HOST, access_key=KEY_ID, secret_key=SECRET, secure=False)
    bucket = "minio-sdk"
    m.make_bucket(bucket)
    assert m.bucket_exists(bucket)
    assert not m.bucket_exists("minio-none")

    small = content("minio small", 50_000)
    w = m.put_object(bucket, "a/small.bin", io.BytesIO(small), len(small), content_type="application/x-test",
                     metadata={"x-amz-meta-colour": "green"})
    assert w.etag == hashlib.md5(small).hexdigest(), w.etag
    # Unknown length: the SDK buffers 5 MiB parts and uploads them as a
    # multipart upload (12 MiB: 3 parts).
    big = content("minio big", 12 * 1024 * 1024 + 7)
    w = m.put_object(bucket, "a/big.bin", io.BytesIO(big), -1, part_size=5 * 1024 * 1024)
    assert w.etag.endswith("-3"), w.etag

    st = m.stat_object(bucket, "a/small.bin")
    assert st.size == len(small) and st.content_type == "application/x-test", (st.size, st.content_type)
    assert st.metadata.get("x-amz-meta-colour") == "green", dict(st.metadata)
    r = m.get_object(bucket, "a/big.bin")
    try:
        assert r.read() == big
    finally:
        r.close()
        r.release_conn()
    r = m.get_object(bucket, "a/small.bin", offset=100, length=50)
    try:
        assert r.read() == small[100:150]
    finally:
        r.close()
        r.release_conn()

    m.copy_object(bucket, "b/copy.bin", CopySource(bucket, "a/small.bin"))
    assert m.stat_object(bucket, "b/copy.bin").etag == hashlib.md5(small).hexdigest()

    names = sorted(o.object_name for o in m.list_objects(bucket, recursive=True))
    assert names == ["a/big.bin", "a/small.bin", "b/copy.bin"], names
    tops = sorted(o.object_name for o in m.list_objects(bucket))
    assert tops == ["a/", "b/"], tops
    assert [o.object_name for o in m.list_objects(bucket, prefix="a/", start_after="a/big.bin")] == ["a/small.bin"]

    url = m.presigned_get_object(bucket, "a/small.bin", expires=datetime.timedelta(minutes=5))
    with urllib.request.urlopen(url) as got:
        assert got.read() == small
    url = m.presigned_put_object(bucket, "c/presigned.txt", expires=datetime.timedelta(minutes=5))
    req = urllib.request.Request(url, data=b"put through a presigned URL", method="PUT")
    with urllib.request.urlopen(req) as put:
        assert put.status == 200
    r = m.get_object(bucket, "c/presigned.txt")
    try:
        assert r.read() == b"put through a presigned URL"
    finally:
        r.close()
        r.release_conn()

    # compose_object: a multipart upload of UploadPartCopy parts (each
    # source at least 5 MiB but the last).
    from minio.commonconfig import ComposeSource, Tags
    m.compose_object(bucket, "b/composed.bin", [ComposeSource(bucket, "a/big.bin"), ComposeSource(bucket, "a/small.bin")])
    r = m.get_object(bucket, "b/composed.bin")
    try:
        assert r.read() == big + small
    finally:
        r.close()
        r.release_conn()
    tags = Tags.new_object_tags()
    tags["project"] = "percore"
    m.set_object_tags(bucket, "b/composed.bin", tags)
    assert dict(m.get_object_tags(bucket, "b/composed.bin")) == {"project": "percore"}
    m.remove_object(bucket, "b/composed.bin")

    try:
        m.stat_object(bucket, "missing")
        raise AssertionError("stat of a missing object succeeded")
    except S3Error as e:
        assert e.code == "NoSuchKey", e.code
    wrong = Minio(HOST, access_key=KEY_ID, secret_key="wrong", secure=False)
    try:
        wrong.stat_object(bucket, "a/small.bin")
        raise AssertionError("a wrong secret was taken")
    except S3Error as e:
        assert e.code in ("SignatureDoesNotMatch", "AccessDenied"), e.code

    errors = list(m.remove_objects(bucket, [DeleteObject(n) for n in names + ["c/presigned.txt"]]))
    assert not errors, errors
    assert list(m.list_objects(bucket, recursive=True)) == []
    m.remove_bucket(bucket)
    assert not m.bucket_exists(bucket)


def check_pyarrow():
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs = pafs.S3FileSystem(access_key=KEY_ID, secret_key=SECRET, region="us-east-1", scheme="http",
                           endpoint_override=HOST, allow_bucket_creation=True, allow_bucket_deletion=True,
                           retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    bucket = "arrow-fs"
    fs.create_dir(bucket)
    assert fs.get_file_info(bucket).type == pafs.FileType.Directory

    # A partitioned Parquet dataset, written and read back.
    n = 20_000
    table = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "part": pa.array([f"p{i % 4}" for i in range(n)]),
        "text": pa.array([f"row {i} " * (i % 7) for i in range(n)]),
    })
    ds.write_dataset(table, f"{bucket}/data", format="parquet", filesystem=fs, partitioning=["part"],
                     existing_data_behavior="overwrite_or_ignore")
    back = ds.dataset(f"{bucket}/data", format="parquet", filesystem=fs, partitioning=["part"]).to_table()
    assert back.num_rows == n, back.num_rows
    assert sorted(back.column("id").to_pylist()) == list(range(n))
    parts = fs.get_file_info(pafs.FileSelector(f"{bucket}/data", recursive=False))
    assert sorted(i.base_name for i in parts) == ["p0", "p1", "p2", "p3"], [i.base_name for i in parts]
    assert all(i.type == pafs.FileType.Directory for i in parts)

    # One file through pq, and a streamed output large enough for several
    # parts (the C++ SDK uploads 10 MiB parts, in the background).
    pq.write_table(table, f"{bucket}/one.parquet", filesystem=fs)
    assert pq.read_table(f"{bucket}/one.parquet", filesystem=fs).equals(table)
    big = content("arrow big", 23 * 1024 * 1024 + 3)
    with fs.open_output_stream(f"{bucket}/raw/big.bin", metadata={"Content-Type": "application/x-test"}) as out:
        for i in range(0, len(big), 1 << 20):
            out.write(big[i:i + (1 << 20)])
    info = fs.get_file_info(f"{bucket}/raw/big.bin")
    assert info.size == len(big) and info.type == pafs.FileType.File, info
    with fs.open_input_file(f"{bucket}/raw/big.bin") as f:
        assert f.read_at(1000, 5 * 1024 * 1024) == big[5 * 1024 * 1024:5 * 1024 * 1024 + 1000]
        assert f.read() == big
    with fs.open_input_stream(f"{bucket}/raw/big.bin") as f:
        assert f.metadata().get("Content-Type") == b"application/x-test", f.metadata()

    # An empty file, and writes without the background thread.
    quiet = pafs.S3FileSystem(access_key=KEY_ID, secret_key=SECRET, region="us-east-1", scheme="http",
                              endpoint_override=HOST, background_writes=False)
    with quiet.open_output_stream(f"{bucket}/raw/empty") as out:
        pass
    assert fs.get_file_info(f"{bucket}/raw/empty").size == 0
    with quiet.open_output_stream(f"{bucket}/raw/quiet.bin") as out:
        out.write(big[:6 * 1024 * 1024])
        out.write(big[6 * 1024 * 1024:12 * 1024 * 1024])
    with fs.open_input_stream(f"{bucket}/raw/quiet.bin") as f:
        assert f.read() == big[:12 * 1024 * 1024]

    # Empty directories (marker objects), moves and deletes.
    fs.create_dir(f"{bucket}/empty/inner")
    assert fs.get_file_info(f"{bucket}/empty/inner").type == pafs.FileType.Directory
    fs.move(f"{bucket}/one.parquet", f"{bucket}/moved.parquet")
    assert fs.get_file_info(f"{bucket}/one.parquet").type == pafs.FileType.NotFound
    assert pq.read_table(f"{bucket}/moved.parquet", filesystem=fs).num_rows == n
    fs.copy_file(f"{bucket}/moved.parquet", f"{bucket}/copied.parquet")
    assert fs.get_file_info(f"{bucket}/copied.parquet").size == fs.get_file_info(f"{bucket}/moved.parquet").size
    fs.delete_dir_contents(bucket)
    assert fs.get_file_info(pafs.FileSelector(bucket, recursive=True)) == []
    fs.delete_dir(bucket)
    assert fs.get_file_info(bucket).type == pafs.FileType.NotFound


def check_obstore():
    import obstore
    from obstore.store import S3Store

    from common import client
    # The bucket is made with boto3: object_store does not make buckets.
    bucket = "object-store"
    client().create_bucket(Bucket=bucket)
    store = S3Store(bucket, endpoint=ENDPOINT, access_key_id=KEY_ID, secret_access_key=SECRET, region="us-east-1",
                    client_options={"allow_http": True}, retry_config={"max_retries": 0, "backoff": {},
                                                                        "retry_timeout": datetime.timedelta(seconds=5)})
    data = content("object_store", 200_000)
    put = obstore.put(store, "t/one.bin", data)
    assert put["e_tag"] == f'"{hashlib.md5(data).hexdigest()}"', put
    # A create-only put of an existing key fails (If-None-Match: *).
    try:
        obstore.put(store, "t/one.bin", b"other", mode="create")
        raise AssertionError("a create-only put replaced an object")
    except Exception as e:  # obstore.exceptions.AlreadyExistsError
        assert "AlreadyExists" in type(e).__name__ or "already exists" in str(e).lower(), repr(e)
    # Large enough for object_store's multipart (its chunks are 5 MiB).
    big = content("object_store big", 11 * 1024 * 1024 + 5)
    obstore.put(store, "t/big.bin", io.BytesIO(big), chunk_size=5 * 1024 * 1024)
    assert bytes(obstore.get(store, "t/big.bin").bytes()) == big
    assert bytes(obstore.get_range(store, "t/one.bin", start=10, end=30)) == data[10:30]
    assert [bytes(b) for b in obstore.get_ranges(store, "t/big.bin", starts=[0, 6 << 20], ends=[5, (6 << 20) + 5])] \
        == [big[0:5], big[6 << 20:(6 << 20) + 5]]
    # Conditional updates by ETag (If-Match), as object_store makes them
    # with `conditional_put = "etag"`.
    guarded = S3Store(bucket, endpoint=ENDPOINT, access_key_id=KEY_ID, secret_access_key=SECRET, region="us-east-1",
                      client_options={"allow_http": True}, conditional_put="etag")
    first = obstore.put(guarded, "t/guarded", b"v1", mode="create")
    second = obstore.put(guarded, "t/guarded", b"v2", mode={"e_tag": first["e_tag"]})
    try:
        obstore.put(guarded, "t/guarded", b"v3", mode={"e_tag": first["e_tag"]})
        raise AssertionError("an update with a stale ETag was taken")
    except Exception as e:  # obstore.exceptions.PreconditionError
        assert "Precondition" in type(e).__name__, repr(e)
    assert bytes(obstore.get(store, "t/guarded").bytes()) == b"v2" and second["e_tag"] != first["e_tag"]
    obstore.delete(store, "t/guarded")
    # Attributes, and a URL signed by object_store.
    obstore.put(store, "t/typed.txt", b"typed", attributes={"Content-Type": "text/x-test", "Cache-Control": "no-cache"})
    got = obstore.get(store, "t/typed.txt")
    assert got.attributes.get("Content-Type") == "text/x-test", got.attributes
    assert got.attributes.get("Cache-Control") == "no-cache", got.attributes
    url = obstore.sign(store, "GET", "t/typed.txt", datetime.timedelta(minutes=5))
    with urllib.request.urlopen(url) as signed:
        assert signed.read() == b"typed"
    obstore.delete(store, "t/typed.txt")

    meta = obstore.head(store, "t/one.bin")
    assert meta["size"] == len(data), meta
    obstore.copy(store, "t/one.bin", "u/copy.bin")
    obstore.rename(store, "u/copy.bin", "u/renamed.bin")
    listed = sorted(m["path"] for batch in obstore.list(store) for m in batch)
    assert listed == ["t/big.bin", "t/one.bin", "u/renamed.bin"], listed
    top = obstore.list_with_delimiter(store)
    assert sorted(top["common_prefixes"]) == ["t", "u"] and top["objects"] == [], top
    obstore.delete(store, ["t/one.bin", "t/big.bin", "u/renamed.bin"])
    assert [m for batch in obstore.list(store) for m in batch] == []
    client().delete_bucket(Bucket=bucket)


which = os.environ.get("SDKS", "minio pyarrow obstore").split()
for name in which:
    globals()[f"check_{name}"]()
    print(f"{name}: ok")
print("ok")
