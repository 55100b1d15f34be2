// The AWS SDK for JavaScript v3 (@aws-sdk/client-s3, lib-storage, the
// presigner) against the daemon at S3_ENDPOINT, as a Node service uses it:
// its default CRC32 checksums on uploads (aws-chunked with a trailer, or a
// header), reads that validate them, metadata, ranges, conditionals, copies,
// listings with the paginator, batch deletes, lib-storage's multipart
// Upload, presigned GET and PUT URLs, tags, and the errors the SDK maps.
// Prints "ok" when every check holds.
import { createHash } from "node:crypto";
import {
  S3Client,
  CreateBucketCommand,
  HeadBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  DeleteBucketCommand,
  ListBucketsCommand,
  GetObjectTaggingCommand,
  PutObjectTaggingCommand,
  ListMultipartUploadsCommand,
  paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const endpoint = process.env.S3_ENDPOINT;
const credentials = { accessKeyId: "AKIDTEST", secretAccessKey: "secret/key+1" };

function client(extra = {}) {
  return new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials, maxAttempts: 1, ...extra });
}

function assert(cond, what) {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
}

function md5(bytes) {
  return createHash("md5").update(bytes).digest("hex");
}

function content(name, size) {
  const seed = createHash("sha256").update(name).digest();
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += seed.length) {
    seed.copy(out, i, 0, Math.min(seed.length, size - i));
  }
  return out;
}

async function failsWith(promise, name, status) {
  try {
    await promise;
  } catch (e) {
    // A 304 has no body to name it: the SDK calls it Unknown, as with S3.
    assert(name === null || e.name === name, `error ${e.name} (${e.message}), expected ${name}`);
    assert(e.$metadata.httpStatusCode === status, `status ${e.$metadata.httpStatusCode}, expected ${status}`);
    return;
  }
  throw new Error(`expected ${name}, the call succeeded`);
}

const s3 = client();
const bucket = "js-sdk";

await s3.send(new CreateBucketCommand({ Bucket: bucket }));
await s3.send(new HeadBucketCommand({ Bucket: bucket }));
const buckets = await s3.send(new ListBucketsCommand({}));
assert(buckets.Buckets.some((b) => b.Name === bucket), "ListBuckets names the bucket");

// PutObject with the SDK's default checksum (CRC32), metadata and a type.
const small = content("small", 100_000);
const put = await s3.send(
  new PutObjectCommand({
    Bucket: bucket,
    Key: "dir/small.bin",
    Body: small,
    ContentType: "application/x-test",
    Metadata: { colour: "blue", "two-words": "a b" },
  }),
);
assert(put.ETag === `"${md5(small)}"`, `ETag ${put.ETag} is the MD5`);

// A streamed body of unknown length: the SDK sends it aws-chunked with its
// CRC32 in a trailer.
const { Readable } = await import("node:stream");
const streamed = content("streamed", 300_000);
await s3.send(
  new PutObjectCommand({
    Bucket: bucket,
    Key: "dir/streamed.bin",
    Body: Readable.from([streamed.subarray(0, 70_000), streamed.subarray(70_000)]),
    ContentLength: streamed.length,
  }),
);

// GetObject, its checksum validated by the SDK (ChecksumMode).
const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "dir/small.bin", ChecksumMode: "ENABLED" }));
const gotBytes = Buffer.from(await got.Body.transformToByteArray());
assert(gotBytes.equals(small), "GetObject returns the bytes");
assert(got.ContentType === "application/x-test", `ContentType ${got.ContentType}`);
assert(got.Metadata.colour === "blue" && got.Metadata["two-words"] === "a b", `Metadata ${JSON.stringify(got.Metadata)}`);
assert(got.ChecksumCRC32, "the stored CRC32 is returned");
const gotStreamed = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "dir/streamed.bin" }));
assert(Buffer.from(await gotStreamed.Body.transformToByteArray()).equals(streamed), "the streamed body is stored whole");

// A range, and conditionals the SDK maps to errors.
const range = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "dir/small.bin", Range: "bytes=10-19" }));
assert(Buffer.from(await range.Body.transformToByteArray()).equals(small.subarray(10, 20)), "a range");
assert(range.ContentRange === `bytes 10-19/${small.length}`, `ContentRange ${range.ContentRange}`);
const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "dir/small.bin" }));
assert(head.ContentLength === small.length && head.ETag === put.ETag, "HeadObject");
await failsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: "dir/small.bin", IfMatch: '"nope"' })), "PreconditionFailed", 412);
await failsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: "dir/small.bin", IfNoneMatch: put.ETag })), null, 304);
await failsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: "missing" })), "NoSuchKey", 404);
await failsWith(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "missing" })), "NotFound", 404);
await failsWith(s3.send(new GetObjectCommand({ Bucket: "no-such-bucket", Key: "k" })), "NoSuchBucket", 404);
await failsWith(client({ credentials: { ...credentials, secretAccessKey: "wrong" } }).send(
  new GetObjectCommand({ Bucket: bucket, Key: "dir/small.bin" }),
), "SignatureDoesNotMatch", 403);

// Copy, with new metadata.
await s3.send(
  new CopyObjectCommand({
    Bucket: bucket,
    Key: "copy.bin",
    CopySource: `${bucket}/dir/small.bin`,
    MetadataDirective: "REPLACE",
    Metadata: { copied: "yes" },
  }),
);
const copy = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "copy.bin" }));
assert(copy.Metadata.copied === "yes" && copy.ETag === put.ETag, "the copy has the new metadata and the same ETag");

// Tags.
await s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: "copy.bin", Tagging: { TagSet: [{ Key: "k", Value: "v 1" }] } }));
const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: "copy.bin" }));
assert(tags.TagSet.length === 1 && tags.TagSet[0].Value === "v 1", `tags ${JSON.stringify(tags.TagSet)}`);

// lib-storage's Upload: 5 MiB parts, four at a time, with CRC32 per part.
const big = content("big", 17 * 1024 * 1024 + 12345);
const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: "big.bin", Body: big }, partSize: 5 * 1024 * 1024, queueSize: 4 });
const done = await upload.done();
assert(/-4"$/.test(done.ETag), `a multipart ETag with 4 parts: ${done.ETag}`);
const bigBack = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "big.bin" }));
assert(Buffer.from(await bigBack.Body.transformToByteArray()).equals(big), "the multipart object is whole");
const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
assert((uploads.Uploads ?? []).length === 0, "no upload is left behind");

// Presigned URLs, used with fetch() as a browser would. With its default
// checksums the SDK signs the CRC32 of an empty body into a PutObject URL
// (x-amz-checksum-crc32=AAAAAA==), so S3 refuses any other body with
// BadDigest; AWS's advice is a client made with WHEN_REQUIRED for presigning.
const presigned = { Bucket: bucket, Key: "presigned/a b+c.txt", ContentType: "text/plain" };
const emptyCrcUrl = await getSignedUrl(s3, new PutObjectCommand(presigned), { expiresIn: 300 });
assert(emptyCrcUrl.includes("x-amz-checksum-crc32=AAAAAA%3D%3D"), `the default presigned PUT signs an empty body's CRC32: ${emptyCrcUrl}`);
let r = await fetch(emptyCrcUrl, { method: "PUT", body: "hello presigned", headers: { "content-type": "text/plain" } });
assert(r.status === 400 && (await r.text()).includes("<Code>BadDigest</Code>"), `a body that is not the signed checksum's: ${r.status}`);
const presigner = client({ requestChecksumCalculation: "WHEN_REQUIRED" });
const putUrl = await getSignedUrl(presigner, new PutObjectCommand(presigned), { expiresIn: 300 });
r = await fetch(putUrl, { method: "PUT", body: "hello presigned", headers: { "content-type": "text/plain" } });
assert(r.status === 200, `presigned PUT: ${r.status} ${await r.text()}`);
const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: "presigned/a b+c.txt", ResponseContentDisposition: "attachment; filename=\"x.txt\"" }), { expiresIn: 300 });
r = await fetch(getUrl);
assert(r.status === 200 && (await r.text()) === "hello presigned", "presigned GET");
assert(r.headers.get("content-disposition") === 'attachment; filename="x.txt"', `content-disposition ${r.headers.get("content-disposition")}`);
r = await fetch(getUrl.replace("presigned/", "presigned/x"));
assert(r.status === 403, `a presigned URL changed after signing: ${r.status}`);

// Listing with the paginator, in pages of 7 over 30 keys and a delimiter.
const keys = [];
for (let i = 0; i < 30; i++) {
  keys.push(`list/${String(i).padStart(2, "0")}`);
}
await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Key }))));
const listed = [];
let pages = 0;
for await (const page of paginateListObjectsV2({ client: s3, pageSize: 7 }, { Bucket: bucket, Prefix: "list/" })) {
  pages++;
  for (const o of page.Contents ?? []) {
    listed.push(o.Key);
  }
}
assert(JSON.stringify(listed) === JSON.stringify(keys), `listed ${listed.length} keys`);
assert(pages === 5, `${pages} pages of 7`);
const top = [];
for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Delimiter: "/" })) {
  top.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix), ...(page.Contents ?? []).map((o) => o.Key));
}
assert(JSON.stringify(top.sort()) === JSON.stringify(["big.bin", "copy.bin", "dir/", "list/", "presigned/"]), `top level ${top}`);

// Batch delete (the SDK sends its CRC32 of the document), then the rest.
const deleted = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
assert(deleted.Deleted.length === 30 && !(deleted.Errors ?? []).length, "DeleteObjects deletes 30");
await failsWith(s3.send(new DeleteBucketCommand({ Bucket: bucket })), "BucketNotEmpty", 409);
for (const Key of ["dir/small.bin", "dir/streamed.bin", "copy.bin", "big.bin", "presigned/a b+c.txt"]) {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
}
await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
await failsWith(s3.send(new HeadBucketCommand({ Bucket: bucket })), "NotFound", 404);
console.log("ok");
