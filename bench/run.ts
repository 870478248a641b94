/**
 * `npm run bench -- NAME`: runs bench/NAME.ts. Benchmarks print figures (ratios against
 * Ironic where the workload has an Ironic counterpart); they are not tests.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const name = process.argv[2];
const available = readdirSync('bench')
  .filter((file) => file.endsWith('.ts') && !['run.ts', 'support.ts'].includes(file))
  .map((file) => file.replace(/\.ts$/, ''));
if (!name || !available.includes(name) || !existsSync(join('bench', `${name}.ts`))) {
  process.stderr.write(`usage: npm run bench -- <${available.join('|')}>\n`);
  process.exit(2);
}
await import(`./${name}.ts`);
