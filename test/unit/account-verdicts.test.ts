import { UpstreamError } from '../../src/kling/upstream-errors';
import { accountVerdict } from '../../src/tasks/account-health';

const answer = (http: number, code?: number, kind: ConstructorParameters<typeof UpstreamError>[0] = 'rejected') =>
  new UpstreamError(kind, 'x', http, code);

describe('accountVerdict: what an answer to a create says about the account', () => {
  it.each([
    [1100, 'pool_out'],
    [1101, 'pool_out'],
    [1102, 'pool_out'],
    [1304, 'pool_out'],
    [1103, 'model_refused'],
    [1000, 'auth'],
    [1001, 'auth'],
    [1002, 'auth'],
    [1303, 'full'],
  ])('code %i: %s', (code, kind) => {
    expect(accountVerdict(answer(code === 1303 ? 429 : 400, code), false)?.kind).toBe(kind);
  });

  it('takes 1003/1004 as a refused credential only after a fresh signature', () => {
    expect(accountVerdict(answer(401, 1004, 'auth_expired'), false)).toBeNull();
    expect(accountVerdict(answer(401, 1004, 'auth_expired'), true)).toEqual({ kind: 'auth' });
  });

  it('counts 5000-series answers and missing answers as failures, never as refusals', () => {
    expect(accountVerdict(answer(500, 5000, 'server'), false)).toEqual({ kind: 'failure' });
    expect(accountVerdict(new UpstreamError('timeout', 'no answer'), false)).toEqual({ kind: 'failure' });
    expect(accountVerdict(new UpstreamError('network', 'refused'), false)).toEqual({ kind: 'failure' });
  });

  it('says nothing about the account for a refusal of the task itself', () => {
    expect(accountVerdict(answer(400, 1301), false)).toBeNull();
    expect(accountVerdict(answer(400, 1201), false)).toBeNull();
    expect(accountVerdict(answer(429, 1302, 'rate_limited'), false)).toBeNull();
  });
});
