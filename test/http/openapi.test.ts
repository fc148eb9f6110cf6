import { spawnSync } from 'node:child_process';
import path from 'node:path';
import express from 'express';
import helmet from 'helmet';
import request from 'supertest';
import { ERRORS } from '../../src/errors';
import { docsRouter } from '../../src/http/docs.routes';

type Json = Record<string, any>;

// Only the docs part of the app, behind helmet exactly as createApp mounts it.
const app = express();
app.use(helmet());
app.use(docsRouter({ models: { image: ['kling-v3'], video: ['kling-v3'] } }));

const ENDPOINTS: [string, string][] = [
  ['post', '/v1/images/generations'],
  ['get', '/v1/images/generations'],
  ['get', '/v1/images/generations/{id}'],
  ['get', '/v1/images/generations/{id}/events'],
  ['post', '/v1/images/generations/{id}/cancel'],
  ['get', '/v1/images/generations/{id}/deliveries'],
  ['post', '/v1/images/generations/{id}/deliveries/{webhook_id}/redeliver'],
  ['post', '/callbacks/kling/{taskId}/{token}'],
  ['get', '/healthz'],
  ['get', '/readyz'],
  ['get', '/metrics'],
  ['get', '/admin/queues'],
  ['get', '/openapi.json'],
  ['get', '/docs'],
];

/**
 * `SwaggerParser.validate` run by plain Node: its dependencies are ESM-only, which jest's CommonJS
 * runtime cannot load, while Node 20.19+ can require them. The child parses its own copy of the document.
 */
function validateOpenApi(doc: object): string {
  const script = `const SwaggerParser = require('@apidevtools/swagger-parser');
let input = '';
process.stdin.on('data', (c) => (input += c)).on('end', () =>
  SwaggerParser.validate(JSON.parse(input)).then(() => console.log('valid'), (e) => console.log('invalid: ' + e.message)));`;
  const child = spawnSync(process.execPath, ['-e', script], {
    input: JSON.stringify(doc),
    cwd: path.join(__dirname, '..', '..'),
    encoding: 'utf8',
  });
  return child.stdout.trim() || `no answer: ${child.stderr}`;
}

/** Follows one local `$ref` (the generator puts named schemas under components). */
const deref = (doc: Json, node: Json): Json =>
  node.$ref
    ? node.$ref
        .split('/')
        .slice(1)
        .reduce((n: Json, k: string) => n[k], doc)
    : node;

describe('GET /openapi.json', () => {
  let doc: Json;
  beforeAll(async () => {
    const res = await request(app).get('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    doc = res.body;
  });

  it('is a valid OpenAPI 3.1 document', () => {
    expect(doc.openapi).toMatch(/^3\.1/);
    expect(validateOpenApi(doc)).toBe('valid');
    // The validator must be able to say no, or the line above proves nothing.
    expect(validateOpenApi({ ...doc, paths: { '/x': { get: { responses: { 200: {} } } } } })).toMatch(/^invalid/);
  });

  it('covers every endpoint of the service', () => {
    for (const [method, path] of ENDPOINTS) expect([method, path, Boolean(doc.paths[path]?.[method])]).toEqual([method, path, true]);
  });

  it('describes the create body from the validating zod schema: every field, with its enums and limits', () => {
    const op = doc.paths['/v1/images/generations'].post;
    const body = deref(doc, op.requestBody.content['application/json'].schema);
    expect(Object.keys(body.properties).sort()).toEqual(
      [
        'model_name',
        'prompt',
        'negative_prompt',
        'image',
        'image_reference',
        'image_fidelity',
        'human_fidelity',
        'element_list',
        'resolution',
        'n',
        'aspect_ratio',
        'watermark_info',
        'callback_url',
        'external_task_id',
      ].sort(),
    );
    const p = body.properties;
    expect(body.additionalProperties).toBe(false);
    expect(body.required).toEqual(['prompt']);
    expect(p.model_name).toMatchObject({ enum: ['kling-v3'], default: 'kling-v3' });
    expect(p.prompt.maxLength).toBe(2500);
    expect(p.negative_prompt.maxLength).toBe(2500);
    expect(p.n).toMatchObject({ type: 'integer', minimum: 1, maximum: 9 });
    expect(p.aspect_ratio.enum).toEqual(['1:1', '16:9', '4:3', '3:2', '2:3', '3:4', '9:16', '21:9']);
    expect(p.image_reference.enum).toEqual(['subject', 'face']);
    expect(p.resolution.enum).toEqual(['1k', '2k']);
    expect(p.image_fidelity).toMatchObject({ minimum: 0, maximum: 1 });
    expect(p.element_list.maxItems).toBe(10);
    expect(p.external_task_id).toMatchObject({ minLength: 1, maxLength: 256 });
    expect(op.parameters.find((x: Json) => x.name === 'Idempotency-Key')).toMatchObject({ in: 'header', required: false });
  });

  it('follows the configured model list', async () => {
    const other = express().use(docsRouter({ models: { image: ['kling-v3', 'kling-v2-1'], video: ['kling-v3'] } }));
    const body = (await request(other).get('/openapi.json')).body;
    expect(body.components.schemas.CreateTaskRequest.properties.model_name.enum).toEqual(['kling-v3', 'kling-v2-1']);
  });

  it('documents the task object with exactly Kling status values and the tracker extension', () => {
    const task = doc.components.schemas.TaskObject;
    expect(deref(doc, task.properties.task_status).enum).toEqual(['submitted', 'processing', 'succeed', 'failed']);
    const tracker = deref(doc, task.properties.tracker);
    expect(tracker.properties.state.enum).toEqual(expect.arrayContaining(['queued', 'canceled', 'timed_out']));
    const wait = doc.paths['/v1/images/generations/{id}'].get.parameters.find((x: Json) => x.name === 'wait');
    expect(wait).toMatchObject({ in: 'query', schema: { type: 'integer', minimum: 0, maximum: 60 } });
    expect(Object.keys(doc.paths['/v1/images/generations/{id}/events'].get.responses[200].content)).toEqual(['text/event-stream']);
  });

  it('documents the outgoing webhook with its Standard Webhooks headers and the task object body', () => {
    const hook = doc.webhooks.taskStatusChanged.post;
    const headers = hook.parameters.filter((x: Json) => x.in === 'header').map((x: Json) => x.name);
    expect(headers).toEqual(expect.arrayContaining(['webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-type', 'user-agent']));
    expect(hook.requestBody.content['application/json'].schema.$ref).toBe('#/components/schemas/TaskObject');
  });

  it('documents both tenant auth schemes and the admin one', () => {
    const schemes = doc.components.securitySchemes;
    expect(schemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(schemes.klingJwt).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    expect(schemes.klingJwt.description).toMatch(/HS256/);
    expect(schemes.klingJwt.description).toMatch(/iss/);
    expect(doc.security).toEqual([{ apiKey: [] }, { klingJwt: [] }]);
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/metrics'].get.security).toEqual(expect.arrayContaining([{ adminToken: [] }]));
  });

  it('lists every error code with its HTTP status, and answers them where they apply', () => {
    for (const { http, code } of Object.values(ERRORS)) expect(doc.info.description).toContain(`| ${http} | ${code} |`);
    const create = doc.paths['/v1/images/generations'].post.responses;
    expect(Object.keys(create).sort()).toEqual(['200', '400', '401', '409', '413', '415', '429', '500', '503']);
    const codes = (r: Json) => Object.values(r.content['application/json'].examples).map((e: any) => e.value.code);
    expect(codes(create[400]).sort()).toEqual([1200, 1201]);
    expect(codes(create[401]).sort()).toEqual([1000, 1001, 1002, 1003, 1004]);
    expect(codes(create[409])).toEqual([1201]);
    expect(codes(create[429])).toEqual([1302]);
    expect(create[429].headers['Retry-After']).toBeDefined();
    expect(codes(create[500])).toEqual([5000]);
    expect(codes(create[503])).toEqual([5001]);
    expect(codes(doc.paths['/v1/images/generations/{id}'].get.responses[404])).toEqual([1203]);
    expect(codes(doc.paths['/metrics'].get.responses[404])).toEqual([1202]);
  });
});

describe('GET /docs', () => {
  it('answers a page that loads the local Swagger UI assets and /docs/init.js, with a CSP that allows them', async () => {
    const res = await request(app).get('/docs');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toContain('src="/docs/assets/swagger-ui-bundle.js"');
    expect(res.text).toContain('href="/docs/assets/swagger-ui.css"');
    expect(res.text).toContain('src="/docs/init.js"');
    expect(res.text).not.toMatch(/<script>|https?:\/\//); // no inline script, nothing from a CDN
    const csp = res.headers['content-security-policy'];
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self' 'unsafe-inline'");
    expect(csp).toContain("img-src 'self' data:");
    expect(csp).not.toContain('unsafe-eval');
  });

  it('serves the init script pointing at /openapi.json, and the assets with script and style types', async () => {
    const init = await request(app).get('/docs/init.js');
    expect([init.status, init.headers['content-type']]).toEqual([200, expect.stringMatching(/javascript/)]);
    expect(init.text).toContain("url: '/openapi.json'");
    const js = await request(app).get('/docs/assets/swagger-ui-bundle.js');
    expect([js.status, js.headers['content-type']]).toEqual([200, expect.stringMatching(/javascript/)]);
    expect(js.text).toContain('SwaggerUIBundle');
    const css = await request(app).get('/docs/assets/swagger-ui.css');
    expect([css.status, css.headers['content-type']]).toEqual([200, expect.stringMatching(/^text\/css/)]);
  });

  it('serves nothing else from the package directory', async () => {
    for (const file of ['index.html', 'swagger-initializer.js', 'package.json', '..%2F..%2Fpackage.json']) {
      expect([file, (await request(app).get(`/docs/assets/${file}`)).status]).toEqual([file, 404]);
    }
  });
});
