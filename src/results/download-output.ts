import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { deliveryAgent } from '../webhooks/ssrf';
import { SNIFF_BYTES, sniffFileType, type FileType } from './file-types';
import type { Spool } from './spool';

export interface DownloadLimits {
  /** STORAGE_MAX_BYTES: an output larger than this is refused (counted as it streams, whatever Content-Length says). */
  maxBytes: number;
  /** STORAGE_DOWNLOAD_TIMEOUT_MS: the whole download, connect to last byte. */
  timeoutMs: number;
  /** Fetch from private addresses (an upstream on a private network, e.g. the simulator); otherwise as client webhooks. */
  allowPrivate: boolean;
  /** Longest wait for the answer's headers (ANSWER_TIMEOUT_MS unless set; never above timeoutMs). */
  answerTimeoutMs?: number;
  /**
   * timeoutMs is a deadline of the caller's, shorter than STORAGE_DOWNLOAD_TIMEOUT_MS: a transfer
   * still running at it says nothing against the host (the circuit breaker does not count it).
   */
  cutShort?: boolean;
}

/**
 * A downloaded output: its bytes in memory when it is no larger than IN_MEMORY_BYTES, otherwise
 * the spooled file (the caller stores or deletes it).
 */
export type Downloaded = FileType & { size: number; sha256: string } & ({ bytes: Buffer; path?: never } | { path: string; bytes?: never });

/**
 * Outputs up to this size are kept in memory and stored from there (images, short clips): writing
 * a spool file through a stream costs a small output about twice the CPU of downloading it. Larger
 * ones go to a spool file as they arrive, so a process holds at most this much per copy under way.
 */
export const IN_MEMORY_BYTES = 4 * 1024 * 1024;

/** Why a download failed, as the downloads metric counts it. */
export type DownloadFailure = 'http_status' | 'too_large' | 'wrong_type' | 'timeout' | 'network' | 'host_failing';

export class DownloadError extends Error {
  constructor(
    readonly outcome: DownloadFailure,
    message: string,
    /** Trying again cannot help: the bytes are refused, the file is gone, or its address is not one we may fetch or find. */
    readonly permanent = outcome === 'too_large' || outcome === 'wrong_type',
    /**
     * The file's host cannot be reached now (its name does not resolve at the moment, it refuses
     * the connection, there is no route to it, or it sends no answer within the answer timeout):
     * a retry later may pass, but not within the few seconds a client should wait for. True of
     * every permanent failure too: neither is worth keeping the client waiting.
     */
    readonly unreachable = permanent,
  ) {
    super(message);
  }
}

/** A failure to reach the URL that a retry would meet again: a name that does not exist, an address the checks refuse. */
function unreachableForGood(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e.code === 'ENOTFOUND' || /is not allowed/i.test(e.message ?? '');
}

/** Connection failures that say the host cannot be reached now (not a transfer cut short); ETIMEOUT and ESERVFAIL are the resolver's. */
const UNREACHABLE_NOW = new Set(['EAI_AGAIN', 'ETIMEOUT', 'ESERVFAIL', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

/** How long the upstream's file server may take to answer (headers) before it counts as unreachable now. */
export const ANSWER_TIMEOUT_MS = 10_000;

const MAX_REDIRECTS = 3;

/** Failed downloads in a row from one host after which it is not waited on. */
export const HOST_FAILURES_TO_BREAK = 3;
/** A failing host is tried again (one download) after 1 s, then after twice as long each time it still fails, up to 30 s. */
const FIRST_PAUSE_MS = 1000;
const MAX_PAUSE_MS = 30_000;
const MAX_TRACKED_HOSTS = 1000;

/** This process's view of a file host that has failed lately (one that has not is not tracked). */
interface HostTrouble {
  /** Downloads in a row that failed for a reason that may pass (network, no answer, 5xx); a refused file says nothing of the host. */
  failures: number;
  /** Once failing: no download before this time (ms), and then one at a time. */
  retryAt: number;
  pauseMs: number;
  trialRunning: boolean;
}

const troubledHosts = new Map<string, HostTrouble>();

function noteHostFailure(host: string): void {
  let t = troubledHosts.get(host);
  if (!t) {
    if (troubledHosts.size >= MAX_TRACKED_HOSTS) troubledHosts.delete(troubledHosts.keys().next().value!);
    t = { failures: 0, retryAt: 0, pauseMs: 0, trialRunning: false };
    troubledHosts.set(host, t);
  }
  t.failures++;
  if (t.failures >= HOST_FAILURES_TO_BREAK) {
    t.pauseMs = t.pauseMs ? Math.min(t.pauseMs * 2, MAX_PAUSE_MS) : FIRST_PAUSE_MS;
    t.retryAt = Date.now() + t.pauseMs;
  }
}

/**
 * Downloads one output from the upstream, hashing it on the way: kept in memory up to
 * IN_MEMORY_BYTES, streamed into a spool file past that (never held whole). The first bytes must be
 * the expected kind of file (an image for images, a video for videos), whatever Content-Type claims.
 * Throws a DownloadError; the spool file, if any, is then removed.
 *
 * A host whose last HOST_FAILURES_TO_BREAK downloads failed for a reason that may pass is not
 * waited on (a circuit breaker): downloads from it fail at once as unreachable for now
 * (`host_failing`), so each task succeeds with the upstream's URLs without first waiting out a
 * timeout of its own, until a trial download gets through. Trials go one at a time, 1 s after the
 * last failure, then twice as long each time, up to 30 s; the others fail at once meanwhile (a
 * breaker library that makes them wait for the trial would hold every copy slot as long as a dead
 * host takes to time out).
 */
export async function downloadOutput(url: string, expected: 'image' | 'video', spool: Spool, limits: DownloadLimits): Promise<Downloaded> {
  if (!URL.canParse(url)) return download(url, expected, spool, limits);
  const { host } = new URL(url);
  const trouble = troubledHosts.get(host);
  const trial = trouble !== undefined && trouble.failures >= HOST_FAILURES_TO_BREAK;
  if (trial && (trouble.trialRunning || Date.now() < trouble.retryAt))
    throw new DownloadError('host_failing', `${host} failed its last downloads; not waited on until one gets through`, false, true);
  if (trial) trouble.trialRunning = true;
  try {
    const got = await download(url, expected, spool, limits);
    troubledHosts.delete(host);
    return got;
  } catch (err) {
    const oursRanOut = limits.cutShort && err instanceof DownloadError && err.outcome === 'timeout' && !err.unreachable;
    if (err instanceof DownloadError && !err.permanent && !oursRanOut) noteHostFailure(host);
    throw err;
  } finally {
    if (trial) trouble.trialRunning = false;
  }
}

async function download(url: string, expected: 'image' | 'video', spool: Spool, limits: DownloadLimits): Promise<Downloaded> {
  let file: string | null = null;
  let spooled: fs.promises.FileHandle | null = null;
  const abort = AbortSignal.timeout(limits.timeoutMs);
  // The request ends with the whole download's deadline, or earlier if no answer comes in time.
  // Once answered, the body is bounded by `abort` alone.
  const request = new AbortController();
  const endRequest = () => request.abort();
  abort.addEventListener('abort', endRequest, { once: true });
  const answerTimer = setTimeout(endRequest, Math.min(limits.timeoutMs, limits.answerTimeoutMs ?? ANSWER_TIMEOUT_MS));
  let endBody: (() => void) | undefined;
  try {
    const res = await openFollowingRedirects(url, limits, request.signal)
      .catch((err: unknown) => {
        if (request.signal.aborted && !abort.aborted)
          throw new DownloadError('timeout', 'the file server sent no answer in time', false, true);
        throw err;
      })
      .finally(() => {
        clearTimeout(answerTimer);
        abort.removeEventListener('abort', endRequest);
      });
    endBody = () => res.destroy(new Error('the download ran out of time'));
    abort.addEventListener('abort', endBody, { once: true });
    const hash = createHash('sha256');
    const held: Buffer[] = [];
    let size = 0;
    let head = Buffer.alloc(0);
    let type: FileType | null = null;
    // Reading waits while a chunk is written: the spool file sets the pace, not the sender.
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limits.maxBytes) throw new DownloadError('too_large', `larger than ${limits.maxBytes} bytes`);
      if (!type) {
        head = Buffer.concat([head, chunk]).subarray(0, SNIFF_BYTES);
        if (head.length >= SNIFF_BYTES) type = checkedType(head, expected);
      }
      hash.update(chunk);
      if (spooled) {
        await spooled.writeFile(chunk);
        continue;
      }
      held.push(chunk);
      if (size <= IN_MEMORY_BYTES) continue;
      ({ path: file, handle: spooled } = await spool.create());
      await spooled.writeFile(Buffer.concat(held.splice(0)));
    }
    type ??= checkedType(head, expected);
    const got = { ...type, size, sha256: hash.digest('hex') };
    if (!spooled || !file) return { ...got, bytes: held.length === 1 ? held[0] : Buffer.concat(held, size) };
    await spooled.close();
    spooled = null;
    return { ...got, path: file };
  } catch (err) {
    await spooled?.close().catch(() => undefined);
    if (file) await fs.promises.rm(file, { force: true });
    if (err instanceof DownloadError) throw err;
    if (abort.aborted) throw new DownloadError('timeout', `no complete answer within ${limits.timeoutMs} ms`);
    const code = (err as { code?: string }).code ?? '';
    throw new DownloadError(
      'network',
      (err as Error).message,
      unreachableForGood(err),
      unreachableForGood(err) || UNREACHABLE_NOW.has(code),
    );
  } finally {
    if (endBody) abort.removeEventListener('abort', endBody);
  }
}

function checkedType(head: Buffer, expected: 'image' | 'video'): FileType {
  const type = sniffFileType(head);
  if (!type || type.kind !== expected)
    throw new DownloadError('wrong_type', `the bytes are not ${expected === 'image' ? 'an image' : 'a video'}`);
  return type;
}

async function openFollowingRedirects(url: string, limits: DownloadLimits, signal: AbortSignal): Promise<http.IncomingMessage> {
  let target = new URL(url);
  for (let hop = 0; ; hop++) {
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new DownloadError('network', 'not an http(s) URL');
    const res = await get(target, limits.allowPrivate, signal);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location && hop < MAX_REDIRECTS) {
      res.resume();
      target = new URL(res.headers.location, target);
      continue;
    }
    if (status !== 200) {
      res.resume();
      // 4xx: the file is gone or refused to us (408 and 429 excepted); 5xx and the rest may pass.
      throw new DownloadError(
        'http_status',
        `the upstream answered ${status}`,
        status >= 400 && status < 500 && status !== 408 && status !== 429,
      );
    }
    return res;
  }
}

/** A GET through the same address checks as client webhooks (unless private addresses are allowed). */
function get(url: URL, allowPrivate: boolean, signal: AbortSignal): Promise<http.IncomingMessage> {
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { agent: deliveryAgent(url, allowPrivate), signal }, resolve);
    req.once('error', reject);
  });
}
