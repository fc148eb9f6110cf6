import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { BlobStore } from './blob-store';
import { createSpool } from './spool';

export interface S3Settings {
  endpoint?: string;
  bucket: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
}

/**
 * An S3-compatible bucket through the AWS SDK v3. Uploads go through lib-storage's `Upload`
 * (from memory, or streamed from the spool file, multipart past 5 MB): a plain streamed PutObject
 * would be stored with its aws-chunked framing by some S3-compatible servers.
 */
export function createS3BlobStore(s: S3Settings): BlobStore & { client: S3Client } {
  const client = new S3Client({
    endpoint: s.endpoint,
    region: s.region,
    forcePathStyle: s.forcePathStyle,
    credentials: s.accessKeyId && s.secretAccessKey ? { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } : undefined,
  });
  const upload = (key: string, body: Readable | Buffer, contentType: string) =>
    new Upload({ client, params: { Bucket: s.bucket, Key: key, Body: body, ContentType: contentType } }).done();
  return {
    kind: 's3',
    client,
    spool: createSpool(path.join(os.tmpdir(), 'kling-tracker-spool')),
    local: false,
    async has(key) {
      try {
        await client.send(new HeadObjectCommand({ Bucket: s.bucket, Key: key }));
        return true;
      } catch (err) {
        if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404) return false;
        throw err;
      }
    },
    async putFile(key, file, contentType) {
      try {
        await upload(key, fs.createReadStream(file), contentType);
      } finally {
        await fs.promises.rm(file, { force: true });
      }
    },
    async putBytes(key, bytes, contentType) {
      await upload(key, bytes, contentType);
    },
    async read(key, range) {
      const out = await client.send(
        new GetObjectCommand({ Bucket: s.bucket, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
      return out.Body as Readable;
    },
    async remove(keys) {
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        await client.send(new DeleteObjectsCommand({ Bucket: s.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
      }
    },
  };
}
