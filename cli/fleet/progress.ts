/**
 * What the operator sees while a rollout runs, on stderr (stdout keeps the final result
 * for scripts). On a terminal: a table per site, redrawn in place at each poll. Elsewhere
 * (CI logs, pipes): one line per node that finishes or fails, which reads well in a log.
 */
import { renderTable } from '../output.ts';
import type { Reporter, RolloutView } from './rollout.ts';
import { summaryBySite } from './rollout.ts';
import type { NodeRecord, RolloutRecord } from './store.ts';

const HEADERS = ['Site', 'Nodes', 'Pending', 'Running', 'Succeeded', 'Failed'];

export function progressTable(record: RolloutRecord, view: RolloutView): string {
  const rows = summaryBySite(record).map((row) => [
    row.site,
    row.nodes,
    row.pending,
    row.running,
    row.succeeded,
    row.failed,
  ]);
  const done = record.nodes.filter((node) => node.status === 'succeeded' || node.status === 'failed').length;
  const state = view.stopping ? ' (stopping: failure limit exceeded)' : '';
  const head = `rollout ${record.id}: ${record.action.kind === 'power' ? 'power ' : ''}${record.action.verb}, ${done}/${record.nodes.length} done, ${view.failures} failed of ${view.failureLimit} allowed${state}`;
  return `${head}\n${renderTable(HEADERS, rows)}`;
}

/** Redraws the table in place (ANSI cursor up and erase), only when it changed. */
export function terminalReporter(write: (text: string) => void): Reporter {
  let drawn = '';
  return {
    node() {},
    tick(record, view) {
      const table = progressTable(record, view);
      if (table === drawn) return;
      const up = drawn === '' ? '' : `\x1b[${drawn.split('\n').length}A\x1b[J`;
      write(`${up}${table}\n`);
      drawn = table;
    },
  };
}

/** A line per node that ends, and one when the rollout starts stopping. */
export function logReporter(write: (text: string) => void): Reporter {
  let stopping = false;
  return {
    node(_record, node: NodeRecord) {
      if (node.status !== 'succeeded' && node.status !== 'failed') return;
      const name = node.name ?? node.uuid;
      const detail = node.status === 'failed' ? `: ${node.error}` : node.note ? ` (${node.note})` : '';
      write(`${node.site} ${name}: ${node.status}${detail}\n`);
    },
    tick(record, view) {
      if (view.stopping && !stopping) {
        stopping = true;
        write(`rollout ${record.id}: stopping, ${record.reason}\n`);
      }
    },
  };
}
