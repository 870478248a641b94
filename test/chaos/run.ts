/**
 * `npm run chaos -- --runs N [--stress] [--seed S] [--commands C] [--nodes K]`: N chaos
 * runs (test/chaos/harness.ts) against one moto server, one line per run, then the table.
 * Exit code 0 only if every run passed. `--seed S` replays one run; `--stress` keeps a
 * core busy meanwhile (a child spinning, stopped by its PID). See docs/chaos.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { emulatorEnvironment, startMoto } from '../../local/moto.ts';
import { AwsFaultProxy } from './aws-fault-proxy.ts';
import { formatRun, type RunReport, runChaos } from './harness.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1' },
    seed: { type: 'string' },
    stress: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    commands: { type: 'string', default: '120' },
    nodes: { type: 'string', default: '8' },
  },
});
const runs = values.seed !== undefined ? 1 : Number(values.runs);
const firstSeed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
const out = (line: string) => process.stdout.write(`${line}\n`);

// Handlers log through Powertools: silent, as in the tests (vitest.config.ts).
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
const moto = await startMoto();
Object.assign(process.env, emulatorEnvironment(moto.endpoint));
const proxy = await new AwsFaultProxy(moto.endpoint).start();
let stress: ChildProcess | undefined;
if (values.stress) {
  stress = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  out(`stress: one core kept busy by pid ${stress.pid}`);
}
const reports: RunReport[] = [];
try {
  for (let i = 0; i < runs; i++) {
    const seed = firstSeed + i;
    out(`run ${i + 1}/${runs}: seed ${seed}`);
    const report = await runChaos({
      seed,
      proxy,
      commands: Number(values.commands),
      nodes: Number(values.nodes),
      verbose: values.verbose,
    }).catch(
      (error: Error): RunReport => ({
        seed,
        passed: false,
        commands: 0,
        faults: {},
        ended: { succeeded: 0, failed: 0, expired: 0, open: 0 },
        worstSettleMs: 0,
        durationMs: 0,
        problems: [`the run broke: ${error.stack ?? error.message}`],
        detail: '',
      }),
    );
    reports.push(report);
    out(formatRun(report));
    for (const problem of report.problems) out(`  problem: ${problem}`);
    if (report.detail) out(report.detail);
  }
} finally {
  if (stress?.pid !== undefined && stress.exitCode === null) process.kill(stress.pid, 'SIGKILL');
  await proxy.close();
  await moto.stop();
}

const passed = reports.filter((r) => r.passed).length;
const worst = Math.max(0, ...reports.map((r) => r.worstSettleMs));
const totals = new Map<string, number>();
for (const r of reports)
  for (const [kind, n] of Object.entries(r.faults)) totals.set(kind, (totals.get(kind) ?? 0) + n);
out('');
out('| runs passed | runs | commands | succeeded | failed | expired | worst settle | faults injected |');
out('| --- | --- | --- | --- | --- | --- | --- | --- |');
const sum = (pick: (r: RunReport) => number) => reports.reduce((n, r) => n + pick(r), 0);
out(
  `| ${passed} | ${reports.length} | ${sum((r) => r.commands)} | ${sum((r) => r.ended.succeeded)} | ${sum((r) => r.ended.failed)} | ${sum((r) => r.ended.expired)} | ${(worst / 1000).toFixed(1)} s | ${[
    ...totals,
  ]
    .map(([k, n]) => `${k}×${n}`)
    .join(', ')} |`,
);
if (passed < reports.length)
  out(
    `failed seeds: ${reports
      .filter((r) => !r.passed)
      .map((r) => r.seed)
      .join(' ')} (replay: npm run chaos -- --seed S)`,
  );
process.exit(passed === reports.length ? 0 : 1);
