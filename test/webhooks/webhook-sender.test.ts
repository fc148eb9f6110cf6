import { answerToKeep, sendWebhook } from '../../src/webhooks/webhook-sender';

/**
 * The end-to-end tests can only show the private side (their receivers are on loopback, and a
 * test cannot listen on a public address): that a public receiver's answer IS recorded is shown
 * here, on the decision the sender makes with the socket's remote address.
 */
describe('answerToKeep: what of a receiver answer is recorded, by the address connected to', () => {
  it.each(['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('keeps the answer of the public address %s', (peer) => {
    expect(answerToKeep(peer, 'accepted, thanks')).toBe('accepted, thanks');
  });

  it.each(['127.0.0.1', '::1', '::ffff:127.0.0.1', '10.0.0.5', '192.168.1.10', '172.16.3.4', '169.254.169.254', 'fe80::1', 'fd00::1'])(
    'drops the answer of the private, loopback or link-local address %s',
    (peer) => {
      expect(answerToKeep(peer, '{"secret":"of an internal service"}')).toBeUndefined();
    },
  );

  it('drops the answer when the address is unknown or not an address', () => {
    expect(answerToKeep(undefined, 'x')).toBeUndefined();
    expect(answerToKeep('', 'x')).toBeUndefined();
    expect(answerToKeep('localhost', 'x')).toBeUndefined();
  });
});

describe('sendWebhook with a URL it cannot send to', () => {
  const attempt = (url: string) =>
    sendWebhook({
      url,
      id: 'msg_1',
      body: '{}',
      secrets: [`whsec_${Buffer.alloc(24, 1).toString('base64')}`],
      timeoutMs: 1000,
      allowPrivate: true,
    });

  it.each([
    ['not a URL', 'hooks.example.com/kling', /Invalid URL/],
    ['another scheme', 'FTP://hooks.example.com/kling', /not an http\(s\) URL \(ftp:\)/],
  ])('records a failed attempt for %s instead of throwing', async (_case, url, error) => {
    await expect(attempt(url)).resolves.toMatchObject({ ok: false, error: expect.stringMatching(error) });
  });
});
