import { classifyUpstreamAnswer, UpstreamError } from '../../src/kling/upstream-errors';

describe('upstream error classification (by business code, not HTTP status alone)', () => {
  it.each([
    [401, 1004, 'token expired', 'auth_expired', true],
    [401, 1003, 'token not yet valid', 'auth_expired', true],
    [429, 1302, 'rate limit', 'rate_limited', true],
    [429, 1303, 'concurrency', 'concurrency', true],
    [500, 5000, 'internal', 'server', true],
    [503, 5001, 'maintenance', 'server', true],
    [504, 5002, 'timeout', 'server', true],
    [502, undefined, 'HTTP 502', 'server', true],
    [429, undefined, 'HTTP 429', 'server', true],
    [401, 1000, 'auth failed', 'rejected', false],
    [401, 1002, 'invalid', 'rejected', false],
    [429, 1101, 'in arrears', 'rejected', false],
    [429, 1102, 'resource pack exhausted', 'rejected', false],
    [403, 1103, 'no permission', 'rejected', false],
    [400, 1201, 'prompt: too long', 'rejected', false],
    [400, 1301, 'content safety', 'rejected', false],
    [429, 1304, 'ip whitelist', 'rejected', false],
    [404, 1203, 'task not found', 'not_found', false],
    [400, 1201, 'external_task_id already exists', 'already_exists', false],
    [400, undefined, 'HTTP 400', 'rejected', false],
  ])('HTTP %i code %s (%s) is %s, retryable=%s', (http, code, message, kind, retryable) => {
    const k = classifyUpstreamAnswer(http, code, message);
    expect(k).toBe(kind);
    expect(new UpstreamError(k, message, http, code).retryable).toBe(retryable);
  });
});
