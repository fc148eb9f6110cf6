import { randomBytes } from 'node:crypto';
import { createSecretBox, memoizedOpen, type SecretBox } from '../../src/tenants/secret-box';

/** The real box, counting its decryptions. */
function countingBox(): SecretBox & { opens: number } {
  const box = createSecretBox(randomBytes(32));
  const counting = {
    opens: 0,
    seal: (plain: string) => box.seal(plain),
    open: (sealed: string) => {
      counting.opens++;
      return box.open(sealed);
    },
  };
  return counting;
}

describe('memoizedOpen', () => {
  it('decrypts a sealed secret once, then answers from memory', () => {
    const box = countingBox();
    const open = memoizedOpen(box);
    const sealed = box.seal('whsec_one');
    expect([open(sealed), open(sealed), open(sealed)]).toEqual(['whsec_one', 'whsec_one', 'whsec_one']);
    expect(box.opens).toBe(1);
  });

  it('gives the new secret at once after a rotation, never the cached old one', () => {
    const box = countingBox();
    const open = memoizedOpen(box);
    const before = box.seal('whsec_old');
    expect(open(before)).toBe('whsec_old');
    const after = box.seal('whsec_new');
    expect(open(after)).toBe('whsec_new');
    // Sealing the same text again is another ciphertext, still right.
    expect(open(box.seal('whsec_old'))).toBe('whsec_old');
    expect(open(after)).toBe('whsec_new');
  });

  it('stays bounded and correct past its size', () => {
    const box = countingBox();
    const open = memoizedOpen(box, 3);
    const sealed = Array.from({ length: 10 }, (_, i) => box.seal(`whsec_${i}`));
    for (let round = 0; round < 2; round++) sealed.forEach((s, i) => expect(open(s)).toBe(`whsec_${i}`));
    // Cleared when full: the second round decrypts again, no entry ever answers for another.
    expect(box.opens).toBe(20);
  });

  it('remembers nothing for a ciphertext that does not open', () => {
    const box = countingBox();
    const open = memoizedOpen(box);
    const sealed = box.seal('whsec_x');
    const [prefix, iv, tag, ct] = sealed.split(':');
    const tampered = [prefix, iv, tag, (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1)].join(':');
    expect(() => open(tampered)).toThrow();
    expect(() => open(tampered)).toThrow();
    expect(open(sealed)).toBe('whsec_x');
  });
});
