import { useState } from 'preact/hooks';
import { api, type Session } from './api';

export function SignIn({ onSignedIn, problem }: { onSignedIn: (s: Session) => void; problem: string }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(problem);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      onSignedIn(await api<Session>('POST', '/session', { api_key: key }));
      setKey('');
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="sign-in" id="main">
      <h1>kling-tracker console</h1>
      <p>Sign in with your tenant's API key to see your tasks, or with the operator's ADMIN_TOKEN.</p>
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api_key"
          type="password"
          autocomplete="off"
          required
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={error ? 'sign-in-error' : undefined}
        />
        {error && (
          <p id="sign-in-error" class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p class="hint">The key is exchanged for a session cookie; the page never stores it.</p>
    </main>
  );
}
