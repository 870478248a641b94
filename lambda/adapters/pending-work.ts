/**
 * Work an invocation starts without waiting for it, finished before the invocation
 * returns (issue 18): an event published after a committed write (`events.ts`) runs beside
 * the invocation's next calls (the command's SendMessage, the audit record) instead of
 * before them, and the invocation still ends only once it is done.
 *
 * Why not just leave the promise running: Lambda freezes a container as soon as its
 * handler returns, so work left pending runs at the next invocation, or never if the
 * container is reclaimed. Every entry point therefore runs its core inside
 * `withPendingWork` (`entrypoints/stack.ts`), which waits for what was deferred, error or
 * not. Outside that scope (a test calling a repository, a script), `defer` runs the work
 * at once and waits for it, as if there were no deferral.
 *
 * Deferred work runs one piece after another, in the order deferred, so two events of one
 * invocation are published in the order their writes happened. It must not throw: it is
 * for best-effort work that reports its own failures (`EventPublisher.publish` logs and
 * counts them); a rejection is dropped here rather than failing an invocation whose
 * changes are already committed.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

type Work = () => Promise<unknown>;

class PendingWork {
  #tail: Promise<void> = Promise.resolve();

  add(work: Work): void {
    this.#tail = this.#tail.then(work).then(ignore, ignore);
  }

  /** Resolves once everything deferred is done, including what was deferred meanwhile. */
  async settled(): Promise<void> {
    let seen: Promise<void>;
    do {
      seen = this.#tail;
      await seen;
    } while (seen !== this.#tail);
  }
}

function ignore(): void {}

const scope = new AsyncLocalStorage<PendingWork>();

/** Runs `run`, then waits for the work it deferred (error or not) before answering. */
export async function withPendingWork<T>(run: () => Promise<T>): Promise<T> {
  const pending = new PendingWork();
  try {
    return await scope.run(pending, run);
  } finally {
    await pending.settled();
  }
}

/** Defers `work` to the end of the current invocation; outside one, runs it now and waits. */
export async function defer(work: Work): Promise<void> {
  const pending = scope.getStore();
  if (pending) pending.add(work);
  else await work().then(ignore, ignore);
}
