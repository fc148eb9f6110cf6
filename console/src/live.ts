import type { GalleryItem } from './api';

/**
 * The tenant's live stream (/console/api/stream): one EventSource for the whole page, every new
 * task and every change as a `task` event. EventSource reconnects by itself after a drop.
 */
type Listener = (item: GalleryItem) => void;
const listeners = new Set<Listener>();
const stateListeners = new Set<(connected: boolean) => void>();
let source: EventSource | null = null;

export function startLive(): void {
  if (source) return;
  source = new EventSource('/console/api/stream');
  source.addEventListener('task', (e) => {
    const item = JSON.parse((e as MessageEvent<string>).data) as GalleryItem;
    for (const l of listeners) l(item);
  });
  source.addEventListener('open', () => stateListeners.forEach((l) => l(true)));
  source.addEventListener('error', () => stateListeners.forEach((l) => l(false)));
}

export function stopLive(): void {
  source?.close();
  source = null;
}

export function onLiveTask(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function onLiveState(listener: (connected: boolean) => void): () => void {
  stateListeners.add(listener);
  return () => stateListeners.delete(listener);
}
