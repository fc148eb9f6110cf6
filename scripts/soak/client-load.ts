import type { Random } from './random';

/** A create the service refused for good (not a 429 or 5xx, which the client retries). */
export interface Refusal {
  index: number;
  status: number;
  body: string;
}

export interface ClientLoad {
  /** Our task id of every create the service answered 200, by the client's external_task_id. */
  accepted: Map<string, string>;
  refused: Refusal[];
  /** Answers the client retried: 5xx, 429, connection errors and timeouts. */
  retries(): number;
  /** Creates still without a final answer (after stop: those the client gave up on). */
  unanswered(): number[];
  /** Stops starting creates; resolves once every one started has its final answer, or gives up on the rest after `timeoutMs`. */
  stop(timeoutMs: number): Promise<void>;
}

export interface LoadOptions {
  baseUrl: string;
  apiKey: string;
  callbackUrl: string;
  ratePerSec: number;
  random: Random;
  /** Names this run's tasks (external_task_id, Idempotency-Key). */
  runId: string;
}

/** First pause before a retry; it doubles up to the cap, so a struggling service is not buried under retries. */
const RETRY_MS = 300;
const MAX_RETRY_MS = 5_000;
const REQUEST_TIMEOUT_MS = 20_000;

/**
 * A client at a steady rate: images (n of 1 to 4) and some text-to-video tasks, each with the
 * receiver as callback_url. As a careful client does, it sends an Idempotency-Key and retries until
 * it gets an answer that is not 5xx or 429, so a create whose answer was lost (a killed API process)
 * is answered by its replay, and "accepted" means the client holds a task id. Retries back off.
 */
export function startClientLoad(o: LoadOptions): ClientLoad {
  const accepted = new Map<string, string>();
  const refused: Refusal[] = [];
  const pending = new Map<number, Promise<void>>();
  let retries = 0;
  let stopped = false;
  let gaveUp = false;
  let abandoned: number[] = [];
  let index = 0;

  const create = async (i: number) => {
    const externalId = `${o.runId}-${i}`;
    const video = o.random.chance(0.2);
    const path = video ? '/v1/videos/text2video' : '/v1/images/generations';
    const body = JSON.stringify({
      prompt: `soak task ${i}`,
      ...(video ? { duration: '5' } : { n: o.random.int(1, 4) }),
      callback_url: o.callbackUrl,
      external_task_id: externalId,
    });
    const headers = { authorization: `Bearer ${o.apiKey}`, 'content-type': 'application/json', 'idempotency-key': externalId };
    for (let pause = RETRY_MS; !gaveUp; pause = Math.min(pause * 2, MAX_RETRY_MS)) {
      const answer = await fetch(o.baseUrl + path, { method: 'POST', headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
        .then(async (res) => ({ status: res.status, text: await res.text() }))
        .catch((err: Error) => ({ status: 0, text: err.message }));
      if (gaveUp) return;
      if (answer.status === 200) return void accepted.set(externalId, JSON.parse(answer.text).data.task_id as string);
      if (answer.status !== 0 && answer.status !== 429 && answer.status < 500) {
        return void refused.push({ index: i, status: answer.status, body: answer.text.slice(0, 300) });
      }
      retries++;
      await new Promise((r) => setTimeout(r, pause));
    }
  };

  // The rate is kept in wall time: a tick that comes late (this process starved of CPU on a loaded
  // machine) starts every create that was due since the last one, instead of one.
  const startedAt = Date.now();
  const timer = setInterval(() => {
    const due = Math.round(((Date.now() - startedAt) * o.ratePerSec) / 1000);
    while (!stopped && index < due) {
      const i = index++;
      pending.set(
        i,
        create(i).finally(() => pending.delete(i)),
      );
    }
  }, 1000 / o.ratePerSec);

  return {
    accepted,
    refused,
    retries: () => retries,
    unanswered: () => (gaveUp ? abandoned : [...pending.keys()]),
    async stop(timeoutMs) {
      stopped = true;
      clearInterval(timer);
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(pending.values()), new Promise((r) => (timeout = setTimeout(r, timeoutMs)))]);
      clearTimeout(timeout);
      abandoned = [...pending.keys()];
      gaveUp = true;
    },
  };
}
