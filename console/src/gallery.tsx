import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type GalleryItem, type KindForm, type Status } from './api';
import { age, stage } from './format';
import { onLiveTask } from './live';
import { Preview } from './media';

interface Filters {
  status: '' | Status;
  kind: string;
  from: string;
  to: string;
  q: string;
}

const NO_FILTERS: Filters = { status: '', kind: '', from: '', to: '', q: '' };

/** The query string of a page: dates are whole days in the browser's time zone, `to` included. */
function query(f: Filters, after?: string): string {
  const p = new URLSearchParams();
  if (f.q.trim()) p.set('q', f.q.trim());
  else {
    if (f.status) p.set('status', f.status);
    if (f.kind) p.set('kind', f.kind);
    if (f.from) p.set('from', new Date(`${f.from}T00:00`).toISOString());
    if (f.to) p.set('to', new Date(new Date(`${f.to}T00:00`).getTime() + 86_400_000).toISOString());
  }
  if (after) p.set('after', after);
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** Whether a task (new or changed, from the live stream) belongs on the page under these filters. */
function matches(f: Filters, t: GalleryItem): boolean {
  if (f.q.trim()) return t.task_id === f.q.trim() || t.task_info.external_task_id === f.q.trim();
  if (f.status && t.task_status !== f.status) return false;
  if (f.kind && t.kind !== f.kind) return false;
  if (f.from && t.created_at < new Date(`${f.from}T00:00`).getTime()) return false;
  if (f.to && t.created_at >= new Date(`${f.to}T00:00`).getTime() + 86_400_000) return false;
  return true;
}

export function Gallery() {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  // The search box applies on Enter or when it loses focus, not at every keystroke.
  const [draft, setDraft] = useState('');
  const [items, setItems] = useState<GalleryItem[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState('');
  const [kinds, setKinds] = useState<KindForm[]>([]);
  const [, tick] = useState(0);
  const filtersRef = useRef(filters);
  filtersRef.current = filters;

  useEffect(() => {
    api<KindForm[]>('GET', '/kinds').then(setKinds, () => undefined);
    // Ages move on by themselves.
    const timer = setInterval(() => tick((n) => n + 1), 15_000);
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    let stale = false;
    setError('');
    api<{ items: GalleryItem[]; next: string | null }>('GET', `/tasks${query(filters)}`).then(
      (page) => {
        if (stale) return;
        setItems(page.items);
        setNext(page.next);
      },
      (err: Error) => !stale && setError(err.message),
    );
    return () => void (stale = true);
  }, [filters]);

  useEffect(
    () =>
      onLiveTask((t) =>
        setItems((list) => {
          if (!list) return list;
          const at = list.findIndex((x) => x.task_id === t.task_id);
          const keep = matches(filtersRef.current, t);
          if (at >= 0) return keep ? list.map((x, i) => (i === at ? t : x)) : list.filter((_, i) => i !== at);
          return keep ? [t, ...list] : list;
        }),
      ),
    [],
  );

  async function more() {
    if (!next) return;
    try {
      const page = await api<{ items: GalleryItem[]; next: string | null }>('GET', `/tasks${query(filters, next)}`);
      setItems((list) => [...(list ?? []), ...page.items.filter((t) => !list?.some((x) => x.task_id === t.task_id))]);
      setNext(page.next);
    } catch (err) {
      setError((err as Error).message);
    }
  }

  const set = (patch: Partial<Filters>) => setFilters((f) => ({ ...f, ...patch }));
  const filtered = filters !== NO_FILTERS && Object.values(filters).some(Boolean);

  return (
    <section aria-labelledby="gallery-title">
      <h1 id="gallery-title">Tasks</h1>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          set({ q: draft });
        }}
      >
        <div class="field">
          <label for="f-q">Search by task_id or external_task_id</label>
          <input id="f-q" type="search" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} onChange={() => set({ q: draft })} />
        </div>
        <div class="field">
          <label for="f-status">Status</label>
          <select id="f-status" value={filters.status} onChange={(e) => set({ status: e.currentTarget.value as Filters['status'] })}>
            <option value="">any</option>
            <option value="submitted">submitted</option>
            <option value="processing">processing</option>
            <option value="succeed">succeed</option>
            <option value="failed">failed</option>
          </select>
        </div>
        <div class="field">
          <label for="f-kind">Kind</label>
          <select id="f-kind" value={filters.kind} onChange={(e) => set({ kind: e.currentTarget.value })}>
            <option value="">any</option>
            {kinds.map((k) => (
              <option key={k.id} value={k.id}>
                {k.title}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-from">Created from</label>
          <input id="f-from" type="date" value={filters.from} onChange={(e) => set({ from: e.currentTarget.value })} />
        </div>
        <div class="field">
          <label for="f-to">Created to</label>
          <input id="f-to" type="date" value={filters.to} onChange={(e) => set({ to: e.currentTarget.value })} />
        </div>
        {filtered && (
          <button
            type="button"
            class="secondary"
            onClick={() => {
              setDraft('');
              setFilters(NO_FILTERS);
            }}
          >
            Clear filters
          </button>
        )}
      </form>
      {error && (
        <p class="error" role="alert">
          Could not load the tasks: {error}
        </p>
      )}
      {items === null && !error && <p class="loading">Loading tasks…</p>}
      {items?.length === 0 &&
        (filtered ? (
          <p class="empty-state">No task matches these filters. Change or clear them to see more.</p>
        ) : (
          <p class="empty-state">
            No tasks yet. <a href="#/new">Create one here</a>, or send one to the API (<code>POST /v1/images/generations</code>); it appears
            here as soon as it is accepted.
          </p>
        ))}
      {!!items?.length && (
        <ul class="gallery">
          {items.map((t) => (
            <li key={t.task_id}>
              <TaskCard task={t} />
            </li>
          ))}
        </ul>
      )}
      {next && (
        <button type="button" class="secondary more" onClick={more}>
          Show older tasks
        </button>
      )}
    </section>
  );
}

function TaskCard({ task }: { task: GalleryItem }) {
  return (
    <a class={`card status-${task.task_status}`} href={`#/tasks/${encodeURIComponent(task.task_id)}`} data-task-id={task.task_id}>
      <Preview task={task} />
      <span class="card-body">
        <span class="row">
          <span class={`status status-${task.task_status}`}>{task.task_status}</span>
          <span class="kind">{task.kind_title}</span>
        </span>
        <span class="prompt">{task.prompt || <em>no prompt</em>}</span>
        <span class="row meta">
          <span>{stage(task)}</span>
          <time dateTime={new Date(task.created_at).toISOString()}>{age(task.created_at)}</time>
        </span>
      </span>
    </a>
  );
}
