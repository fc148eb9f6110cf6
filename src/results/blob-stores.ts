import ipaddr from 'ipaddr.js';
import type { Config } from '../config';
import type { BlobStore } from './blob-store';
import { createDirBlobStore } from './dir-blob-store';
import { createS3BlobStore } from './s3-blob-store';

/** The configured store: an S3-compatible bucket when S3_BUCKET is set, else the directory STORAGE_DIR. */
export function createBlobStore(c: Config): BlobStore {
  if (!c.S3_BUCKET) return createDirBlobStore(c.STORAGE_DIR);
  return createS3BlobStore({
    endpoint: c.S3_ENDPOINT,
    bucket: c.S3_BUCKET,
    region: c.S3_REGION,
    accessKeyId: c.S3_ACCESS_KEY_ID,
    secretAccessKey: c.S3_SECRET_ACCESS_KEY,
    forcePathStyle: c.S3_FORCE_PATH_STYLE,
  });
}

/**
 * Result URLs are fetched with the client webhooks' address checks, unless the upstream itself is
 * on a private network (the built-in simulator, or a KLING_BASE_URL naming a loopback or private
 * address): its file URLs are then on that network too.
 */
export function upstreamIsPrivate(c: Pick<Config, 'useSimulator' | 'KLING_BASE_URL'>): boolean {
  if (c.useSimulator || !c.KLING_BASE_URL) return true;
  const host = new URL(c.KLING_BASE_URL).hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  return ipaddr.isValid(host) && ipaddr.process(host).range() !== 'unicast';
}
