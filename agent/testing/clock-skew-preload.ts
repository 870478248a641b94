/**
 * Preloaded into an agent under test (`clockSkewEnv` in agent-process.ts sets
 * `NODE_OPTIONS=--import …/clock-skew-preload.ts`) to skew its wall clock by
 * `METALPLANE_TEST_CLOCK_OFFSET_MS`: `Date.now()` and `new Date()` move, the
 * monotonic `performance.now()` does not (as with a misset NTP clock). No Debian package
 * (libfaketime) needed, and nothing in the agent changes.
 */
const offset = Number(process.env.METALPLANE_TEST_CLOCK_OFFSET_MS ?? '0');
if (Number.isFinite(offset) && offset !== 0) {
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  globalThis.Date = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      return args.length === 0
        ? Reflect.construct(target, [realNow() + offset], newTarget)
        : Reflect.construct(target, args, newTarget);
    },
    apply() {
      // Date() called as a function answers the current time as a string.
      return new RealDate(realNow() + offset).toString();
    },
    get(target, property, receiver) {
      if (property === 'now') return () => realNow() + offset;
      return Reflect.get(target, property, receiver);
    },
  });
}
