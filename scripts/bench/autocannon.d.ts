// autocannon 8 ships no types; this declares the part the benchmark uses.
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    /** Each request may rewrite the one before it is sent (a path per request). */
    requests?: { method?: string; setupRequest?: (req: { path?: string }) => { path?: string } }[];
  }

  interface Result {
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
    latency: { p50: number; p99: number };
  }

  function autocannon(opts: Options, done: (err: Error | null, result: Result) => void): unknown;

  namespace autocannon {
    export type { Options, Result };
  }

  export = autocannon;
}
