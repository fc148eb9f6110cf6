import { redactCredentials } from '../../src/lib/redact-url';

describe('redactCredentials', () => {
  it('hides the user, the password and every query value, and keeps the rest to recognise the URL', () => {
    const shown = redactCredentials('https://key-id:s3cr3t-p4ss@api.proxy.example:8443/kling/v1?api_key=abc123&region=sg');
    expect(shown).toBe('https://redacted:redacted@api.proxy.example:8443/kling/v1?api_key=redacted&region=redacted');
    for (const secret of ['key-id', 's3cr3t-p4ss', 'abc123']) expect(shown).not.toContain(secret);
  });

  it('leaves a URL without credentials as it is', () => {
    expect(redactCredentials('https://api-singapore.klingai.com')).toBe('https://api-singapore.klingai.com/');
  });

  it('never echoes what does not parse', () => {
    expect(redactCredentials('not a url with secret')).toBe('[unparseable URL]');
  });
});
