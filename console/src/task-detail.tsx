import { useEffect, useState } from 'preact/hooks';
import { api, type Delivery, type TaskDetail } from './api';
import { bytes, isFinished, stage, time } from './format';
import { onLiveTask } from './live';
import { Head } from './table';

/** How often an open detail re-reads while a delivery may still change (deliveries publish no live change). */
const DELIVERY_REFRESH_MS = 2000;

export function TaskDetailView({ id }: { id: string }) {
  const [detail, setDetail] = useState<TaskDetail | null>(null);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');

  const load = () =>
    api<TaskDetail>('GET', `/tasks/${encodeURIComponent(id)}`).then(
      (d) => {
        setDetail(d);
        setError('');
      },
      (err: Error) => setError(err.message),
    );

  useEffect(() => {
    setDetail(null);
    void load();
    const stop = onLiveTask((t) => t.task_id === id && void load());
    return stop;
  }, [id]);

  const busy = detail && (!isFinished(detail.task) || detail.deliveries.some((d) => d.status === 'pending'));
  useEffect(() => {
    if (!busy) return;
    const timer = setInterval(() => void load(), DELIVERY_REFRESH_MS);
    return () => clearInterval(timer);
  }, [busy, id]);

  useEffect(() => document.getElementById('detail-title')?.focus(), [detail?.task.task_id]);

  async function act(what: string, path: string) {
    setNotice('');
    try {
      await api('POST', path);
      setNotice(what);
      await load();
    } catch (err) {
      setNotice(`Refused: ${(err as Error).message}`);
    }
  }

  if (error && !detail)
    return (
      <section>
        <h1>Task</h1>
        <p class="error" role="alert">
          {error}
        </p>
        <p>
          <a href="#/">Back to the tasks</a>
        </p>
      </section>
    );
  if (!detail) return <p class="loading">Loading task…</p>;
  const t = detail.task;
  const base = `/tasks/${encodeURIComponent(t.task_id)}`;
  return (
    <article class="detail" aria-labelledby="detail-title">
      <p>
        <a href="#/">← All tasks</a>
      </p>
      <h1 id="detail-title" tabIndex={-1}>
        {detail.kind_title} <code>{t.task_id}</code>
      </h1>
      <p class="row">
        <span class={`status status-${t.task_status}`} data-testid="detail-status">
          {t.task_status}
        </span>
        <span>{stage(t)}</span>
        {t.task_status_msg && <span class="msg">{t.task_status_msg}</span>}
        {!isFinished(t) && t.tracker.state !== 'canceling' && t.tracker.state !== 'timing_out' && (
          <button type="button" class="danger" onClick={() => act('Cancel requested.', `${base}/cancel`)}>
            Cancel task
          </button>
        )}
      </p>
      <p role="status" class="notice">
        {notice}
      </p>
      <Results detail={detail} />
      <FileLocations detail={detail} />
      <section aria-labelledby="params-title">
        <h2 id="params-title">Request</h2>
        <dl class="params">
          {Object.entries(detail.request).map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{typeof v === 'string' ? v : JSON.stringify(v)}</dd>
            </div>
          ))}
          <div>
            <dt>created</dt>
            <dd>{time(t.created_at)}</dd>
          </div>
          {t.tracker.upstream_task_id && (
            <div>
              <dt>upstream task_id</dt>
              <dd>{t.tracker.upstream_task_id}</dd>
            </div>
          )}
        </dl>
      </section>
      <section aria-labelledby="events-title">
        <h2 id="events-title">Events</h2>
        <ol class="timeline">
          {detail.events.map((e) => (
            <li key={e.seq}>
              <time dateTime={new Date(e.at).toISOString()}>{time(e.at)}</time> {e.from ? `${e.from} → ${e.to}` : e.to}{' '}
              <span class="source">({e.source})</span>
            </li>
          ))}
        </ol>
      </section>
      <section aria-labelledby="deliveries-title">
        <h2 id="deliveries-title">Webhook deliveries</h2>
        {detail.deliveries.length === 0 ? (
          <p class="empty-state">
            {detail.request.callback_url
              ? 'None yet: a webhook is sent on each change of the status.'
              : 'None: this task has no callback_url. Give one when creating a task to receive webhooks.'}
          </p>
        ) : (
          detail.deliveries.map((d) => (
            <DeliveryBlock
              key={d.webhook_id}
              d={d}
              onRedeliver={() => act('Redelivery queued.', `${base}/deliveries/${encodeURIComponent(d.webhook_id)}/redeliver`)}
            />
          ))
        )}
      </section>
    </article>
  );
}

function Results({ detail }: { detail: TaskDetail }) {
  const { images = [], videos = [] } = detail.task.task_result;
  if (!images.length && !videos.length) return null;
  return (
    <section aria-labelledby="results-title">
      <h2 id="results-title">Results</h2>
      <div class="results">
        {images.map((img) => (
          <figure key={img.url}>
            <img src={img.url} alt={`Image ${img.index + 1} of task ${detail.task.task_id}`} />
            <figcaption>
              <a href={img.url} download target="_blank" rel="noopener">
                Download image {img.index + 1}
              </a>
            </figcaption>
          </figure>
        ))}
        {videos.map((v, i) => (
          <figure key={v.url}>
            <video src={v.url} controls playsInline preload="metadata" aria-label={`Video ${i + 1} of task ${detail.task.task_id}`} />
            <figcaption>
              <a href={v.url} download target="_blank" rel="noopener">
                Download video {i + 1}
              </a>
              {v.duration && ` (${v.duration} s)`}
            </figcaption>
          </figure>
        ))}
      </div>
    </section>
  );
}

/** Where each result lives: this service's copy (store, key, digest, retention) and the upstream's URL it came from. */
function FileLocations({ detail }: { detail: TaskDetail }) {
  const files = detail.task.tracker.files;
  if (!files) return null;
  const note = {
    none: null,
    storing: 'Copying the results into this service’s store…',
    stored: files.expires_at ? `Kept here until ${time(files.expires_at)}.` : 'Kept here with no expiry.',
    upstream:
      'Not copied: these are the upstream’s own links, which it deletes after about 30 days. A copy that may still succeed is retried, and an operator can run results backfill.',
    expired: `The copies were deleted by retention${files.expired_at ? ` on ${time(files.expired_at)}` : ''}.`,
  }[files.state];
  if (!note && detail.files.length === 0) return null;
  return (
    <section aria-labelledby="files-title">
      <h2 id="files-title">Where the files live</h2>
      {note && <p data-testid="files-state">{note}</p>}
      {detail.files.length > 0 && (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Stored copies of the results</caption>
            <Head columns={['output', 'type', 'size', 'store', 'key', 'stored', 'copied from']} />
            <tbody>
              {detail.files.map((f) => (
                <tr key={f.output} data-testid="stored-file">
                  <td>{f.output}</td>
                  <td>{f.content_type}</td>
                  <td>{bytes(f.size)}</td>
                  <td>{f.store ?? '—'}</td>
                  <td class="answer">
                    <code>{f.storage_key}</code>
                  </td>
                  <td>{time(f.stored_at)}</td>
                  <td class="url">{f.upstream_url}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function DeliveryBlock({ d, onRedeliver }: { d: Delivery; onRedeliver: () => void }) {
  return (
    <div class="delivery" data-webhook-id={d.webhook_id}>
      <p class="row">
        <strong>{d.event_type}</strong>
        <span class={`delivery-status delivery-${d.status}`}>{d.status}</span>
        <span class="url">{d.url}</span>
        {d.status !== 'pending' && (
          <button type="button" class="secondary" onClick={onRedeliver}>
            Redeliver
          </button>
        )}
      </p>
      {d.next_attempt_at && d.status === 'pending' && <p>Next attempt {time(d.next_attempt_at)}</p>}
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">Attempts of {d.event_type}</caption>
          <Head columns={['attempt', 'time', 'duration', 'HTTP status', 'answer (first bytes) or error']} />
          <tbody>
            {d.attempts.map((a) => (
              <tr key={`${a.chain}-${a.attempt}`}>
                <td>
                  {a.chain > 1 ? `redelivery ${a.chain - 1}, ` : ''}#{a.attempt}
                </td>
                <td>{time(a.at)}</td>
                <td>{a.duration_ms} ms</td>
                <td>{a.http_status ?? '—'}</td>
                <td class="answer">{a.error ?? a.response_body ?? '(not kept: private address)'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
