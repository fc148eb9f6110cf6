import ipaddr from 'ipaddr.js';
import { accountBaseUrl, ENV_ACCOUNT_ID } from '../accounts/account-repository';
import type { Config } from '../config';
import type { Db } from '../db/client';
import { unbracketedHost } from '../lib/unbracketed-host';
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
  return baseUrlIsPrivate(c.KLING_BASE_URL);
}

/** Whether an upstream's base URL names a loopback or private address (an account of the pool on a private network). */
export function baseUrlIsPrivate(baseUrl: string): boolean {
  let host: string;
  try {
    host = unbracketedHost(new URL(baseUrl));
  } catch {
    return false;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  return ipaddr.isValid(host) && ipaddr.process(host).range() !== 'unicast';
}

/**
 * How the copying of results is set up (workers and `results backfill`): the store, the download
 * bounds, and which upstreams' file URLs may be on a private network (the environment's, as
 * upstreamIsPrivate says; an account of the pool, as its own base URL says).
 */
export function resultStorageOf(c: Config, db: Db, blobs: BlobStore = createBlobStore(c)) {
  return {
    blobs,
    timeoutMs: c.STORAGE_TIMEOUT_MS,
    inlineMs: c.STORAGE_INLINE_MS,
    holdMs: c.STORAGE_HOLD_MS,
    limits: { maxBytes: c.STORAGE_MAX_BYTES, timeoutMs: c.STORAGE_DOWNLOAD_TIMEOUT_MS, allowPrivate: upstreamIsPrivate(c) },
    accountIsPrivate: async (accountId: string): Promise<boolean> => {
      if (accountId === ENV_ACCOUNT_ID) return false;
      const baseUrl = await accountBaseUrl(db, accountId);
      return baseUrl !== null && baseUrlIsPrivate(baseUrl);
    },
  };
}
