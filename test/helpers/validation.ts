import type { Validation } from '../../src/kinds/kind';

/** Assertions over a create-body validator: accepted (returns the value), or refused on `field` with `message`. */
export function validationExpectations<T>(validate: (body: unknown) => Validation<T>) {
  return {
    expectAccepted(body: unknown): T {
      const result = validate(body);
      if (!result.ok) throw new Error(`expected acceptance, got ${result.message}`);
      return result.value;
    },
    expectRefused(body: unknown, field: string, message: string | RegExp): void {
      const result = validate(body);
      if (result.ok) throw new Error(`expected refusal on ${field}, but the body was accepted`);
      expect(result.field).toBe(field);
      if (typeof message === 'string') expect(result.message).toBe(message);
      else expect(result.message).toMatch(message);
      expect(result.message.startsWith(`${field}: `)).toBe(true);
    },
  };
}
