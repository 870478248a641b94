/**
 * Start-up of the command lines (printed, never asserted): `metalplane --help` (Node 24
 * with its compile cache, the way `npm`'s bin runs it) beside python-ironicclient's
 * `baremetal --help` (.venv) and an empty Node process as the floor. Each is run
 * BENCH_RUNS times (default 7) after one warm-up run; wall time from spawn to exit.
 *
 *   npm run bench -- cli-startup
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { printTable, summarize } from './support.ts';

const ROOT = join(import.meta.dirname, '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const node = process.execPath;

interface Subject {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
}

const subjects: Subject[] = [
  { name: 'node -e "" (the floor)', command: node, args: ['-e', ''] },
  { name: 'metalplane --help', command: node, args: [join(ROOT, 'cli', 'metalplane.ts'), '--help'] },
  {
    name: 'metalplane node list --help',
    command: node,
    args: [join(ROOT, 'cli', 'metalplane.ts'), 'node', 'list', '--help'],
  },
];
const baremetal = join(ROOT, '.venv', 'bin', 'baremetal');
if (existsSync(baremetal)) subjects.push({ name: 'baremetal --help', command: baremetal, args: ['--help'] });
else process.stdout.write('baremetal not in .venv (npm run setup:venv): its row is left out\n');

/** One run's wall time in ms (the process must exit 0). */
function once(subject: Subject): number {
  const started = performance.now();
  const ran = spawnSync(subject.command, subject.args, { stdio: 'ignore', timeout: 60_000 });
  const elapsed = performance.now() - started;
  if (ran.status !== 0) throw new Error(`${subject.name} exited ${ran.status ?? ran.signal}`);
  return elapsed;
}

const rows: Array<Record<string, string | number>> = [];
let floor = Number.NaN;
for (const subject of subjects) {
  once(subject); // warm-up: the compile cache, the page cache
  const stats = summarize(Array.from({ length: RUNS }, () => once(subject)));
  if (Number.isNaN(floor)) floor = stats.p50;
  rows.push({
    command: subject.name,
    runs: stats.n,
    'p50 ms': stats.p50,
    'min ms': stats.min,
    'max ms': stats.max,
    'over the floor ms': stats.p50 - floor,
  });
}
printTable(`command-line start-up (goal: metalplane --help ≤ 150 ms); load ${loadAverage()}`, rows);

function loadAverage(): string {
  try {
    return (
      spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.split(' ').slice(0, 3).join(' ') ||
      'unknown'
    );
  } catch {
    return 'unknown';
  }
}
