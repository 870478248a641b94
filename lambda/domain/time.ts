/**
 * Time in the domain: a clock to inject, and timestamps written as Ironic writes them.
 */

/** The current time; injected so tests and the conductor decide what "now" is. */
export type Clock = () => Date;

/** ISO 8601 with microseconds and `+00:00`, as Ironic writes `created_at`, `updated_at` … */
export function ironicTimestamp(date: Date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000+00:00');
}
