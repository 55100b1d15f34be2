// What a web page does with the AWS SDK for JavaScript v3 against a bucket
// of another origin (bundled by esbuild for Chromium; tests/browser.rs):
// PutObject with the SDK's default CRC32 and metadata, GetObject with the
// checksum validated, HeadObject, a ranged read, ListObjectsV2, a multipart
// upload through lib-storage (it reads each part's ETag, so the bucket's
// CORS rules must expose it), CopyObject, DeleteObjects. Each step's
// outcome joins the page's text; the last word is OK or the failure.
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  CopyObjectCommand,
  DeleteObjectsCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

export async function run(endpoint, bucket) {
  const seen = [];
  const s3 = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "secret/key+1" },
    maxAttempts: 1,
  });
  const check = (cond, what) => {
    if (!cond) {
      throw new Error(`check failed: ${what}`);
    }
  };
  try {
    const text = "from a page, with the SDK";
    const put = await s3.send(new PutObjectCommand({
      Bucket: bucket, Key: "app/note.txt", Body: text, ContentType: "text/plain", Metadata: { from: "browser" },
    }));
    seen.push(`PUT ${put.ETag}`);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "app/note.txt", ChecksumMode: "ENABLED" }));
    const body = await got.Body.transformToString();
    check(body === text, `GET gave ${body}`);
    check(got.Metadata.from === "browser", `metadata ${JSON.stringify(got.Metadata)}`);
    seen.push(`GET ${body.length} bytes, checksum ${got.ChecksumCRC32}`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "app/note.txt" }));
    check(head.ContentLength === text.length && head.ETag === put.ETag, "HEAD");
    // A range of another object: one the page has read whole is in the
    // browser's cache, which answers a range of it itself, after a 304,
    // with the whole object's checksum header, and the SDK reports a
    // mismatch (it would against S3 too).
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "app/copy.txt", Body: text }));
    const range = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "app/copy.txt", Range: "bytes=0-3" }));
    check((await range.Body.transformToString()) === "from", "a range");
    // 11 MiB in 5 MiB parts: lib-storage needs each part's ETag header.
    const big = new Uint8Array(11 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) {
      big[i] = (i * 7 + (i >> 12)) & 0xff;
    }
    const done = await new Upload({
      client: s3, params: { Bucket: bucket, Key: "app/big.bin", Body: big }, partSize: 5 * 1024 * 1024, queueSize: 2,
    }).done();
    check(/-3"$/.test(done.ETag), `multipart ETag ${done.ETag}`);
    const back = new Uint8Array(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "app/big.bin" })))
      .Body.transformToByteArray());
    check(back.length === big.length && back.every((b, i) => b === big[i]), "the multipart object came back whole");
    seen.push(`UPLOAD ${done.ETag}`);
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "app/copy.txt", CopySource: `${bucket}/app/note.txt` }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "app/" }));
    const keys = (listed.Contents ?? []).map((o) => o.Key).join(",");
    check(keys === "app/big.bin,app/copy.txt,app/note.txt", `listed ${keys}`);
    seen.push(`LIST ${keys}`);
    const deleted = await s3.send(new DeleteObjectsCommand({
      Bucket: bucket, Delete: { Objects: keys.split(",").map((Key) => ({ Key })) },
    }));
    check(deleted.Deleted.length === 3, `deleted ${JSON.stringify(deleted)}`);
    seen.push("DELETED 3");
    seen.push("OK");
  } catch (e) {
    seen.push(`FAILED ${e.name}: ${e.message}`);
  }
  return seen.join(" | ");
}
