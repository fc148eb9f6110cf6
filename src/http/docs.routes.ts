import path from 'node:path';
import { Router, type RequestHandler } from 'express';
// The package's main module loads the whole browser bundle into Node; this one only locates the files.
import getAbsoluteFSPath from 'swagger-ui-dist/absolute-path';
import type { ModelFamily } from '../kinds/kind';
import { buildOpenApiDocument } from './openapi';

const ASSET_DIR = getAbsoluteFSPath();
// Only what our page loads (and the maps devtools ask for): the package also ships a demo index.html
// and an initializer pointing at the public petstore, which must not be served as ours.
const ASSETS = new Set(['swagger-ui.css', 'swagger-ui.css.map', 'swagger-ui-bundle.js', 'swagger-ui-bundle.js.map', 'favicon-32x32.png']);

/**
 * helmet's default CSP blocks inline styles and data: images, both of which Swagger UI uses, and
 * its `upgrade-insecure-requests` would break the page over plain http on a non-local host. Scripts
 * stay 'self' only: the page has no inline script (the init code is /docs/init.js).
 */
const DOCS_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self' 'unsafe-inline'",
].join('; ');

const PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kling-tracker API reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io (offline here,
// and not somewhere our API description should go). No persistAuthorization: it keeps keys in localStorage.
const INIT_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
`;

// Set after helmet ran (it sets its CSP earlier in the chain), so this replaces it for /docs only.
const docsCsp: RequestHandler = (_req, res, next) => {
  res.setHeader('Content-Security-Policy', DOCS_CSP);
  next();
};

/** GET /openapi.json (built once) and the Swagger UI reference at GET /docs, served from local files. */
export function docsRouter(opts: { models: Readonly<Record<ModelFamily, readonly string[]>> }): Router {
  const r = Router();
  const json = JSON.stringify(buildOpenApiDocument({ models: opts.models }));

  r.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(json);
  });
  r.get('/docs', docsCsp, (_req, res) => {
    res.set('cache-control', 'no-cache').type('html').send(PAGE);
  });
  r.get('/docs/init.js', docsCsp, (_req, res) => {
    res.set('cache-control', 'no-cache').type('text/javascript').send(INIT_JS);
  });
  r.get('/docs/assets/:file', docsCsp, (req, res, next) => {
    const file = String(req.params.file);
    // Anything else falls through to the app's 404 (1202); the allow-list also rules out path tricks.
    if (!ASSETS.has(file)) return next();
    res.sendFile(path.join(ASSET_DIR, file), { maxAge: '1d' });
  });
  return r;
}
