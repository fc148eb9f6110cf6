import { createCipheriv, randomBytes } from 'node:crypto';
import { createSecretBox, memoizedOpen, openLegacy, sealContext, webhookSecretOpener, type SecretBox } from '../../src/tenants/secret-box';

const ALICE = sealContext('tenant-alice', 'secret_key');
const BOB = sealContext('tenant-bob', 'secret_key');

/** The real box, counting its decryptions. */
function countingBox(): SecretBox & { opens: number } {
  const box = createSecretBox(randomBytes(32));
  const counting = {
    opens: 0,
    seal: box.seal,
    deriveKey: box.deriveKey,
    open: (sealed: string, context: string) => {
      counting.opens++;
      return box.open(sealed, context);
    },
  };
  return counting;
}

/** A value as the box sealed it before contexts existed: `v1:iv:tag:ct`, no associated data. */
function sealV1(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), ct.toString('base64')].join(':');
}

describe('secret box', () => {
  const key = randomBytes(32);
  const box = createSecretBox(key);

  it('opens what it sealed, in the same place', () => {
    const sealed = box.seal('sk_alice', ALICE);
    expect(sealed).toMatch(/^v2:/);
    expect(sealed).not.toContain('sk_alice');
    expect(box.open(sealed, ALICE)).toBe('sk_alice');
  });

  it('refuses a value sealed under another key', () => {
    expect(() => createSecretBox(randomBytes(32)).open(box.seal('sk_alice', ALICE), ALICE)).toThrow();
  });

  it('refuses a ciphertext moved to another tenant, or to another column of the same tenant', () => {
    const sealed = box.seal('sk_alice', ALICE);
    expect(() => box.open(sealed, BOB)).toThrow();
    expect(() => box.open(sealed, sealContext('tenant-alice', 'webhook_secret'))).toThrow();
  });

  it('refuses a truncated tag, even one that would match on its first bytes', () => {
    const [prefix, iv, tag, ct] = box.seal('sk_alice', ALICE).split(':');
    const full = Buffer.from(tag, 'base64');
    for (const bytes of [12, 8, 4, 0]) {
      const short = [prefix, iv, full.subarray(0, bytes).toString('base64'), ct].join(':');
      expect(() => box.open(short, ALICE)).toThrow(/16 bytes|sealed secret/);
    }
  });

  it('refuses a tampered ciphertext and anything that is not a sealed value', () => {
    const [prefix, iv, tag, ct] = box.seal('sk_alice', ALICE).split(':');
    const tampered = [prefix, iv, tag, (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1)].join(':');
    expect(() => box.open(tampered, ALICE)).toThrow();
    for (const junk of ['', 'v2', 'v2:a:b', `${prefix}:${iv}:${tag}:${ct}:extra`, 'sk_alice'])
      expect(() => box.open(junk, ALICE)).toThrow();
  });

  it('does not open a value sealed before contexts existed: only the reseal step opens it', () => {
    const legacy = sealV1(key, 'sk_old');
    expect(() => box.open(legacy, ALICE)).toThrow();
    expect(openLegacy(key, legacy)).toBe('sk_old');
  });

  it('derives distinct keys per purpose, the same every time', () => {
    expect(box.deriveKey('callback-token')).toEqual(box.deriveKey('callback-token'));
    expect(box.deriveKey('callback-token')).not.toEqual(box.deriveKey('other'));
    expect(box.deriveKey('callback-token')).not.toEqual(key);
    expect(createSecretBox(randomBytes(32)).deriveKey('callback-token')).not.toEqual(box.deriveKey('callback-token'));
  });
});

describe('memoizedOpen', () => {
  it('decrypts a sealed secret once, then answers from memory', () => {
    const box = countingBox();
    const open = memoizedOpen(box);
    const sealed = box.seal('whsec_one', ALICE);
    expect([open(sealed, ALICE), open(sealed, ALICE), open(sealed, ALICE)]).toEqual(['whsec_one', 'whsec_one', 'whsec_one']);
    expect(box.opens).toBe(1);
  });

  it('never answers for another context from memory', () => {
    const box = countingBox();
    const open = memoizedOpen(box);
    const sealed = box.seal('whsec_one', ALICE);
    expect(open(sealed, ALICE)).toBe('whsec_one');
    expect(() => open(sealed, BOB)).toThrow();
  });

  it('gives the new secret at once after a rotation, never the cached old one', () => {
    const box = countingBox();
    const open = memoizedOpen(box);
    const before = box.seal('whsec_old', ALICE);
    expect(open(before, ALICE)).toBe('whsec_old');
    const after = box.seal('whsec_new', ALICE);
    expect(open(after, ALICE)).toBe('whsec_new');
    // Sealing the same text again is another ciphertext, still right.
    expect(open(box.seal('whsec_old', ALICE), ALICE)).toBe('whsec_old');
    expect(open(after, ALICE)).toBe('whsec_new');
  });

  it('stays bounded and correct past its size', () => {
    const box = countingBox();
    const open = memoizedOpen(box, 3);
    const sealed = Array.from({ length: 10 }, (_, i) => box.seal(`whsec_${i}`, ALICE));
    for (let round = 0; round < 2; round++) sealed.forEach((s, i) => expect(open(s, ALICE)).toBe(`whsec_${i}`));
    // Cleared when full: the second round decrypts again, no entry ever answers for another.
    expect(box.opens).toBe(20);
  });

  it('remembers nothing for a ciphertext that does not open', () => {
    const box = countingBox();
    const open = memoizedOpen(box);
    const sealed = box.seal('whsec_x', ALICE);
    const [prefix, iv, tag, ct] = sealed.split(':');
    const tampered = [prefix, iv, tag, (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1)].join(':');
    expect(() => open(tampered, ALICE)).toThrow();
    expect(() => open(tampered, ALICE)).toThrow();
    expect(open(sealed, ALICE)).toBe('whsec_x');
  });
});

describe('webhookSecretOpener', () => {
  it('opens the current secret from its column and the previous one from its own', () => {
    const box = createSecretBox(randomBytes(32));
    const open = webhookSecretOpener(box);
    const current = box.seal('whsec_new', sealContext('t1', 'webhook_secret'));
    const previous = box.seal('whsec_old', sealContext('t1', 'webhook_secret_previous'));
    expect(open('t1', [current, previous])).toEqual(['whsec_new', 'whsec_old']);
    // Swapped columns, or another tenant's values, do not open.
    expect(() => open('t1', [previous])).toThrow();
    expect(() => open('t2', [current])).toThrow();
  });
});
