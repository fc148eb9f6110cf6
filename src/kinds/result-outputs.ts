import type { TaskKind, TaskResult } from './kind';

/** One output file of a stored result: its position in the kind's list and the upstream's URL. */
export interface ResultOutput {
  index: number;
  url: string;
}

type Entry = { url?: unknown } & Record<string, unknown>;

const entriesOf = (kind: TaskKind, stored: unknown): Entry[] => {
  const list = (stored as Record<string, unknown> | null)?.[kind.outputs.list];
  return Array.isArray(list) ? (list as Entry[]) : [];
};

/** The output files of a stored result, in order (entries without a URL have nothing to copy). */
export function resultOutputs(kind: TaskKind, stored: unknown): ResultOutput[] {
  return entriesOf(kind, stored).flatMap((e, index) => (typeof e.url === 'string' && e.url ? [{ index, url: e.url }] : []));
}

/** The kind's `task_result` for a stored result with each output's URL replaced (`urls[index]`; missing ones are kept). */
export function withOutputUrls(kind: TaskKind, stored: unknown, urls: ReadonlyMap<number, string>): TaskResult {
  const entries = entriesOf(kind, stored).map((e, index) => (urls.has(index) ? { ...e, url: urls.get(index) } : e));
  return kind.taskResult({ ...(stored as object), [kind.outputs.list]: entries });
}
