import { sendWebhook } from '../../src/webhooks/webhook-sender';

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
