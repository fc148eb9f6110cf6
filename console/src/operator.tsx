import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { age, time } from './format';
import { Head } from './table';

interface Overview {
  accounts: {
    id: string;
    name: string;
    enabled: boolean;
    health: string;
    pools: Record<string, { in_use: number; limit: number }>;
    balance: number | null;
  }[];
  queues: { name: string; waiting: number; active: number; delayed: number; failed: number; oldest_waiting_at: number | null }[];
  queue_dashboard: string;
  failures: { reason: string | null; message: string | null; count: number }[];
  tenants: {
    id: string;
    name: string;
    api_key_prefix: string;
    revoked: boolean;
    tasks: number;
    unfinished: number;
    succeeded: number;
    failed: number;
    slots_used: number;
  }[];
  dead_deliveries: {
    webhook_id: string;
    task_id: string;
    tenant_id: string;
    event_type: string;
    url: string;
    last_error: string | null;
    updated_at: number;
  }[];
}

const REFRESH_MS = 5000;

export function OperatorView() {
  const [data, setData] = useState<Overview | null>(null);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [selected, setSelected] = useState<Set<string>>(new Set());

  const load = () =>
    api<Overview>('GET', '/operator/overview').then(
      (d) => {
        setData(d);
        setError('');
      },
      (err: Error) => setError(err.message),
    );
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(timer);
  }, []);

  async function setEnabled(id: string, enable: boolean) {
    setNotice('');
    try {
      await api('POST', `/operator/accounts/${encodeURIComponent(id)}/${enable ? 'enable' : 'disable'}`);
      setNotice(`Account ${enable ? 'enabled' : 'disabled'}.`);
      await load();
    } catch (err) {
      setNotice(`Refused: ${(err as Error).message}`);
    }
  }

  async function redeliverSelected() {
    setNotice('');
    try {
      const results = await api<{ ok: boolean }[]>('POST', '/operator/deliveries/redeliver', { webhook_ids: [...selected] });
      setNotice(`${results.filter((r) => r.ok).length} of ${results.length} deliveries queued again.`);
      setSelected(new Set());
      await load();
    } catch (err) {
      setNotice(`Refused: ${(err as Error).message}`);
    }
  }

  if (!data)
    return error ? (
      <p class="error" role="alert">
        Could not load the overview: {error}. It is retried every few seconds.
      </p>
    ) : (
      <p class="loading">Loading…</p>
    );
  const toggle = (id: string) =>
    setSelected((s) => {
      const n = new Set(s);
      if (!n.delete(id)) n.add(id);
      return n;
    });
  return (
    <section aria-labelledby="operator-title" class="operator">
      <h1 id="operator-title">Operator</h1>
      {error && (
        <p class="error" role="alert">
          Last refresh failed: {error}
        </p>
      )}
      <p role="status" class="notice">
        {notice}
      </p>

      <h2 id="accounts-title">Upstream accounts</h2>
      <div class="table-wrap">
        <table aria-labelledby="accounts-title">
          <thead>
            <tr>
              <th scope="col">account</th>
              <th scope="col">enabled</th>
              <th scope="col">health</th>
              <th scope="col">image slots</th>
              <th scope="col">video slots</th>
              <th scope="col">balance</th>
              <th scope="col">
                <span class="visually-hidden">actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.accounts.map((a) => (
              <tr key={a.id} data-account-id={a.id}>
                <td>{a.name}</td>
                <td>{a.enabled ? 'yes' : 'no'}</td>
                <td class={`health health-${a.health === 'ok' ? 'ok' : 'bad'}`}>{a.health}</td>
                <td>
                  {a.pools.image?.in_use ?? 0} / {a.pools.image?.limit ?? 0}
                </td>
                <td>
                  {a.pools.video?.in_use ?? 0} / {a.pools.video?.limit ?? 0}
                </td>
                <td>{a.balance ?? 'unknown'}</td>
                <td>
                  <button type="button" class="secondary" onClick={() => setEnabled(a.id, !a.enabled)}>
                    {a.enabled ? 'Disable' : 'Enable'} {a.name}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2 id="queues-title">Queues</h2>
      <p>
        <a href={data.queue_dashboard}>Open the queue dashboard</a> for single jobs.
      </p>
      <div class="table-wrap">
        <table aria-labelledby="queues-title">
          <Head columns={['queue', 'waiting', 'active', 'delayed', 'failed', 'oldest waiting']} />
          <tbody>
            {data.queues.map((q) => (
              <tr key={q.name}>
                <td>{q.name}</td>
                <td>{q.waiting}</td>
                <td>{q.active}</td>
                <td>{q.delayed}</td>
                <td>{q.failed}</td>
                <td>{q.oldest_waiting_at ? age(q.oldest_waiting_at) : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2 id="failures-title">Failures of the last day</h2>
      {data.failures.length === 0 ? (
        <p class="empty-state">No task failed in the last 24 hours.</p>
      ) : (
        <div class="table-wrap">
          <table aria-labelledby="failures-title">
            <Head columns={['tasks', 'reason', 'message']} />
            <tbody>
              {data.failures.map((f, i) => (
                <tr key={i}>
                  <td>{f.count}</td>
                  <td>{f.reason ?? '—'}</td>
                  <td>{f.message ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2 id="tenants-title">Tenants (tasks of the last 30 days)</h2>
      {data.tenants.length === 0 ? (
        <p class="empty-state">
          No tenants yet: create one with <code>npm run cli -- keys create --name NAME</code>.
        </p>
      ) : (
        <div class="table-wrap">
          <table aria-labelledby="tenants-title">
            <Head columns={['tenant', 'key', 'tasks', 'unfinished', 'succeeded', 'failed', 'slots used']} />
            <tbody>
              {data.tenants.map((t) => (
                <tr key={t.id}>
                  <td>
                    {t.name}
                    {t.revoked && ' (revoked)'}
                  </td>
                  <td>
                    <code>{t.api_key_prefix}…</code>
                  </td>
                  <td>{t.tasks}</td>
                  <td>{t.unfinished}</td>
                  <td>{t.succeeded}</td>
                  <td>{t.failed}</td>
                  <td>{t.slots_used}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2 id="dead-title">Dead webhook deliveries</h2>
      {data.dead_deliveries.length === 0 ? (
        <p class="empty-state">No dead deliveries: every webhook was delivered or is still being retried.</p>
      ) : (
        <>
          <p class="row">
            <button
              type="button"
              class="secondary"
              onClick={() => setSelected(selected.size ? new Set() : new Set(data.dead_deliveries.map((d) => d.webhook_id)))}
            >
              {selected.size ? 'Select none' : 'Select all'}
            </button>
            <button type="button" disabled={!selected.size} onClick={redeliverSelected}>
              Redeliver selected ({selected.size})
            </button>
          </p>
          <div class="table-wrap">
            <table aria-labelledby="dead-title">
              <thead>
                <tr>
                  <th scope="col">
                    <span class="visually-hidden">select</span>
                  </th>
                  <th scope="col">event</th>
                  <th scope="col">task</th>
                  <th scope="col">url</th>
                  <th scope="col">last error</th>
                  <th scope="col">last attempt</th>
                </tr>
              </thead>
              <tbody>
                {data.dead_deliveries.map((d) => (
                  <tr key={d.webhook_id}>
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`Select delivery ${d.webhook_id}`}
                        checked={selected.has(d.webhook_id)}
                        onChange={() => toggle(d.webhook_id)}
                      />
                    </td>
                    <td>{d.event_type}</td>
                    <td>
                      <code>{d.task_id}</code>
                    </td>
                    <td class="url">{d.url}</td>
                    <td>{d.last_error ?? ''}</td>
                    <td>{time(d.updated_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
