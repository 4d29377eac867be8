// Runs the crate-ts CLI from the TypeScript sources in a child process (no dist/ build needed):
// vite's SSR module loader transpiles src/ on the fly, as vitest does in the test process.
//   node test/serve-helpers/run-ts.mjs <crate-ts arguments...>
// The tests use it to start `crate-ts serve` and to kill a `neurons score` run mid-way.
import { createServer } from 'vite';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const server = await createServer({
  root, configFile: false, logLevel: 'error', appType: 'custom',
  server: { middlewareMode: true, hmr: false, watch: null },
  optimizeDeps: { noDiscovery: true, include: [] },
});
let code = 1;
try {
  const mod = await server.ssrLoadModule('/src/cli/main.ts');
  code = await mod.main(process.argv.slice(2));
} finally {
  await server.close();
}
process.exit(code);
