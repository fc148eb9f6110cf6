import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, setCsrfToken, type Session } from './api';
import { CreateForm } from './create-form';
import { Gallery } from './gallery';
import { onLiveState, startLive, stopLive } from './live';
import { OperatorView } from './operator';
import { SignIn } from './sign-in';
import { TaskDetailView } from './task-detail';

/** The page's place, from the URL's fragment: `#/`, `#/tasks/<id>`, `#/new/<kind>`. */
function useRoute(): string[] {
  const read = () => decodeURIComponent(location.hash.replace(/^#\/?/, '')).split('/').filter(Boolean);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const update = () => setRoute(read());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [problem, setProblem] = useState('');
  const route = useRoute();

  useEffect(() => {
    api<Session>('GET', '/session').then(signedIn, (err: ApiError) => {
      if (err.status !== 401) setProblem(err.message);
      setSession(null);
    });
  }, []);

  function signedIn(s: Session) {
    setCsrfToken(s.csrf_token);
    setSession(s);
  }

  async function signOut() {
    await api('DELETE', '/session').catch(() => undefined);
    stopLive();
    setCsrfToken('');
    setSession(null);
    location.hash = '';
  }

  if (session === undefined) return <p class="loading">Loading…</p>;
  if (!session) return <SignIn onSignedIn={signedIn} problem={problem} />;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">kling-tracker</span>
        <nav aria-label="Main">
          {session.role === 'tenant' ? (
            <>
              <a href="#/" aria-current={route[0] ? undefined : 'page'}>
                Tasks
              </a>
              <a href="#/new" aria-current={route[0] === 'new' ? 'page' : undefined}>
                New task
              </a>
            </>
          ) : (
            <a href="#/">Operator</a>
          )}
        </nav>
        <span class="who">
          {session.role === 'operator' ? 'Operator' : session.name}
          {session.role === 'tenant' && <LiveBadge />}
        </span>
        <button type="button" class="secondary" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {session.role === 'operator' ? <OperatorView /> : <TenantPages route={route} />}
      </main>
    </>
  );
}

function TenantPages({ route }: { route: string[] }) {
  useEffect(() => startLive(), []);
  if (route[0] === 'tasks' && route[1]) return <TaskDetailView id={route[1]} />;
  if (route[0] === 'new') return <CreateForm kindId={route[1]} />;
  return <Gallery />;
}

function LiveBadge() {
  const [connected, setConnected] = useState(true);
  useEffect(() => onLiveState(setConnected), []);
  return (
    <span class={`live ${connected ? 'on' : 'off'}`} role="status">
      {connected ? 'live' : 'reconnecting…'}
    </span>
  );
}
