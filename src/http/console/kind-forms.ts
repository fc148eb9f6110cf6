import { z } from 'zod';
import type { ModelFamily } from '../../kinds/kind';
import { KINDS } from '../../kinds/registry';

/**
 * What the console's create forms are generated from: each kind's request schema, the very one
 * that validates the API's creates, exported as JSON Schema (zod's own export). Computed once per
 * set of models.
 */
export function kindForms(models: Readonly<Record<ModelFamily, readonly string[]>>) {
  return KINDS.map((kind) => ({
    id: kind.id,
    title: kind.title,
    path: kind.path,
    pool: kind.pool,
    example: kind.example,
    schema: z.toJSONSchema(kind.requestSchema(models[kind.models]), { io: 'input', unrepresentable: 'any' }),
  }));
}
