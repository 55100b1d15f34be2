// Makes the bucket of tests/browser.rs's SDK page (BUCKET at S3_ENDPOINT)
// and gives it the CORS rules a web app's bucket needs for the page's
// ORIGIN: every method, any request header (the SDK sends its own), and
// the response headers the SDK reads exposed (ETag for lib-storage's
// parts, the metadata, the checksum). Prints "ok".
import { S3Client, CreateBucketCommand, PutBucketCorsCommand } from "@aws-sdk/client-s3";

const s3 = new S3Client({
  endpoint: process.env.S3_ENDPOINT,
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "secret/key+1" },
  maxAttempts: 1,
});
const Bucket = process.env.BUCKET;
await s3.send(new CreateBucketCommand({ Bucket }));
await s3.send(new PutBucketCorsCommand({
  Bucket,
  CORSConfiguration: {
    CORSRules: [{
      AllowedOrigins: [process.env.ORIGIN],
      AllowedMethods: ["GET", "PUT", "POST", "DELETE", "HEAD"],
      AllowedHeaders: ["*"],
      ExposeHeaders: ["ETag", "x-amz-meta-from", "x-amz-checksum-crc32"],
      MaxAgeSeconds: 60,
    }],
  },
}));
console.log("ok");
