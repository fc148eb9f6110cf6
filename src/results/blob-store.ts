import type { Readable } from 'node:stream';
import type { Spool } from './spool';

/** A byte range, both ends included (as HTTP writes them). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where durable copies of results are kept, by key. Keys name content (`blobKey`), so an object is
 * written once and never changed: a second store of the same key may skip the write.
 */
export interface BlobStore {
  /** `directory` or `s3` (logs, metrics). */
  kind: string;
  /** Where a download is spooled before it is stored (for the directory store, on its own filesystem: storing is a rename). */
  spool: Spool;
  /** Storing is local (a rename and a sync to this machine's disk), not a transfer to another host. */
  local: boolean;
  has(key: string): Promise<boolean>;
  /** Stores a spooled file under `key`; the file is gone afterwards (moved or deleted). */
  putFile(key: string, path: string, contentType: string): Promise<void>;
  /** Stores bytes held in memory under `key` (an output small enough to be downloaded into memory). */
  putBytes(key: string, bytes: Buffer, contentType: string): Promise<void>;
  read(key: string, range?: ByteRange): Promise<Readable>;
  /** Deletes objects; a missing one is no error. */
  remove(keys: string[]): Promise<void>;
}

/** Content addressing: the object of a SHA-256 (hex), fanned out over 256 prefixes. */
export const blobKey = (sha256: string) => `${sha256.slice(0, 2)}/${sha256}`;
