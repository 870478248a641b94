/**
 * Deferred work (lambda/adapters/pending-work.ts): started without waiting, finished before
 * the invocation answers, in the order deferred; outside an invocation, done at once.
 * Each piece of work waits a turn of the event loop (`setImmediate`), so that an
 * invocation that did not wait for it would visibly answer first.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { defer, withPendingWork } from '../../lambda/adapters/pending-work.ts';
import { entrypoint } from '../../lambda/entrypoints/stack.ts';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function slowStep(log: string[], name: string) {
  return async () => {
    await nextTurn();
    log.push(name);
  };
}

describe('defer', () => {
  it('outside an invocation, runs the work before it resolves', async () => {
    const log: string[] = [];
    await defer(slowStep(log, 'work'));
    log.push('after defer');
    expect(log).toEqual(['work', 'after defer']);
  });

  it('inside one, returns at once; the invocation answers after the work, done in order', async () => {
    const log: string[] = [];
    const answer = await withPendingWork(async () => {
      await defer(slowStep(log, 'first'));
      await defer(slowStep(log, 'second'));
      log.push('core done');
      return 42;
    });
    log.push('answered');
    expect(answer).toBe(42);
    expect(log).toEqual(['core done', 'first', 'second', 'answered']);
  });

  it('waits for work deferred by deferred work', async () => {
    const log: string[] = [];
    await withPendingWork(async () => {
      await defer(async () => {
        await nextTurn();
        log.push('outer');
        await defer(slowStep(log, 'inner'));
      });
    });
    log.push('answered');
    expect(log).toEqual(['outer', 'inner', 'answered']);
  });

  it('waits for the work when the core fails, then fails with its error', async () => {
    const log: string[] = [];
    const failing = withPendingWork(async () => {
      await defer(slowStep(log, 'work'));
      throw new Error('core failed');
    });
    await expect(failing).rejects.toThrow('core failed');
    expect(log).toEqual(['work']);
  });

  it('drops a failed piece of work and still runs the next', async () => {
    const log: string[] = [];
    await withPendingWork(async () => {
      await defer(async () => {
        await nextTurn();
        throw new Error('best effort');
      });
      await defer(slowStep(log, 'next'));
    });
    expect(log).toEqual(['next']);
  });

  it('keeps two invocations apart: each waits for its own work only', async () => {
    const log: string[] = [];
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = withPendingWork(async () => {
      await defer(async () => {
        await held;
        log.push('slow work');
      });
    });
    await withPendingWork(async () => {
      await defer(slowStep(log, 'quick work'));
    });
    log.push('quick answered');
    release();
    await slow;
    expect(log).toEqual(['quick work', 'quick answered', 'slow work']);
  });
});

describe('entrypoint', () => {
  it('answers only once the work its core deferred is done', async () => {
    const log: string[] = [];
    const handler = entrypoint(new Logger({ logLevel: 'SILENT' }), async (event: { readonly n: number }) => {
      await defer(slowStep(log, 'event published'));
      log.push('core done');
      return event.n + 1;
    });
    const answer = await handler({ n: 1 }, { awsRequestId: 'req-1' } as Context);
    log.push('answered');
    expect(answer).toBe(2);
    expect(log).toEqual(['core done', 'event published', 'answered']);
  });
});
